"""The IAM policy a configuration needs, generated from it: `autoscaler iam-policy -c FILE`.

The policy grants the calls the AWS adapters make (autoscaler/providers/aws_*.py,
autoscaler/signals/sqs.py and cloudwatch.py) on the resources the configuration names,
in the regions it names, and nothing else:

- reads: DescribeInstances, DescribeAutoScalingGroups and GetMetricData have no
  resource-level permissions, so they are limited by `aws:RequestedRegion`;
  GetQueueAttributes only on the configured queues' ARNs; ReceiveMessage and
  DeleteMessage (and GetQueueUrl, for a queue given by name) only on the node
  provisioner's interruption queue;
- launches (RunInstances, CreateFleet): only instances tagged at launch with this
  installation's owner tag and, for RunInstances, of the configured instance types; only
  from the configured launch templates (by ARN for an `lt-...` id, by the owner tag for a
  template named by name), images, subnets, security groups and key pairs; what a
  launch template supplies itself (its image, subnet, security groups, key pair) only
  when it comes from the template (`ec2:IsLaunchTemplateResource`), which must be ours;
- tags only at launch; start, stop and terminate only instances carrying the owner tag;
  SetDesiredCapacity and TerminateInstanceInAutoScalingGroup only on the configured
  groups, and only while they carry the owner tag (unless `require_owner_tag: false`);
- iam:PassRole only for the instance roles given (`--instance-role`), only to EC2.

Pure: reads a Config and returns a policy document with notes for the user; it must never
call AWS, and never widen a grant to `*` because a value in the configuration was missing
(it fails, or says in a note what the config leaves open and how to narrow it).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

from autoscaler.clients.aws import Ownership
from autoscaler.config import Config
from autoscaler.config.nodes import instance_type_fields
from autoscaler.config.sources import CloudWatchSource, SqsSource
from autoscaler.config.targets import AsgTarget, Ec2Target

MAX_MANAGED_POLICY_CHARACTERS = 6144
"""IAM's limit on a managed policy document, whitespace not counted."""

_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")
_ACCOUNT = re.compile(r"^\d{12}$")
_ROLE_ARN = re.compile(r"^arn:(aws|aws-cn|aws-us-gov):iam::(\d{12}):role/[\w+=,.@/-]+$")
_SQS_REGION_IN_HOST = re.compile(r"^(?:sqs[.-])?([a-z]{2}(?:-[a-z]+)+-\d+)\.")
EC2_SERVICE = "ec2.amazonaws.com"
SSM_IMAGE = "resolve:ssm:"
SPOT_SERVICE = "spot.amazonaws.com"


class IamPolicyError(ValueError):
    """A configuration (or option) the policy cannot be generated from; says what to fix."""


@dataclass(frozen=True)
class IamOptions:
    """What the configuration does not say: the region of targets and sources that set
    none (the controller takes the environment's), the account, the instance roles."""

    default_region: str | None = None
    account: str | None = None
    instance_roles: Sequence[str] = ()


@dataclass
class GeneratedPolicy:
    """The policy document and what the user should know about it (printed as notes)."""

    document: dict[str, Any]
    notes: list[str] = field(default_factory=list)

    def text(self) -> str:
        return json.dumps(self.document, indent=2) + "\n"

    def characters(self) -> int:
        """Size as IAM counts it: without whitespace."""
        return len(re.sub(r"\s", "", json.dumps(self.document)))


@dataclass(frozen=True)
class _Launch:
    """One EC2 target that launches instances: a pool's, or the node provisioner's."""

    where: str
    region: str
    target: Ec2Target
    instance_types: tuple[str, ...]
    stops: bool


