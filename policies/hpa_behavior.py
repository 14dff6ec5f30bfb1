"""The HPA's normalization step, shared by the `hpa` and `keda` baselines.

After the metric proposal: stabilization over the proposal history, then rate limits over
the scale-event history, then clamping to [min, max] — `normalizeDesiredReplicasWith
Behaviors` and `convertDesiredReplicasWithBehaviorRate` in Kubernetes'
pkg/controller/podautoscaler/horizontal.go. The histories live in the policy's memory.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from autoscaler.scaling import (
    HPA_SCALE_DOWN,
    HPA_SCALE_UP,
    RatePolicy,
    ScalingRules,
    longest_period,
    scale_down_limit,
    scale_up_limit,
    stabilize,
)
from autoscaler.units import Seconds


class HpaRatePolicy(BaseModel):
    """One HPAScalingPolicy: `type` Pods or Percent, `value`, over `period_seconds`."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    type: Literal["Pods", "Percent"] = Field(
        description="`Pods`: `value` replicas; `Percent`: `value` percent of the current "
        "replicas"
    )
    value: int = Field(gt=0, le=100_000, description="replicas, or percent, per period")
    period_seconds: int = Field(
        gt=0, le=1800, description="the sliding window the change is counted over, seconds"
    )


class HpaScalingRules(BaseModel):
    """One direction of HPA `behavior`; unset fields take the documented defaults."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    stabilization_window_seconds: Seconds | None = Field(
        None,
        description="seconds over which the most cautious recommendation is kept (the "
        "lowest for scale-up, the highest for scale-down); default: 0 up, 300 down",
    )
    select_policy: Literal["Max", "Min", "Disabled"] = Field(
        "Max",
        description="which rate policy applies: the one allowing most change (Max), least "
        "(Min), or no change in this direction (Disabled)",
    )
    policies: list[HpaRatePolicy] | None = Field(
        None, description="rate policies; default: the documented ones for the direction"
    )

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


class HpaBehavior:
    """Both directions of one HPA's behavior, with the history each needs computed once."""

    __slots__ = ("down", "keep_events_seconds", "keep_recs_seconds", "up")

    def __init__(self, up: ScalingRules, down: ScalingRules) -> None:
        self.up = up
        self.down = down
        self.keep_recs_seconds = max(up.stabilization_seconds, down.stabilization_seconds)
        self.keep_events_seconds = longest_period((up, down))

    @classmethod
    def from_config(
        cls, scale_up: HpaScalingRules | None, scale_down: HpaScalingRules | None
    ) -> HpaBehavior:
        return cls(up_rules(scale_up), down_rules(scale_down))

    def normalize(
        self,
        memory: Mapping[str, Any],
        current: int,
        proposal: int,
        min_replicas: int,
        max_replicas: int,
        now: float,
    ) -> tuple[int, str, list[list[Any]], list[list[Any]]]:
        """Stabilize, rate-limit and clamp `proposal`.

        Returns (desired, note, recs, events): the proposal history with this proposal
        added and the scale-event history with this change added when desired != current
        (the HPA records events for the changes it makes), for the caller to store in the
        policy's memory under "recs" and "events".
        """
        up, down = self.up, self.down
        # maybeInitScaleDownStabilizationWindow: a new HPA starts its window with the current
        # replica count, so it does not scale down the moment it is created.
        if "recs" in memory:
            recs = _recent(memory["recs"], now - self.keep_recs_seconds)
        else:
            # (with no window there is nothing to seed: prune would drop it at once)
            recs = [[now, current]] if self.keep_recs_seconds > 0 else []
        events = _recent(memory.get("events", ()), now - self.keep_events_seconds)
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
        recs.append([now, proposal])
        if desired != current:
            events.append([now, desired - current])
        return desired, "; ".join(notes), recs, events


def _recent(history: Iterable[Sequence[Any]], cutoff: float) -> list[list[Any]]:
    """A history from memory (a JSON list of [t, n] pairs) as a new list of [float, int]
    lists, pruned as scaling.prune does: when its oldest entry is at or before `cutoff`,
    every entry at or before it is dropped.

    Runs for every hpa and keda pool at every sync, over up to 20 entries (a 300 s window at
    15 s), so it converts and prunes in one pass. Entries this module wrote are already
    [float, int] lists: they are kept as they are, shared with the old memory (nothing
    changes a list once it is in memory), rather than converted to tuples and back each
    time. Anything else (an int time, a tuple, a hand-edited state file) is converted with
    float() and int() as before.
    """
    kept: list[list[Any]] = []
    prune: bool | None = None  # decided by the oldest entry, as in scaling.prune
    for entry in history:
        t, n = entry
        if type(entry) is not list or type(t) is not float or type(n) is not int:
            t = float(t)
            entry = [t, int(n)]
        if prune is None:
            prune = not t > cutoff
        if not prune or t > cutoff:
            kept.append(entry)
    return kept
