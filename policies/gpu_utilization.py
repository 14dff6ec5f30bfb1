"""`gpu-utilization`: target tracking on the pool's mean GPU utilization.

Busy GPU share is measured over ready replicas only; replicas still starting count as idle
when scaling up (as the HPA counts not-ready pods), so a slow GPU boot does not cause a
second round of scale-up. Utilization cannot wake a pool at zero: pair it with a queue
signal in a `composite` policy for that.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field

from autoscaler.types import Observation, Recommendation
from autoscaler.units import Fraction

from .base import PolicyConfig, hold_for_missing, missing


class GpuUtilizationConfig(PolicyConfig):
    """Replicas = ceil(ready * utilization / target), unless within the tolerance band."""

    type: Literal["gpu-utilization"] = Field("gpu-utilization", description="selects this policy")
    signal: str = Field(
        "gpu_utilization", description="the signal of mean GPU utilization, 0..1 (a name)"
    )
    target: Fraction = Field(description="utilization to hold, 0..1 (or '70%')")
    tolerance: float = Field(
        0.1, ge=0, lt=1, description="no change while |utilization/target - 1| <= tolerance"
    )

    def signal_names(self) -> set[str]:
        return {self.signal}

    def build(self) -> GpuUtilizationPolicy:
        return GpuUtilizationPolicy(self)


class GpuUtilizationPolicy:
    def __init__(self, config: GpuUtilizationConfig) -> None:
        self.config = config
        # Fields read at every call, as plain attributes (see FAST_FIELDS in base.py).
        self.signal = config.signal
        self.target = config.target
        self.tolerance = config.tolerance
        # The constant parts of the reasons, formatted once (a float format costs as much as
        # the rest of this policy's arithmetic, at 10,000 pools a tick).
        self.within = f" within {config.tolerance:.0%} of target {config.target:.0%}; keeping "
        self.vs_target = f" ready vs target {config.target:.0%} -> "

    def recommend(self, observation: Observation, memory: Mapping[str, Any]) -> Recommendation:
        signal = self.signal
        signals = observation.signals
        if signal not in signals:
            return hold_for_missing(observation, "gpu-utilization", missing(observation, [signal]))
        utilization = signals[signal]
        current = observation.current_replicas
        ready = observation.ready_replicas
        if current == 0:
            return Recommendation(0, "gpu-utilization: pool at 0 has no utilization to track")
        if ready == 0:
            return Recommendation(
                current,
                f"gpu-utilization: no ready replica yet; keeping {current}",
                hold=True,
            )
        ratio = utilization / self.target
        if abs(ratio - 1.0) <= self.tolerance:
            return Recommendation(
                current, f"gpu-utilization: {utilization:.0%}{self.within}{current}"
            )
        desired = math.ceil(round(ready * ratio, 9))
        return Recommendation(
            desired, f"gpu-utilization: {utilization:.0%} on {ready}{self.vs_target}{desired}"
        )
