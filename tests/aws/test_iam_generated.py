"""`autoscaler iam-policy`: the generated policy allows every call the adapters make, for
what the configuration names, and nothing else.

The adapters run for real against in-process moto while `iam_model.Recorder` turns each
boto3 call into the authorization checks AWS makes for it; each check is evaluated against
the policy generated from the same configuration. Then the same checks, changed in one
respect (another region, launch template, subnet, role, an instance not tagged ours...),
must be denied.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from moto import mock_aws

from autoscaler.aws_iam import IamOptions, IamPolicyError, generate_policy
from autoscaler.cli import cli
from autoscaler.clients.aws import Ownership
from autoscaler.clock import FakeClock
from autoscaler.config import Config
from autoscaler.providers.aws_asg import AsgProvider
from autoscaler.providers.aws_ec2 import Ec2Provider
from autoscaler.signals import SignalRequest
from autoscaler.signals.cloudwatch import CloudWatchReader
from autoscaler.signals.sqs import SqsReader

from .helpers import (
    INSTALLATION,
    OWNER_TAG,
    PREFIX,
    REGION,
    World,
    client,
    ec2_target,
    make_group,
    make_world,
    pool_dict,
    use_dummy_credentials,
)
from .iam_model import ACCOUNT, Check, Recorder, allowed, arn, evaluate, in_region, matching, unique

pytestmark = pytest.mark.aws

ROOT = Path(__file__).resolve().parents[2]
SHIPPED_POLICY = ROOT / "deploy" / "aws" / "iam-policy.json"
SHIPPED_CONFIG = ROOT / "deploy" / "aws" / "example-config.yaml"
SHIPPED_ARGS = [
    "--account",
    "123456789012",
    "--instance-role",
    "arn:aws:iam::123456789012:role/gpu-worker",
]
"""The arguments deploy/aws/example-config.yaml's header gives for the shipped policy."""
ROLE = "gpu-worker"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/{ROLE}"
TRUST = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "ec2.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
)
NOT_SPOT_SLR = "CreateTheSpotServiceLinkedRoleOnce"
"""EC2 creates the spot service-linked role itself on the first spot launch: no adapter
call of ours makes it, so no recorded check uses that statement."""


# -- an AWS account with one of everything the adapters use --------------------------------
@dataclass(frozen=True)
class Account:
    world: World
    serving_template: str  # an lt- id: image, security group and instance profile inside
    batch_template: str  # a name: tagged as ours, its security group inside
    group: str  # a security group
    queue: str
    config: Config


def build_account(world: World) -> Account:
    ec2, iam = client("ec2"), client("iam")
    iam.create_role(RoleName=ROLE, AssumeRolePolicyDocument=TRUST)
    iam.create_instance_profile(InstanceProfileName=ROLE)
    iam.add_role_to_instance_profile(InstanceProfileName=ROLE, RoleName=ROLE)
    sg = ec2.create_security_group(GroupName="gpu", Description="gpu")["GroupId"]
    # The templates' own group: named nowhere in the config.
    template_sg = ec2.create_security_group(GroupName="tpl", Description="tpl")["GroupId"]
    ec2.create_key_pair(KeyName="gpu-key")
    serving = ec2.create_launch_template(
        LaunchTemplateName="serving",
        LaunchTemplateData={
            "ImageId": world.image,
            "InstanceType": "t3.micro",
            "SecurityGroupIds": [template_sg],
            "IamInstanceProfile": {"Name": ROLE},
        },
    )["LaunchTemplate"]["LaunchTemplateId"]
    ec2.create_launch_template(
        LaunchTemplateName="batch",
        LaunchTemplateData={"ImageId": world.image, "SecurityGroupIds": [template_sg]},
        TagSpecifications=[
            {"ResourceType": "launch-template", "Tags": [{"Key": OWNER_TAG, "Value": INSTALLATION}]}
        ],
    )
    make_group("embeddings", world, max=3)
    queue = client("sqs").create_queue(QueueName="jobs")["QueueUrl"]
    pools = [
        pool_dict(
            "serving",
            ec2_target(
                world,
                launch_template=serving,
                scale_in="stop",
            ),
        ),
        pool_dict(
            "batch",
            ec2_target(
                world,
                launch_template="batch",
                api="run-instances",
                subnets=[world.subnet_b],
                market="spot-then-on-demand",
            ),
        ),
        pool_dict(
            "inline",
            ec2_target(
                world,
                launch_template=None,
                image_id=world.image,
                api="run-instances",
                security_groups=[sg],
                instance_profile=ROLE,
                key_name="gpu-key",
                user_data="#!/bin/sh\necho hello\n",
            ),
        ),
        pool_dict("embeddings", {"kind": "asg", "name": "embeddings", "region": REGION}),
    ]
    pools[2]["signals"] = {
        "queue": {"source": {"type": "sqs", "queue_url": queue}},
        "gpu": {
            "source": {
                "type": "cloudwatch",
                "region": REGION,
                "namespace": "CWAgent",
                "metric_name": "nvidia_smi_utilization_gpu",
            }
        },
    }
    config = Config.model_validate(
        {"installation": {"id": INSTALLATION, "tag_prefix": PREFIX}, "pools": pools}
    )
    return Account(world, serving, "batch", sg, queue, config)


