"""deploy/aws/iam-policy.json: valid, as narrow as the adapters need, and enough for them."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from moto.iam.access_control import IAMPolicy, PermissionResult

from .helpers import client

pytestmark = pytest.mark.aws

ROOT = Path(__file__).resolve().parents[2]
POLICY = ROOT / "deploy" / "aws" / "iam-policy.json"
OWNER = "aws:ResourceTag/elastic-autoscaler.io/owner"
ROLE_TAG = "${aws:PrincipalTag/elastic-autoscaler.io/owner}"
DESTRUCTIVE = {
    "ec2:TerminateInstances",
    "ec2:StopInstances",
    "ec2:StartInstances",
    "autoscaling:SetDesiredCapacity",
    "autoscaling:TerminateInstanceInAutoScalingGroup",
}
INSTANCE = "arn:aws:ec2:us-east-1:123456789012:instance/i-0123456789abcdef0"
ADAPTERS = {  # source file -> the IAM service prefix of the client it calls
    "autoscaler/providers/aws_ec2.py": "ec2",
    "autoscaler/providers/aws_asg.py": "autoscaling",
    "autoscaler/signals/sqs.py": "sqs",
    "autoscaler/signals/cloudwatch.py": "cloudwatch",
}


def policy() -> dict[str, Any]:
    return dict(json.loads(POLICY.read_text(encoding="utf-8")))


def statements() -> list[dict[str, Any]]:
    return list(policy()["Statement"])


def actions(statement: dict[str, Any]) -> set[str]:
    value = statement.get("Action", [])
    return {value} if isinstance(value, str) else set(value)


def evaluate(action: str, resource: str = "*", **context: str) -> PermissionResult:
    """moto's evaluator, with the role's ownership tag resolved to `prod`."""
    document = POLICY.read_text(encoding="utf-8").replace(ROLE_TAG, "prod")
    return IAMPolicy(document).is_action_permitted(action, resource, None, context)


def test_the_policy_is_valid_json_with_no_wildcard_actions() -> None:
    document = policy()
    assert document["Version"] == "2012-10-17"
    for statement in statements():
        assert statement["Effect"] == "Allow"
        assert all(":" in a and not a.endswith(":*") and a != "*" for a in actions(statement))


def test_iam_accepts_the_policy_document(mocked: None) -> None:
    created = client("iam").create_policy(
        PolicyName="elastic-autoscaler", PolicyDocument=POLICY.read_text(encoding="utf-8")
    )
    assert created["Policy"]["PolicyName"] == "elastic-autoscaler"


def test_stop_start_and_terminate_are_granted_only_with_the_ownership_tag() -> None:
    for statement in statements():
        if actions(statement) & DESTRUCTIVE:
            assert statement["Condition"] == {"StringEquals": {OWNER: ROLE_TAG}}
            assert statement["Resource"] != "*"


def test_tags_are_created_only_at_launch_and_instances_launched_only_with_our_tag() -> None:
    for statement in statements():
        if "ec2:CreateTags" in actions(statement):
            created_by = statement["Condition"]["StringEquals"]["ec2:CreateAction"]
            assert set(created_by) == {"RunInstances", "CreateFleet"}
        if actions(statement) & {"ec2:RunInstances", "ec2:CreateFleet"} and "instance/" in str(
            statement["Resource"]
        ):
            condition = statement["Condition"]["StringEquals"]
            assert condition == {"aws:RequestTag/elastic-autoscaler.io/owner": ROLE_TAG}


@pytest.mark.parametrize("action", sorted(DESTRUCTIVE - {"autoscaling:SetDesiredCapacity"}))
def test_evaluated_a_destructive_call_is_allowed_on_ours_and_not_on_theirs(action: str) -> None:
    resource = (
        INSTANCE
        if action.startswith("ec2:")
        else "arn:aws:autoscaling:us-east-1:123456789012:autoScalingGroup:x:autoScalingGroupName/g"
    )
    assert evaluate(action, resource, **{OWNER: "prod"}) is PermissionResult.PERMITTED
    assert evaluate(action, resource, **{OWNER: "someone-else"}) is not PermissionResult.PERMITTED


def test_evaluated_tagging_outside_a_launch_and_unrelated_calls_are_not_allowed() -> None:
    run = {"ec2:CreateAction": "RunInstances"}
    assert evaluate("ec2:CreateTags", INSTANCE, **run) is PermissionResult.PERMITTED
    other = {"ec2:CreateAction": "ModifyInstanceAttribute"}
    assert evaluate("ec2:CreateTags", INSTANCE, **other) is not PermissionResult.PERMITTED
    for action in ("ec2:DeleteVpc", "ec2:ModifyInstanceAttribute", "iam:CreateUser"):
        assert evaluate(action) is not PermissionResult.PERMITTED
    assert evaluate("ec2:DescribeInstances") is PermissionResult.PERMITTED


def _camel(name: str) -> str:
    return "".join(part.title() for part in name.split("_"))


def test_the_policy_grants_every_aws_call_the_adapters_make() -> None:
    granted = set().union(*(actions(s) for s in statements()))
    called: set[str] = set()
    for path, service in ADAPTERS.items():
        source = (ROOT / path).read_text(encoding="utf-8")
        for method in re.findall(r"\bclient\.([a-z_]+)\b", source):
            if method not in {"meta", "get_paginator"}:
                called.add(f"{service}:{_camel(method)}")
    assert "ec2:CreateFleet" in called and "sqs:GetQueueAttributes" in called
    assert called - granted == set()
