"""The simulator's fast paths give bit-identical results to the simple code they replace.

- `Cluster.advance` with one unit per request runs an inlined loop; the general loop is the
  reference (a cluster with `fast = False` runs it on the same work).
- `Cluster.capacity` counts from counters; the reference counts the replicas by hand.
- `ClusterSignals.read` builds its Readings without the dataclass constructor and keeps the
  request keys between ticks; the constructor is the reference.
"""

from __future__ import annotations

import math
import random
from bisect import bisect_right

import numpy as np
import pytest

from autoscaler.signals.base import SignalRequest
from autoscaler.sim.adapters import ClusterSignals
from autoscaler.sim.cluster import Cluster
from autoscaler.types import Capacity, Reading


def _work(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = random.Random(seed)
    # Whole and half seconds, so arrivals, completions and replica starts often coincide
    # (the order of simultaneous events is part of what must match).
    arrivals = np.sort(np.array([rng.randrange(0, 400) / 2 for _ in range(n)], dtype=float))
    durations = np.array([rng.choice([0.5, 1.0, 2.0, 3.5, 10.0, 30.0]) for _ in range(n)])
    return arrivals, durations


def _by_hand(c: Cluster) -> Capacity:
    desired = sum(1 for r in c.replicas.values() if not r.draining)
    ready = sum(1 for r in c.replicas.values() if not r.draining and r.ready_at <= c.clock)
    return Capacity(desired, ready, desired - ready)


def _state(c: Cluster, t: float) -> tuple:
    return (
        repr(c.start),  # repr: NaN == NaN, and -0.0 vs 0.0 would show
        repr((c.busy_area, c.ready_area, c.done_service, c.recent_sum, c.clock)),
        (c.busy_units, c.ready_units, c.running, c.queued_units, c.next_arrival),
        list(c.queue),
        sorted((r.id, r.busy, r.draining, r.ready_at) for r in c.replicas.values()),
        repr(c.billed_replica_seconds(t)),
        c.capacity(),
        repr(c.signals(t)),
    )


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("startup", [0.0, 7.0, 30.0])
def test_the_inlined_loop_matches_the_general_one(seed: int, startup: float) -> None:
    arrivals, durations = _work(seed, 300)
    units = np.ones(len(arrivals), dtype=np.int64)
    delay = 5.0 if seed % 3 == 0 else 0.0
    fast, slow = (
        Cluster(arrivals, durations, units, 3, startup, signal_delay_seconds=delay)
        for _ in range(2)
    )
    slow.fast = False
    assert fast.fast
    rng = random.Random(seed)
    initial = rng.randrange(0, 4)
    fast.add(initial, 0.0, ready=True)
    slow.add(initial, 0.0, ready=True)
    t = 0.0
    while t < 400:
        for c in (fast, slow):
            c.advance(t)
            # the signals count arrivals from this instead of searching the trace
            assert c.next_arrival == bisect_right(c.arr, t)
        assert _state(fast, t) == _state(slow, t)
        assert fast.capacity() == _by_hand(fast) == slow.capacity() == _by_hand(slow)
        if rng.random() < 0.3:  # scale up and down, draining busy replicas on the way
            desired = rng.randrange(0, 9)
            fast.scale(desired, t)
            slow.scale(desired, t)
            assert _state(fast, t) == _state(slow, t)
            assert fast.capacity() == _by_hand(fast) == slow.capacity() == _by_hand(slow)
        t += rng.choice([0.5, 1.0, 2.5])
    for c in (fast, slow):
        c.scale(8, t)
        c.advance(t + 1000)
    assert _state(fast, t + 1000) == _state(slow, t + 1000)
    assert not any(math.isnan(s) for s in fast.start)


def test_capacity_counts_a_replica_ready_before_its_start_is_processed() -> None:
    # startup 0: a replica added by scale is ready at once, before any advance has seen it
    c = Cluster(np.array([5.0]), np.array([1.0]), np.array([1]), 2, 0.0)
    c.add(1, 0.0, ready=True)
    c.scale(3, 0.0)
    assert c.capacity() == Capacity(3, 3, 0) == _by_hand(c)
    c.advance(1.0)
    assert c.capacity() == Capacity(3, 3, 0) == _by_hand(c)
    c.scale(1, 1.0)
    assert c.capacity() == Capacity(1, 1, 0) == _by_hand(c)


def test_cluster_signals_read_each_signal_or_none() -> None:
    c = Cluster(np.array([0.0, 0.0, 0.0]), np.array([10.0] * 3), np.array([1] * 3), 2, 0.0)
    c.add(1, 0.0, ready=True)
    c.advance(1.0)
    names = ("queue", "in_flight", "service_seconds", "arrival_rate", "tokens")
    asked = [SignalRequest("p", name, None) for name in names]
    read = ClusterSignals(c).read(asked, 1.0)
    assert read == {
        ("p", "queue"): Reading(1.0, 1.0),
        ("p", "in_flight"): Reading(2.0, 1.0),
        ("p", "service_seconds"): Reading(None, 1.0),
        ("p", "arrival_rate"): Reading(3.0, 1.0),
        ("p", "tokens"): Reading(None, 1.0),
    }


def test_signal_keys_follow_a_changed_request_list() -> None:
    c = Cluster(np.array([0.0, 0.0]), np.array([10.0, 10.0]), np.array([1, 1]), 2, 0.0)
    c.add(1, 0.0, ready=True)
    c.advance(1.0)
    source = ClusterSignals(c)
    asked = [SignalRequest("p", "queue", None)]
    assert source.read(asked, 1.0) == {("p", "queue"): Reading(0.0, 1.0)}
    asked.append(SignalRequest("p", "in_flight", None))  # same list, one more request
    assert source.read(asked, 1.0) == {
        ("p", "queue"): Reading(0.0, 1.0),
        ("p", "in_flight"): Reading(2.0, 1.0),
    }
    other = [SignalRequest("q", "tokens", None), SignalRequest("q", "in_flight", None)]
    assert source.read(other, 1.0) == {  # another list of the same length
        ("q", "tokens"): Reading(None, 1.0),
        ("q", "in_flight"): Reading(2.0, 1.0),
    }
