"""The simulated world, with small workloads whose answers are known by hand."""

from __future__ import annotations

import math
import random
from bisect import bisect_right

import numpy as np
import pytest

from autoscaler.sim.cluster import Cluster
from autoscaler.sim.oracle import oracle, stepwise_need


def cluster(arrivals, durations, slots_held=None, slots_per_replica=2, startup=0.0,
            **kw) -> Cluster:  # fmt: skip
    slots_held = slots_held or [1] * len(arrivals)
    return Cluster(np.asarray(arrivals, float), np.asarray(durations, float),
                   np.asarray(slots_held), slots_per_replica, startup, **kw)


def test_requests_beyond_the_slots_wait_for_a_free_one():
    c = cluster([0, 0, 0], [10, 10, 10], slots_per_replica=2)
    c.add(1, 0.0, ready=True)
    c.advance(100)
    assert c.start == [0.0, 0.0, 10.0]


def test_new_replicas_take_their_startup_time_and_are_billed_from_the_request():
    c = cluster([0, 0, 0, 0], [100] * 4, slots_per_replica=1, startup=30)
    c.add(1, 0.0, ready=True)
    c.advance(0)
    c.scale(3, 0.0)
    assert c.capacity().desired == 3 and c.capacity().ready == 1
    c.advance(30)
    assert c.capacity().ready == 3
    assert c.billed_replica_seconds(50) == pytest.approx(150)
    c.advance(100)
    assert c.start == [0.0, 30.0, 30.0, 100.0]


def test_scale_in_removes_starting_then_idle_replicas_and_drains_busy_ones():
    c = cluster([0], [50], slots_per_replica=1, startup=10)
    c.add(2, 0.0, ready=True)
    c.advance(0)              # replica 0 busy until 50, replica 1 idle
    c.scale(3, 0.0)           # replica 2 starting
    c.scale(1, 1.0)           # drops the starting one, then the idle one
    assert {r.id for r in c.replicas.values()} == {0}
    c.scale(0, 2.0)           # the busy one drains: billed until its request ends
    assert c.capacity().desired == 0
    c.advance(60)
    assert c.start == [0.0]
    assert c.replicas == {}
    assert c.billed_replica_seconds(60) == pytest.approx(50 + 1 + 1)


def test_draining_replicas_take_no_new_work():
    c = cluster([0, 1], [10, 10], slots_per_replica=2)
    c.add(1, 0.0, ready=True)
    c.advance(0)
    c.scale(0, 0.5)
    c.advance(1)
    assert c.start[1] != c.start[1]  # NaN: still waiting
    assert len(c.queue) == 1


def test_jobs_pack_first_fit_and_small_jobs_pass_a_blocked_big_one():
    c = cluster([0, 1, 2], [100, 100, 100], slots_held=[4, 8, 4], slots_per_replica=8)
    c.add(1, 0.0, ready=True)
    c.advance(5)
    assert c.start[0] == 0.0 and c.start[2] == 2.0
    assert c.start[1] != c.start[1]  # the 8-GPU job waits for a whole node
    c.advance(150)
    assert c.start[1] == 102.0


def test_a_job_larger_than_a_node_is_refused():
    with pytest.raises(ValueError, match="needs 8 slots but a replica has 4"):
        cluster([0], [1], slots_held=[8], slots_per_replica=4)


def test_signals_are_what_production_would_see():
    c = cluster([0, 0, 0, 30], [20, 20, 20, 20], slots_per_replica=2, rate_window_seconds=60)
    c.add(1, 0.0, ready=True)
    c.advance(10)
    s = c.signals(10.0)
    assert (s["queue"], s["in_flight"], s["concurrency"], s["demand"]) == (1, 2, 3, 3)
    assert s["gpu_utilization"] == pytest.approx(1.0)
    # 10 s into the run the rate is per second of what has been seen (as Prometheus'
    # rate() extrapolates a young series), not 3 arrivals spread over a whole 60 s window
    assert s["arrival_rate"] == pytest.approx(3 / 10)
    assert s["service_seconds"] is None  # nothing completed yet: missing, not zero
    c.advance(25)
    assert c.signals(25.0)["service_seconds"] == pytest.approx(20.0)
    c.advance(80)
    assert c.signals(80.0)["arrival_rate"] == pytest.approx(1 / 60)  # only t=30 is within 60 s


def test_the_arrival_rate_counts_the_window_at_any_time_asked():
    """The rate window's start is followed, not searched for; asked about an earlier time
    (out of order), it searches. Either way: arrivals in (t - 60, t] over min(60, t)."""
    rng = np.random.default_rng(3)
    arrivals = np.sort(np.round(rng.uniform(0, 600, 400) * 2) / 2)  # ties on purpose
    c = cluster(arrivals.tolist(), [1.0] * 400, slots_per_replica=4)
    c.add(2, 0.0, ready=True)
    times = [float(t) for t in np.arange(0, 700, 0.5)]
    times += [float(t) for t in rng.uniform(0, 700, 200)]  # then back and forth
    for t in times:
        if t >= c.clock:
            c.advance(t)
        inside = np.sum((arrivals > t - 60) & (arrivals <= t))
        span = min(60.0, t) if t > 0 else 60.0
        assert c.signals(t)["arrival_rate"] == inside / span, t


