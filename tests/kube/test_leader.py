"""Leader election on a real coordination.k8s.io/v1 Lease: two candidates, exactly one leads;
a leader that releases hands over at once; a leader that dies (stops renewing, no release)
is replaced within the lease duration; a leader that loses its Lease stops acting."""

from __future__ import annotations

import time
from typing import Any

import pytest
from kubernetes import client as k

from autoscaler.kube.leader import LeaderElector

LEASE = 3.0  # seconds; short so the takeover tests stay quick
RETRY = 0.25


def elector(api: Any, namespace: str, identity: str) -> LeaderElector:
    return LeaderElector(
        api, "autoscaler", namespace, identity, lease_duration=LEASE, renew_deadline=2.0,
        retry_period=RETRY,
    )  # fmt: skip


def campaign(electors: list[LeaderElector], seconds: float) -> list[tuple[float, set[str]]]:
    """Step every elector each retry period (as their threads would) for `seconds`; the
    leaders seen after each round, with when."""
    seen: list[tuple[float, set[str]]] = []
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        for e in electors:
            e.step()
        seen.append(
            (time.monotonic() - start, {e.identity for e in electors if e.is_leader.is_set()})
        )
        time.sleep(RETRY)
    return seen


def holder(api: Any, namespace: str) -> k.V1LeaseSpec:
    return k.CoordinationV1Api(api).read_namespaced_lease("autoscaler", namespace).spec


def first_time(seen: list[tuple[float, set[str]]], leaders: set[str]) -> float:
    for at, who in seen:
        if who == leaders:
            return at
    pytest.fail(f"never led by {leaders}: {seen[-5:]}")


def test_two_candidates_never_lead_at_once(kube_api, kube_namespace):
    a, b = elector(kube_api, kube_namespace, "a"), elector(kube_api, kube_namespace, "b")
    seen = campaign([a, b], 2 * LEASE)
    assert all(len(who) <= 1 for _, who in seen), seen
    assert seen[-1][1] == {"a"}  # the first to ask got it and keeps renewing
    assert all(who == {"a"} for _, who in seen)
    spec = holder(kube_api, kube_namespace)
    assert spec.holder_identity == "a"
    assert spec.lease_duration_seconds == int(LEASE)


def test_a_released_lease_is_taken_over_at_once(kube_api, kube_namespace):
    a, b = elector(kube_api, kube_namespace, "a"), elector(kube_api, kube_namespace, "b")
    campaign([a, b], 1.0)
    assert a.is_leader.is_set() and not b.is_leader.is_set()
    a.release()
    assert not a.is_leader.is_set()
    assert holder(kube_api, kube_namespace).holder_identity in (None, "")
    seen = campaign([b], 2.0)
    assert first_time(seen, {"b"}) < 1.0
    spec = holder(kube_api, kube_namespace)
    assert spec.holder_identity == "b"
    assert spec.lease_transitions == 1


def test_a_crashed_leader_is_replaced_within_the_lease_duration(kube_api, kube_namespace):
    a, b = elector(kube_api, kube_namespace, "a"), elector(kube_api, kube_namespace, "b")
    campaign([a, b], 1.0)
    assert a.is_leader.is_set()
    crashed_at = time.monotonic()
    seen = campaign([b], LEASE + 3.0)  # a neither renews nor releases
    took_over = first_time(seen, {"b"})
    # b saw a's last renewal at most one retry before the crash; it waits LEASE from then.
    assert LEASE - 2 * RETRY <= took_over <= LEASE + 4 * RETRY + 0.5, took_over
    assert holder(kube_api, kube_namespace).holder_identity == "b"
    assert time.monotonic() - crashed_at < LEASE + 4.0


def test_a_leader_whose_lease_was_taken_stops_acting(kube_api, kube_namespace):
    a, b = elector(kube_api, kube_namespace, "a"), elector(kube_api, kube_namespace, "b")
    campaign([a], 0.5)
    assert a.is_leader.is_set()
    campaign([b], LEASE + 1.0)  # a paused (say, a long GC) while b took over
    assert b.is_leader.is_set()
    a.step()  # a wakes up: it must see b and stop, not fight on
    assert not a.is_leader.is_set()
    assert a.holder == "b"
    assert holder(kube_api, kube_namespace).holder_identity == "b"
    assert not a.leads()


def test_a_leader_that_has_not_renewed_lately_does_not_act(kube_api, kube_namespace):
    now = [0.0]
    a = LeaderElector(
        kube_api, "autoscaler", kube_namespace, "a", lease_duration=LEASE, renew_deadline=2.0,
        retry_period=RETRY, monotonic=lambda: now[0],
    )  # fmt: skip
    a.step()
    assert a.leads()
    now[0] = 2.5  # the process was paused: its campaign thread has not run either
    assert a.is_leader.is_set() and not a.leads()
