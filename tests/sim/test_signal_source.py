"""The simulator's signal source reads the cluster as production reads its own signals."""

from __future__ import annotations

import numpy as np

from autoscaler.signals.base import SignalRequest
from autoscaler.sim.cluster import Cluster
from autoscaler.sim.signal_source import ClusterSignals
from autoscaler.types import Reading


def busy_cluster() -> Cluster:
    """Three 10 s requests at t=0 on one replica of 2 slots, seen at t=1: one waits."""
    c = Cluster(np.array([0.0, 0.0, 0.0]), np.array([10.0] * 3), np.array([1] * 3), 2, 0.0)
    c.add(1, 0.0, ready=True)
    c.advance(1.0)
    return c


def asked(pool: str, *names: str) -> list[SignalRequest]:
    return [SignalRequest(pool, name, None) for name in names]


def test_each_signal_reads_its_value_or_none_when_the_simulator_has_none() -> None:
    names = ("queue", "in_flight", "service_seconds", "arrival_rate", "tokens")
    read = ClusterSignals(busy_cluster()).read(asked("p", *names), 1.0)
    assert read == {
        ("p", "queue"): Reading(1.0, 1.0),
        ("p", "in_flight"): Reading(2.0, 1.0),
        ("p", "service_seconds"): Reading(None, 1.0),  # nothing completed yet
        ("p", "arrival_rate"): Reading(3.0, 1.0),
        ("p", "tokens"): Reading(None, 1.0),  # not a simulated signal
    }


def test_another_request_list_at_the_same_time_reads_the_same_measurement() -> None:
    source = ClusterSignals(busy_cluster())
    requests = asked("p", "queue")
    assert source.read(requests, 1.0) == {("p", "queue"): Reading(1.0, 1.0)}
    requests.append(SignalRequest("p", "in_flight", None))  # the same list, grown
    assert source.read(requests, 1.0) == {
        ("p", "queue"): Reading(1.0, 1.0),
        ("p", "in_flight"): Reading(2.0, 1.0),
    }
    assert source.read(asked("q", "tokens", "in_flight"), 1.0) == {
        ("q", "tokens"): Reading(None, 1.0),
        ("q", "in_flight"): Reading(2.0, 1.0),
    }
    assert source.read_names == {"queue", "in_flight", "tokens"}


def test_busy_replicas_is_measured_once_a_policy_asks_for_it() -> None:
    c = busy_cluster()
    source = ClusterSignals(c)
    source.read(asked("p", "queue"), 1.0)
    assert not c.measure_busy
    assert source.read(asked("p", "busy_replicas"), 2.0) == {
        ("p", "busy_replicas"): Reading(1.0, 2.0)
    }
