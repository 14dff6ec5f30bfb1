"""Test-only: what AWS authorizes for each call the adapters make, and a strict evaluator.

moto can enforce IAM (`INITIAL_NO_AUTH_ACTION_COUNT`), but it authorizes EC2, Auto Scaling,
SQS and CloudWatch calls against the resource `*` with no request context, and its
evaluator (`moto.iam.access_control.IAMPolicy`) ignores every condition operator but
StringEquals, passes a condition whose key is missing, and treats an Allow whose
condition fails as an explicit deny. A policy scoped by ARNs and conditions cannot be
tested with it; this module does what IAM does, for the parts of IAM the policy uses:

- `Recorder` wraps every boto3 call made while it is active (botocore's `_make_api_call`,
  so no client escapes it) and turns each into the authorization checks AWS makes for it
  (`checks_for`): an action, a resource ARN and the request context (`aws:RequestedRegion`,
  `aws:RequestTag/*`, `aws:ResourceTag/*`, `ec2:InstanceType`, `ec2:CreateAction`,
  `ec2:IsLaunchTemplateResource`, `iam:PassedToService`), with resources and their tags
  read from moto at the moment of the call. RunInstances and CreateFleet authorize every
  resource they use (the instance, the launch template, the image and its snapshots, the
  subnet, the security groups, the key pair, volumes, network interfaces), the tags they
  create, and iam:PassRole for the instance profile's role, as the Service Authorization
  Reference lists them; an instant fleet is also checked as the RunInstances it makes.
- `evaluate(policy, check)` answers which statements allow a check: Action and Resource
  patterns with `*`/`?`, and conditions StringEquals, StringLike, ArnEquals, ArnLike and
  Bool, where a key missing from the request fails the condition, as in IAM. An operator
  it does not know fails the test rather than passing silently.
"""

from __future__ import annotations

import fnmatch
import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import boto3
from botocore.client import BaseClient

ACCOUNT = "123456789012"  # moto's default account
EC2_SERVICE = "ec2.amazonaws.com"

Context = Mapping[str, str | tuple[str, ...]]


@dataclass(frozen=True)
class Call:
    """One boto3 call: service (the IAM prefix), operation, parameters, region."""

    service: str
    operation: str
    params: Mapping[str, Any]
    region: str

    def __str__(self) -> str:
        return f"{self.service}:{self.operation}"


@dataclass(frozen=True)
class Check:
    """One authorization AWS makes for a call: an action on a resource, with context."""

    action: str
    resource: str
    context: Context
    call: str = ""

    def with_context(self, **changes: str | tuple[str, ...] | None) -> Check:
        """A copy with context keys changed (given as key=value; None removes the key)."""
        merged = dict(self.context)
        for key, value in changes.items():
            real = _KEY_NAMES.get(key, key)
            if value is None:
                merged.pop(real, None)
            else:
                merged[real] = value
        return replace(self, context=merged)

    def __str__(self) -> str:
        return f"{self.action} on {self.resource} {dict(self.context)} (from {self.call})"


_KEY_NAMES = {
    "region": "aws:RequestedRegion",
    "instance_type": "ec2:InstanceType",
    "create_action": "ec2:CreateAction",
    "from_template": "ec2:IsLaunchTemplateResource",
    "passed_to": "iam:PassedToService",
}


# -- the evaluator --------------------------------------------------------------------------
def evaluate(policy: Mapping[str, Any], check: Check) -> list[str]:
    """The Sids of the statements that allow `check` (empty: denied), or raise on a Deny
    statement that matches (the generated policy has none; a test that adds one says so)."""
    allowing = []
    for n, statement in enumerate(policy["Statement"]):
        if not _statement_matches(statement, check):
            continue
        if statement["Effect"] == "Deny":
            return []
        allowing.append(str(statement.get("Sid", f"#{n}")))
    return allowing


def allowed(policy: Mapping[str, Any], check: Check) -> bool:
    return bool(evaluate(policy, check))


