"""The gang model (autoscaler/sim/gangs.py): scripted cases with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from autoscaler.sim.gangs import (
    GangResult,
    Job,
    compare,
    gangs_from_trace,
    shortage_windows,
    simulate_gangs,
)
from autoscaler.sim.traces import Trace

STARTUP = 240.0
OPTIONS = {"gpus_per_node": 1, "startup": STARTUP, "idle_timeout": 60.0}


def _balanced(r: GangResult) -> None:
    """Booting + idle + wasted + useful is everything provisioned."""
    parts = r.booting_gpu_hours + r.idle_gpu_hours + r.wasted_gpu_hours + r.useful_gpu_hours
    assert parts == pytest.approx(r.gpu_hours)
    assert min(r.idle_gpu_hours, r.wasted_gpu_hours, r.useful_gpu_hours) >= -1e-9


def test_four_worker_gang_with_room_for_three_holds_three_nodes_idle() -> None:
    # The offering has 3 spare nodes until t=1000; the pool cap would allow 8.
    gang = [Job(0.0, 600.0, (1, 1, 1, 1))]
    short = [(0.0, 1000.0, 3)]
    r = compare(gang, max_nodes=8, shortages=short, **OPTIONS)
    fits, ours = r["launch-what-fits"], r["all-or-nothing"]
    # Launch-what-fits: 3 nodes ready at 240 hold their workers until the 4th, launched at
    # 1000, is ready at 1240: 3 GPUs x 1000 s wasted.
    assert fits.wasted_gpu_hours == pytest.approx(3 * 1000 / 3600)
    assert fits.gang_wait_p50_s == pytest.approx(1000 + STARTUP)
    # All-or-nothing launches nothing until all 4 can come, then all 4 at once.
    assert ours.wasted_gpu_hours == 0
    assert ours.gang_wait_p50_s == pytest.approx(1000 + STARTUP)
    assert ours.gpu_hours < fits.gpu_hours
    assert fits.finished == ours.finished == 1
    assert ours.useful_gpu_hours == fits.useful_gpu_hours == pytest.approx(4 * 600 / 3600)
    for x in (fits, ours):
        _balanced(x)
        assert not x.deadlocks


def test_two_gangs_over_capacity_deadlock_launch_what_fits_only() -> None:
    # Two 3-worker gangs arrive together; the pool holds 4 nodes.
    jobs = [Job(0.0, 1000.0, (1, 1, 1)), Job(0.0, 1000.0, (1, 1, 1))]
    stuck = simulate_gangs(jobs, "launch-what-fits", max_nodes=4, requeue_after=None, **OPTIONS)
    # Their pods interleave: each gang holds 2 of the 4 nodes and waits on the other.
    assert len(stuck.deadlocks) == 1
    assert stuck.deadlocks[0].at == STARTUP and stuck.deadlocks[0].held_gpus == 4
    assert stuck.finished == 0
    # Broken by a requeue after 300 s: the newer gang lets go, the older one runs, then it.
    fits = simulate_gangs(jobs, "launch-what-fits", max_nodes=4, requeue_after=300.0, **OPTIONS)
    assert len(fits.deadlocks) == 1 and fits.requeues == 1 and fits.finished == 2
    # 4 GPUs held for the 300 s, then the newer gang takes the spare node at once and holds
    # it while the older one runs (1,000 s): partial again.
    assert fits.wasted_gpu_hours == pytest.approx((4 * 300 + 1 * 1000) / 3600)
    assert fits.end_s == pytest.approx(STARTUP + 300 + 2000 + 60)  # + the idle timeout
    # All-or-nothing: one gang gets 3 nodes, the other waits for them; nothing held.
    ours = simulate_gangs(jobs, "all-or-nothing", max_nodes=4, **OPTIONS)
    assert not ours.deadlocks and ours.finished == 2 and ours.wasted_gpu_hours == 0
    assert sorted([ours.gang_wait_p50_s or 0, fits.gang_wait_p50_s or 0]) == [
        pytest.approx(STARTUP + 500),  # ours: the mean of 240 and 1240
        pytest.approx(STARTUP + 300 + 500),
    ]
    assert ours.peak_nodes == 3 and ours.nodes_launched == 3
    for x in (stuck, fits, ours):
        _balanced(x)


def test_single_gpu_jobs_waste_nothing_in_either_mode() -> None:
    jobs = [Job(float(i * 100), 500.0, (1,)) for i in range(20)]
    r = compare(jobs, max_nodes=3, **OPTIONS)
    for x in r.values():
        assert x.wasted_gpu_hours == 0 and x.finished == 20 and not x.deadlocks
        assert x.gangs == 0 and x.gang_wait_p50_s is None
        _balanced(x)
    assert r["launch-what-fits"].gpu_hours == pytest.approx(r["all-or-nothing"].gpu_hours)


def test_a_gang_larger_than_the_pool_is_unrunnable_not_a_deadlock() -> None:
    r = compare([Job(0.0, 10.0, (1,) * 5)], max_nodes=4, **OPTIONS)
    for x in r.values():
        assert x.unrunnable == 1 and x.finished == 0 and not x.deadlocks and x.gpu_hours == 0


def test_gang_rule_splits_tasks_larger_than_a_node() -> None:
    trace = Trace(
        "t", np.array([0.0, 1.0, 2.0, 3.0]), np.array([5.0, 5.0, 5.0, 5.0]),
        units=np.array([1, 2, 8, 3]),
    )  # fmt: skip
    one = gangs_from_trace(trace, 1)
    assert [j.workers for j in one] == [(1,), (1, 1), (1,) * 8, (1, 1, 1)]
    two = gangs_from_trace(trace, 2)
    assert [j.workers for j in two] == [(1,), (2,), (2, 2, 2, 2), (2, 1)]
    assert [j.workers for j in gangs_from_trace(trace, 8)] == [(1,), (2,), (8,), (3,)]


def test_shortages_are_reproducible_and_inside_the_span() -> None:
    a = shortage_windows(30 * 86400, seed=1)
    assert a == shortage_windows(30 * 86400, seed=1) and a
    assert all(0 < s < e and 0 <= n <= 4 for s, e, n in a)
    assert all(a[i][1] <= a[i + 1][0] for i in range(len(a) - 1))


def test_bad_options_are_refused() -> None:
    with pytest.raises(ValueError, match="mode"):
        simulate_gangs([], "greedy", max_nodes=1, gpus_per_node=1)
    with pytest.raises(ValueError, match="worker needs"):
        simulate_gangs([Job(0, 1, (2,))], "all-or-nothing", max_nodes=1, gpus_per_node=1)