def policy_for(config: Config) -> dict[str, Any]:
    options = IamOptions(default_region=REGION, account=ACCOUNT, instance_roles=[ROLE_ARN])
    return generate_policy(config, options).document


def run_adapters(config: Config) -> Recorder:
    """Every AWS call the adapters make for `config`: scale out, in (stop and terminate),
    out again (start the warm pool), remove an Auto Scaling group member, read signals."""
    ownership = Ownership(INSTALLATION, PREFIX)
    ec2 = Ec2Provider(ownership, FakeClock(1000.0))
    asg = AsgProvider(ownership, FakeClock(1000.0))
    recorder = Recorder()
    with recorder.active():
        for pool in config.pools:
            if pool.target.kind == "ec2":
                ec2.scale(pool, 2, f"{pool.name}-out")
                ec2.describe(pool)
                ec2.scale(pool, 0, f"{pool.name}-in")
                ec2.scale(pool, 1, f"{pool.name}-again")
            elif pool.target.kind == "asg":
                asg.scale(pool, 2, f"{pool.name}-out")
                member = asg.describe(pool).members[0].id
                asg.remove(pool, [member], f"{pool.name}-remove")
        requests = [
            SignalRequest(pool.name, name, spec.source)
            for pool in config.pools
            for name, spec in pool.signals.items()
        ]
        sqs = [r for r in requests if r.source.type == "sqs"]
        metrics = [r for r in requests if r.source.type == "cloudwatch"]
        assert all(not r.stale for r in SqsReader().read(sqs, now=100.0).values())
        CloudWatchReader().read(metrics, now=100.0)
    return recorder


@dataclass(frozen=True)
class Run:
    account: Account
    policy: dict[str, Any]
    checks: list[Check]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """One run of the adapters, shared by the tests that evaluate its checks (seconds)."""
    with pytest.MonkeyPatch.context() as patch:
        use_dummy_credentials(patch, str(tmp_path_factory.getbasetemp() / "no-aws-config"))
        with mock_aws():
            account = build_account(make_world())
            checks = unique(run_adapters(account.config).checks)
    return Run(account, policy_for(account.config), checks)


# -- allowed: every call, every grant used --------------------------------------------------
def test_every_call_the_adapters_make_is_allowed_and_every_grant_is_used(run: Run) -> None:
    policy, recorded = run.policy, run.checks
    denied = [str(c) for c in recorded if not allowed(policy, c)]
    assert denied == []
    used = {sid for check in recorded for sid in evaluate(policy, check)}
    sids = {s["Sid"] for s in policy["Statement"]}
    assert sids - used == {NOT_SPOT_SLR}, "a statement no call needs: the policy grants too much"
    granted = {a for s in policy["Statement"] for a in _actions(s)}
    assert granted - {c.action for c in recorded} == {"iam:CreateServiceLinkedRole"}
    # The run went through every path the policy is for.
    for action in (
        "ec2:CreateFleet",
        "ec2:RunInstances",
        "ec2:StopInstances",
        "ec2:StartInstances",
        "ec2:TerminateInstances",
        "iam:PassRole",
        "autoscaling:SetDesiredCapacity",
        "autoscaling:TerminateInstanceInAutoScalingGroup",
        "sqs:GetQueueAttributes",
        "cloudwatch:GetMetricData",
    ):
        assert matching(recorded, action), action


