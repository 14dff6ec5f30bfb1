"""Builders shared by the signal tests."""

from __future__ import annotations

from typing import Any

from autoscaler.config.sources import (
    KubePendingSource,
    NvmlSource,
    PrometheusSource,
    RedisSource,
)
from autoscaler.signals.base import SignalRequest

MODELS: dict[str, Any] = {
    "prometheus": PrometheusSource,
    "redis": RedisSource,
    "kube-pending-pods": KubePendingSource,
    "nvml": NvmlSource,
}


def req(type_: str, pool: str = "pool", signal: str = "signal", **fields: Any) -> SignalRequest:
    """A SignalRequest whose source is the `type_` model built from `fields`."""
    return SignalRequest(pool, signal, MODELS[type_](**fields))


def code_of(error: str | None) -> str:
    """The code an error starts with (`timeout: ...` -> `timeout`)."""
    assert error is not None, "expected a failed reading, got a value"
    return error.split(":", 1)[0]