@dataclass
class _Builder:
    config: Config
    options: IamOptions
    notes: list[str] = field(default_factory=list)
    partitions: set[str] = field(default_factory=set)
    parameters: list[str] = field(default_factory=list)
    """SSM parameters that launches resolve their image from (`resolve:ssm:...`)."""

    # -- values from the config, checked ------------------------------------------------
    def region(self, configured: str | None, where: str) -> str:
        region = configured or self.options.default_region
        if not region:
            raise IamPolicyError(
                f"{where}: no region; set `region` there, or pass --region (default: "
                "AWS_REGION, as the controller would)"
            )
        if not _REGION.match(region):
            raise IamPolicyError(f"{where}: {region!r} is not an AWS region (e.g. us-east-1)")
        self.partitions.add(_partition(region))
        return region

    @property
    def account(self) -> str:
        return self.options.account or "*"

    @property
    def partition(self) -> str:
        return next(iter(self.partitions)) if self.partitions else "aws"

    def arn(self, service: str, region: str, resource: str, account: str | None = None) -> str:
        """An ARN in `region`; `account` None: the --account (or any), "": none (images)."""
        owner = self.account if account is None else account
        return f"arn:{_partition(region)}:{service}:{region}:{owner}:{resource}"

    # -- what the config uses -----------------------------------------------------------
    def launches(self) -> list[_Launch]:
        out: list[_Launch] = []
        for pool in self.config.pools:
            target = pool.target
            if isinstance(target, Ec2Target):
                where = f"pool {pool.name}"
                types = tuple(t.type for t in target.type_options)
                region = self.region(target.region, where)
                out.append(_Launch(where, region, target, types, target.scale_in == "stop"))
        nodes = self.config.nodes
        if nodes is not None and nodes.enabled:
            types = tuple(instance_type_fields(t)[0] for t in nodes.instance_types)
            target = nodes.ec2_target(types[0])
            region = self.region(nodes.region, "nodes")
            out.append(_Launch("nodes", region, target, types, False))
        return out

    def groups(self) -> list[tuple[str, str, AsgTarget]]:
        out = []
        for pool in self.config.pools:
            if isinstance(pool.target, AsgTarget):
                where = f"pool {pool.name}"
                _literal(pool.target.name, "Auto Scaling group name", where)
                out.append((where, self.region(pool.target.region, where), pool.target))
        return out

    def queue_arns(self) -> list[str]:
        arns = []
        for where, source in self._sources(SqsSource):
            assert isinstance(source, SqsSource)
            arns.append(self._queue_arn(source, where))
        return arns

    def interruption_queue(self) -> tuple[str, bool] | None:
        """The ARN of `nodes.interruptions.queue`, and whether it is given by name only."""
        nodes = self.config.nodes
        if nodes is None or not nodes.enabled or nodes.interruptions is None:
            return None
        queue, where = nodes.interruptions.queue, "nodes.interruptions"
        region = nodes.interruptions.region or nodes.region
        if "://" not in queue:
            _literal(queue, "queue name", where)
            return self.arn("sqs", self.region(region, where), queue), True
        source = SqsSource(queue_url=queue, region=region)
        return self._queue_arn(source, where), False

    def metric_regions(self) -> list[str]:
        return [
            self.region(source.region, where)
            for where, source in self._sources(CloudWatchSource)
            if isinstance(source, CloudWatchSource)
        ]

    def _sources(self, kind: type) -> list[tuple[str, Any]]:
        return [
            (f"pool {pool.name}: signal {name}", spec.source)
            for pool in self.config.pools
            for name, spec in pool.signals.items()
            if isinstance(spec.source, kind)
        ]

    def _queue_arn(self, source: SqsSource, where: str) -> str:
        url = urlparse(source.queue_url)
        parts = [p for p in url.path.split("/") if p]
        if len(parts) < 2:
            raise IamPolicyError(
                f"{where}: cannot tell the queue's account and name from {source.queue_url!r} "
                "(expected https://sqs.<region>.amazonaws.com/<account>/<queue>)"
            )
        account, name = parts[-2], parts[-1]
        _literal(name, "queue name", where)
        host = _SQS_REGION_IN_HOST.match(url.hostname or "")
        region = self.region(source.region or (host.group(1) if host else None), where)
        return self.arn("sqs", region, name, account if _ACCOUNT.match(account) else None)

    def roles(self) -> list[str]:
        roles = []
        for role in self.options.instance_roles:
            match = _ROLE_ARN.match(role)
            if not match or "*" in role or "?" in role:
                raise IamPolicyError(
                    f"--instance-role {role!r} is not a role ARN "
                    "(arn:aws:iam::<account>:role/<name>, no wildcards)"
                )
            self.partitions.add(match.group(1))
            roles.append(role)
        return sorted(set(roles))


