"""Plain values that cross the boundaries of one tick: observe -> decide -> plan -> act -> record.

Everything here is a frozen dataclass or a plain mapping, so policies and the planner stay
pure and their inputs and outputs can be logged, compared in tests and serialized to JSON.
This module must never import anything with I/O; `policies/` may import only this module
from `autoscaler`.

Units are part of every name or docstring: seconds, replicas, requests, fractions (0..1).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

JSONDict = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Reading:
    """One signal value as a source saw it.

    `value` is None when the source answered with nothing (an empty query result, a missing
    queue); `error` names why a read failed (`timeout`, `ConnectionError`, an AWS error code).
    A reading is *stale* when it has no finite, non-negative value: the planner then holds
    the pool's capacity rather than read the gap as zero.
    """

    value: float | None
    observed_at: float
    error: str | None = None

    @property
    def stale(self) -> bool:
        v = self.value
        return self.error is not None or v is None or not math.isfinite(v) or v < 0

    def why_stale(self) -> str:
        """A short human reason; empty when the reading is usable."""
        if self.error is not None:
            return self.error
        if self.value is None:
            return "no value (empty result)"
        if not math.isfinite(self.value):
            return f"non-finite value {self.value}"
        if self.value < 0:
            return f"negative value {self.value}"
        return ""


@dataclass(frozen=True, slots=True)
class Observation:
    """What a policy sees of one pool at one moment.

    `signals` holds only usable values, by signal name; `stale` names the signals whose
    reading was missing, failing or non-finite. `startup_seconds` is how long new capacity
    takes to become ready, so a policy can look ahead by it. The pool's bounds are given so
    that baselines which clamp inside their own algorithm (the HPA) stay faithful; the
    planner clamps again regardless.
    """

    pool: str
    now: float
    current_replicas: int
    ready_replicas: int
    signals: Mapping[str, float]
    stale: frozenset[str] = frozenset()
    empty: frozenset[str] = frozenset()
    """Stale signals whose source answered, but with no value (an empty query result)."""
    startup_seconds: float = 0.0
    min_replicas: int = 0
    max_replicas: int = 2**31 - 1

    def get(self, name: str, default: float | None = None) -> float | None:
        return self.signals.get(name, default)


@dataclass(frozen=True, slots=True)
class Recommendation:
    """A policy's answer: how many replicas the pool needs now, and why.

    `memory` is the policy's own state for its next call (window averages, a forecast's
    level and trend), a JSON-serializable dict that the controller stores and passes back.
    `hold` means the policy itself declines to act this round (HPA: a failed metric while
    the others would scale down); the planner then keeps the current capacity.
    """

    desired: int
    reason: str
    memory: JSONDict = field(default_factory=dict)
    hold: bool = False


@dataclass(frozen=True, slots=True)
class Decision:
    """The planner's verdict for one pool: the capacity to act on, and the reason."""

    pool: str
    at: float
    current: int
    recommended: int
    desired: int
    reason: str
    stale: bool = False

    @property
    def direction(self) -> str:
        if self.desired > self.current:
            return "up"
        if self.desired < self.current:
            return "down"
        return "hold"

    def to_dict(self) -> JSONDict:
        return {
            "pool": self.pool,
            "at": self.at,
            "current": self.current,
            "recommended": self.recommended,
            "desired": self.desired,
            "direction": self.direction,
            "reason": self.reason,
            "stale": self.stale,
        }


@dataclass(frozen=True, slots=True)
class Member:
    """One unit of capacity: an instance, a pod or a simulated replica."""

    id: str
    ready: bool
    created_at: float = 0.0
    busy: float | None = None
    """Share of time busy (0..1) where a per-member signal exists; None when unknown."""


@dataclass(frozen=True, slots=True)
class Capacity:
    """What a provider reports for a pool: requested, ready and starting replicas."""

    desired: int
    ready: int
    pending: int = 0
    members: tuple[Member, ...] = ()


@dataclass(frozen=True, slots=True)
class ActionResult:
    """What act did for one pool; `error` is set when the provider refused or failed."""

    pool: str
    request_id: str
    desired: int
    applied: bool
    error: str | None = None
    error_code: str | None = None
