"""The autoscaler's own Prometheus metrics, in one project registry (served at /metrics later).

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

import math
from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from .signals._common import error_code
from .types import Reading

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
        return error_code(reading.error)
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
