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
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from policies.idle_gaps import EDGES

from .engine import Workload

TAUS = (60.0, 120.0, 300.0, 600.0, 900.0, 1200.0, 1800.0, 3600.0)
MIN_AT_RISK = 5
"""A hazard from fewer gaps still open at τ than this is not reported (None)."""


def idle_gaps(work: Workload, tick: float) -> np.ndarray:
    """Seconds between the end of all work and the next arrival, for each such stretch of at
    least `tick` (shorter ones never reach the policy as idle)."""
    if len(work.arrivals) < 2:
        return np.zeros(0)
    order = np.argsort(work.arrivals, kind="stable")
    starts = work.arrivals[order]
    busy_until = np.maximum.accumulate(starts + work.durations[order])
    gaps = starts[1:] - busy_until[:-1]
    return np.asarray(gaps[gaps >= tick], dtype=float)


def analyse(work: Workload, tick: float) -> dict[str, Any]:
    gaps = idle_gaps(work, tick)
    window = work.startup_seconds + tick
    out: dict[str, Any] = {"gaps": len(gaps), "window_s": window}
    if len(gaps) < 3:
        return {**out, "cv": None, "lag1_log_corr": None, "hazard": {}, "falling": None}
    counts = np.histogram(np.minimum(gaps, EDGES[-1] - 1e-9), bins=list(EDGES))[0]
    cv = float(counts.std() / counts.mean()) if counts.mean() > 0 else None
    logs = np.log(gaps)
    corr = float(np.corrcoef(logs[:-1], logs[1:])[0, 1]) if logs.std() > 0 else None
    hazard: dict[str, float | None] = {}
    for tau in TAUS:
        open_ = gaps[gaps > tau]
        hazard[f"{tau:g}"] = (
            round(float(np.mean(open_ <= tau + window)), 3) if len(open_) >= MIN_AT_RISK else None
        )
    known = [h for h in hazard.values() if h is not None]
    falling = all(b <= a + 0.05 for a, b in itertools.pairwise(known))
    return {
        **out,
        "p50_s": round(float(np.median(gaps)), 1),
        "p90_s": round(float(np.percentile(gaps, 90)), 1),
        "cv": None if cv is None else round(cv, 2),
        "lag1_log_corr": None if corr is None else round(corr, 3),
        "hazard": hazard,
        "falling": falling,
    }
