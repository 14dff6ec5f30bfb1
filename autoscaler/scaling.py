"""Stabilization windows and rate limits, as the Kubernetes HPA defines them.

Pure functions over plain tuples, shared by the planner (for every pool) and by the `hpa`
and `keda` baseline policies (which carry their own documented behavior). Follows
`pkg/controller/podautoscaler/horizontal.go` (Kubernetes 1.30+): `stabilizeRecommendation
WithBehaviors`, `calculateScaleUpLimitWithScalingRules` and its scale-down twin.

Never reads a clock: every function takes `now` in seconds.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

History = tuple[tuple[float, int], ...]
"""(time in seconds, replicas) pairs, oldest first."""
Pairs = Iterable[Sequence[Any]]
"""A History, or the same pairs as the [t, n] lists that policies keep in their memory."""
UNLIMITED = 2**31 - 1


@dataclass(frozen=True, slots=True)
class RatePolicy:
    """At most `value` pods (kind 'pods') or `value` percent (kind 'percent') per period."""

    kind: str
    value: float
    period_seconds: float


@dataclass(frozen=True, slots=True)
class ScalingRules:
    """One direction's behavior: a stabilization window and rate-limit policies.

    `select` is 'max' (the policy allowing the most change wins, the HPA default), 'min'
    or 'disabled' (no scaling in this direction at all).
    """

    stabilization_seconds: float = 0.0
    policies: tuple[RatePolicy, ...] = ()
    select: str = "max"


HPA_SCALE_UP = ScalingRules(0.0, (RatePolicy("percent", 100, 15), RatePolicy("pods", 4, 15)), "max")
HPA_SCALE_DOWN = ScalingRules(300.0, (RatePolicy("percent", 100, 15),), "max")


def prune(history: History, now: float, keep_seconds: float) -> History:
    """Drop entries older than `keep_seconds` before `now`."""
    cutoff = now - keep_seconds
    if not history or history[0][0] > cutoff:
        return history
    # A list comprehension, not a generator: the planner prunes a pool's recommendations at
    # almost every tick (the oldest falls out of the window), and it is ~30% faster.
    return tuple([entry for entry in history if entry[0] > cutoff])


def stabilize(
    current: int,
    proposal: int,
    history: Pairs,
    now: float,
    up_window_seconds: float,
    down_window_seconds: float,
) -> int:
    """The HPA's stabilized recommendation.

    `history` holds earlier proposals (not including this one). Scale-up follows the
    smallest proposal within the up window, scale-down the largest within the down window,
    so one spike or one dip does not move the pool on its own.
    """
    up = proposal
    down = proposal
    up_cut = now - up_window_seconds
    down_cut = now - down_window_seconds
    for at, replicas in history:
        if at > up_cut and replicas < up:
            up = replicas
        if at > down_cut and replicas > down:
            down = replicas
    result = current
    if result < up:
        result = up
    if result > down:
        result = down
    return result


def _change_in_period(events: Pairs, now: float, period_seconds: float) -> tuple[int, int]:
    """Replicas added and removed by scale events within the period before `now`."""
    added = removed = 0
    cutoff = now - period_seconds
    for at, delta in events:
        if at > cutoff:
            if delta > 0:
                added += delta
            else:
                removed -= delta
    return added, removed


def scale_up_limit(current: int, events: Pairs, rules: ScalingRules, now: float) -> int:
    """The most replicas the rate limits allow now (at least `current`)."""
    if rules.select == "disabled":
        return current
    if not rules.policies:
        return UNLIMITED
    pick = min if rules.select == "min" else max
    result: int | None = None
    for policy in rules.policies:
        start = current
        if events:  # usually empty between scalings: no change in any period then
            added, removed = _change_in_period(events, now, policy.period_seconds)
            start = current - added + removed
        if policy.kind == "pods":
            proposed = start + int(policy.value)
        else:
            proposed = math.ceil(start * (1 + policy.value / 100.0))
        result = proposed if result is None else pick(result, proposed)
    assert result is not None
    return max(result, current)


def scale_down_limit(current: int, events: Pairs, rules: ScalingRules, now: float) -> int:
    """The fewest replicas the rate limits allow now (at most `current`)."""
    if rules.select == "disabled":
        return current
    if not rules.policies:
        return 0
    # For scale-down the policy allowing the most change gives the *lowest* count.
    pick = max if rules.select == "min" else min
    result: int | None = None
    for policy in rules.policies:
        start = current
        if events:  # usually empty between scalings: no change in any period then
            added, removed = _change_in_period(events, now, policy.period_seconds)
            start = current - added + removed
        if policy.kind == "pods":
            proposed = start - int(policy.value)
        else:
            proposed = math.floor(start * (1 - policy.value / 100.0))
        result = proposed if result is None else pick(result, proposed)
    assert result is not None
    return min(result, current)


def rate_limit(
    current: int,
    desired: int,
    events: Pairs,
    up: ScalingRules,
    down: ScalingRules,
    now: float,
) -> int:
    """`desired` moved no further from `current` than the rate limits allow."""
    if desired > current:
        return min(desired, scale_up_limit(current, events, up, now))
    if desired < current:
        return max(desired, scale_down_limit(current, events, down, now))
    return desired


def longest_period(rules: Sequence[ScalingRules]) -> float:
    """How long scale events must be remembered for these rules."""
    periods = [p.period_seconds for r in rules for p in r.policies]
    return max(periods, default=0.0)
