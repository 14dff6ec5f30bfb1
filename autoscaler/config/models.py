"""The configuration file: an installation, a controller and its pools.

A pool is what is scaled (`target`), its bounds (`min`, `max`), its named `signals`, its
`policy` (selected by `type`), its `behavior` (stabilization windows, rate limits, cooldown,
scale to zero, what to do on stale signals) and, for simulation, its `simulation` model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    PrivateAttr,
    field_validator,
    model_validator,
)

from policies import AnyPolicyConfig

from .activator import ActivatorSpec
from .budget import Budget, Priority, ReplicaGpus, ReplicaPrice, replica_gpus, replica_price
from .formats import (
    MAX_REPLICAS,
    LongWindow,
    Real,
    ReplicaCount,
    Timeout,
    Whole,
    Window,
    at,
    check,
    dns_subdomain,
    label_value,
    odd_numbers,
)
from .nodes import NodeProvisioning
from .simulation import Simulation
from .sources import SignalSpec
from .targets import AnyTarget
from .triggers import Trigger, unique_trigger_names

SIMULATED_SIGNALS = (
    "queue",
    "in_flight",
    "arrival_rate",
    "gpu_utilization",
    "service_seconds",
    "concurrency",
    "demand",
    "pending_gpus",
    "running_gpus",
    "busy_replicas",
    "held",
)
"""Signals the simulator produces for every pool, by these names (`held`: requests an
activator holds while the pool has no ready replica)."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class RateLimit(_Model):
    """At most `value` replicas (`pods`) or `value` percent (`percent`) per `period`."""

    type: Literal["pods", "percent"] = Field(
        description="`pods`: `value` is a number of replicas; `percent`: a percentage of the "
        "current replicas"
    )
    value: Real = Field(gt=0, le=MAX_REPLICAS, description="replicas, or percent")
    period: Window = Field(
        gt=0,
        description="the sliding window (a duration) over which the scale events count "
        "against `value`, as the HPA's periodSeconds",
    )


class DirectionBehavior(_Model):
    """Stabilization window and rate limits for one direction."""

    stabilization_window: Window = Field(
        0.0,
        description="a duration: scale-up goes only to the lowest, scale-down only to the "
        "highest recommendation within this window, so a brief spike or dip does not move "
        "the pool; 0 follows the latest recommendation",
    )
    rate_limits: list[RateLimit] = Field(
        default_factory=list,
        description="limits on how fast the pool moves in this direction; default: none",
    )
    select: Literal["max", "min", "disabled"] = Field(
        "max", description="which rate limit applies: the one allowing most change (max)"
    )


class StaleBehavior(_Model):
    """What happens while a signal is stale: hold; after `fallback_after`, optionally go
    to `fallback_replicas` (never below the current count on its own)."""

    fallback_after: Window | None = Field(
        None,
        description="a duration a signal must stay stale before `fallback_replicas` "
        "applies; default: hold the pool for as long as it is stale",
    )
    fallback_replicas: ReplicaCount | None = Field(
        None,
        description="replicas to raise the pool to once stale for `fallback_after` (never "
        "lower: a stale pool is never scaled down); set with `fallback_after`",
    )

    @model_validator(mode="after")
    def _both_or_neither(self) -> StaleBehavior:
        if (self.fallback_after is None) != (self.fallback_replicas is None):
            raise ValueError("set both `fallback_after` and `fallback_replicas`, or neither")
        return self


class Behavior(_Model):
    """How the planner moves a pool toward its policy's recommendation."""

    scale_up: DirectionBehavior = Field(
        default_factory=DirectionBehavior,
        description="stabilization and rate limits when adding replicas; default: none",
    )
    scale_down: DirectionBehavior = Field(
        default_factory=lambda: DirectionBehavior(stabilization_window=300.0),
        description="stabilization and rate limits when removing replicas; default: a 300 s "
        "stabilization window, no rate limit (as the HPA)",
    )
    cooldown: Window = Field(
        0.0, description="after any scale action, no scale-down for this long"
    )
    scale_to_zero_after: LongWindow = Field(
        300.0, description="the policy must ask for 0 this long before the pool goes 1 -> 0"
    )
    stale: StaleBehavior = Field(
        default_factory=StaleBehavior,
        description="what the planner does while a signal the policy reads is stale "
        "(missing, failing or late); default: hold the pool",
    )


