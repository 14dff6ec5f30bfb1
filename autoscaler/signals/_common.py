"""Small helpers shared by the signal readers: failed readings with an error code, budgets.

Every failed read becomes `Reading(None, now, "<code>: <message>")`. The code is a short
snake_case word (`timeout`, `connect`, `http_503`, `several_series`, ...) that telemetry
counts by; the message says which pool, signal and server, and what to do. Nothing here may
turn a failure into a number: a gap is stale, never zero.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

from autoscaler.types import Reading

from .base import SignalKey, SignalRequest

K = TypeVar("K")

DEFAULT_TIMEOUT_SECONDS = 5.0
"""Per-read timeout when neither the signal nor the controller settings give one."""

_MARGIN = 0.9
"""A source finishes within this share of its timeout, so that its own per-request errors
reach the observer before the observer gives up on the whole source type (and marks every
pool of that type stale, the healthy ones too)."""


def failed(now: float, code: str, message: str) -> Reading:
    """A stale reading whose error starts with `code` (see module docstring)."""
    return Reading(None, now, f"{code}: {message}")


def fail_all(
    requests: Iterable[SignalRequest], now: float, code: str, message: str
) -> dict[SignalKey, Reading]:
    return {r.key: failed(now, code, message) for r in requests}


def checked_value(now: float, value: float, what: str) -> Reading:
    """A reading of `value`, or a stale one naming why a NaN, an infinity or a negative
    number cannot be used (`what` says where it came from)."""
    if not math.isfinite(value):
        return failed(now, "non_finite", f"{what} is {value}; a non-finite value is not usable")
    if value < 0:
        return failed(now, "negative", f"{what} is {value:g}; a negative value is not usable")
    return Reading(value, now)


def budget_seconds(request: SignalRequest, settings: object | None) -> float:
    """How long this source may spend on `request`, in seconds: its own `timeout`, else the
    controller's `source_timeout`, capped by the tick's `observe_deadline`, less a margin."""
    timeout = getattr(request.source, "timeout", None)
    if timeout is None:
        timeout = getattr(settings, "source_timeout", None) or DEFAULT_TIMEOUT_SECONDS
    deadline = getattr(settings, "observe_deadline", None)
    if deadline is not None:
        timeout = min(timeout, deadline)
    return max(0.05, float(timeout) * _MARGIN)


def where(request: SignalRequest) -> str:
    """`pool <p> signal <s>`, for messages."""
    return f"pool {request.pool} signal {request.signal}"


def group_by(
    requests: Sequence[SignalRequest], key: Callable[[SignalRequest], K]
) -> dict[K, list[SignalRequest]]:
    """Requests grouped by `key(request)`, in first-seen order."""
    out: dict[K, list[SignalRequest]] = {}
    for r in requests:
        out.setdefault(key(r), []).append(r)
    return out
