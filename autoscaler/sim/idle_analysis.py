"""What a workload's idle gaps allow a keep-alive to win: the bound behind issue 16's target.

A keep-alive policy that knows only how long the pool has been idle (τ) can, at each τ,
keep the last replica or let it go (and, at zero, pre-warm one). Against a stationary gap
distribution every such rule is a stopping time on τ: the deterministic ones are exactly
the fixed keep-alives (keep until T, then let go), and a randomized one is a mixture of
them, whose GPU-hours and misses lie on the convex hull of the fixed keep-alive front. A
pre-warm after letting go pays off only where the gap's hazard rises again, i.e. where gap
ends cluster (a periodic job, a recurring hour): with a hazard that falls with τ, the pool
is least likely to be needed soon exactly when it is at zero. So a learned keep-alive beats
the best fixed one at equal GPU-hours only by the information τ does not carry: a rising
hazard (a peaked histogram, Shahrad's coefficient of variation ≥ 2), a gap that predicts
the next one (serial correlation), or the hour of the day.

`analyse(workload, tick)` measures those from the requests the pool will see: the gaps (the
policy's view: nothing arriving or running for at least a tick), the coefficient of
variation of their histogram in the learned model's bins, the lag-1 correlation of their
logarithms, and the hazard P(gap ends within W | idle τ) over the reaction window W =
startup + tick, at a ladder of τ.

`context_bounds` then asks how much the information τ lacks could be worth at most: on a
simple cost model of the gaps (a warm replica costs the idle seconds it is kept, up to its
keep-alive T; a gap longer than T ends in a cold start whose misses are the burst's requests
arriving in its first startup minus the SLO), it picks in hindsight the best T for each
context separately (each hour of the day; each class of the previous gap) and compares the
misses with the fixed keep-alives' front (one T for all) at equal warm hours. In hindsight
means optimistic: a keep-alive rule learning the same contexts online does no better (a
pre-warm is left out: within a context whose hazard falls it cannot pay either).
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np

from policies.idle_gaps import EDGES

from .engine import Workload

TAUS = (60.0, 120.0, 300.0, 600.0, 900.0, 1200.0, 1800.0, 3600.0)
RISE = 0.1
"""A hazard this much above the first one's counts as rising (less is sampling noise)."""
MIN_AT_RISK = 5
"""A hazard from fewer gaps still open at τ than this is not reported (None)."""


def idle_gaps(work: Workload, tick: float) -> np.ndarray:
    """Seconds between the end of all work and the next arrival, for each such stretch of at
    least `tick` (shorter ones never reach the policy as idle)."""
    return gap_table(work, tick)[0]


THRESHOLDS = (0, 30, 60, 90, 120, 180, 240, 300, 450, 600, 900, 1200, 1800, 2400, 3600,
              7200, 14400, 86400)  # fmt: skip
PRICES = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5)
"""Warm hours one miss is worth, the Lagrange multipliers the contextual choice sweeps."""
PREVIOUS = (60.0, 300.0, 1200.0)
"""Classes of the previous gap: under 1 min, to 5 min, to 20 min, longer."""
MIN_DAYS_FOR_HOURS = 3.0
"""Hours of the day are a context only where they recur: a trace of at least this many days."""
MIN_FIXED_MISSES = 50.0
"""Ratios against fewer misses than this on the fixed front are noise and not compared."""


