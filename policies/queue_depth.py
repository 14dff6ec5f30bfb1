"""`queue-depth`: replicas for a target backlog per replica, with a 0<->1 activation line.

The idea is KEDA's (a separate activation threshold decides between zero and one replica,
the target decides between one and N); the code is ours. In-flight work, where a signal for
it exists, counts as backlog so a pool is never emptied under running requests.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field

from autoscaler.types import Observation, Recommendation

from .base import PolicyConfig, hold_for_missing, missing


class QueueDepthConfig(PolicyConfig):
    """Replicas = ceil(backlog / target_per_replica); zero while backlog <= activation."""

    type: Literal["queue-depth"] = "queue-depth"
    signal: str = Field("queue", description="signal holding the backlog (items waiting)")
    in_flight_signal: str | None = Field(
        None, description="optional signal of items being processed, counted as backlog"
    )
    target_per_replica: float = Field(gt=0, description="backlog items one replica should carry")
    activation: float = Field(
        0, ge=0, description="backlog must exceed this to go from 0 to 1 replica (and back)"
    )

    def signal_names(self) -> set[str]:
        return {self.signal} | ({self.in_flight_signal} if self.in_flight_signal else set())

    def build(self) -> QueueDepthPolicy:
        return QueueDepthPolicy(self)


class QueueDepthPolicy:
    def __init__(self, config: QueueDepthConfig) -> None:
        self.config = config

    def recommend(self, observation: Observation, memory: Mapping[str, Any]) -> Recommendation:
        c = self.config
        names = [c.signal] + ([c.in_flight_signal] if c.in_flight_signal else [])
        gone = missing(observation, names)
        if gone:
            return hold_for_missing(observation, "queue-depth", gone)
        backlog = observation.signals[c.signal]
        if c.in_flight_signal:
            backlog += observation.signals[c.in_flight_signal]
        if backlog <= c.activation:
            return Recommendation(
                0, f"queue-depth: backlog {backlog:g} <= activation {c.activation:g} -> 0"
            )
        desired = max(1, math.ceil(backlog / c.target_per_replica))
        return Recommendation(
            desired,
            f"queue-depth: backlog {backlog:g} / {c.target_per_replica:g} per replica -> {desired}",
        )
