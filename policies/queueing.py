"""`queueing`: capacity from arrival rate and service time, so queue wait meets an SLO.

Our default for LLM serving. Reactive policies (HPA on utilization, KEDA on queue length)
only see a burst once it has queued, then wait a GPU cold start for the capacity. This
policy instead:

1. forecasts the arrival rate one startup latency ahead (Holt's linear trend on the
   observed rate, time-constant smoothing so irregular ticks are fine);
2. sizes request slots with Erlang C so that P(queue wait > SLO) stays under the allowed
   share, plus a utilization cap for headroom;
3. adds the slots needed to drain the backlog already waiting, and never fewer than the
   sequences in flight;
4. goes to zero only when nothing waits, nothing runs and nothing arrives (the planner's
   scale-to-zero delay then decides when).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from autoscaler.units import Fraction, Seconds

from .base import PolicyConfig
from .queueing_policy import QueueingPolicy


class QueueingConfig(PolicyConfig):
    """Erlang-C sizing against a wait SLO, looking ahead by the pool's startup latency."""

    type: Literal["queueing"] = "queueing"
    arrival_signal: str = Field("arrival_rate", description="arrivals, requests per second")
    queue_signal: str = Field("queue", description="requests waiting for a slot")
    in_flight_signal: str | None = Field(
        "in_flight", description="requests holding a slot now (optional)"
    )
    service_time_signal: str | None = Field(
        None, description="measured mean seconds a request holds a slot (optional)"
    )
    service_seconds: float = Field(
        gt=0, description="mean seconds a request holds a slot, used when no measurement"
    )
    slots_per_replica: int = Field(gt=0, description="concurrent requests per replica")
    wait_slo: Seconds = Field(description="queue wait to stay within, seconds")
    slo_quantile: float = Field(
        0.99, gt=0, lt=1, description="share of requests that must wait less than wait_slo"
    )
    max_utilization: Fraction = Field(
        0.9, description="never plan slots busier than this on average (headroom)"
    )
    drain: Seconds | None = Field(
        None,
        description="time to drain the current backlog; default max(wait_slo, startup)",
    )
    lookahead: Seconds | None = Field(
        None, description="forecast horizon; default the pool's startup latency"
    )
    level_smoothing: Seconds = Field(30.0, gt=0, description="rate smoothing time constant")
    trend_smoothing: Seconds = Field(60.0, gt=0, description="trend smoothing time constant")

    def signal_names(self) -> set[str]:
        names = {self.arrival_signal, self.queue_signal}
        for optional in (self.in_flight_signal, self.service_time_signal):
            if optional:
                names.add(optional)
        return names

    def optional_signals(self) -> set[str]:
        return {self.service_time_signal} if self.service_time_signal else set()

    def build(self) -> QueueingPolicy:
        return QueueingPolicy(self)
