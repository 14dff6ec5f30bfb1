"""Namespace snapshots: label-selector semantics, one list shared per tick, fresh after writes."""

from __future__ import annotations

import json
import threading
from types import SimpleNamespace as NS
from typing import Any

from kubernetes import client as k

from autoscaler.clients.kube import is_finished_pod, is_terminating, pod_ready, timestamp
from autoscaler.kube.snapshot import Snapshots, selector_matches


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


class FakeApi:
    """Counts list calls; answers raw JSON (as `_preload_content=False` gets it): one
    Deployment and two pods."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.lock = threading.Lock()

    def _answer(self, call: str, raw: bool, *items: dict[str, Any]) -> Any:
        assert raw is False, "lists are read as JSON, not built into models"
        with self.lock:
            self.calls.append(call)
        return NS(data=json.dumps({"items": list(items)}).encode())

    def list_namespaced_deployment(self, ns: str, _preload_content: bool = True) -> Any:
        return self._answer(f"deployments/{ns}", _preload_content, {
            "metadata": {"name": "d", "labels": {"o": "me"}},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "d"}}},
            "status": {"readyReplicas": 1},
        })  # fmt: skip

    def list_namespaced_stateful_set(self, ns: str, _preload_content: bool = True) -> Any:
        return self._answer(f"statefulsets/{ns}", _preload_content)

    def list_namespaced_pod(self, ns: str, _preload_content: bool = True) -> Any:
        return self._answer(f"pods/{ns}", _preload_content,
            {"metadata": {"name": "a", "labels": {"app": "d"},
                          "creationTimestamp": "2026-11-29T10:00:00Z"},
             "status": {"phase": "Running",
                        "conditions": [{"type": "Ready", "status": "True"}]}},
            {"metadata": {"name": "b", "labels": {"app": "other"}}},
        )  # fmt: skip


def test_listed_json_reads_like_the_clients_models() -> None:
    api = FakeApi()
    snap = Snapshots(lambda: (api, api)).get("ns", "deployment")
    d = snap.workload("d")
    assert d.spec.replicas == 2 and d.status.ready_replicas == 1
    assert d.metadata.labels == {"o": "me"} and d.status.missing_field is None
    (pod,) = snap.pods_of(d.spec.selector)
    assert pod_ready(pod) and not is_finished_pod(pod) and not is_terminating(pod)
    assert timestamp(pod.metadata.creation_timestamp) == 1795946400.0


def test_ticks_not_age_decide_freshness_under_a_controller() -> None:
    api, now = FakeApi(), [0.0]
    snaps = Snapshots(lambda: (api, api), max_age=0.5, clock=lambda: now[0], watch=False)
    snaps.begin_tick()
    snaps.get("ns", "deployment")
    now[0] += 5.0  # a slow tick: its later pools still use this tick's list
    snaps.get("ns", "deployment")
    assert len(api.calls) == 2
    snaps.begin_tick()
    snaps.get("ns", "deployment")
    assert len(api.calls) == 4


def test_one_list_serves_every_pool_until_it_ages_or_a_write_drops_it() -> None:
    api, now = FakeApi(), [100.0]
    snaps = Snapshots(lambda: (api, api), max_age=0.5, clock=lambda: now[0])
    threads = [threading.Thread(target=snaps.get, args=("ns", "deployment")) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert api.calls == ["deployments/ns", "pods/ns"], "8 concurrent pools, one list"
    snap = snaps.get("ns", "deployment")
    assert snap.workload("d") is not None and snap.workload("x") is None
    assert [p.metadata.name for p in snap.pods_of(sel({"app": "d"}))] == ["a"]

    now[0] += 0.6  # older than a tick allows: listed again
    snaps.get("ns", "deployment")
    assert len(api.calls) == 4
    snaps.invalidate("ns", "deployment")  # after a write: listed again at once
    snaps.get("ns", "deployment")
    assert len(api.calls) == 6
    snaps.get("ns", "statefulset")  # kinds are listed apart (RBAC may allow one only)
    assert api.calls[-2:] == ["statefulsets/ns", "pods/ns"]


def test_peek_never_lists_and_a_write_keeps_the_ticks_snapshot_for_other_pools() -> None:
    api = FakeApi()
    snaps = Snapshots(lambda: (api, api), max_age=0.5, clock=lambda: 0.0, watch=False)
    assert snaps.peek("ns", "deployment") is None and api.calls == []
    snaps.get("ns", "deployment")
    snaps.invalidate("ns", "deployment")  # alone: the next read lists again
    assert snaps.peek("ns", "deployment") is None
    snaps.begin_tick()
    snaps.get("ns", "deployment")
    snaps.invalidate("ns", "deployment")  # in a tick: other pools' scale-ups still peek it
    assert snaps.peek("ns", "deployment") is not None
    snaps.begin_tick()
    assert snaps.peek("ns", "deployment") is None, "a new tick: last tick's list is stale"