def generate_policy(config: Config, options: IamOptions) -> GeneratedPolicy:
    """The least-privilege policy for `config`'s AWS pools, node provisioning and signals.

    Raises IamPolicyError when the configuration uses no AWS at all, when a value needed
    to scope a grant is missing (a region, the role of a configured instance profile) or
    is itself a pattern.
    """
    if options.account is not None and not _ACCOUNT.match(options.account):
        raise IamPolicyError(f"--account {options.account!r} is not a 12-digit account id")
    b = _Builder(config, options)
    launches = b.launches()
    groups = b.groups()
    queues = b.queue_arns()
    interruptions = b.interruption_queue()
    metric_regions = b.metric_regions()
    roles = sorted(
        set(b.roles()) | {x.target.instance_role for x in launches if x.target.instance_role}
    )
    if not (launches or groups or queues or metric_regions):
        raise IamPolicyError(
            "the configuration uses no AWS: no `ec2` or `asg` pool, no `nodes`, no `sqs` or "
            "`cloudwatch` signal; it needs no IAM policy"
        )
    if len(b.partitions) > 1:
        raise IamPolicyError(
            f"the configuration spans AWS partitions ({', '.join(sorted(b.partitions))}); "
            "one controller role cannot act in several: split the configuration"
        )
    owner = Ownership(config.installation.id, config.installation.tag_prefix)
    statements: list[dict[str, Any]] = []
    statements += _read_statements(b, launches, groups, queues, metric_regions)
    if interruptions is not None:
        arn, by_name = interruptions
        actions = ["sqs:ReceiveMessage", "sqs:DeleteMessage"]
        statements.append(
            _statement(
                "ReceiveAndDeleteInterruptionNotices",
                actions + (["sqs:GetQueueUrl"] if by_name else []),
                [arn],
            )
        )
    statements += _launch_statements(b, launches, owner, roles)
    statements += _retire_statements(b, launches, groups, owner)
    statements += _iam_statements(b, launches, roles)
    policy = GeneratedPolicy({"Version": "2012-10-17", "Statement": statements}, b.notes)
    size = policy.characters()
    if size > MAX_MANAGED_POLICY_CHARACTERS:
        policy.notes.append(
            f"the policy is {size} characters (whitespace excluded); an IAM managed policy "
            f"holds at most {MAX_MANAGED_POLICY_CHARACTERS}: split its statements over two "
            "policies attached to the same role"
        )
    return policy


# -- statements ---------------------------------------------------------------------------
def _statement(
    sid: str, actions: Sequence[str], resources: Iterable[str], condition: Any = None
) -> dict[str, Any]:
    listed = sorted(set(resources))
    out: dict[str, Any] = {
        "Sid": sid,
        "Effect": "Allow",
        "Action": actions[0] if len(actions) == 1 else list(actions),
        "Resource": listed[0] if len(listed) == 1 else listed,
    }
    if condition:
        out["Condition"] = condition
    return out


def _in_regions(regions: Iterable[str]) -> dict[str, Any]:
    return {"StringEquals": {"aws:RequestedRegion": sorted(set(regions))}}