def test_busy_replicas_counts_nodes_holding_work_when_asked():
    # jobs of 2, 2 and 1 GPUs on 2-GPU nodes: first fit fills node 0, then node 1; node 2
    # idle. A draining node is leaving: it is not counted.
    c = cluster([0, 0, 0], [100, 100, 100], slots_held=[2, 2, 1], slots_per_replica=2)
    c.add(4, 0.0, ready=True)
    c.advance(1)
    assert "busy_replicas" not in c.signals(1)  # walked only when a policy reads it
    c.measure_busy = True
    assert c.signals(1)["busy_replicas"] == 3.0
    c.scale(1, 1.0)  # the idle node goes, then the two least busy drain; one stays
    assert c.signals(2)["busy_replicas"] == 1.0
    c.advance(200)
    assert c.signals(200)["busy_replicas"] == 0.0


def test_gpu_utilization_is_missing_when_nothing_is_ready():
    c = cluster([0], [5], slots_per_replica=1, startup=60)
    c.add(1, 0.0)
    c.advance(10)
    assert c.signals(10.0)["gpu_utilization"] is None


def test_signal_delay_shows_older_values():
    c = cluster([0, 0, 0, 0], [100] * 4, slots_per_replica=4, signal_delay_seconds=10)
    c.add(1, 0.0, ready=True)
    c.advance(0)
    assert c.signals(0.0)["in_flight"] is None  # nothing old enough yet
    c.advance(5)
    c.signals(5.0)
    c.advance(15)
    assert c.signals(15.0)["in_flight"] == 4


def test_the_oracle_pays_startup_once_per_launch_and_bridges_short_gaps():
    # one replica needed over [0, 10) and [15, 25): the 5 s gap is shorter than the 30 s
    # startup, so it is kept; the first run is warm (already running at the start)
    bound = oracle(np.array([0.0, 15.0]), np.array([10.0, 10.0]), np.array([1, 1]), 1, 30.0)
    assert bound.replica_seconds == pytest.approx(25.0)
    # with a 100 s gap, relaunching (30 s) is cheaper than keeping (100 s)
    bound = oracle(np.array([0.0, 110.0]), np.array([10.0, 10.0]), np.array([1, 1]), 1, 30.0)
    assert bound.replica_seconds == pytest.approx(10 + 10 + 30)
    assert bound.work_replica_seconds == pytest.approx(20.0)


def test_the_stepwise_hindsight_holds_each_minute_at_its_peak_need():
    # one request over [10, 130) spans three 60 s steps (the middle one has no event)
    assert stepwise_need(np.array([10.0]), np.array([120.0]), np.array([1]), 1, 60.0) == 180.0
    # two overlap in the first minute only: 2 replicas there, none after
    two = stepwise_need(np.array([0.0, 5.0]), np.array([10.0, 10.0]), np.array([1, 1]), 1, 60.0)
    assert two == 120.0
    # with 2 slots per replica the same two fit on one replica
    assert stepwise_need(np.array([0.0, 5.0]), np.array([10.0, 10.0]), np.array([1, 1]), 2,
                         60.0) == 60.0  # fmt: skip
    # back to back, not overlapping (a departure at the same moment goes first)
    assert stepwise_need(np.array([0.0, 10.0]), np.array([10.0, 10.0]), np.array([1, 1]), 1,
                         60.0) == 60.0  # fmt: skip


def _by_hand(c: Cluster) -> tuple[int, int]:
    live = [r for r in c.replicas.values() if not r.draining]
    return len(live), sum(1 for r in live if r.ready_at <= c.clock)


@pytest.mark.parametrize("seed", range(6))
def test_capacity_kept_in_counters_matches_a_count_by_hand_while_scaling(seed):
    # Whole and half seconds, so arrivals, completions and replica starts often coincide.
    rng = random.Random(seed)
    arrivals = sorted(rng.randrange(0, 400) / 2 for _ in range(300))
    durations = [rng.choice([0.5, 1.0, 2.0, 3.5, 10.0, 30.0]) for _ in arrivals]
    c = cluster(arrivals, durations, slots_per_replica=3, startup=rng.choice([0.0, 7.0, 30.0]))
    c.add(rng.randrange(0, 4), 0.0, ready=True)
    t = 0.0
    while t < 400:
        c.advance(t)
        assert c.next_arrival == bisect_right(c.arr, t)  # the rate counts from this
        capacity = c.capacity()
        assert (capacity.desired, capacity.ready) == _by_hand(c)
        assert len(capacity.members) == capacity.desired
        if rng.random() < 0.3:  # scale up and down, draining busy replicas on the way
            c.scale(rng.randrange(0, 9), t)
            assert (c.capacity().desired, c.capacity().ready) == _by_hand(c)
        t += rng.choice([0.5, 1.0, 2.5])
    c.scale(8, t)
    c.advance(t + 1000)
    assert not any(math.isnan(s) for s in c.start)  # every request ran in the end


def test_capacity_counts_a_replica_ready_before_its_start_is_processed():
    # startup 0: a replica added by scale is ready at once, before any advance has seen it
    c = cluster([5.0], [1.0], slots_per_replica=2, startup=0.0)
    c.add(1, 0.0, ready=True)
    c.scale(3, 0.0)
    assert (c.capacity().desired, c.capacity().ready) == (3, 3)
    c.advance(1.0)
    assert (c.capacity().desired, c.capacity().ready) == (3, 3)
    c.scale(1, 1.0)
    assert (c.capacity().desired, c.capacity().ready) == (1, 1)
