"""What a pool scales: one model per kind, selected by `kind`.

Configuration only; providers in `autoscaler.providers` act on them.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from .formats import (
    MAX_PRICE,
    MAX_REPLICAS,
    MAX_UNITS,
    AwsName,
    ImageId,
    LaunchTemplate,
    LaunchTemplateVersion,
    Namespace,
    Price,
    Region,
    ReplicaCount,
    RoleArn,
    SecurityGroupId,
    SubnetId,
    TextOr,
    Timeout,
    Whole,
    Window,
    at,
    check,
    dns_label,
    dns_subdomain,
    instance_type,
    real_number,
    whole_number,
)

DeploymentName = Annotated[str, check(dns_subdomain, "Deployment name")]
StatefulSetName = Annotated[str, check(dns_label, "StatefulSet name")]


class _Target(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class DeploymentTarget(_Target):
    """A Kubernetes Deployment, scaled through its scale subresource."""

    kind: Literal["deployment"] = Field("deployment", description="selects this target")
    namespace: Namespace = Field("default", description="the Deployment's namespace")
    name: DeploymentName = Field(description="the Deployment's name")
    require_owner_label: bool = Field(
        True,
        description="scale it only if it has the label `<tag_prefix>/owner: <installation id>`",
    )


class StatefulSetTarget(_Target):
    """A Kubernetes StatefulSet, scaled through its scale subresource."""

    kind: Literal["statefulset"] = Field("statefulset", description="selects this target")
    namespace: Namespace = Field("default", description="the StatefulSet's namespace")
    name: StatefulSetName = Field(description="the StatefulSet's name")
    require_owner_label: bool = Field(
        True,
        description="scale it only if it has the label `<tag_prefix>/owner: <installation id>`",
    )


class JobTarget(_Target):
    """Kubernetes Jobs created from a template as backlog grows; never deleted while running."""

    kind: Literal["job"] = Field("job", description="selects this target")
    namespace: Namespace = Field("default", description="the namespace Jobs are created in")
    template: dict[str, Any] | None = Field(None, description="a batch/v1 Job manifest")
    template_file: str | None = Field(None, description="path to a Job manifest (YAML)")
    items_per_job: Whole = Field(
        1,
        gt=0,
        le=MAX_UNITS,
        description="backlog items one Job takes (annotated on it); size the policy to match",
    )
    keep_finished: Whole = Field(
        10, ge=0, le=MAX_REPLICAS, description="finished Jobs kept for inspection"
    )
    name_prefix: str | None = Field(
        None,
        pattern=r"^[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?$",
        description="prefix of created Jobs' names; default: the pool's name",
    )

    @model_validator(mode="after")
    def _one_template(self) -> JobTarget:
        if (self.template is None) == (self.template_file is None):
            raise ValueError("set exactly one of `template` and `template_file`")
        return self


class AwsRetry(_Target):
    """How hard an AWS call is retried before the pool is handed to the controller's backoff.

    botocore's adaptive mode retries throttled and transient errors itself (with a
    client-side rate limiter); after it gives up on throttling, the provider waits
    `backoff` seconds (doubling) for at most `backoff_rounds` more rounds, then raises
    Throttled. Capacity errors are never retried in place: the next offering is tried.
    """

    max_attempts: Whole = Field(
        4, ge=1, le=20, description="attempts botocore makes per call (its adaptive mode)"
    )
    backoff: Timeout = Field(1.0, description="first extra wait after botocore gives up")
    backoff_rounds: Whole = Field(2, ge=0, le=10, description="extra rounds, each wait doubled")


class InstanceTypeOption(_Target):
    """An instance type with the prices that `order: cheapest` sorts by (USD per hour)."""

    type: str = Field(min_length=1, description="the EC2 instance type, e.g. g6.12xlarge")
    price: Price | None = Field(None, description="on-demand USD per hour")
    spot_price: Price | None = Field(None, description="expected spot USD per hour")


class Ec2Target(_Target):
    """EC2 instances the autoscaler launches itself, tagged as its own.

    One replica is one instance. Offerings (instance type x subnet x market) are tried in
    `order`; one that fails for capacity is skipped for `unavailable_for` seconds.
    """

    kind: Literal["ec2"] = Field("ec2", description="selects this target")
    region: Region | None = Field(
        None, description="the AWS region; default: the environment (AWS_REGION)"
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
    instance_types: list[TextOr[InstanceTypeOption]] = Field(
        min_length=1,
        description="instance types to launch, in priority order: names, or {type, price, "
        "spot_price} for `order: cheapest`. A type the built-in catalog lacks must be "
        "written as EC2 names types (family.size)",
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
        description="ARN of the IAM role the instances run as (inside the instance profile or "
        "the launch template's): the one role `autoscaler iam-policy` lets iam:PassRole pass",
    )
    key_name: AwsName | None = Field(None, description="EC2 key pair name for SSH; default: none")
    user_data: str | None = Field(None, description="plain text; encoded by the provider")
    market: Literal["on-demand", "spot", "spot-then-on-demand"] = Field(
        "on-demand",
        description="purchase option; `spot-then-on-demand` tries every spot offering before "
        "paying for on-demand",
    )
    spot_max_price: (
        Annotated[float, Field(gt=0, le=MAX_PRICE), BeforeValidator(real_number)] | None
    ) = Field(
        None,
        description="the most paid for a spot instance-hour, USD; default: the on-demand price",
    )
    order: Literal["priority", "cheapest"] = Field(
        "priority",
        description="`priority`: instance types as listed; `cheapest`: sorted by each "
        "market's price (then subnets as listed)",
    )
    api: Literal["auto", "fleet", "run-instances"] = Field(
        "auto", description="auto: CreateFleet with a launch template, else RunInstances"
    )
    scale_in: Literal["terminate", "stop"] = Field(
        "terminate", description="`stop` keeps a warm pool of stopped instances"
    )
    warm_pool_max: ReplicaCount | None = Field(
        None,
        description="with scale_in: stop, most stopped instances kept (default: max)",
    )
    unavailable_for: Window = Field(
        180.0, description="how long an offering that ran out of capacity is skipped"
    )
    retry: AwsRetry = Field(
        default_factory=AwsRetry, description="how EC2 calls are retried when throttled"
    )

    @field_validator("instance_types")
    @classmethod
    def _instance_types(
        cls, value: list[str | InstanceTypeOption]
    ) -> list[str | InstanceTypeOption]:
        for i, entry in enumerate(value):
            name = entry if isinstance(entry, str) else entry.type
            try:
                instance_type(name)
            except ValueError as exc:
                raise at(f"[{i}]" if isinstance(entry, str) else f"[{i}].type", str(exc)) from None
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Ec2Target:
        if not self.launch_template and not self.image_id:
            raise ValueError("set `launch_template` or an inline `image_id`")
        if self.uses_fleet:
            inline = [
                name
                for name in ("security_groups", "instance_profile", "key_name", "user_data")
                if getattr(self, name)
            ]
            if not self.launch_template:
                raise ValueError(
                    "`api: fleet` (CreateFleet) launches only from a launch template; set "
                    "`launch_template`, or `api: run-instances` for an inline spec"
                )
            if inline:
                raise ValueError(
                    f"CreateFleet takes {', '.join(inline)} from the launch template; move "
                    "them there, or set `api: run-instances`"
                )
        names = [t.type for t in self.type_options]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"instance type listed twice: {', '.join(duplicated)}")
        if self.order == "cheapest":
            self._check_prices()
        return self

    def _check_prices(self) -> None:
        need = {"on-demand": ("price",), "spot": ("spot_price",)}.get(
            self.market, ("spot_price", "price")
        )
        missing = [
            f"{t.type}.{field}"
            for t in self.type_options
            for field in need
            if getattr(t, field) is None
        ]
        if missing:
            raise ValueError(
                "`order: cheapest` needs a price for every instance type in this market; "
                f"missing: {', '.join(missing)} (write {{type: ..., price: ..., spot_price: ...}})"
            )

    @property
    def type_options(self) -> list[InstanceTypeOption]:
        """The instance types in configured order, each as an InstanceTypeOption."""
        return [
            InstanceTypeOption(type=t) if isinstance(t, str) else t for t in self.instance_types
        ]

    @property
    def uses_fleet(self) -> bool:
        """True when launches go through CreateFleet (type instant)."""
        return self.api == "fleet" or (self.api == "auto" and bool(self.launch_template))


class AsgTarget(_Target):
    """An existing Auto Scaling group: SetDesiredCapacity within the group's own bounds."""

    kind: Literal["asg"] = Field("asg", description="selects this target")
    name: AwsName = Field(description="the Auto Scaling group's name")
    region: Region | None = Field(
        None, description="the AWS region; default: the environment (AWS_REGION)"
    )
    require_owner_tag: bool = Field(
        True,
        description="change the group only if it carries <tag_prefix>/owner = installation id",
    )
    retry: AwsRetry = Field(
        default_factory=AwsRetry,
        description="how Auto Scaling calls are retried when throttled",
    )


class SimulatedTarget(_Target):
    """An in-memory pool for simulation and tests."""

    kind: Literal["simulated"] = Field("simulated", description="selects this target")
    capacity_limit: (
        Annotated[int, Field(ge=0, le=MAX_UNITS), BeforeValidator(whole_number)] | None
    ) = Field(None, description="replicas the fake cloud can supply at most"
    )


AnyTarget = Annotated[
    DeploymentTarget | StatefulSetTarget | JobTarget | Ec2Target | AsgTarget | SimulatedTarget,
    Field(discriminator="kind"),
]
