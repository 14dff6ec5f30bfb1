"""`hpa`: the Kubernetes HorizontalPodAutoscaler (autoscaling/v2), as a baseline.

Faithful to the Kubernetes docs and pkg/controller/podautoscaler as of v1.32 (see
shared/docs/BASELINES.md): a 15 s sync period, the 0.1 tolerance, per-metric proposals with
the largest winning, the not-ready and failed-metric rules, then the documented
stabilization windows and rate limits (defaults: up max(100 %, 4 pods) per 15 s with no
window, down 100 % per 15 s after a 300 s window). The HPA never scales to or from zero.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from autoscaler.types import Observation, Recommendation
from autoscaler.units import Fraction, Seconds

from .base import PolicyConfig
from .hpa_behavior import HpaBehavior, HpaScalingRules


class HpaMetric(BaseModel):
    """One metric with exactly one target kind.

    - `target_utilization`: a Resource/Pods utilization (signal = mean over ready pods, 0..1);
    - `target_average_value`: an External metric with an AverageValue target (signal =
      the total, e.g. queue length);
    - `target_value`: an External metric with a Value target.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    signal: str = Field(description="the pool's signal this metric reads (a name under `signals`)")
    target_utilization: Fraction | None = Field(
        None,
        description="a Resource/Pods utilization target: the signal's mean over ready "
        "pods, 0..1 (or a percentage string)",
    )
    target_average_value: float | None = Field(
        None,
        gt=0,
        le=1e12,
        description="an External AverageValue target: the signal (a total, e.g. queue "
        "length) per replica",
    )
    target_value: float | None = Field(
        None,
        gt=0,
        le=1e12,
        description="an External Value target: replicas scale by signal / target_value",
    )

    @model_validator(mode="after")
    def _one_target(self) -> HpaMetric:
        given = [self.target_utilization, self.target_average_value, self.target_value]
        if sum(v is not None for v in given) != 1:
            raise ValueError(
                "set exactly one of target_utilization, target_average_value, target_value"
            )
        return self


class HpaConfig(PolicyConfig):
    """The HPA algorithm with its own behavior (the pool's `behavior` is not applied)."""

    owns_behavior = True
    type: Literal["hpa"] = Field("hpa", description="selects this policy")
    metrics: list[HpaMetric] = Field(
        min_length=1,
        description="each proposes a replica count; the largest wins (spec.metrics)",
    )
    min_replicas: int = Field(1, ge=1, le=10_000, description="the HPA's minReplicas (at least 1)")
    tolerance: float = Field(
        0.1,
        ge=0,
        lt=1,
        description="no change while the metric is within this share of its target "
        "(--horizontal-pod-autoscaler-tolerance)",
    )
    sync_period: Seconds = Field(
        15.0, gt=0, le=3600, description="--horizontal-pod-autoscaler-sync-period"
    )
    scale_up: HpaScalingRules | None = Field(
        None,
        description="behavior.scaleUp; default: no window, max(100 %, 4 pods) per 15 s",
    )
    scale_down: HpaScalingRules | None = Field(
        None,
        description="behavior.scaleDown; default: a 300 s window, 100 % per 15 s",
    )

    def signal_names(self) -> set[str]:
        return {m.signal for m in self.metrics}

    def build(self) -> HpaPolicy:
        return HpaPolicy(self)


def metric_proposal(m: HpaMetric, value: float, obs: Observation, tolerance: float) -> int:
    """The replica count one metric asks for (replica_calculator.go)."""
    current, ready = obs.current_replicas, obs.ready_replicas
    if m.target_average_value is not None:
        ratio = value / (m.target_average_value * current)
        if abs(1.0 - ratio) <= tolerance:
            return current
        return math.ceil(round(value / m.target_average_value, 9))
    if m.target_value is not None:
        ratio = value / m.target_value
        if abs(1.0 - ratio) <= tolerance:
            return current
        return math.ceil(round(ratio * ready, 9))
    assert m.target_utilization is not None
    ratio = value / m.target_utilization
    unready = current - ready
    if unready > 0 and ratio > 1.0:
        # Scaling up with pods still starting: count them at 0 % so a slow start does not
        # trigger a second scale-up (the HPA's own rule).
        new_ratio = value * ready / (m.target_utilization * current)
        if new_ratio <= 1.0 or abs(1.0 - new_ratio) <= tolerance:
            return current
        return max(current, math.ceil(round(new_ratio * current, 9)))
    if abs(1.0 - ratio) <= tolerance:
        return current
    return math.ceil(round(ratio * ready, 9))


class HpaPolicy:
    def __init__(self, config: HpaConfig) -> None:
        self.config = config
        self.behavior = HpaBehavior.from_config(config.scale_up, config.scale_down)
        # Fields read at every call, as plain attributes (see FAST_FIELDS in base.py).
        self.metrics = config.metrics
        self.min_replicas = config.min_replicas
        self.tolerance = config.tolerance
        self.sync_period = config.sync_period

    def recommend(self, observation: Observation, memory: Mapping[str, Any]) -> Recommendation:
        mem = dict(memory)
        now, current = observation.now, observation.current_replicas
        last = mem.get("last_sync")
        if last is not None and now - float(last) < self.sync_period - 1e-9:
            return Recommendation(current, "hpa: between syncs", mem)
        mem["last_sync"] = now
        lo = max(self.min_replicas, observation.min_replicas)
        hi = observation.max_replicas
        if current == 0:
            return Recommendation(0, "hpa: target at 0 replicas; the HPA does not act", mem)
        if current > hi:
            return Recommendation(hi, f"hpa: above maxReplicas -> {hi}", mem)
        if current < lo:
            return Recommendation(lo, f"hpa: below minReplicas -> {lo}", mem)
        proposals: list[tuple[int, str]] = []
        failed: list[str] = []
        for m in self.metrics:
            value = observation.signals.get(m.signal)
            if value is None or (
                m.target_utilization is not None and observation.ready_replicas == 0
            ):
                failed.append(m.signal)
                continue
            proposals.append((metric_proposal(m, value, observation, self.tolerance), m.signal))
        if not proposals:
            return Recommendation(
                current,
                f"hpa: no metric available ({', '.join(failed)}); no change",
                mem,
                hold=True,
            )
        raw, winner = max(proposals)
        if failed and raw < current:
            return Recommendation(
                current,
                f"hpa: {', '.join(failed)} failed and {winner} would scale down; no change",
                mem,
                hold=True,
            )
        desired, note, mem["recs"], mem["events"] = self.behavior.normalize(
            mem, current, raw, lo, hi, now
        )
        reason = f"hpa: {winner} proposes {raw}"
        if note:
            reason += f" ({note})"
        return Recommendation(desired, f"{reason} -> {desired}", mem)
