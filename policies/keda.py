"""`keda`: a KEDA ScaledObject driving an HPA, as a baseline.

Faithful to the KEDA v2.21 docs and executor (see shared/docs/BASELINES.md): the operator
polls every `polling_interval` (30 s); a trigger is active when its value is strictly above
its activation threshold; an active trigger wakes a workload at 0 to max(min, 1); with no
active trigger and `min_replica_count: 0` the workload goes to 0 once `cooldown_period`
(300 s) has passed since it was last active. Between 1 and N the generated HPA (External
metric, AverageValue target) decides, with its 0.1 tolerance and default behavior.
Activation wins over scaling. After `failure_threshold` consecutive errors a trigger reports
`target x fallback replicas`. An empty Prometheus result counts as 0 when
`ignore_null_values` is true (KEDA's default, the source of kedacore/keda #3065).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from autoscaler.types import Observation, Recommendation
from autoscaler.units import Seconds

from .base import PolicyConfig
from .hpa_behavior import HpaBehavior, HpaScalingRules


class KedaTrigger(BaseModel):
    """A scaler: its signal, AverageValue target and activation threshold."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    signal: str = Field(description="the pool's signal the scaler reads (a name under `signals`)")
    target: float = Field(
        5,
        gt=0,
        le=1e12,
        description="the AverageValue target: the signal's value per replica (e.g. the SQS "
        "scaler's queueLength)",
    )
    activation_threshold: float = Field(
        0,
        ge=0,
        le=1e12,
        description="the scaler is active (the pool leaves or stays above zero) only while "
        "its value is above this; the 0 <-> 1 step, apart from `target`'s 1 <-> N",
    )
    ignore_null_values: bool = Field(
        True,
        description="an empty answer from a declared signal reads as 0 (KEDA's "
        "ignoreNullValues); false: it counts as a failure toward `fallback`",
    )


class KedaFallback(BaseModel):
    """KEDA's `fallback`: replicas to run while a scaler keeps failing."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    failure_threshold: int = Field(
        gt=0, le=10_000, description="consecutive failed reads of a trigger before it applies"
    )
    replicas: int = Field(
        ge=0,
        le=10_000,
        description="the failing trigger reads as `replicas` x its target, so the HPA "
        "proposes this many",
    )


class KedaConfig(PolicyConfig):
    """KEDA's operator loop plus the HPA it creates."""

    owns_behavior = True
    type: Literal["keda"] = Field("keda", description="selects this policy")
    triggers: list[KedaTrigger] = Field(
        min_length=1, description="the ScaledObject's scalers; the largest proposal wins"
    )
    polling_interval: Seconds = Field(
        30.0, gt=0, le=3600, description="seconds between the operator's activity checks"
    )
    cooldown_period: Seconds = Field(
        300.0,
        le=7 * 86_400,
        description="seconds without an active trigger before the pool goes to 0 (with "
        "min_replica_count 0)",
    )
    min_replica_count: int = Field(
        0, ge=0, le=10_000, description="minReplicaCount: the floor; 0 lets the pool go to zero"
    )
    max_replica_count: int = Field(
        100, ge=1, le=10_000, description="maxReplicaCount: the HPA's maxReplicas"
    )
    fallback: KedaFallback | None = Field(
        None, description="replicas while a trigger keeps failing; default: hold"
    )
    hpa_sync_period: Seconds = Field(
        15.0, gt=0, le=3600, description="seconds between the created HPA's syncs"
    )
    tolerance: float = Field(
        0.1, ge=0, lt=1, description="the HPA's tolerance around each target"
    )
    scale_up: HpaScalingRules | None = Field(
        None, description="advanced.horizontalPodAutoscalerConfig.behavior.scaleUp"
    )
    scale_down: HpaScalingRules | None = Field(
        None, description="advanced.horizontalPodAutoscalerConfig.behavior.scaleDown"
    )

    def signal_names(self) -> set[str]:
        return {t.signal for t in self.triggers}

    def build(self) -> KedaPolicy:
        return KedaPolicy(self)


