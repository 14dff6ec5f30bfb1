"""The `queueing` policy's decider; its configuration and the method are in queueing.py.

A module of its own, without the pydantic model, so that setup.py can compile it (Cython,
with the C types in queueing_policy.pxd): it runs at every tick of every pool, and a
simulated day is 86,400 ticks (bench/sim_speed.py). Pure Python when not compiled.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from autoscaler.types import Observation, Recommendation

from .base import hold_for_missing, missing
from .erlang import servers_for_wait

if TYPE_CHECKING:
    from .queueing import QueueingConfig

MAX_SLOTS = 1_000_000


def forecast(
    memory: Mapping[str, Any], rate: float, now: float, level_s: float, trend_s: float
) -> tuple[float, float]:
    """Holt's linear trend updated with a new rate; returns (level, trend per second)."""
    level = memory.get("level")
    trend = float(memory.get("trend", 0.0))
    at = memory.get("at")
    if level is None or at is None or now <= float(at):
        return (rate, 0.0) if level is None else (float(level), trend)
    level = float(level)
    dt = now - float(at)
    alpha = 1.0 - math.exp(-dt / level_s)
    beta = 1.0 - math.exp(-dt / trend_s)
    new_level = alpha * rate + (1.0 - alpha) * (level + trend * dt)
    new_trend = beta * (new_level - level) / dt + (1.0 - beta) * trend
    return new_level, new_trend


class QueueingPolicy:
    def __init__(self, config: QueueingConfig) -> None:
        self.config = config
        required = [config.arrival_signal, config.queue_signal]
        if config.in_flight_signal:
            required.append(config.in_flight_signal)
        self.required = required
        # Fields read at every call, as plain attributes (see FAST_FIELDS in base.py).
        self.arrival_signal = config.arrival_signal
        self.queue_signal = config.queue_signal
        self.in_flight_signal = config.in_flight_signal
        self.service_time_signal = config.service_time_signal
        self.service_seconds = config.service_seconds
        self.lookahead = config.lookahead
        self.level_smoothing = config.level_smoothing
        self.trend_smoothing = config.trend_smoothing
        self.wait_slo = config.wait_slo
        self.max_wait_probability = 1.0 - config.slo_quantile
        self.max_utilization = config.max_utilization
        self.drain = config.drain
        self.slots_per_replica = config.slots_per_replica
        # Reason parts that depend on the configuration only, formatted once: float formats
        # cost as much as the Erlang sizing here, at 10,000 pools a tick.
        self.wait_bound = f"P(wait>{config.wait_slo:g}s) <= {1 - config.slo_quantile:.2%}"
        self.utilization_bound = f"utilization <= {config.max_utilization:.0%}"
        self.per_replica = f" / {config.slots_per_replica} per replica -> "

    def recommend(self, observation: Observation, memory: Mapping[str, Any]) -> Recommendation:
        s = observation.signals
        for name in self.required:
            if name not in s:
                return hold_for_missing(
                    observation, "queueing", missing(observation, self.required)
                )
        rate = s[self.arrival_signal]
        queue = s[self.queue_signal]
        in_flight = s[self.in_flight_signal] if self.in_flight_signal else 0.0
        service = self.service_seconds
        service_signal = self.service_time_signal
        if service_signal and s.get(service_signal, 0.0) > 0:
            service = s[service_signal]
        startup = observation.startup_seconds
        horizon = self.lookahead if self.lookahead is not None else startup
        now = observation.now
        level, trend = forecast(memory, rate, now, self.level_smoothing, self.trend_smoothing)
        new_memory = {"level": level, "trend": trend, "at": now}
        ahead = max(0.0, level + trend * horizon)
        planned_rate = max(rate, ahead)
        if queue <= 0 and in_flight <= 0 and rate <= 0:
            return Recommendation(
                0, "queueing: nothing waiting, running or arriving -> 0", new_memory
            )
        load = planned_rate * service
        wait_slo = self.wait_slo
        slots_wait = servers_for_wait(
            load, wait_slo / service, self.max_wait_probability, MAX_SLOTS
        )
        slots_headroom = math.ceil(load / self.max_utilization)
        drain = self.drain if self.drain is not None else max(wait_slo, startup)
        slots_backlog = math.ceil(service * (planned_rate + queue / max(drain, 1e-9)))
        slots_in_flight = math.ceil(in_flight)
        # The largest need wins (the first of equal ones); only the winner's reason is
        # formatted.
        slots, which = slots_wait, self.wait_bound
        if slots_headroom > slots:
            slots, which = slots_headroom, self.utilization_bound
        if slots_backlog > slots:
            slots, which = slots_backlog, f"draining backlog {queue:g} in {drain:g}s"
        if slots_in_flight > slots:
            slots, which = slots_in_flight, f"{in_flight:g} in flight"
        slots = max(slots, 1)
        desired = math.ceil(slots / self.slots_per_replica)
        reason = (
            f"queueing: rate {rate:.3g}/s (forecast {ahead:.3g}/s in {horizon:g}s), "
            f"service {service:.3g}s -> {slots} slots for {which}{self.per_replica}{desired}"
        )
        return Recommendation(desired, reason, new_memory)