def gap_table(work: Workload, tick: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per idle gap of at least `tick`: its length, when it ends, and the misses a cold
    start at its end costs (requests of that burst arriving before startup - SLO, >= 1)."""
    if len(work.arrivals) < 2:
        return np.zeros(0), np.zeros(0), np.zeros(0)
    order = np.argsort(work.arrivals, kind="stable")
    starts = work.arrivals[order]
    busy_until = np.maximum.accumulate(starts + work.durations[order])
    gaps = starts[1:] - busy_until[:-1]
    index = np.nonzero(gaps >= tick)[0]
    ends = starts[index + 1]
    late = ends + max(work.startup_seconds - work.wait_slo_seconds, 0.0)
    misses = np.searchsorted(starts, late, side="right") - (index + 1)
    return gaps[index], ends, np.maximum(misses, 1).astype(float)


def _cost(gaps: np.ndarray, misses: np.ndarray, t: float) -> tuple[float, float]:
    return float(np.minimum(gaps, t).sum() / 3600.0), float(misses[gaps > t].sum())


def _at(front: list[tuple[float, float]], hours: float) -> float | None:
    for (h0, m0), (h1, m1) in itertools.pairwise(sorted(front)):
        if h0 <= hours <= h1:
            return m0 + (m1 - m0) * ((hours - h0) / (h1 - h0) if h1 > h0 else 0.0)
    return None


def _contextual(
    gaps: np.ndarray, misses: np.ndarray, context: np.ndarray, price: float
) -> tuple[float, float]:
    hours = missed = 0.0
    for c in np.unique(context):
        mine = context == c
        h, m = min(
            (_cost(gaps[mine], misses[mine], t) for t in THRESHOLDS),
            key=lambda hm: hm[0] + price * hm[1],
        )
        hours += h
        missed += m
    return hours, missed


def context_bounds(work: Workload, tick: float) -> dict[str, Any]:
    """The best ratio of misses to the fixed front's at equal warm hours that a keep-alive
    chosen in hindsight per context reaches (see the module's docstring), where the front
    has at least `MIN_FIXED_MISSES` there; None where no price lands so."""
    return _bounds(*gap_table(work, tick))


def _bounds(gaps: np.ndarray, ends: np.ndarray, misses: np.ndarray) -> dict[str, Any]:
    if len(gaps) < 3:
        return {}
    front = [_cost(gaps, misses, t) for t in THRESHOLDS]
    contexts = {}
    if float(ends[-1] - ends[0]) >= MIN_DAYS_FOR_HOURS * 86_400:
        contexts["hour_of_day"] = (((ends - gaps) % 86_400) // 3600).astype(int)
    previous = np.digitize(gaps, PREVIOUS)
    contexts["previous_gap"] = np.concatenate([[len(PREVIOUS) + 1], previous[:-1]])
    out: dict[str, Any] = {}
    for name, context in contexts.items():
        best: float | None = None
        for price in PRICES:
            hours, missed = _contextual(gaps, misses, context, price)
            fixed = _at(front, hours)
            if fixed is not None and fixed >= MIN_FIXED_MISSES:
                ratio = missed / fixed
                best = ratio if best is None else min(best, ratio)
        out[name] = None if best is None else round(best, 3)
    return out


def analyse(work: Workload, tick: float) -> dict[str, Any]:
    table = gap_table(work, tick)
    gaps = table[0]
    window = work.startup_seconds + tick
    out: dict[str, Any] = {"gaps": len(gaps), "window_s": window}
    if len(gaps) < 3:
        return {**out, "cv": None, "lag1_log_corr": None, "hazard": {}, "rises": None}
    counts = np.histogram(np.minimum(gaps, EDGES[-1] - 1e-9), bins=list(EDGES))[0]
    cv = float(counts.std() / counts.mean()) if counts.mean() > 0 else None
    logs = np.log(gaps)
    corr = float(np.corrcoef(logs[:-1], logs[1:])[0, 1]) if logs.std() > 0 else None
    hazard: dict[str, float | None] = {}
    at_risk: list[tuple[float, int]] = []
    for tau in TAUS:
        open_ = gaps[gaps > tau]
        h = float(np.mean(open_ <= tau + window)) if len(open_) >= MIN_AT_RISK else None
        hazard[f"{tau:g}"] = None if h is None else round(h, 3)
        if h is not None:
            at_risk.append((h, len(open_)))
    # rises: at some later τ the gap is clearly likelier to end than at the first, beyond
    # RISE and two standard errors of a proportion from that many gaps still open
    rises = False
    if at_risk:
        first = at_risk[0][0]
        noise = [max(RISE, 2.0 * math.sqrt(first * (1 - first) / n)) for _, n in at_risk[1:]]
        rises = any(h - first > e for (h, _), e in zip(at_risk[1:], noise, strict=True))
    return {
        **out,
        "p50_s": round(float(np.median(gaps)), 1),
        "p90_s": round(float(np.percentile(gaps, 90)), 1),
        "cv": None if cv is None else round(cv, 2),
        "lag1_log_corr": None if corr is None else round(corr, 3),
        "hazard": hazard,
        "rises": rises,
        "hindsight_context_best_ratio": _bounds(*table),
    }