def _read_statements(
    b: _Builder,
    launches: Sequence[_Launch],
    groups: Sequence[tuple[str, str, AsgTarget]],
    queues: Sequence[str],
    metric_regions: Sequence[str],
) -> list[dict[str, Any]]:
    out = []
    if launches:
        regions = [launch.region for launch in launches]
        out.append(
            _statement("DescribeInstances", ["ec2:DescribeInstances"], "*", _in_regions(regions))
        )
    if groups:
        regions = [region for _, region, _ in groups]
        out.append(
            _statement(
                "DescribeAutoScalingGroups",
                ["autoscaling:DescribeAutoScalingGroups"],
                "*",
                _in_regions(regions),
            )
        )
    if metric_regions:
        b.notes.append(
            "cloudwatch:GetMetricData has no resource-level permissions or namespace "
            "condition: it is limited to the configured regions only"
        )
        out.append(
            _statement(
                "ReadMetrics", ["cloudwatch:GetMetricData"], "*", _in_regions(metric_regions)
            )
        )
    if queues:
        out.append(_statement("ReadQueueBacklogs", ["sqs:GetQueueAttributes"], queues))
    return out


def _launch_statements(
    b: _Builder, launches: Sequence[_Launch], owner: Ownership, roles: Sequence[str]
) -> list[dict[str, Any]]:
    if not launches:
        return []
    fleet = [launch for launch in launches if launch.target.uses_fleet]
    spot = [launch for launch in launches if launch.target.market != "on-demand"]
    actions = ["ec2:RunInstances"] + (["ec2:CreateFleet"] if fleet else [])
    regions = sorted({launch.region for launch in launches})
    ours = {f"aws:RequestTag/{owner.owner_key}": owner.owner}
    types = sorted({t for launch in launches for t in launch.instance_types})
    out = [
        _statement(
            "RunOnlyOurInstancesOfTheConfiguredTypes",
            ["ec2:RunInstances"],
            [b.arn("ec2", r, "instance/*") for r in regions],
            {"StringEquals": {**ours, "ec2:InstanceType": types}},
        )
    ]
    if fleet:
        fleet_regions = sorted({launch.region for launch in fleet})
        out.append(
            _statement(
                "CreateFleetsOnlyOfOurInstances",
                ["ec2:CreateFleet"],
                [b.arn("ec2", r, "instance/*") for r in fleet_regions],
                {"StringEquals": ours},
            )
        )
        out.append(
            _statement(
                "CreateInstantFleets",
                ["ec2:CreateFleet"],
                [b.arn("ec2", r, "fleet/*") for r in fleet_regions],
            )
        )
    by_id, by_tag = _templates(b, launches, owner, roles)
    if by_id:
        out.append(_statement("LaunchFromOurTemplates", actions, by_id))
    if by_tag:
        out.append(
            _statement(
                "LaunchFromTemplatesTaggedAsOurs",
                actions,
                [b.arn("ec2", r, "launch-template/*") for r in by_tag],
                {"StringEquals": {f"aws:ResourceTag/{owner.owner_key}": owner.owner}},
            )
        )
    out.append(_statement("LaunchWithTheseParts", actions, _parts(b, launches, spot)))
    if b.parameters:
        out.append(_statement("ResolveTheImageParameters", ["ssm:GetParameters"], b.parameters))
    templated = sorted({launch.region for launch in launches if launch.target.launch_template})
    if templated:
        out.append(
            _statement(
                "LaunchWithWhatOurTemplatesSpecify",
                actions,
                [
                    b.arn("ec2", r, kind, account)
                    for r in templated
                    for kind, account in (
                        ("image/*", ""),
                        ("subnet/*", None),
                        ("security-group/*", None),
                        ("key-pair/*", None),
                    )
                ],
                {"Bool": {"ec2:IsLaunchTemplateResource": "true"}},
            )
        )
    create_actions = ["RunInstances"] + (["CreateFleet"] if fleet else [])
    out.append(
        _statement(
            "TagOnlyAtLaunch",
            ["ec2:CreateTags"],
            [b.arn("ec2", r, "instance/*") for r in regions],
            {"StringEquals": {"ec2:CreateAction": create_actions, **ours}},
        )
    )
    return out