def test_what_a_launch_template_supplies_is_allowed_only_because_it_comes_from_ours(
    run: Run,
) -> None:
    policy, recorded = run.policy, run.checks
    from_template = [c for c in recorded if c.context.get("ec2:IsLaunchTemplateResource") == "true"]
    assert {c.resource.split(":")[-1].split("/")[0] for c in from_template} >= {
        "image",
        "security-group",
    }
    named = set(_statement(policy, "LaunchWithTheseParts")["Resource"])
    assert any(c.resource not in named for c in from_template)
    for check in from_template:
        assert "LaunchWithWhatOurTemplatesSpecify" in evaluate(policy, check), str(check)
        # The same resource given in the request instead: allowed only if the config names it.
        overridden = check.with_context(from_template="false")
        assert allowed(policy, overridden) == (check.resource in named), str(check)


# -- denied: the same calls, changed in one respect -----------------------------------------
def _changed(
    recorded: list[Check], pick: Callable[[Check], bool], change: Callable[[Check], Check]
) -> list[Check]:
    changed = [change(c) for c in recorded if pick(c)]
    assert changed, "the adapters' run made no such call: the denial test would prove nothing"
    return changed


DENIALS: dict[str, tuple[Callable[[Check], bool], Callable[[Check], Check]]] = {
    "another region": (
        lambda c: "aws:RequestedRegion" in c.context and not c.action.startswith("iam:"),
        lambda c: in_region(c, "eu-west-1"),
    ),
    "another launch template (by id)": (
        lambda c: (
            ":launch-template/" in c.resource and f"aws:ResourceTag/{OWNER_TAG}" not in c.context
        ),
        lambda c: replace(c, resource=c.resource.rsplit("/", 1)[0] + "/lt-0000000000000000f"),
    ),
    "a launch template not tagged as ours": (
        lambda c: (
            ":launch-template/" in c.resource
            and bool(c.context.get(f"aws:ResourceTag/{OWNER_TAG}"))
        ),
        lambda c: c.with_context(**{f"aws:ResourceTag/{OWNER_TAG}": "someone-else"}),
    ),
    "a launch template named by name, untagged": (
        lambda c: (
            ":launch-template/" in c.resource
            and bool(c.context.get(f"aws:ResourceTag/{OWNER_TAG}"))
        ),
        lambda c: c.with_context(**{f"aws:ResourceTag/{OWNER_TAG}": None}),
    ),
    "another subnet": (
        lambda c: ":subnet/" in c.resource,
        lambda c: replace(c, resource=c.resource.rsplit("/", 1)[0] + "/subnet-0ther").with_context(
            from_template="false"
        ),
    ),
    "another security group": (
        lambda c: ":security-group/" in c.resource,
        lambda c: replace(c, resource=c.resource.rsplit("/", 1)[0] + "/sg-0ther").with_context(
            from_template="false"
        ),
    ),
    "another image": (
        lambda c: ":image/" in c.resource,
        lambda c: replace(c, resource=c.resource.rsplit("/", 1)[0] + "/ami-0ther").with_context(
            from_template="false"
        ),
    ),
    "another key pair": (
        lambda c: ":key-pair/" in c.resource,
        lambda c: replace(c, resource=c.resource.rsplit("/", 1)[0] + "/admin-key").with_context(
            from_template="false"
        ),
    ),
    "an instance launched without our owner tag": (
        lambda c: (
            c.action in ("ec2:RunInstances", "ec2:CreateFleet") and ":instance/" in c.resource
        ),
        lambda c: c.with_context(**{f"aws:RequestTag/{OWNER_TAG}": "someone-else"}),
    ),
    "an instance type the config does not list": (
        lambda c: c.action == "ec2:RunInstances" and ":instance/" in c.resource,
        lambda c: c.with_context(instance_type="p5.48xlarge"),
    ),
    "tags created outside a launch": (
        lambda c: c.action == "ec2:CreateTags",
        lambda c: c.with_context(create_action=None),
    ),
    "PassRole of another role": (
        lambda c: c.action == "iam:PassRole",
        lambda c: replace(c, resource=f"arn:aws:iam::{ACCOUNT}:role/admin"),
    ),
    "PassRole to another service": (
        lambda c: c.action == "iam:PassRole",
        lambda c: c.with_context(passed_to="lambda.amazonaws.com"),
    ),
    "terminating, stopping or starting an instance not tagged as ours": (
        lambda c: c.action in ("ec2:TerminateInstances", "ec2:StopInstances", "ec2:StartInstances"),
        lambda c: c.with_context(**{f"aws:ResourceTag/{OWNER_TAG}": "someone-else"}),
    ),
    "terminating an instance with no tags": (
        lambda c: c.action == "ec2:TerminateInstances",
        lambda c: c.with_context(**{f"aws:ResourceTag/{OWNER_TAG}": None}),
    ),
    "another Auto Scaling group": (
        lambda c: c.action.startswith("autoscaling:") and c.resource != "*",
        lambda c: replace(c, resource=c.resource.rsplit("/", 1)[0] + "/other-group"),
    ),
    "an Auto Scaling group not tagged as ours": (
        lambda c: c.action.startswith("autoscaling:") and c.resource != "*",
        lambda c: c.with_context(**{f"aws:ResourceTag/{OWNER_TAG}": "someone-else"}),
    ),
    "another queue": (
        lambda c: c.action == "sqs:GetQueueAttributes",
        lambda c: replace(c, resource=c.resource.rsplit(":", 1)[0] + ":other-queue"),
    ),
}