class Pool(_Model):
    """One scaled thing and how it is scaled."""

    name: str = Field(
        pattern=r"^[a-z0-9]([-a-z0-9_.]{0,61}[a-z0-9])?$",
        description="unique pool name (lower case, digits, '-', '_', '.')",
    )
    target: AnyTarget = Field(description="what is scaled, selected by `kind`")
    min: Whole = Field(
        0, ge=0, le=MAX_REPLICAS, description="fewest replicas; 0 allows scale to zero"
    )
    max: Whole = Field(ge=1, le=MAX_REPLICAS, description="most replicas")
    startup: Window = Field(0.0, description="how long new capacity takes to become ready")
    signals: dict[str, SignalSpec] = Field(
        default_factory=dict, description="named signals and their sources"
    )
    policy: AnyPolicyConfig = Field(description="how much capacity, selected by `type`")
    behavior: Behavior | None = Field(
        None,
        description="how the planner moves the pool toward the policy's recommendation; "
        "default: Behavior's defaults; not allowed with hpa/keda/kpa (they own theirs)",
    )
    simulation: Simulation | None = Field(
        None, description="service and cost model for `autoscaler simulate`"
    )
    activator: ActivatorSpec | None = Field(
        None,
        description="route and hold this pool's requests in `autoscaler activator`, so it "
        "can serve from zero replicas",
    )
    priority: Priority = Field(
        0,
        description="when a shared budget binds, higher priorities grow first (ties share); "
        "see docs/budgets.md",
    )
    cost_per_hour: ReplicaPrice | None = Field(
        None,
        description="dollars per hour of one replica, for budgets; default: the dearest of "
        "an ec2 target's instance types (catalog or `price`), else `simulation.cost_per_hour`",
    )
    gpus_per_replica: ReplicaGpus | None = Field(
        None,
        description="GPUs one replica holds, for GPU-hour budgets; default: from an ec2 "
        "target's catalog types, else `simulation.gpus_per_replica`",
    )
    budget: Budget | None = Field(
        None, description="this pool's own spending cap (scale-ups stop at it)"
    )

    @model_validator(mode="wrap")
    @classmethod
    def _numbers_written_as_numbers(
        cls, data: Any, handler: ModelWrapValidatorHandler[Pool]
    ) -> Pool:
        """The backstop for numbers the pool's parts do not bound themselves (a policy's):
        `true` read as 1, inf, or a magnitude no setting has."""
        pool = handler(data)
        if isinstance(data, dict):
            odd = next(odd_numbers(pool, data), None)
            if odd is not None:
                raise at(*odd)
        return pool

    @model_validator(mode="after")
    def _consistent(self) -> Pool:
        if self.min > self.max:
            raise at("min", f"must be <= max ({self.max}), got {self.min}")
        if self.behavior is not None and self.policy.owns_behavior:
            raise at(
                "behavior",
                f"the {self.policy.type} policy applies its own documented behavior; "
                "remove `behavior` (tune it under `policy` instead)",
            )
        available = set(self.signals)
        if self.target.kind == "simulated":
            available |= set(SIMULATED_SIGNALS)
        unknown = sorted(self.policy.signal_names() - available)
        if unknown:
            have = ", ".join(sorted(available)) or "none declared"
            raise at(
                "policy",
                f"policy reads signal {', '.join(repr(u) for u in unknown)} which this pool "
                f"does not declare under `signals` (declared: {have})",
            )
        fallback = self.effective_behavior.stale.fallback_replicas
        if fallback is not None and not self.min <= fallback <= self.max:
            raise at(
                "behavior.stale.fallback_replicas",
                f"{fallback} must be within [min, max] = [{self.min}, {self.max}]",
            )
        if self.budget is not None:
            if self.budget.dollars_per_hour is not None and replica_price(self) is None:
                raise at(
                    "budget.dollars_per_hour",
                    "a budget in dollars needs the price of a replica: set `cost_per_hour`",
                )
            gpu_field = next(
                (f for f in ("gpu_hours_per_day", "gpu_hours_total")
                 if getattr(self.budget, f) is not None),
                None,
            )  # fmt: skip
            if gpu_field is not None and replica_gpus(self) is None:
                raise at(
                    f"budget.{gpu_field}",
                    "a budget in GPU-hours needs the GPUs of a replica: set `gpus_per_replica`",
                )
        return self

    @property
    def effective_behavior(self) -> Behavior:
        if self.behavior is not None:
            return self.behavior
        if self.policy.owns_behavior:
            return PASS_THROUGH
        return Behavior()


