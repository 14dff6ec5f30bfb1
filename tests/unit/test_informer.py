"""The informer's recovery, against the in-memory API (tests/fakes/kube_api.py): a watch too
old to resume lists again, a broken watch makes the cache refuse reads until a list
succeeds, and the label index answers `pods_of` exactly as testing every pod would."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kubernetes import client as k

from autoscaler.clients.kube import Raw
from autoscaler.clients.kube_informer import Informer
from autoscaler.clients.kube_snapshot import Snapshot, selector_matches
from autoscaler.errors import ProviderError
from tests.cluster.wait import wait_for
from tests.fakes.kube_api import FakeKube


def deployment(name: str, replicas: int) -> dict[str, Any]:
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": "ns",
                         "managedFields": [{"manager": "kubectl"}]},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": "c"}]}}}}  # fmt: skip


@contextmanager
def informing(list_call: Any, kube: FakeKube, what: str, **kw: Any) -> Iterator[Informer]:
    informer = Informer(list_call, "ns", what, **kw).start()
    try:
        yield informer
    finally:
        kube.close()  # ends its watch (and any held call), so it stops at once
        informer.stop()


def deployments(kube: FakeKube, **kw: Any) -> Any:
    return informing(kube.apps.list_namespaced_deployment, kube, DEPLOYMENTS, **kw)


def replicas(informer: Informer) -> dict[str, int]:
    return {name: d.spec.replicas for name, d in informer.items(wait=1).items()}


def lists_and_watches(kube: FakeKube) -> list[str]:
    return ["watch" if c.kwargs.get("watch") else "list" for c in kube.calls]


DEPLOYMENTS = "Deployments in namespace ns"


def test_a_watch_too_old_to_resume_lists_again_and_carries_on() -> None:
    kube = FakeKube()
    kube.add(deployment("a", 1))
    with deployments(kube) as informer:
        wait_for(lambda: replicas(informer) == {"a": 1}, timeout=5, what="the first list")
        relist = threading.Event()
        kube.inject("list_namespaced_deployment", watch=False, hold=relist, times=1)
        kube.expire_watches()  # the server: the watch's resourceVersion is too old (410)
        wait_for(lambda: len(kube.calls) == 3, timeout=5, what="the informer to list again")
        assert informer.error is None and replicas(informer) == {"a": 1}, (
            "a 410 is routine: the cache stays readable while the informer lists again"
        )
        kube.edit("Deployment", "a", {"spec": {"replicas": 5}}, "ns")  # no watch open:
        kube.add(deployment("b", 1))  # only the new list can see these
        relist.set()
        wait_for(lambda: replicas(informer) == {"a": 5, "b": 1}, timeout=5, what="the relist")
        kube.remove("Deployment", "b", "ns")
        wait_for(lambda: replicas(informer) == {"a": 5}, timeout=5, what="b's deletion watched")
        assert informer.lists == 2
        assert lists_and_watches(kube) == ["list", "watch", "list", "watch"]
        assert informer.items(wait=1)["a"].metadata.managed_fields is None


def test_a_broken_watch_refuses_reads_until_a_list_succeeds() -> None:
    kube = FakeKube()
    kube.add(deployment("a", 1))
    with deployments(kube, backoff=(0.05, 0.1)) as informer:
        wait_for(lambda: replicas(informer) == {"a": 1}, timeout=5, what="the first list")
        # The API server becomes unreachable: the watch ends, and watches and lists fail.
        kube.inject("list_namespaced_deployment", error=ConnectionError("connection refused"))
        kube.end_watches()
        wait_for(lambda: informer.error is not None, timeout=5, what="the watch to break")
        with pytest.raises(ProviderError) as raised:
            informer.items(wait=1)
        assert DEPLOYMENTS in str(raised.value)
        assert "hold until a new list succeeds" in str(raised.value)
        kube.edit("Deployment", "a", {"spec": {"replicas": 3}}, "ns")
        kube.clear_faults()  # reachable again: the informer's retries list it
        wait_for(lambda: informer.error is None, timeout=5, what="a list to succeed")
        assert replicas(informer) == {"a": 3}


def test_a_cache_not_listed_in_time_is_an_error_not_an_empty_namespace() -> None:
    kube = FakeKube()
    kube.inject("list_namespaced_pod", hold=threading.Event(), error=ConnectionError("gave up"))
    pods = informing(kube.core.list_namespaced_pod, kube, "Pods in namespace ns")
    with pods as informer, pytest.raises(ProviderError, match=r"not listed within 0\.2s"):
        informer.items(wait=0.2)


LABELS = st.dictionaries(st.sampled_from("abc"), st.sampled_from("xy"), max_size=3)


@given(
    pods=st.lists(LABELS, max_size=12),
    match=LABELS,
    exprs=st.lists(
        st.tuples(
            st.sampled_from("abc"),
            st.sampled_from(["In", "NotIn", "Exists", "DoesNotExist"]),
            st.lists(st.sampled_from("xy"), max_size=2),
        ),
        max_size=2,
    ),
)
def test_the_label_index_picks_the_pods_testing_every_pod_would(
    pods: list[dict[str, str]], match: dict[str, str], exprs: list[Any]
) -> None:
    listed = [Raw({"metadata": {"name": f"p{i}", "labels": labels}})
              for i, labels in enumerate(pods)]  # fmt: skip
    selector = k.V1LabelSelector(
        match_labels=match or None,
        match_expressions=[k.V1LabelSelectorRequirement(key=key, operator=op, values=v or None)
                           for key, op, v in exprs] or None,
    )  # fmt: skip
    expected = [p for p in listed if selector_matches(selector, p.metadata.labels)]
    assert Snapshot(0.0, pods=listed).pods_of(selector) == expected