@pytest.mark.parametrize("case", sorted(DENIALS))
def test_the_same_call_on_what_the_config_does_not_name_is_denied(case: str, run: Run) -> None:
    pick, change = DENIALS[case]
    changed = _changed(run.checks, pick, change)
    allowed_anyway = [str(c) for c in changed if allowed(run.policy, c)]
    assert allowed_anyway == []


def test_an_adapter_launching_into_a_subnet_the_policy_was_not_made_for_is_refused(
    world: World,
) -> None:
    """End to end: the policy is generated for subnet A, the pool then launches into B."""
    sg = client("ec2").create_security_group(GroupName="gpu", Description="gpu")["GroupId"]

    def config(subnet: str) -> Config:
        target = ec2_target(
            world,
            launch_template=None,
            image_id=world.image,
            api="run-instances",
            security_groups=[sg],
            subnets=[subnet],
        )
        return Config.model_validate(
            {
                "installation": {"id": INSTALLATION, "tag_prefix": PREFIX},
                "pools": [pool_dict("gpu", target)],
            }
        )

    policy = policy_for(config(world.subnet_a))
    checks = unique(run_adapters(config(world.subnet_b)).checks)
    assert matching(checks, "ec2:RunInstances") and matching(checks, "ec2:TerminateInstances")
    denied = {c.resource for c in checks if not allowed(policy, c)}
    assert denied == {arn("ec2", REGION, f"subnet/{world.subnet_b}")}


# -- the command ----------------------------------------------------------------------------
def _invoke(*args: str, env: dict[str, str | None] | None = None) -> Any:
    return CliRunner().invoke(cli, ["iam-policy", *args], env=env, catch_exceptions=False)


def test_the_shipped_policy_is_what_the_command_prints_for_the_shipped_example() -> None:
    result = _invoke("-c", str(SHIPPED_CONFIG), *SHIPPED_ARGS)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == SHIPPED_POLICY.read_text(encoding="utf-8"), (
        "deploy/aws/iam-policy.json is stale: regenerate it with the command in "
        "deploy/aws/example-config.yaml"
    )


def test_the_command_writes_a_file_and_notes_what_the_config_leaves_open(
    tmp_path: Path, world: World
) -> None:
    config = tmp_path / "c.yaml"
    target = ec2_target(world, launch_template="gpu-worker")
    config.write_text(
        json.dumps({"installation": {"id": "prod"}, "pools": [pool_dict("gpu", target)]})
    )
    out = tmp_path / "policy.json"
    result = _invoke("-c", str(config), "--out", str(out))
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    document = json.loads(out.read_text())
    assert "LaunchFromTemplatesTaggedAsOurs" in {s["Sid"] for s in document["Statement"]}
    assert "launch template 'gpu-worker' is named" in result.stderr
    assert "no --instance-role" in result.stderr


