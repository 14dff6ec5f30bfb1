"""Namespace snapshots: label-selector semantics, one list shared per tick, fresh after writes."""

from __future__ import annotations

import threading
from typing import Any

from kubernetes import client as k

from autoscaler.clients.kube import is_finished_pod, is_terminating, pod_ready, timestamp
from autoscaler.clients.kube_snapshot import Snapshots, selector_matches
from autoscaler.clock import FakeClock
from tests.fakes.kube_api import FakeKube


def sel(labels: dict[str, str] | None = None, *exprs: tuple[str, str, list[str]]) -> Any:
    return k.V1LabelSelector(
        match_labels=labels,
        match_expressions=[
            k.V1LabelSelectorRequirement(key=key, operator=op, values=values or None)
            for key, op, values in exprs
        ]
        or None,
    )


def test_selector_semantics_follow_kubernetes() -> None:
    pod = {"app": "llm", "tier": "gpu"}
    assert selector_matches(sel({"app": "llm"}), pod)
    assert not selector_matches(sel({"app": "llm", "tier": "cpu"}), pod)
    assert selector_matches(sel(None, ("tier", "In", ["gpu", "x"])), pod)
    assert not selector_matches(sel(None, ("tier", "In", ["cpu"])), pod)
    assert not selector_matches(sel(None, ("zone", "In", ["a"])), pod)
    assert selector_matches(sel(None, ("tier", "NotIn", ["cpu"])), pod)
    assert selector_matches(sel(None, ("zone", "NotIn", ["a"])), pod)
    assert not selector_matches(sel(None, ("tier", "NotIn", ["gpu"])), pod)
    assert selector_matches(sel(None, ("app", "Exists", [])), pod)
    assert not selector_matches(sel(None, ("zone", "Exists", [])), pod)
    assert selector_matches(sel(None, ("zone", "DoesNotExist", [])), pod)
    assert not selector_matches(sel(None, ("app", "DoesNotExist", [])), pod)
    assert selector_matches(sel(), pod), "an empty selector matches everything"
    assert not selector_matches(None, pod), "no selector matches nothing"


def namespace_with_one_deployment() -> FakeKube:
    """Namespace ns: Deployment d (2 replicas, 1 ready) with its ready pod a, and pod b of
    another app."""
    kube = FakeKube()
    kube.add(
        {"apiVersion": "apps/v1", "kind": "Deployment",
         "metadata": {"name": "d", "namespace": "ns", "labels": {"o": "me"}},
         "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "d"}},
                  "template": {"metadata": {"labels": {"app": "d"}},
                               "spec": {"containers": [{"name": "c"}]}}},
         "status": {"readyReplicas": 1}},
        {"apiVersion": "v1", "kind": "Pod",
         "metadata": {"name": "a", "namespace": "ns", "labels": {"app": "d"},
                      "creationTimestamp": "2026-11-29T10:00:00Z"},
         "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}},
        {"apiVersion": "v1", "kind": "Pod",
         "metadata": {"name": "b", "namespace": "ns", "labels": {"app": "other"}}},
    )  # fmt: skip
    return kube


def listed(kube: FakeKube) -> list[str]:
    """The lists made so far, as kind/namespace."""
    return [f"{c.method.removeprefix('list_namespaced_')}/{c.args[0]}" for c in kube.calls]


def snapshots(kube: FakeKube, **kw: Any) -> Snapshots:
    return Snapshots(lambda: (kube.apps, kube.core), **kw)


def test_listed_json_reads_like_the_clients_models() -> None:
    kube = namespace_with_one_deployment()
    snap = snapshots(kube).get("ns", "deployment")
    assert all(c.kwargs.get("_preload_content") is False for c in kube.calls), (
        "lists are read as JSON, not built into models"
    )
    d = snap.workload("d")
    assert d.spec.replicas == 2 and d.status.ready_replicas == 1
    assert d.metadata.labels == {"o": "me"} and d.status.missing_field is None
    (pod,) = snap.pods_of(d.spec.selector)
    assert pod_ready(pod) and not is_finished_pod(pod) and not is_terminating(pod)
    assert timestamp(pod.metadata.creation_timestamp) == 1795946400.0


def test_ticks_not_age_decide_freshness_under_a_controller() -> None:
    kube, clock = namespace_with_one_deployment(), FakeClock()
    snaps = snapshots(kube, max_age=0.5, clock=clock.monotonic, watch=False)
    snaps.begin_tick()
    snaps.get("ns", "deployment")
    clock.advance(5.0)  # a slow tick: its later pools still use this tick's list
    snaps.get("ns", "deployment")
    assert listed(kube) == ["deployment/ns", "pod/ns"]
    snaps.begin_tick()
    snaps.get("ns", "deployment")
    assert len(kube.calls) == 4


def test_one_list_serves_every_pool_until_it_ages_or_a_write_drops_it() -> None:
    kube, clock = namespace_with_one_deployment(), FakeClock(100.0)
    snaps = snapshots(kube, max_age=0.5, clock=clock.monotonic)
    threads = [threading.Thread(target=snaps.get, args=("ns", "deployment")) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert listed(kube) == ["deployment/ns", "pod/ns"], "8 concurrent pools, one list"
    snap = snaps.get("ns", "deployment")
    assert snap.workload("d") is not None and snap.workload("x") is None
    assert [p.metadata.name for p in snap.pods_of(sel({"app": "d"}))] == ["a"]

    clock.advance(0.6)  # older than a tick allows: listed again
    snaps.get("ns", "deployment")
    assert len(kube.calls) == 4
    snaps.invalidate("ns", "deployment")  # after a write: listed again at once
    snaps.get("ns", "deployment")
    assert len(kube.calls) == 6
    snaps.get("ns", "statefulset")  # kinds are listed apart (RBAC may allow one only)
    assert listed(kube)[-2:] == ["stateful_set/ns", "pod/ns"]


def test_peek_never_lists_and_a_write_keeps_the_ticks_snapshot_for_other_pools() -> None:
    kube = namespace_with_one_deployment()
    snaps = snapshots(kube, max_age=0.5, clock=FakeClock().monotonic, watch=False)
    assert snaps.peek("ns", "deployment") is None and kube.calls == []
    snaps.get("ns", "deployment")
    snaps.invalidate("ns", "deployment")  # alone: the next read lists again
    assert snaps.peek("ns", "deployment") is None
    snaps.begin_tick()
    snaps.get("ns", "deployment")
    snaps.invalidate("ns", "deployment")  # in a tick: other pools' scale-ups still peek it
    assert snaps.peek("ns", "deployment") is not None
    snaps.begin_tick()
    assert snaps.peek("ns", "deployment") is None, "a new tick: last tick's list is stale"
