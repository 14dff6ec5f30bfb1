"""What a pool scales: one model per kind, selected by `kind`.

Configuration only; providers in `autoscaler.providers` act on them.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Target(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DeploymentTarget(_Target):
    """A Kubernetes Deployment, scaled through its scale subresource."""

    kind: Literal["deployment"] = "deployment"
    namespace: str = "default"
    name: str


class StatefulSetTarget(_Target):
    """A Kubernetes StatefulSet, scaled through its scale subresource."""

    kind: Literal["statefulset"] = "statefulset"
    namespace: str = "default"
    name: str


class JobTarget(_Target):
    """Kubernetes Jobs created from a template as backlog grows; never deleted while running."""

    kind: Literal["job"] = "job"
    namespace: str = "default"
    template: dict[str, Any] | None = Field(None, description="a batch/v1 Job manifest")
    template_file: str | None = Field(None, description="path to a Job manifest (YAML)")
    items_per_job: int = Field(1, gt=0)
    keep_finished: int = Field(10, ge=0, description="finished Jobs kept for inspection")

    @model_validator(mode="after")
    def _one_template(self) -> JobTarget:
        if (self.template is None) == (self.template_file is None):
            raise ValueError("set exactly one of `template` and `template_file`")
        return self


class Ec2Target(_Target):
    """EC2 instances the autoscaler launches itself, tagged as its own."""

    kind: Literal["ec2"] = "ec2"
    region: str | None = None
    launch_template: str | None = Field(None, description="launch template name or id")
    launch_template_version: str = "$Default"
    image_id: str | None = None
    instance_types: list[str] = Field(min_length=1, description="in priority order")
    subnets: list[str] = Field(default_factory=list, description="in priority order")
    security_groups: list[str] = Field(default_factory=list)
    instance_profile: str | None = None
    user_data: str | None = None
    market: Literal["on-demand", "spot", "spot-then-on-demand"] = "on-demand"
    order: Literal["priority", "cheapest"] = "priority"
    api: Literal["fleet", "run-instances"] = "fleet"
    scale_in: Literal["terminate", "stop"] = Field(
        "terminate", description="`stop` keeps a warm pool of stopped instances"
    )

    @model_validator(mode="after")
    def _template_or_image(self) -> Ec2Target:
        if not self.launch_template and not self.image_id:
            raise ValueError("set `launch_template` or an inline `image_id`")
        return self


class AsgTarget(_Target):
    """An existing Auto Scaling group: SetDesiredCapacity within the group's own bounds."""

    kind: Literal["asg"] = "asg"
    name: str
    region: str | None = None


class SimulatedTarget(_Target):
    """An in-memory pool for simulation and tests."""

    kind: Literal["simulated"] = "simulated"
    capacity_limit: int | None = Field(
        None, ge=0, description="replicas the fake cloud can supply at most"
    )


AnyTarget = Annotated[
    DeploymentTarget | StatefulSetTarget | JobTarget | Ec2Target | AsgTarget | SimulatedTarget,
    Field(discriminator="kind"),
]
