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
   scale-to-zero delay then decides when);
5. with `burst_quantile`, plans for the current rate times that quantile of the growth
   seen over one startup, when that is more than the forecast (burst_headroom.py), so the
   first minutes of a burst find warm slots;
6. with a `keep_alive` section, learns the pool's idle gaps instead (idle_gaps.py): when it
   would say 0 it keeps the pool warm or lets it go by expected cost, and it pre-warms a
   startup ahead of a gap's likely end or a recurring hour of the day (one replica, or as
   many as a burst's usual peak needs when the misses they avoid pay for them). The
   planner's scale-to-zero delay is then not added on top.

The configuration and the decider are both here. Like every policy it is pure: it never
does I/O or reads a clock (time arrives as `observation.now`), and what it remembers (the
forecast) goes out in `Recommendation.memory`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import Field

from autoscaler.types import Observation, Recommendation
from autoscaler.units import Fraction, Seconds

from . import burst_headroom as headroom
from .base import PolicyConfig, hold_for_missing, missing
from .erlang import servers_for_wait
from .idle_gaps import MAX_TICK, observe
from .keep_alive import KeepAlive, decide

MAX_SLOTS = 1_000_000
DaySeconds = Annotated[Seconds, Field(le=86_400)]
"""A duration of at most a day (bounds inside the type reach the JSON Schema of `| None`)."""


class QueueingConfig(PolicyConfig):
    """Erlang-C sizing against a wait SLO, looking ahead by the pool's startup latency."""

    type: Literal["queueing"] = Field("queueing", description="selects this policy")
    arrival_signal: str = Field(
        "arrival_rate", description="the signal of arrivals, requests per second"
    )
    queue_signal: str = Field("queue", description="the signal of requests waiting for a slot")
    in_flight_signal: str | None = Field(
        "in_flight", description="requests holding a slot now (optional)"
    )
    service_time_signal: str | None = Field(
        None, description="measured mean seconds a request holds a slot (optional)"
    )
    service_seconds: float = Field(
        gt=0, le=86_400, description="mean seconds a request holds a slot, used when no measurement"
    )
    slots_per_replica: int = Field(
        gt=0, le=1_000_000, description="concurrent requests per replica"
    )
    wait_slo: Seconds = Field(le=86_400, description="queue wait to stay within, seconds")
    slo_quantile: float = Field(
        0.99, gt=0, lt=1, description="share of requests that must wait less than wait_slo"
    )
    max_utilization: Fraction = Field(
        0.9, description="never plan slots busier than this on average (headroom)"
    )
    drain: DaySeconds | None = Field(
        None,
        description="time to drain the current backlog; default max(wait_slo, startup)",
    )
    lookahead: DaySeconds | None = Field(
        None, description="forecast horizon; default the pool's startup latency"
    )
    level_smoothing: Seconds = Field(
        30.0,
        gt=0,
        le=86_400,
        description="seconds: time constant of the smoothed arrival rate (the forecast's "
        "level)",
    )
    trend_smoothing: Seconds = Field(
        60.0,
        gt=0,
        le=86_400,
        description="seconds: time constant of the smoothed arrival trend (the forecast's "
        "slope)",
    )
    burst_quantile: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="plan warm slots for this quantile of the arrival growth seen over one "
        "startup (burst_headroom.py), on top of the forecast; e.g. 0.9. Default: none",
    )
    keep_alive: KeepAlive | None = Field(
        None,
        description="learned keep-alive and pre-warm of the last replica, priced in money: "
        "replica_cost_per_hour (required), slo_miss_cost (0.05), fallback (300s), prewarm, "
        "daily, min_gaps (8); README 'Learned keep-alive'. Default: none (the planner's "
        "scale_to_zero_after applies)",
    )

    @property
    def owns_keep_alive(self) -> bool:
        return self.keep_alive is not None

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
    """The decider: one Erlang-C sizing per call, the forecast carried in memory."""

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
        self.per_replica_note = f" / {config.slots_per_replica} per replica -> "
        self.keep_alive = config.keep_alive.build() if config.keep_alive is not None else None
        self.burst_quantile = config.burst_quantile
        self.kept_on_hold = [
            name
            for name, used in (("idle", self.keep_alive), ("growth", self.burst_quantile))
            if used is not None
        ]

    def recommend(self, observation: Observation, memory: Mapping[str, Any]) -> Recommendation:
        s = observation.signals
        for name in self.required:
            if name not in s:
                held = hold_for_missing(
                    observation, "queueing", missing(observation, self.required)
                )
                # the learned gaps and growth outlive a missing signal (the forecast restarts)
                kept = {k: memory[k] for k in self.kept_on_hold if k in memory}
                if kept:
                    return Recommendation(held.desired, held.reason, kept, hold=True)
                return held
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
        new_memory: dict[str, Any] = {"level": level, "trend": trend, "at": now}
        ahead = max(0.0, level + trend * horizon)
        planned_rate = max(rate, ahead)
        burst = ""
        if self.burst_quantile is not None:
            record = headroom.observe(memory.get("growth"), now, level, horizon)
            new_memory["growth"] = record
            ratio = headroom.growth(record, self.burst_quantile)
            if level * ratio > planned_rate:
                planned_rate = level * ratio
                burst = (
                    f", burst headroom x{ratio:.2f} (q{self.burst_quantile:g} of growth "
                    f"over {horizon:g}s)"
                )
        keep_alive = self.keep_alive
        if keep_alive is not None:
            # The idle-gap model learns on every call; it decides when sizing would say 0.
            at = memory.get("at")
            dt = min(now - float(at), MAX_TICK) if at is not None and now > float(at) else 0.0
            idle = queue <= 0 and in_flight <= 0 and rate <= 0
            state = observe(memory.get("idle"), now, not idle, rate, dt, startup, queue + in_flight)
            new_memory["idle"] = state
            if idle:
                current = observation.current_replicas
                desired, why = decide(
                    keep_alive, state, now, current, startup, dt, self.slots_per_replica
                )
                return Recommendation(
                    desired, f"queueing: nothing waiting, running or arriving; {why}", new_memory
                )
        elif queue <= 0 and in_flight <= 0 and rate <= 0:
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
            f"queueing: rate {rate:.3g}/s (forecast {ahead:.3g}/s in {horizon:g}s{burst}), "
            f"service {service:.3g}s -> {slots} slots for {which}{self.per_replica_note}{desired}"
        )
        return Recommendation(desired, reason, new_memory)