PASS_THROUGH = Behavior(
    scale_down=DirectionBehavior(stabilization_window=0.0), scale_to_zero_after=0.0
)
"""No planner behavior on top of a baseline that carries its own."""


TagPrefix = Annotated[str, check(dns_subdomain, "tag prefix (a DNS subdomain)")]


class Installation(_Model):
    """Who this autoscaler is: it touches only resources tagged with its `id`.

    The id is required: two installations sharing one (say, both falling back to a
    default) would each take the other's instances and workloads for their own."""

    id: str = Field(
        pattern=r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$",  # a valid label value
        description="this installation's id, unique among installations that share a "
        "cloud account or cluster; written into ownership tags and labels",
    )
    tag_prefix: TagPrefix = Field(
        "elastic-autoscaler.io", max_length=100,
        description="prefix of the ownership tags and labels (`<tag_prefix>/owner`)",
    )
    budget: Budget | None = Field(
        None,
        description="a spending cap shared by all pools: scale-ups stop at it, higher "
        "`priority` first (see docs/budgets.md)",
    )

    @field_validator("id", mode="before")
    @classmethod
    def _label_value(cls, value: Any) -> Any:
        if isinstance(value, str) and value:
            label_value(value)
        return value


class ControllerSettings(_Model):
    """How the controller ticks: its interval, deadlines and provider backoff."""

    interval: Timeout = Field(15.0, gt=0, description="seconds between ticks")
    observe_deadline: Timeout = Field(10.0, gt=0, description="overall deadline for reads")
    source_timeout: Timeout = Field(5.0, gt=0, description="default per-source timeout")
    act_deadline: Timeout = Field(
        120.0, gt=0, description="longest a tick waits for provider actions"
    )
    provider_backoff: Window = Field(
        30.0,
        gt=0,
        description="after a failed provider action the pool is left alone this long, "
        "doubling with each further failure",
    )
    provider_backoff_max: Window = Field(
        600.0,
        gt=0,
        description="longest backoff: it doubles after each failed action on a pool up to "
        "this, and a success clears it",
    )


class Config(_Model):
    """A whole configuration file."""

    installation: Installation = Field(
        description="ownership: the id its resources are tagged with (required)"
    )
    controller: ControllerSettings = Field(
        default_factory=ControllerSettings, description="tick interval and deadlines"
    )
    pools: list[Pool] = Field(min_length=1, description="the pools to scale")
    nodes: NodeProvisioning | None = Field(
        None,
        description="GPU nodes on EC2 for pods no node fits (Kubernetes; see docs/nodes.md)",
    )
    triggers: Annotated[list[Trigger], AfterValidator(unique_trigger_names)] = Field(
        default_factory=list,
        description="evaluation triggers: a condition on a signal held for a time starts "
        "evaluate -> retrain -> rollout Jobs (see docs/triggers.md); default: none",
    )
    _base_dir: Path | None = PrivateAttr(default=None)
    """The folder of the file it was loaded from: relative paths in it start there."""

    def resolve_path(self, path: str) -> str:
        """A path from the file, relative to the file's folder (bundled: and sparse: names as
        they are)."""
        named = path.startswith(("bundled:", "sparse:"))
        if self._base_dir is None or named or Path(path).is_absolute():
            return path
        return str(self._base_dir / path)

    @field_validator("pools")
    @classmethod
    def _unique_names(cls, pools: list[Pool]) -> list[Pool]:
        seen: dict[str, int] = {}
        for i, pool in enumerate(pools):
            if pool.name in seen:
                raise at(
                    f"[{i}].name",
                    f"pool name {pool.name!r} is already used by pools[{seen[pool.name]}]",
                )
            seen[pool.name] = i
        return pools

    def pool(self, name: str) -> Pool:
        for pool in self.pools:
            if pool.name == name:
                return pool
        names = ", ".join(p.name for p in self.pools)
        raise KeyError(f"no pool named {name!r} (pools: {names})")
