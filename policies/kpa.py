"""`kpa`: the Knative Pod Autoscaler, as a baseline.

Faithful to Knative Serving's autoscaler configuration and pkg/autoscaler/scaling (see
shared/docs/BASELINES.md): decides every 2 s; target = container concurrency x 0.7 (100 x 0.7
when unset); stable (60 s) and panic (6 s) window averages of the concurrency signal;
desired counts clamped to [floor(ready / 2), ceil(1000 x ready)]; panic starts when the
panic proposal reaches twice the ready pods and lasts until a full stable window passes
without that; in panic the count never drops; zero after a 30 s grace period.

Windows average the samples taken at each call within the window (Knative averages 1 s
buckets; at a 1-2 s tick this is the same up to the bucket edges). Pure: the samples and the
panic state travel in `Recommendation.memory`; no I/O, no clock.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field

from autoscaler.types import Observation, Recommendation
from autoscaler.units import Fraction, Seconds

from .base import PolicyConfig, hold_for_missing, missing


class KpaConfig(PolicyConfig):
    """Knative's concurrency autoscaler with its documented defaults."""

    owns_behavior = True
    type: Literal["kpa"] = Field("kpa", description="selects this policy")
    signal: str = Field("concurrency", description="requests in flight across the pool")
    container_concurrency: int = Field(
        0, ge=0, le=1_000_000, description="0 means unlimited (target 100)"
    )
    target_utilization: Fraction = Field(
        0.7,
        description="share of container_concurrency each replica is targeted to hold "
        "(container-concurrency-target-percentage)",
    )
    stable_window: Seconds = Field(
        60.0, gt=0, le=3600, description="seconds the stable-mode concurrency is averaged over"
    )
    panic_window_percentage: float = Field(
        10.0,
        gt=0,
        le=100,
        description="the panic window as a percentage of the stable window",
    )
    panic_threshold_percentage: float = Field(
        200.0,
        gt=100,
        le=100_000,
        description="panic mode starts when the panic window wants this percentage of the "
        "ready replicas",
    )
    max_scale_up_rate: float = Field(
        1000.0, gt=1, le=1e6, description="at most this many times the ready replicas per tick"
    )
    max_scale_down_rate: float = Field(
        2.0, gt=1, le=1e6, description="at most a fall to ready replicas / this per tick"
    )
    scale_to_zero_grace_period: Seconds = Field(
        30.0, le=3600, description="seconds the last replica is kept once 0 is wanted"
    )
    tick_interval: Seconds = Field(
        2.0, gt=0, le=3600, description="seconds between the autoscaler's decisions"
    )

    def signal_names(self) -> set[str]:
        return {self.signal}

    @property
    def slots_per_replica(self) -> int:
        """The replica's slot count, under the name the other policies use for it:
        `container_concurrency` is Knative's own (documented) name, kept for the config."""
        return self.container_concurrency

    @property
    def target(self) -> float:
        slots = self.slots_per_replica or 100  # 0 is unlimited: Knative then targets 100
        return max(0.01, slots * self.target_utilization)

    def build(self) -> KpaPolicy:
        return KpaPolicy(self)


def window_average(samples: list[list[float]], now: float, window: float) -> float:
    cutoff = now - window
    vals = [v for t, v in samples if t > cutoff]
    return sum(vals) / len(vals) if vals else 0.0


class KpaPolicy:
    def __init__(self, config: KpaConfig) -> None:
        self.config = config
        # Read once here, not at every call (10,000 pools a tick; see FAST_FIELDS in base.py):
        # plain attributes, `target` (a computed property) and a float format.
        self.signal = config.signal
        self.stable_window = config.stable_window
        self.tick_interval = config.tick_interval
        self.max_scale_up_rate = config.max_scale_up_rate
        self.max_scale_down_rate = config.max_scale_down_rate
        self.panic_threshold = config.panic_threshold_percentage / 100.0
        self.grace_period = config.scale_to_zero_grace_period
        self.target = config.target
        self.panic_window = config.stable_window * config.panic_window_percentage / 100.0
        self.vs_target = f" vs target {self.target:.3g} -> "

    def recommend(self, observation: Observation, memory: Mapping[str, Any]) -> Recommendation:
        signal = self.signal
        signals = observation.signals
        if signal not in signals:
            return hold_for_missing(observation, "kpa", missing(observation, [signal]))
        now, current = observation.now, observation.current_replicas
        mem = dict(memory)
        cutoff = now - self.stable_window
        samples = [s for s in mem.get("samples", []) if s[0] > cutoff]
        samples.append([now, signals[signal]])
        mem["samples"] = samples
        last = mem.get("last_tick")
        if last is not None and now - float(last) < self.tick_interval - 1e-9:
            return Recommendation(int(mem.get("last", current)), "kpa: between ticks", mem)
        mem["last_tick"] = now
        desired, reason = self._decide(observation, mem)
        mem["last"] = desired
        return Recommendation(desired, reason, mem)

    def _decide(self, obs: Observation, mem: dict[str, Any]) -> tuple[int, str]:
        now = obs.now
        target = self.target
        stable = window_average(mem["samples"], now, self.stable_window)
        panic = window_average(mem["samples"], now, self.panic_window)
        ready = max(1, obs.ready_replicas)
        max_up = math.ceil(self.max_scale_up_rate * ready)
        max_down = math.floor(ready / self.max_scale_down_rate)
        dspc = min(max(math.ceil(stable / target), max_down), max_up)
        dppc = min(max(math.ceil(panic / target), max_down), max_up)
        over = dppc / ready >= self.panic_threshold
        panic_time = mem.get("panic_time")
        if over:
            panic_time = now
        elif panic_time is not None and now > float(panic_time) + self.stable_window:
            panic_time = None
            mem["max_panic_pods"] = 0
        mem["panic_time"] = panic_time
        desired = dspc
        mode = "stable"
        if panic_time is not None:
            mode = "panic"
            desired = max(dspc, dppc, int(mem.get("max_panic_pods", 0)))
            mem["max_panic_pods"] = desired
        reason = (
            f"kpa: {mode}, concurrency stable {stable:.3g} / panic {panic:.3g}"
            f"{self.vs_target}{desired}"
        )
        if desired == 0:
            since = mem.get("zero_since")
            if since is None:
                since = mem["zero_since"] = now
            if now - float(since) < self.grace_period and obs.current_replicas > 0:
                return (
                    1,
                    f"{reason} (scale-to-zero grace until "
                    f"{float(since) + self.grace_period:g}s) -> 1",
                )
        else:
            mem["zero_since"] = None
        return desired, reason
