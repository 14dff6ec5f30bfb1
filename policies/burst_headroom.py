"""Burst headroom: warm slots for a quantile of the arrival growth seen over one startup.

The `queueing` policy plans for the Holt forecast of the arrival rate one startup ahead: the
mean and its trend. A burst that doubles the rate inside one cold start is not a trend until
it has happened, and then the capacity for it is a whole startup away; only slots already
warm serve its first minutes. So, per pool, this keeps a bounded record of how much the
smoothed arrival rate grew over one startup horizon H, the ratio level(t + H) / level(t), in
`BINS` geometric bins from 1 (no growth or a fall) to `HIGH` and more, and the policy plans
for the current level times the q-quantile of that ratio (`burst_quantile`): capacity that
covers the growth seen in all but 1 - q of the horizons.

The record is taken on a fixed grid of the pool's own time (a sample every H / `PER_HORIZON`
seconds), so it does not depend on the tick; the ring of recent samples holds at most `RING`
of them (one and a half horizons), and the histogram's weights halve past `MAX_WEIGHT`
(recent growth counts more, and the size never grows). Horizons that start from (nearly) no traffic
are not counted: growth from zero is a burst after an idle gap, which the learned keep-alive
(idle_gaps.py) prices.

Pure, like every policy part: no I/O and no clock; a memory given in is never changed.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping
from typing import Any

HIGH = 16.0
"""Growth ratios of this or more share the last bin."""
BINS = 24
RATIO = HIGH ** (1.0 / BINS)  # ~1.123: bins an eighth of a doubling wide
EDGES: tuple[float, ...] = tuple(RATIO**k for k in range(BINS + 1))
PER_HORIZON = 8
"""Samples of the level per startup horizon."""
RING = int(1.5 * PER_HORIZON) + 1
MAX_WEIGHT = 1_000.0
MIN_WEIGHT = 2.0 * PER_HORIZON
"""Horizons needed (about two startups of traffic) before the record sizes anything."""
MIN_LEVEL = 1e-3
"""Requests per second: below this a horizon starts from no traffic and is not counted."""


def fresh() -> dict[str, Any]:
    return {"ring": [], "bins": [0.0] * BINS, "weight": 0.0}


def bin_of(ratio: float) -> int:
    if ratio <= 1.0:
        return 0
    return min(BINS - 1, bisect_right(EDGES, ratio) - 1)


def observe(
    state: Mapping[str, Any] | None, now: float, level: float, horizon: float
) -> Mapping[str, Any]:
    """The record after one call with the smoothed arrival rate `level`. Returns `state`
    itself when no sample is due (most calls), else a new mapping."""
    if not state or len(state.get("bins") or ()) != BINS:
        state = fresh()
    ring = state["ring"]
    step = max(horizon, 1.0) / PER_HORIZON
    if ring and now - ring[-1][0] < step:
        return state
    keep = [s for s in ring if now - s[0] <= 1.5 * horizon]
    bins = state["bins"]
    weight = float(state["weight"])
    past = _at_horizon(keep, now, horizon)
    if past is not None and past >= MIN_LEVEL:
        bins = list(bins)
        bins[bin_of(level / past)] += 1.0
        weight += 1.0
        if weight > MAX_WEIGHT:
            bins = [b / 2.0 for b in bins]
            weight /= 2.0
    keep.append([now, level])
    return {"ring": keep, "bins": bins, "weight": weight}


def _at_horizon(ring: list[list[float]], now: float, horizon: float) -> float | None:
    """The level one horizon ago: the sample whose age is nearest H, within [0.75H, 1.5H]."""
    best: tuple[float, float] | None = None
    for at, level in ring:
        age = now - at
        if 0.75 * horizon <= age <= 1.5 * horizon:
            off = abs(age - horizon)
            if best is None or off < best[0]:
                best = (off, level)
    return None if best is None else best[1]


def growth(state: Mapping[str, Any] | None, q: float) -> float:
    """The q-quantile of the growth ratio over one horizon (1.0 until `MIN_WEIGHT`
    horizons are recorded), interpolated geometrically within its bin."""
    if not state or float(state.get("weight", 0.0)) < MIN_WEIGHT:
        return 1.0
    bins = state["bins"]
    target = q * float(state["weight"])
    seen = 0.0
    for k, count in enumerate(bins):
        if count > 0 and seen + count >= target:
            if k == 0:
                return 1.0
            share = (target - seen) / count
            return float(EDGES[k] * RATIO**share)
        seen += count
    return float(EDGES[BINS])