def _config_file(tmp_path: Path, *pools: dict[str, Any]) -> str:
    path = tmp_path / "c.yaml"
    path.write_text(json.dumps({"installation": {"id": "prod"}, "pools": list(pools)}))
    return str(path)


def test_a_config_without_aws_is_an_error(tmp_path: Path) -> None:
    path = _config_file(tmp_path, pool_dict("sim", {"kind": "simulated"}))
    result = _invoke("-c", path)
    assert result.exit_code == 2
    assert "uses no AWS" in result.stderr and "Traceback" not in result.output


def test_an_instance_profile_without_its_role_is_an_error(tmp_path: Path, world: World) -> None:
    target = ec2_target(
        world, launch_template=None, image_id=world.image, api="run-instances", instance_profile="p"
    )
    result = _invoke("-c", _config_file(tmp_path, pool_dict("gpu", target)))
    assert result.exit_code == 2
    assert "--instance-role" in result.stderr and "'p'" in result.stderr


def test_the_configured_instance_role_is_the_one_passrole_allows(
    tmp_path: Path, world: World
) -> None:
    role = "arn:aws:iam::123456789012:role/gpu-node"
    target = ec2_target(world, launch_template=None, image_id=world.image, api="run-instances",
                        instance_profile="p", instance_role=role)  # fmt: skip
    result = _invoke("-c", _config_file(tmp_path, pool_dict("gpu", target)))
    assert result.exit_code == 0, result.stderr
    passing = [
        st for st in json.loads(result.stdout)["Statement"]
        if "iam:PassRole" in ([st["Action"]] if isinstance(st["Action"], str) else st["Action"])
    ]  # fmt: skip
    assert [st["Resource"] for st in passing] in ([role], [[role]])
    assert passing[0]["Condition"]["StringEquals"]["iam:PassedToService"] == "ec2.amazonaws.com"
    target["instance_role"] = "arn:aws:iam::123456789012:role/*"  # a pattern passes any role
    refused = _invoke("-c", _config_file(tmp_path, pool_dict("gpu", target)))
    assert refused.exit_code == 2 and "instance_role" in refused.stderr


def test_a_target_without_a_region_needs_one(tmp_path: Path, world: World) -> None:
    target = ec2_target(world)
    del target["region"]
    path = _config_file(tmp_path, pool_dict("gpu", target))
    result = _invoke("-c", path, env={"AWS_REGION": None, "AWS_DEFAULT_REGION": None})
    assert result.exit_code == 2 and "no region" in result.stderr
    assert _invoke("-c", path, "--region", "eu-central-1").exit_code == 0
    assert _invoke("-c", path, env={"AWS_REGION": "eu-central-1"}).exit_code == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--account", "12345"], "12-digit"),
        (["--instance-role", "arn:aws:iam::123456789012:role/*"], "not a role ARN"),
        (["--instance-role", "gpu-worker"], "not a role ARN"),
    ],
)
def test_bad_options_are_errors(
    tmp_path: Path, world: World, args: list[str], message: str
) -> None:
    result = _invoke("-c", _config_file(tmp_path, pool_dict("gpu", ec2_target(world))), *args)
    assert result.exit_code == 2 and message in result.stderr


# -- generation details ---------------------------------------------------------------------
def _generate(*pools: dict[str, Any], nodes: dict[str, Any] | None = None, **options: Any) -> Any:
    data: dict[str, Any] = {"installation": {"id": "prod"}, "pools": list(pools)}
    if nodes is not None:
        data["nodes"] = nodes
    return generate_policy(Config.model_validate(data), IamOptions(**options))


def _statement(document: dict[str, Any], sid: str) -> dict[str, Any]:
    return next(s for s in document["Statement"] if s["Sid"] == sid)


def _actions(statement: dict[str, Any]) -> set[str]:
    value = statement["Action"]
    return {value} if isinstance(value, str) else set(value)