def _templates(
    b: _Builder, launches: Sequence[_Launch], owner: Ownership, roles: Sequence[str]
) -> tuple[list[str], list[str]]:
    """Launch template ARNs (for `lt-...` ids) and regions of templates named by name."""
    by_id: list[str] = []
    by_tag: list[str] = []
    for launch in launches:
        name = launch.target.launch_template
        if not name:
            continue
        _literal(name, "launch template", launch.where)
        if name.startswith("lt-"):
            by_id.append(b.arn("ec2", launch.region, f"launch-template/{name}"))
        else:
            by_tag.append(launch.region)
            b.notes.append(
                f"{launch.where}: launch template {name!r} is named, not an id (IAM knows "
                f"templates by id): the policy allows launch templates in {launch.region} "
                f"tagged {owner.owner_key}={owner.owner}; tag it so, or configure its id "
                "(lt-...)"
            )
        if not launch.target.instance_profile and not roles:
            b.notes.append(
                f"{launch.where}: no --instance-role given, so no iam:PassRole is granted; if "
                f"launch template {name!r} gives an IAM instance profile, launches are "
                "refused until you pass the role inside it with --instance-role"
            )
    return sorted(set(by_id)), sorted(set(by_tag))


def _parts(b: _Builder, launches: Sequence[_Launch], spot: Sequence[_Launch]) -> list[str]:
    """What launches use besides instances and templates: the configured images, subnets,
    security groups and key pair, and what every launch creates (volumes, interfaces)."""
    out: list[str] = []
    for launch in launches:
        target, region, where = launch.target, launch.region, launch.where
        if target.image_id and target.image_id.startswith(SSM_IMAGE):
            # EC2 resolves the parameter at launch: any image of the region, and the parameter.
            name = target.image_id[len(SSM_IMAGE) :].split(":")[0].lstrip("/")
            _literal(name, "image parameter", where)
            public = name.startswith("aws/")  # AWS's own parameters, in no account
            b.parameters.append(b.arn("ssm", region, f"parameter/{name}", "*" if public else None))
            out.append(b.arn("ec2", region, "image/*", ""))
            b.notes.append(
                f"{where}: image_id {target.image_id!r} is resolved at launch, so the policy "
                f"allows any image in {region} (and ssm:GetParameters on that parameter); "
                "give an AMI id to narrow it"
            )
        elif target.image_id:
            _literal(target.image_id, "image_id", where)
            out.append(b.arn("ec2", region, f"image/{target.image_id}", ""))
        for subnet in target.subnets:
            _literal(subnet, "subnet", where)
            out.append(b.arn("ec2", region, f"subnet/{subnet}"))
        for group in target.security_groups:
            _literal(group, "security group", where)
            out.append(b.arn("ec2", region, f"security-group/{group}"))
        if target.key_name:
            _literal(target.key_name, "key_name", where)
            out.append(b.arn("ec2", region, f"key-pair/{target.key_name}"))
        if not target.launch_template:
            # Without a template EC2 picks the default VPC's subnet and security group.
            if not target.subnets:
                out.append(b.arn("ec2", region, "subnet/*"))
                b.notes.append(
                    f"{where}: no `subnets` and no launch template: it may launch into any "
                    f"subnet of {region}; list `subnets` to narrow the policy"
                )
            if not target.security_groups:
                out.append(b.arn("ec2", region, "security-group/*"))
                b.notes.append(
                    f"{where}: no `security_groups` and no launch template: it may launch "
                    f"with any security group of {region}; list `security_groups` to narrow "
                    "the policy"
                )
        out.append(b.arn("ec2", region, "snapshot/*", ""))
        out.append(b.arn("ec2", region, "volume/*"))
        out.append(b.arn("ec2", region, "network-interface/*"))
    nodes = b.config.nodes
    if nodes is not None and nodes.enabled and nodes.gang_placement_group:
        # gangs launch into the cluster placement group (nodes/gangs.py)
        group = nodes.gang_placement_group
        _literal(group, "gang_placement_group", "nodes")
        region = next(x.region for x in launches if x.where == "nodes")
        out.append(b.arn("ec2", region, f"placement-group/{group}"))
    for launch in spot:
        out.append(b.arn("ec2", launch.region, "spot-instances-request/*"))
    return out


