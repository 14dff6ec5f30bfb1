"""deploy/aws/iam-policy.json, the policy `autoscaler iam-policy` generates for the shipped
example (deploy/aws/example-config.yaml): valid, as narrow as the adapters need, enough for
them. tests/aws/test_iam_generated.py runs the adapters against the generated policy.

Evaluated with tests/aws/iam_model.py's evaluator, not moto's: moto's ignores the
condition operators this policy uses (Bool, ...) and misreads a failed Allow as a Deny.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from .helpers import client
from .iam_model import Check, allowed

pytestmark = pytest.mark.aws

ROOT = Path(__file__).resolve().parents[2]
POLICY = ROOT / "deploy" / "aws" / "iam-policy.json"
OWNER_KEY = "elastic-autoscaler.io/owner"
RESOURCE_OWNER = f"aws:ResourceTag/{OWNER_KEY}"
REQUEST_OWNER = f"aws:RequestTag/{OWNER_KEY}"
OURS = "prod"  # installation.id of deploy/aws/example-config.yaml
DESTRUCTIVE = {
    "ec2:TerminateInstances",
    "ec2:StopInstances",
    "ec2:StartInstances",
    "autoscaling:SetDesiredCapacity",
    "autoscaling:TerminateInstanceInAutoScalingGroup",
}
INSTANCE = "arn:aws:ec2:us-east-1:123456789012:instance/i-0123456789abcdef0"
GROUP = (
    "arn:aws:autoscaling:us-west-2:123456789012:autoScalingGroup:uuid:"
    "autoScalingGroupName/embeddings-gpu"
)
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


def resources(statement: dict[str, Any]) -> list[str]:
    value = statement["Resource"]
    return [value] if isinstance(value, str) else list(value)


def evaluate(action: str, resource: str = "*", region: str = "us-east-1", **context: str) -> bool:
    return allowed(policy(), Check(action, resource, {"aws:RequestedRegion": region, **context}))


def test_the_policy_is_valid_json_with_no_wildcard_actions() -> None:
    document = policy()
    assert document["Version"] == "2012-10-17"
    for statement in statements():
        assert statement["Effect"] == "Allow"
        assert all(":" in a and "*" not in a for a in actions(statement))


def test_iam_accepts_the_policy_document(mocked: None) -> None:
    created = client("iam").create_policy(
        PolicyName="elastic-autoscaler", PolicyDocument=POLICY.read_text(encoding="utf-8")
    )
    assert created["Policy"]["PolicyName"] == "elastic-autoscaler"


def test_stop_start_and_terminate_are_granted_only_with_the_ownership_tag() -> None:
    for statement in statements():
        if actions(statement) & DESTRUCTIVE:
            assert statement["Condition"] == {"StringEquals": {RESOURCE_OWNER: OURS}}
            assert "*" not in resources(statement)


def test_tags_are_created_only_at_launch_and_instances_launched_only_with_our_tag() -> None:
    for statement in statements():
        condition = statement.get("Condition", {}).get("StringEquals", {})
        if "ec2:CreateTags" in actions(statement):
            assert set(condition["ec2:CreateAction"]) == {"RunInstances", "CreateFleet"}
            assert condition[REQUEST_OWNER] == OURS
        launches = actions(statement) & {"ec2:RunInstances", "ec2:CreateFleet"}
        if launches and any(":instance/" in r for r in resources(statement)):
            assert condition[REQUEST_OWNER] == OURS


def test_pass_role_only_for_the_instance_role_and_only_to_ec2() -> None:
    passing = [s for s in statements() if "iam:PassRole" in actions(s)]
    assert len(passing) == 1
    assert resources(passing[0]) == ["arn:aws:iam::123456789012:role/gpu-worker"]
    assert passing[0]["Condition"] == {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}}


@pytest.mark.parametrize("action", sorted(DESTRUCTIVE - {"autoscaling:SetDesiredCapacity"}))
def test_evaluated_a_destructive_call_is_allowed_on_ours_and_not_on_theirs(action: str) -> None:
    resource, region = (
        (INSTANCE, "us-east-1") if action.startswith("ec2:") else (GROUP, "us-west-2")
    )
    assert evaluate(action, resource, region, **{RESOURCE_OWNER: OURS})
    assert not evaluate(action, resource, region, **{RESOURCE_OWNER: "someone-else"})
    assert not evaluate(action, resource, region)  # untagged


def test_evaluated_tagging_outside_a_launch_and_unrelated_calls_are_not_allowed() -> None:
    at_launch = {"ec2:CreateAction": "RunInstances", REQUEST_OWNER: OURS}
    assert evaluate("ec2:CreateTags", INSTANCE, **at_launch)
    later = {"ec2:CreateAction": "ModifyInstanceAttribute", REQUEST_OWNER: OURS}
    assert not evaluate("ec2:CreateTags", INSTANCE, **later)
    for action in ("ec2:DeleteVpc", "ec2:ModifyInstanceAttribute", "iam:CreateUser"):
        assert not evaluate(action)
    assert evaluate("ec2:DescribeInstances")
    assert not evaluate("ec2:DescribeInstances", region="eu-west-1")


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