def test_node_provisioning_launches_only_its_types_in_its_region() -> None:
    nodes = {
        "region": "eu-west-1",
        "launch_template": "lt-0123456789abcdef0",
        "subnets": ["subnet-0123456789abcdef0"],
        "instance_types": ["g6.xlarge", {"type": "g5.xlarge", "price": 0.5}],
    }
    sim = pool_dict("sim", {"kind": "simulated"})
    document = _generate(sim, nodes=nodes, instance_roles=[ROLE_ARN]).document
    run = _statement(document, "RunOnlyOurInstancesOfTheConfiguredTypes")
    assert run["Resource"] == "arn:aws:ec2:eu-west-1:*:instance/*"
    assert run["Condition"]["StringEquals"]["ec2:InstanceType"] == ["g5.xlarge", "g6.xlarge"]
    assert _statement(document, "LaunchFromOurTemplates")["Resource"] == (
        "arn:aws:ec2:eu-west-1:*:launch-template/lt-0123456789abcdef0"
    )
    assert _statement(document, "PassOnlyTheInstanceRoleToEc2")["Resource"] == ROLE_ARN


def test_gangs_may_launch_into_the_configured_placement_group_only() -> None:
    nodes = {
        "region": "eu-west-1",
        "launch_template": "lt-0123456789abcdef0",
        "subnets": ["subnet-0123456789abcdef0"],
        "instance_types": ["p5.48xlarge"],
        "gang_placement_group": "training",
    }
    sim = pool_dict("sim", {"kind": "simulated"})
    document = _generate(sim, nodes=nodes, instance_roles=[ROLE_ARN]).document
    granted = [
        r for st in document["Statement"]
        for r in ([st["Resource"]] if isinstance(st["Resource"], str) else st["Resource"])
    ]  # fmt: skip
    groups = [r for r in granted if ":placement-group/" in r]
    assert groups == ["arn:aws:ec2:eu-west-1:*:placement-group/training"]
    del nodes["gang_placement_group"]
    document = _generate(sim, nodes=nodes, instance_roles=[ROLE_ARN]).document
    assert "placement-group" not in json.dumps(document)


def test_no_grant_is_on_every_resource_but_the_reads_that_have_no_resources() -> None:
    document = json.loads(SHIPPED_POLICY.read_text(encoding="utf-8"))
    for statement in document["Statement"]:
        resources = statement["Resource"]
        if resources == "*":
            assert _actions(statement) <= {
                "ec2:DescribeInstances",
                "autoscaling:DescribeAutoScalingGroups",
                "cloudwatch:GetMetricData",
            }
            assert set(statement["Condition"]["StringEquals"]) == {"aws:RequestedRegion"}
        for resource in [resources] if isinstance(resources, str) else resources:
            assert resource == "*" or resource.split(":")[3] in ("us-east-1", "us-west-2", "")


def test_a_group_that_opts_out_of_the_owner_tag_is_granted_by_name_only() -> None:
    target = {"kind": "asg", "name": "legacy", "region": "us-east-1", "require_owner_tag": False}
    policy = _generate(pool_dict("legacy", target))
    statement = _statement(policy.document, "ScaleTheseUntaggedAutoScalingGroups")
    assert statement["Resource"].endswith(":autoScalingGroupName/legacy")
    assert "Condition" not in statement
    assert any("require_owner_tag: false" in note for note in policy.notes)


@pytest.mark.parametrize(
    ("pool", "what"),
    [
        (pool_dict("g", {"kind": "asg", "name": "gpu-*", "region": "us-east-1"}), "group name"),
        (
            pool_dict(
                "g",
                {
                    "kind": "ec2",
                    "region": "us-east-1",
                    "image_id": "ami-0123456789abcdef0",
                    "instance_types": ["g6.xlarge"],
                    "key_name": "key?",
                },
            ),
            "key_name",
        ),
    ],
)
def test_a_pattern_where_a_name_belongs_is_refused(pool: dict[str, Any], what: str) -> None:
    with pytest.raises(IamPolicyError, match=f"{what} .* cannot scope a policy"):
        _generate(pool)


