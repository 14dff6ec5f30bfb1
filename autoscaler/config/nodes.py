"""Configuration of GPU node provisioning: which EC2 instance types may become Nodes, how
they are launched, how many at most, and when empty ones go.

Configuration only; `autoscaler.nodes` acts on it. Instance types come from a small
built-in catalog (GPUs, vCPUs, memory, on-demand price) unless the entry spells them out;
a type the catalog does not know must give its GPUs, vCPUs, memory and price here.
The catalog lives here so that validating a config needs nothing from `autoscaler.nodes`:
this module must never import that package, nor call AWS.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from autoscaler.units import Seconds

from .targets import AwsRetry, Ec2Target


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NodeInstanceType(_Model):
    """An allowed instance type; unset fields come from the built-in catalog."""

    type: str = Field(min_length=1, description="e.g. g6.xlarge")
    price: float | None = Field(None, ge=0, description="USD per hour (overrides the catalog)")
    gpus: int | None = Field(None, ge=0, description="nvidia.com/gpu per node")
    cpu: float | None = Field(None, gt=0, description="vCPUs per node")
    memory_gib: float | None = Field(None, gt=0, description="memory per node, GiB")


# Prices are us-east-1 on-demand list prices in USD per hour (2024); they only rank types
# against each other, and a config entry's `price` overrides them (spot, other regions).
# type: (GPUs, vCPUs, GiB, USD/h on demand in us-east-1)
CATALOG: dict[str, tuple[int, int, int, float]] = {
    "g4dn.xlarge": (1, 4, 16, 0.526),
    "g4dn.2xlarge": (1, 8, 32, 0.752),
    "g4dn.12xlarge": (4, 48, 192, 3.912),
    "g5.xlarge": (1, 4, 16, 1.006),
    "g5.2xlarge": (1, 8, 32, 1.212),
    "g5.4xlarge": (1, 16, 64, 1.624),
    "g5.8xlarge": (1, 32, 128, 2.448),
    "g5.12xlarge": (4, 48, 192, 5.672),
    "g5.24xlarge": (4, 96, 384, 8.144),
    "g5.48xlarge": (8, 192, 768, 16.288),
    "g6.xlarge": (1, 4, 16, 0.805),
    "g6.2xlarge": (1, 8, 32, 0.978),
    "g6.4xlarge": (1, 16, 64, 1.323),
    "g6.12xlarge": (4, 48, 192, 4.602),
    "g6.24xlarge": (4, 96, 384, 6.675),
    "g6.48xlarge": (8, 192, 768, 13.350),
    "g6e.xlarge": (1, 4, 32, 1.861),
    "g6e.12xlarge": (4, 48, 384, 10.493),
    "g6e.48xlarge": (8, 192, 1536, 30.131),
    "p3.2xlarge": (1, 8, 61, 3.060),
    "p3.8xlarge": (4, 32, 244, 12.240),
    "p4d.24xlarge": (8, 96, 1152, 32.773),
    "p5.48xlarge": (8, 192, 2048, 55.040),
}


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
            "memory_gib: ..., price: ...}})"
        )
    if gpus < 1:
        raise ValueError(
            f"instance type {given.type} has no GPUs; node provisioning launches GPU nodes"
        )
    return given.type, gpus, float(cpu), float(memory), price


class NodeTaint(_Model):
    """A taint put on every Node this provisioner creates."""

    key: str = Field(min_length=1)
    value: str = ""
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] = "NoSchedule"


class Reserved(_Model):
    """Capacity of every node not available to pods (kubelet, system daemons)."""

    cpu: float = Field(0.1, ge=0, description="vCPUs")
    memory_gib: float = Field(0.5, ge=0, description="GiB")


class NodeProvisioning(_Model):
    """GPU nodes launched on EC2 for pods the scheduler cannot place, and retired when empty."""

    enabled: bool = True
    pool: str = Field(
        "gpu-nodes",
        pattern=r"^[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?$",
        description="names the instances' pool tag: <pool>.<instance type>",
    )
    region: str | None = Field(None, description="default: the environment (AWS_REGION)")
    instance_types: list[str | NodeInstanceType] = Field(
        min_length=1, description="allowed types; the cheapest fit per GPU is launched"
    )
    launch_template: str | None = Field(None, description="launch template name or id (lt-...)")
    launch_template_version: str = "$Default"
    image_id: str | None = Field(None, description="AMI; inline spec, or overrides the template")
    subnets: list[str] = Field(default_factory=list, description="in priority order")
    security_groups: list[str] = Field(default_factory=list)
    instance_profile: str | None = None
    key_name: str | None = None
    user_data: str | None = Field(None, description="plain text (the kubelet's bootstrap)")
    api: Literal["auto", "fleet", "run-instances"] = "auto"
    unavailable_for: Seconds = Field(180.0, description="skip an offering that ran out this long")
    retry: AwsRetry = Field(default_factory=AwsRetry)
    max_nodes: int = Field(10, ge=0, description="most instances at once, launching included")
    empty_node_ttl: Seconds = Field(
        300.0, description="a node without workload pods this long is drained and terminated"
    )
    registration_timeout: Seconds = Field(
        900.0, description="an instance not a Ready GPU node this long after launch is terminated"
    )
    reserved: Reserved = Field(default_factory=Reserved)
    labels: dict[str, str] = Field(
        default_factory=dict, description="put on new Nodes; pods may select them"
    )
    taints: list[NodeTaint] = Field(default_factory=list, description="put on new Nodes")
    namespaces: list[str] = Field(
        default_factory=list, description="pending pods considered; empty: every namespace"
    )

    @field_validator("instance_types")
    @classmethod
    def _known_types(cls, value: list[str | NodeInstanceType]) -> list[str | NodeInstanceType]:
        names = [t if isinstance(t, str) else t.type for t in value]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"instance type listed twice: {', '.join(duplicated)}")
        for entry in value:
            instance_type_fields(entry)  # raises ValueError naming what is missing
        return value

    @model_validator(mode="after")
    def _launchable(self) -> NodeProvisioning:
        if not self.launch_template and not self.image_id:
            raise ValueError("set `launch_template` or an inline `image_id`")
        self.ec2_target("_check")  # Ec2Target's own checks (fleet needs a template, ...)
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
            key_name=self.key_name,
            user_data=self.user_data,
            api=self.api,
            unavailable_for=self.unavailable_for,
            retry=self.retry,
        )