def _retire_statements(
    b: _Builder,
    launches: Sequence[_Launch],
    groups: Sequence[tuple[str, str, AsgTarget]],
    owner: Ownership,
) -> list[dict[str, Any]]:
    out = []
    tagged = {"StringEquals": {f"aws:ResourceTag/{owner.owner_key}": owner.owner}}
    if launches:
        actions = ["ec2:TerminateInstances", "ec2:StartInstances"]
        if any(launch.stops for launch in launches):
            actions.append("ec2:StopInstances")
        regions = sorted({launch.region for launch in launches})
        out.append(
            _statement(
                "StartStopTerminateOnlyOurInstances",
                actions,
                [b.arn("ec2", r, "instance/*") for r in regions],
                tagged,
            )
        )
    actions = ["autoscaling:SetDesiredCapacity", "autoscaling:TerminateInstanceInAutoScalingGroup"]

    def group_arn(region: str, target: AsgTarget) -> str:
        return b.arn(
            "autoscaling", region, f"autoScalingGroup:*:autoScalingGroupName/{target.name}"
        )

    owned = [group_arn(region, t) for _, region, t in groups if t.require_owner_tag]
    if owned:
        out.append(_statement("ScaleOnlyOurAutoScalingGroups", actions, owned, tagged))
    untagged = [(where, region, t) for where, region, t in groups if not t.require_owner_tag]
    if untagged:
        for where, _, target in untagged:
            b.notes.append(
                f"{where}: `require_owner_tag: false`: the policy lets the controller scale "
                f"Auto Scaling group {target.name!r} without the owner tag"
            )
        out.append(
            _statement(
                "ScaleTheseUntaggedAutoScalingGroups",
                actions,
                [group_arn(region, t) for _, region, t in untagged],
            )
        )
    return out


def _iam_statements(
    b: _Builder, launches: Sequence[_Launch], roles: Sequence[str]
) -> list[dict[str, Any]]:
    out = []
    profiles = [launch for launch in launches if launch.target.instance_profile]
    if profiles and not roles:
        launch = profiles[0]
        raise IamPolicyError(
            f"{launch.where}: launches with instance profile "
            f"{launch.target.instance_profile!r}, which needs iam:PassRole on the role inside "
            "it; pass that role: --instance-role arn:aws:iam::<account>:role/<name>"
        )
    if roles and not launches:
        b.notes.append("--instance-role is unused: the configuration launches no instances")
    elif roles:
        out.append(
            _statement(
                "PassOnlyTheInstanceRoleToEc2",
                ["iam:PassRole"],
                roles,
                {"StringEquals": {"iam:PassedToService": EC2_SERVICE}},
            )
        )
    if any(launch.target.market != "on-demand" for launch in launches):
        role = "role/aws-service-role/spot.amazonaws.com/AWSServiceRoleForEC2Spot"
        out.append(
            _statement(
                "CreateTheSpotServiceLinkedRoleOnce",
                ["iam:CreateServiceLinkedRole"],
                [f"arn:{b.partition}:iam::{b.account}:{role}"],
                {"StringEquals": {"iam:AWSServiceName": SPOT_SERVICE}},
            )
        )
    return out


# -- helpers ------------------------------------------------------------------------------
def _partition(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def _literal(value: str, what: str, where: str) -> None:
    """A name or id that goes into an ARN must not be a pattern: that would widen it."""
    if not value or any(c in value for c in "*?$") or value.strip() != value:
        raise IamPolicyError(
            f"{where}: {what} {value!r} cannot scope a policy (empty, a wildcard or an "
            "unexpanded variable); give the literal name or id"
        )


__all__ = [
    "MAX_MANAGED_POLICY_CHARACTERS",
    "GeneratedPolicy",
    "IamOptions",
    "IamPolicyError",
    "generate_policy",
]
