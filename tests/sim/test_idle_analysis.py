"""The idle-gap analysis (autoscaler/sim/idle_analysis.py) that bounds a keep-alive's win.

Scripted arrivals with known gaps: a periodic schedule is peaked with a hazard that rises
at its period; memoryless gaps have a hazard that does not rise; a context that separates
short gaps from long ones is worth a lot in hindsight, one that does not is worth nothing.
"""

from __future__ import annotations

import random

import numpy as np

from autoscaler.sim import idle_analysis as ia
from autoscaler.sim.engine import Workload

TICK = 15.0
STARTUP = 120.0


def work(arrivals: list[float], duration: float = 1.0) -> Workload:
    a = np.asarray(sorted(arrivals), dtype=float)
    return Workload(a, np.full(len(a), duration), np.ones(len(a), dtype=np.int64), 8, 1, 1.0,
                    STARTUP, 2.0, 0.0, False, "scripted")  # fmt: skip


def bursts(starts: list[float], size: int = 5, spacing: float = 1.0) -> list[float]:
    return [s + i * spacing for s in starts for i in range(size)]


def test_gaps_are_the_idle_stretches_between_bursts_not_between_requests():
    w = work(bursts([0.0, 1000.0, 1500.0]))
    gaps, ends, misses = ia.gap_table(w, TICK)
    # each burst: 5 requests 1 s apart, each running 1 s: busy until start + 5
    assert gaps.tolist() == [995.0, 495.0]
    assert ends.tolist() == [1000.0, 1500.0]
    assert misses.tolist() == [5.0, 5.0]  # all 5 arrive within startup - SLO of the start
    assert ia.idle_gaps(w, TICK).tolist() == [995.0, 495.0]
    assert ia.idle_gaps(w, 600.0).tolist() == [995.0]


def test_a_periodic_schedule_is_peaked_and_its_hazard_rises_at_the_period():
    rng = random.Random(3)
    starts = [k * 1800.0 + rng.uniform(-60, 60) for k in range(40)]
    out = ia.analyse(work(bursts(starts)), TICK)
    assert out["cv"] >= 2.0
    assert out["rises"] is True
    assert out["hazard"]["300"] == 0.0  # a gap idle 5 min has ~24 min to go
    assert max(h for h in out["hazard"].values() if h is not None) == 1.0


def test_memoryless_gaps_have_no_rising_hazard_and_a_spread_histogram():
    rng = random.Random(5)
    t, starts = 0.0, []
    for _ in range(400):
        starts.append(t)
        t += 10 + rng.expovariate(1 / 600)
    out = ia.analyse(work(bursts(starts)), TICK)
    assert out["cv"] < 2.0
    assert out["rises"] is False
    assert abs(out["lag1_log_corr"]) < 0.15


def test_a_context_that_tells_long_gaps_from_short_is_worth_much_in_hindsight():
    # alternating: a 60 s gap, then a 3000 s one; the previous gap tells which comes next
    t, starts = 0.0, []
    for k in range(300):
        starts.append(t)
        t += 65.0 if k % 2 == 0 else 3005.0
    out = ia.context_bounds(work(bursts(starts)), TICK)
    assert out["previous_gap"] is not None and out["previous_gap"] < 0.75


def test_a_context_that_tells_nothing_is_worth_nothing():
    rng = random.Random(11)
    t, starts = 0.0, []
    for _ in range(600):
        starts.append(t)
        t += 10 + rng.expovariate(1 / 900)
    out = ia.context_bounds(work(bursts(starts)), TICK)
    assert out["previous_gap"] is None or out["previous_gap"] > 0.8


def test_hours_of_the_day_are_a_context_only_for_traces_of_several_days():
    short = ia.context_bounds(work(bursts([k * 700.0 for k in range(100)])), TICK)
    assert "hour_of_day" not in short
    long = ia.context_bounds(work(bursts([k * 7000.0 for k in range(100)])), TICK)
    assert "hour_of_day" in long


def test_too_few_gaps_say_so():
    out = ia.analyse(work([0.0, 1.0]), TICK)
    assert out["gaps"] == 0 and out["cv"] is None and out["hazard"] == {}
    assert ia.context_bounds(work([0.0]), TICK) == {}
