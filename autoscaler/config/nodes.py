"""Configuration of GPU node provisioning: which EC2 instance types may become Nodes, how
they are launched, how many at most, and when empty ones go.

Configuration only; `autoscaler.nodes` acts on it. Instance types come from a small
built-in catalog (GPUs, vCPUs, memory, on-demand price; `catalog.py`) unless the entry
spells them out; a type the catalog does not know must give its GPUs, vCPUs, memory and
price here, and be written as EC2 names types (family.size). The catalog lives in this
package so that validating a config needs nothing from `autoscaler.nodes`: this module
must never import that package, nor call AWS.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from .catalog import CATALOG
from .formats import (
    MAX_GPUS,
    MAX_REPLICAS,
    AwsName,
    ImageId,
    LabelKey,
    LabelValue,
    LaunchTemplate,
    LaunchTemplateVersion,
    LongWindow,
    Namespace,
    Price,
    Real,
    Region,
    RoleArn,
    SecurityGroupId,
    SubnetId,
    TextOr,
    Whole,
    Window,
    at,
    did_you_mean,
    instance_type,
    real_number,
    whole_number,
)
from .interruptions import Interruptions
from .targets import AwsRetry, Ec2Target

__all__ = [
    "CATALOG",
    "NodeInstanceType",
    "NodeProvisioning",
    "NodeTaint",
    "Reserved",
    "instance_type_fields",
]

MAX_CPUS = 4096
MAX_MEMORY_GIB = 65536.0


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class NodeInstanceType(_Model):
    """An allowed instance type; unset fields come from the built-in catalog."""

    type: str = Field(min_length=1, description="the EC2 instance type, e.g. g6.xlarge")
    price: Price | None = Field(None, description="USD per hour (overrides the catalog)")
    gpus: Annotated[int, Field(ge=0, le=MAX_GPUS), BeforeValidator(whole_number)] | None = (
        Field(None, description="nvidia.com/gpu per node")
    )
    cpu: Annotated[float, Field(gt=0, le=MAX_CPUS), BeforeValidator(real_number)] | None = (
        Field(None, description="vCPUs per node")
    )
    memory_gib: (
        Annotated[float, Field(gt=0, le=MAX_MEMORY_GIB), BeforeValidator(real_number)] | None
    ) = Field(None, description="memory per node, GiB")




def instance_type_fields(entry: str | NodeInstanceType) -> tuple[str, int, float, float, float]:
    """(type, GPUs, vCPUs, GiB, USD per hour) of an entry: the catalog's, the entry's on top.

    Raises ValueError naming the type and what is missing when neither gives a field.
    """
    given = NodeInstanceType(type=entry) if isinstance(entry, str) else entry
    known = CATALOG.get(given.type)
    gpus = given.gpus if given.gpus is not None else (known[0] if known else None)
    cpu = given.cpu if given.cpu is not None else (known[1] if known else None)
    memory = given.memory_gib if given.memory_gib is not None else (known[2] if known else None)
    price = given.price if given.price is not None else (known[3] if known else None)
    if gpus is None or cpu is None or memory is None or price is None:
        missing = [
            name
            for name, value in (
                ("gpus", gpus),
                ("cpu", cpu),
                ("memory_gib", memory),
                ("price", price),
            )
            if value is None
        ]
        raise ValueError(
            f"instance type {given.type} is not in the built-in catalog; give its "
            f"{', '.join(missing)} (write {{type: {given.type}, gpus: ..., cpu: ..., "
            f"memory_gib: ..., price: ...}}){did_you_mean(given.type)}"
        )
    if gpus < 1:
        raise ValueError(
            f"instance type {given.type} has no GPUs; node provisioning launches GPU nodes"
        )
    return given.type, gpus, float(cpu), float(memory), price


class NodeTaint(_Model):
    """A taint put on every Node this provisioner creates."""

    key: LabelKey = Field(description="a qualified name, e.g. nvidia.com/gpu")
    value: LabelValue = Field("", description="the taint's value; default: empty")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] = Field(
        "NoSchedule", description="what the taint does to pods that do not tolerate it"
    )


class Reserved(_Model):
    """Capacity of every node not available to pods (kubelet, system daemons)."""

    cpu: Real = Field(0.1, ge=0, le=MAX_CPUS, description="vCPUs of each node pods cannot use")
    memory_gib: Real = Field(
        0.5, ge=0, le=MAX_MEMORY_GIB, description="GiB of each node's memory pods cannot use"
    )


class NodeProvisioning(_Model):
    """GPU nodes launched on EC2 for pods the scheduler cannot place, and retired when empty."""

    enabled: bool = Field(
        True, description="false keeps the section but provisions no nodes (and asks no IAM)"
    )
    pool: str = Field(
        "gpu-nodes",
        pattern=r"^[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?$",
        description="names the instances' pool tag: <pool>.<instance type>",
    )
    region: Region | None = Field(
        None, description="the AWS region; default: the environment (AWS_REGION)"
    )
    instance_types: list[TextOr[NodeInstanceType]] = Field(
        min_length=1, description="allowed types; the cheapest fit per GPU is launched"
    )
    launch_template: LaunchTemplate | None = Field(
        None, description="launch template name or id (lt-...)"
    )
    launch_template_version: LaunchTemplateVersion = Field(
        "$Default", description="a version number, `$Default` or `$Latest`"
    )
    image_id: ImageId | None = Field(
        None, description="AMI (ami-...); inline spec, or overrides the template"
    )
    subnets: list[SubnetId] = Field(
        default_factory=list, description="subnet ids (subnet-...), in priority order"
    )
    security_groups: list[SecurityGroupId] = Field(
        default_factory=list, description="security group ids (sg-...)"
    )
    instance_profile: AwsName | None = Field(
        None, description="IAM instance profile name or ARN"
    )
    instance_role: RoleArn | None = Field(
        None,
        description="ARN of the IAM role the nodes run as: the one role `autoscaler "
        "iam-policy` lets iam:PassRole pass",
    )
    key_name: AwsName | None = Field(None, description="EC2 key pair name for SSH; default: none")
    user_data: str | None = Field(None, description="plain text (the kubelet's bootstrap)")
    api: Literal["auto", "fleet", "run-instances"] = Field(
        "auto", description="auto: CreateFleet with a launch template, else RunInstances"
    )
    unavailable_for: Window = Field(180.0, description="skip an offering that ran out this long")
    retry: AwsRetry = Field(
        default_factory=AwsRetry, description="how EC2 calls are retried when throttled"
    )
    max_nodes: Whole = Field(
        10, ge=0, le=MAX_REPLICAS, description="most instances at once, launching included"
    )
    empty_node_ttl: LongWindow = Field(
        300.0, description="a node without workload pods this long is drained and terminated"
    )
    registration_timeout: Window = Field(
        900.0, description="an instance not a Ready GPU node this long after launch is terminated"
    )
    reserved: Reserved = Field(
        default_factory=Reserved,
        description="each node's CPU and memory kept from pods when fitting them",
    )
    labels: dict[LabelKey, LabelValue] = Field(
        default_factory=dict, description="put on new Nodes; pods may select them"
    )
    taints: list[NodeTaint] = Field(
        default_factory=list, description="taints put on new Nodes; default: none"
    )
    namespaces: list[Namespace] = Field(
        default_factory=list, description="pending pods considered; empty: every namespace"
    )
    market: Literal["on-demand", "spot", "spot-then-on-demand"] = Field(
        "on-demand", description="spot-then-on-demand: on-demand when spot is short"
    )
    interruptions: Interruptions | None = Field(
        None, description="EC2 interruption notices from SQS (docs/nodes.md); off when unset"
    )
    gang_timeout: LongWindow = Field(
        600.0, description="a gang (pods that run together) not placed this long is reported"
    )
    gang_placement_group: AwsName | None = Field(
        None, description="cluster placement group a gang's instances launch into"
    )
    gang_label: LabelKey = Field(
        "scheduling.x-k8s.io/pod-group",
        description="pods with the same value of this label are one gang (size: annotation)",
    )

    @field_validator("instance_types")
    @classmethod
    def _known_types(cls, value: list[str | NodeInstanceType]) -> list[str | NodeInstanceType]:
        names = [t if isinstance(t, str) else t.type for t in value]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"instance type listed twice: {', '.join(duplicated)}")
        for i, (name, entry) in enumerate(zip(names, value, strict=True)):
            where = f"[{i}]" if isinstance(entry, str) else f"[{i}].type"
            try:
                instance_type_fields(entry)  # raises ValueError naming what is missing
                instance_type(name)  # written as EC2 names types
            except ValueError as exc:
                raise at(where, str(exc)) from None
        return value

    @model_validator(mode="after")
    def _launchable(self) -> NodeProvisioning:
        if not self.launch_template and not self.image_id:
            raise ValueError("set `launch_template` or an inline `image_id`")
        first = self.instance_types[0]
        # Ec2Target's own checks (fleet needs a template, ...)
        self.ec2_target(first if isinstance(first, str) else first.type)
        return self

    def ec2_target(self, instance_type: str) -> Ec2Target:
        """The EC2 target that launches one instance type (one pool per type)."""
        return Ec2Target(
            region=self.region,
            launch_template=self.launch_template,
            launch_template_version=self.launch_template_version,
            image_id=self.image_id,
            instance_types=[instance_type],
            subnets=list(self.subnets),
            security_groups=list(self.security_groups),
            instance_profile=self.instance_profile,
            instance_role=self.instance_role,
            key_name=self.key_name,
            user_data=self.user_data,
            api=self.api,
            market=self.market,
            unavailable_for=self.unavailable_for,
            retry=self.retry,
        )