def _listed(value: str | Sequence[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _wildcard(pattern: str, value: str, *, case: bool = True) -> bool:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, 0 if case else re.IGNORECASE) is not None


def _statement_matches(statement: Mapping[str, Any], check: Check) -> bool:
    assert "NotAction" not in statement and "NotResource" not in statement, statement
    if not any(_wildcard(a, check.action, case=False) for a in _listed(statement["Action"])):
        return False
    resources = [_substitute(r, check.context) for r in _listed(statement["Resource"])]
    if not any(r is not None and _wildcard(r, check.resource) for r in resources):
        return False
    return all(
        _condition(operator, key, expected, check.context)
        for operator, block in (statement.get("Condition") or {}).items()
        for key, expected in block.items()
    )


def _context_value(context: Context, key: str) -> tuple[str, ...] | None:
    for name, value in context.items():
        if name.lower() == key.lower():  # condition keys are case-insensitive
            return (value,) if isinstance(value, str) else tuple(value)
    return None


_VARIABLE = re.compile(r"\$\{([^}]+)\}")


def _substitute(text: str, context: Context) -> str | None:
    """Policy variables (`${aws:PrincipalTag/...}`) from the context; None if one is unset."""
    missing = False

    def value(match: re.Match[str]) -> str:
        nonlocal missing
        found = _context_value(context, match.group(1))
        if found is None or len(found) != 1:
            missing = True
            return ""
        return found[0]

    out = _VARIABLE.sub(value, text)
    return None if missing else out


def _condition(operator: str, key: str, expected: Any, context: Context) -> bool:
    actual = _context_value(context, key)
    if actual is None:
        return False  # no IfExists operators in the policy: a missing key fails
    wanted = [_substitute(str(e), context) for e in _listed(expected)]
    patterns = [w for w in wanted if w is not None]
    compare: Callable[[str, str], bool]
    if operator in ("StringEquals", "ArnEquals"):
        compare = str.__eq__
    elif operator in ("StringLike", "ArnLike"):
        compare = lambda p, v: _wildcard(p, v)  # noqa: E731
    elif operator == "Bool":
        compare = lambda p, v: p.lower() == v.lower()  # noqa: E731
    else:
        raise AssertionError(f"condition operator {operator} is not modelled; add it here")
    # A single-valued key: the request's value must match one of the policy's values.
    return all(any(compare(p, v) for p in patterns) for v in actual)


# -- recording the adapters' calls ----------------------------------------------------------
@dataclass
class Recorder:
    """Every boto3 call made while active, with the checks AWS makes for it."""

    calls: list[Call] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    _local: threading.local = field(default_factory=threading.local)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @contextmanager
    def active(self) -> Iterator[Recorder]:
        original = BaseClient._make_api_call
        recorder = self

        def make_api_call(client: Any, operation: str, params: Any) -> Any:
            if not getattr(recorder._local, "looking", False):
                call = Call(
                    client.meta.service_model.service_name,
                    operation,
                    dict(params),
                    client.meta.region_name,
                )
                recorder._local.looking = True
                try:
                    found = checks_for(call)  # reads moto as it is before the call
                finally:
                    recorder._local.looking = False
                with recorder._lock:
                    recorder.calls.append(call)
                    recorder.checks.extend(found)
            return original(client, operation, params)

        BaseClient._make_api_call = make_api_call  # type: ignore[method-assign]
        try:
            yield self
        finally:
            BaseClient._make_api_call = original  # type: ignore[method-assign]


def _client(service: str, region: str) -> Any:
    return boto3.client(service, region_name=region)  # type: ignore[call-overload]


def arn(service: str, region: str, resource: str, account: str = ACCOUNT) -> str:
    return f"arn:aws:{service}:{region}:{account}:{resource}"


def checks_for(call: Call) -> list[Check]:
    """The authorization checks AWS makes for one call (see the module docstring)."""
    model = _MODELS.get(str(call))
    if model is None:
        raise AssertionError(
            f"no authorization model for {call}: an adapter makes a call the IAM test does "
            "not know; add it to tests/aws/iam_model.py and to the policy generator"
        )
    region = {"aws:RequestedRegion": call.region}
    return [Check(c.action, c.resource, {**region, **c.context}, str(call)) for c in model(call)]


def _anywhere(action: str) -> Callable[[Call], list[Check]]:
    return lambda call: [Check(action, "*", {})]


def _queue(call: Call) -> list[Check]:
    sqs = _client("sqs", call.region)
    attributes = sqs.get_queue_attributes(
        QueueUrl=call.params["QueueUrl"], AttributeNames=["QueueArn"]
    )["Attributes"]
    return [Check("sqs:GetQueueAttributes", attributes["QueueArn"], {})]


def _tags(items: Sequence[Mapping[str, Any]] | None, prefix: str) -> dict[str, str]:
    return {f"{prefix}/{t['Key']}": str(t.get("Value", "")) for t in items or ()}


def _on_instances(action: str) -> Callable[[Call], list[Check]]:
    def model(call: Call) -> list[Check]:
        found = _client("ec2", call.region).describe_instances(
            InstanceIds=list(call.params["InstanceIds"])
        )
        return [
            Check(
                action,
                arn("ec2", call.region, f"instance/{i['InstanceId']}"),
                _tags(i.get("Tags"), "aws:ResourceTag"),
            )
            for r in found["Reservations"]
            for i in r["Instances"]
        ]

    return model


def _group_checks(action: str, name: str, region: str) -> list[Check]:
    found = _client("autoscaling", region).describe_auto_scaling_groups(
        AutoScalingGroupNames=[name]
    )["AutoScalingGroups"]
    return [
        Check(action, g["AutoScalingGroupARN"], _tags(g.get("Tags"), "aws:ResourceTag"))
        for g in found
    ]


def _set_desired(call: Call) -> list[Check]:
    return _group_checks(
        "autoscaling:SetDesiredCapacity", call.params["AutoScalingGroupName"], call.region
    )


def _terminate_in_group(call: Call) -> list[Check]:
    found = _client("autoscaling", call.region).describe_auto_scaling_instances(
        InstanceIds=[call.params["InstanceId"]]
    )["AutoScalingInstances"]
    return [
        check
        for i in found
        for check in _group_checks(
            "autoscaling:TerminateInstanceInAutoScalingGroup",
            i["AutoScalingGroupName"],
            call.region,
        )
    ]


# -- launches -----------------------------------------------------------------------------
@dataclass(frozen=True)
class _Template:
    id: str
    tags: dict[str, str]
    data: dict[str, Any]


def _template(spec: Mapping[str, Any], region: str) -> _Template:
    ec2 = _client("ec2", region)
    if "LaunchTemplateId" in spec:
        found = ec2.describe_launch_templates(LaunchTemplateIds=[spec["LaunchTemplateId"]])
    else:
        found = ec2.describe_launch_templates(LaunchTemplateNames=[spec["LaunchTemplateName"]])
    template = found["LaunchTemplates"][0]
    version = ec2.describe_launch_template_versions(
        LaunchTemplateId=template["LaunchTemplateId"], Versions=[spec.get("Version", "$Default")]
    )["LaunchTemplateVersions"][0]
    return _Template(
        template["LaunchTemplateId"],
        _tags(template.get("Tags"), "aws:ResourceTag"),
        dict(version.get("LaunchTemplateData") or {}),
    )


def _launch_checks(
    action: str,
    region: str,
    request: Mapping[str, Any],
    template: _Template | None,
    tags: dict[str, str],
    spot: bool,
) -> list[Check]:
    """What one launch of one offering authorizes: `request` holds what the call sets
    (ImageId, SubnetId, SecurityGroupIds, KeyName, IamInstanceProfile, InstanceType)."""
    data = template.data if template else {}
    out: list[Check] = []

    def part(resource: str, from_request: Any) -> None:
        """A resource the request names, or else its launch template."""
        origin = "false" if from_request is not None else "true"
        out.append(Check(action, resource, {"ec2:IsLaunchTemplateResource": origin}))

    instance_type = request.get("InstanceType") or data.get("InstanceType")
    instance_context: dict[str, Any] = dict(tags)
    if action == "ec2:RunInstances":
        assert instance_type, "a launch needs an instance type"
        instance_context["ec2:InstanceType"] = instance_type
    out.append(Check(action, arn("ec2", region, "instance/*"), instance_context))
    if template is not None:
        out.append(
            Check(action, arn("ec2", region, f"launch-template/{template.id}"), template.tags)
        )
    image = request.get("ImageId") or data.get("ImageId")
    assert image, "a launch needs an image"
    part(arn("ec2", region, f"image/{image}", ""), request.get("ImageId"))
    ec2 = _client("ec2", region)
    for mapping in ec2.describe_images(ImageIds=[image])["Images"][0].get(
        "BlockDeviceMappings", []
    ):
        snapshot = (mapping.get("Ebs") or {}).get("SnapshotId")
        if snapshot:
            out.append(Check(action, arn("ec2", region, f"snapshot/{snapshot}", ""), {}))
    subnet = request.get("SubnetId") or data.get("SubnetId")
    assert subnet, "the IAM test's configurations name a subnet for every launch"
    part(arn("ec2", region, f"subnet/{subnet}"), request.get("SubnetId"))
    groups = request.get("SecurityGroupIds") or data.get("SecurityGroupIds")
    if not groups:  # EC2 uses the subnet's VPC's default group
        vpc = ec2.describe_subnets(SubnetIds=[subnet])["Subnets"][0]["VpcId"]
        default = ec2.describe_security_groups(
            Filters=[
                {"Name": "vpc-id", "Values": [vpc]},
                {"Name": "group-name", "Values": ["default"]},
            ]
        )["SecurityGroups"]
        groups = [g["GroupId"] for g in default]
        out.extend(
            Check(
                action,
                arn("ec2", region, f"security-group/{g}"),
                {"ec2:IsLaunchTemplateResource": "false"},
            )
            for g in groups
        )
    else:
        for group in groups:
            part(arn("ec2", region, f"security-group/{group}"), request.get("SecurityGroupIds"))
    key = request.get("KeyName") or data.get("KeyName")
    if key:
        part(arn("ec2", region, f"key-pair/{key}"), request.get("KeyName"))
    out.append(Check(action, arn("ec2", region, "volume/*"), {}))
    out.append(Check(action, arn("ec2", region, "network-interface/*"), {}))
    if spot:
        out.append(Check(action, arn("ec2", region, "spot-instances-request/*"), {}))
    profile = request.get("IamInstanceProfile") or data.get("IamInstanceProfile")
    if profile:
        name = profile.get("Name") or profile["Arn"].rsplit("/", 1)[-1]
        roles = _client("iam", region).get_instance_profile(InstanceProfileName=name)
        out.extend(
            Check("iam:PassRole", role["Arn"], {"iam:PassedToService": EC2_SERVICE})
            for role in roles["InstanceProfile"]["Roles"]
        )
    return out


def _request_tags(params: Mapping[str, Any]) -> dict[str, str]:
    return {
        key: value
        for spec in params.get("TagSpecifications") or ()
        if spec.get("ResourceType") == "instance"
        for key, value in _tags(spec.get("Tags"), "aws:RequestTag").items()
    }


def _tag_at_launch(region: str, created_by: str, tags: dict[str, str]) -> list[Check]:
    if not tags:
        return []
    return [
        Check(
            "ec2:CreateTags",
            arn("ec2", region, "instance/*"),
            {"ec2:CreateAction": created_by, **tags},
        )
    ]


def _run_instances(call: Call) -> list[Check]:
    params = call.params
    template = (
        _template(params["LaunchTemplate"], call.region) if "LaunchTemplate" in params else None
    )
    spot = (params.get("InstanceMarketOptions") or {}).get("MarketType") == "spot"
    tags = _request_tags(params)
    return _launch_checks(
        "ec2:RunInstances", call.region, params, template, tags, spot
    ) + _tag_at_launch(call.region, "RunInstances", tags)


def _create_fleet(call: Call) -> list[Check]:
    params = call.params
    tags = _request_tags(params)
    spot = params["TargetCapacitySpecification"]["DefaultTargetCapacityType"] == "spot"
    out = [Check("ec2:CreateFleet", arn("ec2", call.region, "fleet/*"), {})]
    for config in params["LaunchTemplateConfigs"]:
        template = _template(config["LaunchTemplateSpecification"], call.region)
        for override in config.get("Overrides") or [{}]:
            for action in ("ec2:CreateFleet", "ec2:RunInstances"):  # an instant fleet runs them
                out += _launch_checks(action, call.region, override, template, tags, spot)
    return out + _tag_at_launch(call.region, "CreateFleet", tags)


_MODELS: dict[str, Callable[[Call], list[Check]]] = {
    "ec2:DescribeInstances": _anywhere("ec2:DescribeInstances"),
    "ec2:RunInstances": _run_instances,
    "ec2:CreateFleet": _create_fleet,
    "ec2:StartInstances": _on_instances("ec2:StartInstances"),
    "ec2:StopInstances": _on_instances("ec2:StopInstances"),
    "ec2:TerminateInstances": _on_instances("ec2:TerminateInstances"),
    "autoscaling:DescribeAutoScalingGroups": _anywhere("autoscaling:DescribeAutoScalingGroups"),
    "autoscaling:SetDesiredCapacity": _set_desired,
    "autoscaling:TerminateInstanceInAutoScalingGroup": _terminate_in_group,
    "sqs:GetQueueAttributes": _queue,
    "cloudwatch:GetMetricData": _anywhere("cloudwatch:GetMetricData"),
}


def unique(checks: Sequence[Check]) -> list[Check]:
    """`checks` without repeats (same action, resource and context), in order."""
    seen: set[str] = set()
    out = []
    for check in checks:
        key = repr((check.action, check.resource, sorted(check.context.items())))
        if key not in seen:
            seen.add(key)
            out.append(check)
    return out


def in_region(check: Check, region: str) -> Check:
    """The same check made in another region (IAM checks have no region)."""
    old = _context_value(check.context, "aws:RequestedRegion")
    assert old is not None
    resource = check.resource.replace(f":{old[0]}:", f":{region}:")
    return replace(check, resource=resource).with_context(region=region)


def matching(checks: Sequence[Check], action: str, resource: str = "*") -> list[Check]:
    """The checks of `action` whose resource matches the glob `resource`."""
    return [c for c in checks if c.action == action and fnmatch.fnmatchcase(c.resource, resource)]