class KedaPolicy:
    def __init__(self, config: KedaConfig) -> None:
        self.config = config
        self.behavior = HpaBehavior.from_config(config.scale_up, config.scale_down)
        # Fields read at every call, as plain attributes (see FAST_FIELDS in base.py).
        self.triggers = config.triggers
        self.fallback = config.fallback
        self.min_replica_count = config.min_replica_count
        self.max_replica_count = config.max_replica_count
        self.polling_interval = config.polling_interval
        self.cooldown_period = config.cooldown_period
        self.hpa_sync_period = config.hpa_sync_period
        self.tolerance = config.tolerance

    def recommend(self, observation: Observation, memory: Mapping[str, Any]) -> Recommendation:
        mem = dict(memory)
        now, current = observation.now, observation.current_replicas
        # Each trigger's value (None on an error without fallback), its failure count, and
        # whether any trigger is active, in one loop: this runs for every keda pool at every
        # tick (bench/decide.py).
        triggers = self.triggers
        fb = self.fallback
        failures = list(mem.get("failures") or [0] * len(triggers))
        known: list[tuple[float, KedaTrigger]] = []
        active = False
        signals = observation.signals
        for i, trigger in enumerate(triggers):
            value = signals.get(trigger.signal)
            if value is None and trigger.signal in observation.empty and trigger.ignore_null_values:
                value = 0.0  # declared but empty: KEDA reads it as zero
            if value is None:
                failures[i] += 1
                if fb is not None and failures[i] >= fb.failure_threshold:
                    value = trigger.target * fb.replicas
            else:
                failures[i] = 0
            if value is not None:
                known.append((value, trigger))
                if value > trigger.activation_threshold:
                    active = True
        mem["failures"] = failures
        mem.setdefault("last_active", now)
        if active:
            mem["last_active"] = now
        lo = max(self.min_replica_count, observation.min_replicas, 1)
        hi = min(self.max_replica_count, observation.max_replicas)
        last_poll = mem.get("last_poll")
        if last_poll is None or now - float(last_poll) >= self.polling_interval - 1e-9:
            mem["last_poll"] = now
            if current == 0:
                if active:
                    return Recommendation(lo, f"keda: trigger active -> {lo}", mem)
                return Recommendation(0, "keda: no trigger active; stays at 0", mem)
            idle_for = now - float(mem["last_active"])
            if not active and self.min_replica_count == 0 and idle_for > self.cooldown_period:
                return Recommendation(0, f"keda: inactive for {idle_for:.0f}s > cooldown -> 0", mem)
        if current == 0:
            return Recommendation(0, "keda: at 0 until the next poll finds a trigger", mem)
        return self._hpa(observation, mem, known, lo, hi)

    def _hpa(
        self,
        obs: Observation,
        mem: dict[str, Any],
        known: list[tuple[float, KedaTrigger]],
        lo: int,
        hi: int,
    ) -> Recommendation:
        now, current = obs.now, obs.current_replicas
        hpa = dict(mem.get("hpa") or {})
        last = hpa.get("last_sync")
        if last is not None and now - float(last) < self.hpa_sync_period - 1e-9:
            return Recommendation(current, "keda: hpa between syncs", mem)
        hpa["last_sync"] = now
        if not known or len(known) < len(self.triggers):
            mem["hpa"] = hpa
            return Recommendation(current, "keda: a trigger failed; no change", mem, hold=True)
        proposals = []
        values = []
        for value, trigger in known:
            values.append(value)
            ratio = value / (trigger.target * current)
            if abs(1.0 - ratio) <= self.tolerance:
                proposals.append(current)
            else:
                proposals.append(math.ceil(round(value / trigger.target, 9)))
        raw = min(max(max(proposals), lo), hi)
        desired, note, hpa["recs"], hpa["events"] = self.behavior.normalize(
            hpa, current, raw, lo, hi, now
        )
        mem["hpa"] = hpa
        total = sum(values)
        reason = f"keda: value {total:g} / target -> {raw}"
        if note:
            reason += f" ({note})"
        return Recommendation(desired, f"{reason} -> {desired}", mem)
