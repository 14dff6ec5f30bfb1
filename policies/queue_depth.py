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

    type: Literal["queue-depth"] = Field("queue-depth", description="selects this policy")
    signal: str = Field("queue", description="signal holding the backlog (items waiting)")
    in_flight_signal: str | None = Field(
        None, description="optional signal of items being processed, counted as backlog"
    )
    target_per_replica: float = Field(
        gt=0, le=1e12, description="backlog items one replica should carry"
    )
    activation: float = Field(
        0,
        ge=0,
        le=1e12,
        description="backlog must exceed this to go from 0 to 1 replica (and back)",
    )

    def signal_names(self) -> set[str]:
        return {self.signal} | ({self.in_flight_signal} if self.in_flight_signal else set())

    def build(self) -> QueueDepthPolicy:
        return QueueDepthPolicy(self)


class QueueDepthPolicy:
    def __init__(self, config: QueueDepthConfig) -> None:
        self.config = config
        self.names = [config.signal] + (
            [config.in_flight_signal] if config.in_flight_signal else []
        )
        # Fields read at every call, as plain attributes (see FAST_FIELDS in base.py).
        self.signal = config.signal
        self.in_flight_signal = config.in_flight_signal
        self.activation = config.activation
        self.target_per_replica = config.target_per_replica
        # The constant part of the reason, formatted once (a float format costs as much as
        # the rest of this policy's arithmetic, at 10,000 pools a tick).
        self.per_replica = f" / {config.target_per_replica:g} per replica -> "

    def recommend(self, observation: Observation, memory: Mapping[str, Any]) -> Recommendation:
        signals = observation.signals
        for name in self.names:
            if name not in signals:
                return hold_for_missing(
                    observation, "queue-depth", missing(observation, self.names)
                )
        backlog = signals[self.signal]
        if self.in_flight_signal:
            backlog += signals[self.in_flight_signal]
        if backlog <= self.activation:
            return Recommendation(
                0, f"queue-depth: backlog {backlog:g} <= activation {self.activation:g} -> 0"
            )
        desired = max(1, math.ceil(backlog / self.target_per_replica))
        return Recommendation(
            desired, f"queue-depth: backlog {backlog:g}{self.per_replica}{desired}"
        )