def test_an_inline_spec_without_subnets_or_groups_is_granted_the_region_and_says_so() -> None:
    target = {
        "kind": "ec2",
        "region": "us-east-1",
        "image_id": "ami-0123456789abcdef0",
        "instance_types": ["g6.xlarge"],
    }
    policy = _generate(pool_dict("gpu", target))
    parts = _statement(policy.document, "LaunchWithTheseParts")["Resource"]
    assert "arn:aws:ec2:us-east-1:*:subnet/*" in parts
    assert "arn:aws:ec2:us-east-1:*:security-group/*" in parts
    assert sum("no `subnets`" in n or "no `security_groups`" in n for n in policy.notes) == 2


def test_china_regions_get_their_partition_and_partitions_do_not_mix() -> None:
    sqs = {"type": "sqs", "queue_url": "https://sqs.cn-north-1.amazonaws.com.cn/123456789012/q"}
    pool = pool_dict("q", {"kind": "simulated"})
    pool["signals"] = {"queue": {"source": sqs}}
    document = _generate(pool).document
    assert _statement(document, "ReadQueueBacklogs")["Resource"] == (
        "arn:aws-cn:sqs:cn-north-1:123456789012:q"
    )
    other = pool_dict("asg", {"kind": "asg", "name": "g", "region": "us-east-1"})
    with pytest.raises(IamPolicyError, match="partitions"):
        _generate(pool, other)


def test_an_image_resolved_from_ssm_grants_the_parameter_and_says_the_image_is_open() -> None:
    target = {
        "kind": "ec2",
        "region": "us-east-1",
        "image_id": "resolve:ssm:/aws/service/eks/optimized-ami/1.30/amazon-linux-2-gpu/"
        "recommended/image_id",
        "instance_types": ["g6.xlarge"],
        "subnets": ["subnet-0123456789abcdef0"],
        "security_groups": ["sg-0123456789abcdef0"],
    }
    policy = _generate(pool_dict("gpu", target), account=ACCOUNT)
    parameter = _statement(policy.document, "ResolveTheImageParameters")
    assert parameter["Action"] == "ssm:GetParameters"
    assert parameter["Resource"] == (
        "arn:aws:ssm:us-east-1:*:parameter/aws/service/eks/optimized-ami/1.30/"
        "amazon-linux-2-gpu/recommended/image_id"
    )
    assert (
        "arn:aws:ec2:us-east-1::image/*"
        in _statement(policy.document, "LaunchWithTheseParts")["Resource"]
    )
    assert any("resolved at launch" in note for note in policy.notes)


def test_the_interruption_queue_is_read_and_emptied_and_nothing_else() -> None:
    nodes: dict[str, Any] = {
        "region": "eu-west-1",
        "launch_template": "lt-0123456789abcdef0",
        "instance_types": ["g6.xlarge"],
        "market": "spot-then-on-demand",
        "interruptions": {
            "queue": "https://sqs.eu-west-1.amazonaws.com/123456789012/gpu-interruptions"
        },
    }
    sim = pool_dict("sim", {"kind": "simulated"})
    document = _generate(sim, nodes=nodes, instance_roles=[ROLE_ARN]).document
    statement = _statement(document, "ReceiveAndDeleteInterruptionNotices")
    assert _actions(statement) == {"sqs:ReceiveMessage", "sqs:DeleteMessage"}
    assert statement["Resource"] == "arn:aws:sqs:eu-west-1:123456789012:gpu-interruptions"
    assert "Condition" not in statement
    # Spot launches for the nodes: the spot request and the service-linked role.
    assert _statement(document, NOT_SPOT_SLR)
    # By name: looked up in the nodes' region, in the --account given (any without one).
    nodes["interruptions"] = {"queue": "gpu-interruptions"}
    named = _statement(
        _generate(sim, nodes=nodes, instance_roles=[ROLE_ARN], account=ACCOUNT).document,
        "ReceiveAndDeleteInterruptionNotices",
    )
    assert _actions(named) == {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueUrl"}
    assert named["Resource"] == f"arn:aws:sqs:eu-west-1:{ACCOUNT}:gpu-interruptions"
    del nodes["interruptions"]
    plain = _generate(sim, nodes=nodes, instance_roles=[ROLE_ARN]).document
    assert not any(s["Sid"] == "ReceiveAndDeleteInterruptionNotices" for s in plain["Statement"])
