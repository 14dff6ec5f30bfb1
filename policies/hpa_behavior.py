"""The HPA's normalization step, shared by the `hpa` and `keda` baselines.

After the metric proposal: stabilization over the proposal history, then rate limits over
the scale-event history, then clamping to [min, max] — `normalizeDesiredReplicasWith
Behaviors` and `convertDesiredReplicasWithBehaviorRate` in Kubernetes'
pkg/controller/podautoscaler/horizontal.go. The histories live in the policy's memory.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from autoscaler.scaling import (
    HPA_SCALE_DOWN,
    HPA_SCALE_UP,
    RatePolicy,
    ScalingRules,
    longest_period,
    prune,
    scale_down_limit,
    scale_up_limit,
    stabilize,
)
from autoscaler.units import Seconds


class HpaRatePolicy(BaseModel):
    """One HPAScalingPolicy: `type` Pods or Percent, `value`, over `period_seconds`."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    type: Literal["Pods", "Percent"]
    value: int = Field(gt=0)
    period_seconds: int = Field(gt=0, le=1800)


class HpaScalingRules(BaseModel):
    """One direction of HPA `behavior`; unset fields take the documented defaults."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    stabilization_window_seconds: Seconds | None = None
    select_policy: Literal["Max", "Min", "Disabled"] = "Max"
    policies: list[HpaRatePolicy] | None = None

    def to_rules(self, default: ScalingRules) -> ScalingRules:
        window = self.stabilization_window_seconds
        policies = default.policies
        if self.policies is not None:
            policies = tuple(
                RatePolicy(p.type.lower(), p.value, p.period_seconds) for p in self.policies
            )
        return ScalingRules(
            default.stabilization_seconds if window is None else window,
            policies,
            self.select_policy.lower(),
        )


def up_rules(config: HpaScalingRules | None) -> ScalingRules:
    return (config or HpaScalingRules()).to_rules(HPA_SCALE_UP)


def down_rules(config: HpaScalingRules | None) -> ScalingRules:
    return (config or HpaScalingRules()).to_rules(HPA_SCALE_DOWN)


def _history(memory: dict[str, Any], key: str) -> tuple[tuple[float, int], ...]:
    return tuple((float(t), int(n)) for t, n in memory.get(key, ()))


def normalize(
    memory: dict[str, Any],
    current: int,
    proposal: int,
    min_replicas: int,
    max_replicas: int,
    up: ScalingRules,
    down: ScalingRules,
    now: float,
) -> tuple[int, str, dict[str, Any]]:
    """Stabilize, rate-limit and clamp `proposal`; returns (desired, note, new memory).

    The new memory records this proposal and, when desired != current, the scale event
    (the HPA records events for the changes it makes).
    """
    # maybeInitScaleDownStabilizationWindow: a new HPA starts its window with the current
    # replica count, so it does not scale down the moment it is created.
    history = _history(memory, "recs") if "recs" in memory else ((now, current),)
    recs = prune(history, now, max(up.stabilization_seconds, down.stabilization_seconds))
    events = prune(_history(memory, "events"), now, longest_period((up, down)))
    stabilized = stabilize(
        current, proposal, recs, now, up.stabilization_seconds, down.stabilization_seconds
    )
    notes = []
    if stabilized != proposal:
        notes.append(f"stabilized {proposal}->{stabilized}")
    desired = stabilized
    if desired > current:
        limit = min(max_replicas, scale_up_limit(current, events, up, now))
        if desired > limit:
            notes.append(f"rate/max limit {limit}")
            desired = limit
    elif desired < current:
        limit = max(min_replicas, scale_down_limit(current, events, down, now))
        if desired < limit:
            notes.append(f"rate/min limit {limit}")
            desired = limit
    recs = (*recs, (now, proposal))
    if desired != current:
        events = (*events, (now, desired - current))
    new_memory = dict(memory)
    new_memory["recs"] = [list(r) for r in recs]
    new_memory["events"] = [list(e) for e in events]
    return desired, "; ".join(notes), new_memory
