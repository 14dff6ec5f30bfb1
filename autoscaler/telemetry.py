"""The autoscaler's own Prometheus metrics, in one project registry (served at /metrics by
`autoscaler.health` when the controller runs with a metrics port).

Signals: how long each source type takes to read (`autoscaler_signal_read_seconds`), every
stale reading counted by source type and error code (`autoscaler_signal_errors_total`), and
the last value of each pool's signal (`autoscaler_signal_value`, NaN while stale, with
`autoscaler_signal_stale` 1). Recording must never fail a tick: these functions only update
in-process metrics and never raise for odd input.

Error codes come from the reading's error text, `"<code>: <message>"` (see
`autoscaler.signals._common`); a reading with no value and no error counts as `empty`, a
NaN or infinite value as `non_finite`, a negative one as `negative`.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from .errors import reading_error_code
from .types import ActionResult, Decision, Reading

REGISTRY = CollectorRegistry(auto_describe=True)
"""Every autoscaler metric; kept apart from prometheus_client's global default registry so
that a library embedding the autoscaler does not get its metrics mixed in."""

SIGNAL_ERRORS = Counter(
    "autoscaler_signal_errors_total",
    "Signal reads that gave no usable value, by source type and error code",
    ["source", "code"],
    registry=REGISTRY,
)
SIGNAL_READ_SECONDS = Histogram(
    "autoscaler_signal_read_seconds",
    "Wall time of one source type's read of all its signals in a tick, in seconds",
    ["source"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
    registry=REGISTRY,
)
SIGNAL_VALUE = Gauge(
    "autoscaler_signal_value",
    "Last value read for a pool's signal (NaN while the signal is stale)",
    ["pool", "signal"],
    registry=REGISTRY,
)
SIGNAL_STALE = Gauge(
    "autoscaler_signal_stale",
    "1 while a pool's signal is stale (failed, late, empty or unusable), else 0",
    ["pool", "signal"],
    registry=REGISTRY,
)


def stale_code(reading: Reading) -> str | None:
    """Why a reading is unusable, as a short code; None when it is usable."""
    if reading.error is not None:
        return reading_error_code(reading.error)
    value = reading.value
    if value is None:
        return "empty"
    if not math.isfinite(value):
        return "non_finite"
    if value < 0:
        return "negative"
    return None


def record_read_seconds(source: str, seconds: float) -> None:
    """One source type's read took `seconds` (recorded when it returns, even if late)."""
    SIGNAL_READ_SECONDS.labels(source=source).observe(max(0.0, seconds))


def record_readings(source: str, readings: Mapping[tuple[str, str], Reading]) -> None:
    """Count the stale readings of one source type and publish every value."""
    for (pool, signal), reading in readings.items():
        code = stale_code(reading)
        if code is not None:
            SIGNAL_ERRORS.labels(source=source, code=code).inc()
        value = reading.value if code is None and reading.value is not None else math.nan
        SIGNAL_VALUE.labels(pool=pool, signal=signal).set(value)
        SIGNAL_STALE.labels(pool=pool, signal=signal).set(0.0 if code is None else 1.0)


def errors_count(source: str, code: str) -> float:
    """The current count of one error series (0 when it was never incremented), for tests
    and the dry-run report."""
    value = REGISTRY.get_sample_value(
        "autoscaler_signal_errors_total", {"source": source, "code": code}
    )
    return value or 0.0


# -- the controller process: decisions, capacity, ticks, leadership ------------------------

POOL_DESIRED = Gauge(
    "autoscaler_pool_desired_replicas",
    "Replicas the last decision asked for, by pool",
    ["pool"],
    registry=REGISTRY,
)
POOL_CURRENT = Gauge(
    "autoscaler_pool_current_replicas",
    "Replicas the pool had when it was last decided (actual capacity), by pool",
    ["pool"],
    registry=REGISTRY,
)
POOL_RECOMMENDED = Gauge(
    "autoscaler_pool_recommended_replicas",
    "Replicas the pool's policy recommended before planning, by pool",
    ["pool"],
    registry=REGISTRY,
)
DECISIONS = Counter(
    "autoscaler_decisions_total",
    "Decisions by pool, direction (up, down, hold) and reason class",
    ["pool", "direction", "reason"],
    registry=REGISTRY,
)
ACTION_ERRORS = Counter(
    "autoscaler_action_errors_total",
    "Provider actions that failed, by pool and error code",
    ["pool", "code"],
    registry=REGISTRY,
)
TICK_SECONDS = Histogram(
    "autoscaler_tick_seconds",
    "Wall time of one controller tick, in seconds",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0),
    registry=REGISTRY,
)
TICKS_SKIPPED = Counter(
    "autoscaler_pools_skipped_total",
    "Pools left undecided in a tick (capacity unknown, action still running), by pool",
    ["pool"],
    registry=REGISTRY,
)
LEADER = Gauge(
    "autoscaler_leader",
    "1 while this process holds the leader Lease (or runs without leader election), else 0",
    registry=REGISTRY,
)
ERRORS = Counter(
    "autoscaler_errors_total",
    "Failed calls of the controller process itself (listing pools, writing status and "
    "Events, the leader Lease), by source and error code",
    ["source", "code"],
    registry=REGISTRY,
)
POOL_CONFIG_ERRORS = Gauge(
    "autoscaler_pool_config_errors",
    "AutoscalingPool objects left out because their spec is invalid",
    registry=REGISTRY,
)

POOL_SPEND = Gauge(
    "autoscaler_pool_spend_dollars_per_hour",
    "Dollars per hour of the replicas the controller last asked for (price x replicas; "
    "NaN when the pool's price is unknown)",
    ["pool"],
    registry=REGISTRY,
)
POOL_GPU_HOURS = Gauge(
    "autoscaler_pool_gpu_hours_today",
    "GPU-hours the pool used so far this UTC day, as budgets count them (NaN when its GPUs "
    "per replica are unknown)",
    ["pool"],
    registry=REGISTRY,
)
POOL_GPU_HOURS_TOTAL = Gauge(
    "autoscaler_pool_gpu_hours_total",
    "GPU-hours the pool used since its persisted memory began, as a `gpu_hours_total` "
    "(experiment) budget counts them (NaN when its GPUs per replica are unknown)",
    ["pool"],
    registry=REGISTRY,
)
SPEND = Gauge(
    "autoscaler_spend_dollars_per_hour",
    "Dollars per hour of every pool with a known price (the installation's spend)",
    registry=REGISTRY,
)
GPU_HOURS = Gauge(
    "autoscaler_gpu_hours_today",
    "GPU-hours every pool with known GPUs used so far this UTC day",
    registry=REGISTRY,
)

_REASON_CLASSES = (
    ("budget:", "budget"),
    ("experiment done:", "experiment_done"),
    ("provider backoff", "backoff"),
    ("stale", "stale"),
    ("failed", "policy_error"),
    ("cooldown", "cooldown"),
    ("stabilization window", "stabilization"),
    ("rate limit", "rate_limit"),
    ("scale to zero in", "scale_to_zero_wait"),
    ("bounds [", "bounds"),
)


def reason_class(reason: str) -> str:
    """A short, bounded label for a decision's free-text reason (metrics must not carry
    numbers in labels): the first planner rule named in it, else `policy`."""
    for needle, label in _REASON_CLASSES:
        if needle in reason:
            return label
    return "policy"


def record_decision(decision: Decision, action: ActionResult | None) -> None:
    """Publish one decision and its action (if any)."""
    POOL_DESIRED.labels(pool=decision.pool).set(decision.desired)
    POOL_CURRENT.labels(pool=decision.pool).set(decision.current)
    POOL_RECOMMENDED.labels(pool=decision.pool).set(decision.recommended)
    DECISIONS.labels(
        pool=decision.pool, direction=decision.direction, reason=reason_class(decision.reason)
    ).inc()
    if action is not None and action.error:
        ACTION_ERRORS.labels(pool=decision.pool, code=action.error_code or "unknown").inc()


def record_error(source: str, code: str) -> None:
    """One failed call of the process (`source`: kube_list, kube_status, kube_event, lease)."""
    ERRORS.labels(source=source, code=code or "unknown").inc()


def forget_pools(pools: Iterable[str]) -> None:
    """Drop the per-pool gauges of pools that are gone, so /metrics stops reporting them."""
    for pool in pools:
        for gauge in (
            POOL_DESIRED,
            POOL_CURRENT,
            POOL_RECOMMENDED,
            POOL_SPEND,
            POOL_GPU_HOURS,
            POOL_GPU_HOURS_TOTAL,
        ):
            with contextlib.suppress(KeyError):
                gauge.remove(pool)


def record_spend(spend: Mapping[str, tuple[float, float]]) -> None:
    """Per pool: (dollars per hour now, GPU-hours today), NaN where unknown; the
    installation's totals are the sums of the known ones."""
    dollars = gpu_hours = 0.0
    for pool, (rate, used) in spend.items():
        POOL_SPEND.labels(pool=pool).set(rate)
        POOL_GPU_HOURS.labels(pool=pool).set(used)
        dollars += 0.0 if math.isnan(rate) else rate
        gpu_hours += 0.0 if math.isnan(used) else used
    SPEND.set(dollars)
    GPU_HOURS.set(gpu_hours)


def record_gpu_hours_total(used: Mapping[str, float]) -> None:
    """Per pool: GPU-hours ever (NaN where its GPUs are unknown)."""
    for pool, hours in used.items():
        POOL_GPU_HOURS_TOTAL.labels(pool=pool).set(hours)


def record_tick(seconds: float, skipped: Mapping[str, str]) -> None:
    """One tick took `seconds`; `skipped` pools were not decided."""
    TICK_SECONDS.observe(max(0.0, seconds))
    for pool in skipped:
        TICKS_SKIPPED.labels(pool=pool).inc()


TRIGGER_RUNS = Counter(
    "autoscaler_trigger_runs_total",
    "Evaluation-trigger runs by trigger and outcome: `started` when a firing creates its "
    "evaluation Job, then one of passed, retrained, rolled-out, retrain-needed, "
    "evaluation-failed, retrain-failed, rollout-failed when it ends",
    ["trigger", "outcome"],
    registry=REGISTRY,
)
TRIGGER_FIRING = Gauge(
    "autoscaler_trigger_breached_seconds",
    "How long a trigger's condition has been breached, in seconds (0 while not breached)",
    ["trigger"],
    registry=REGISTRY,
)


def record_trigger_run(trigger: str, outcome: str) -> None:
    """A run of `trigger` started (`outcome` "started") or ended with `outcome`."""
    TRIGGER_RUNS.labels(trigger=trigger, outcome=outcome).inc()


def record_trigger_breach(trigger: str, seconds: float) -> None:
    TRIGGER_FIRING.labels(trigger=trigger).set(max(0.0, seconds))


class MetricsRecorder:
    """A Recorder that publishes decisions as Prometheus metrics."""

    def record(self, decision: Decision, action: ActionResult | None) -> None:
        try:
            record_decision(decision, action)
        except Exception:  # recording must never fail a tick
            return
