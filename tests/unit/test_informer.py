"""The informer's recovery, with a scripted API: a watch too old to resume lists again, a
broken watch makes the cache refuse reads until a list succeeds, and the label index
answers `pods_of` exactly as testing every pod would."""

from __future__ import annotations

import json
import threading
from types import SimpleNamespace as NS
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kubernetes import client as k

from autoscaler.clients.kube import Raw
from autoscaler.errors import ProviderError
from autoscaler.clients.kube_informer import Informer
from autoscaler.clients.kube_snapshot import Snapshot, selector_matches
from tests.cluster.wait import wait_for


def obj(name: str, replicas: int, version: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "resourceVersion": version,
                         "managedFields": [{"manager": "kubectl"}]},
            "spec": {"replicas": replicas}}  # fmt: skip


class Watch:
    """A watch response: its events, then (unless `hold`) the end of the stream."""

    def __init__(self, events: list[dict[str, Any]], hold: threading.Event | None = None):
        self.events, self.hold = events, hold

    def stream(self, amt: Any = None, decode_content: bool = False) -> Any:
        body = b"".join(json.dumps(e).encode() + b"\n" for e in self.events)
        yield body[:7]  # events split across chunks, as the network splits them
        yield body[7:]
        if self.hold is not None:
            self.hold.wait(10)

    def release_conn(self) -> None:
        pass

    def close(self) -> None:
        if self.hold is not None:
            self.hold.set()


class ScriptedApi:
    """Answers list and watch calls from a script: each entry a list body (dict), a Watch,
    or an exception to raise. When the script runs out, watches block until stopped."""

    def __init__(self, *script: Any) -> None:
        self.script = list(script)
        self.calls: list[str] = []
        self.idle = threading.Event()

    def __call__(self, namespace: str, watch: bool = False, **kwargs: Any) -> Any:
        self.calls.append("watch" if watch else "list")
        if not self.script:
            return Watch([], hold=self.idle)
        step = self.script.pop(0)
        if isinstance(step, Exception):
            raise step
        if isinstance(step, dict):
            assert not watch, f"the script expected a list here, got a watch: {self.calls}"
            return NS(data=json.dumps(step).encode())
        assert watch, f"the script expected a watch here, got a list: {self.calls}"
        return step


def listing(version: str, *items: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"resourceVersion": version}, "items": list(items)}


def test_a_watch_too_old_to_resume_lists_again_and_carries_on() -> None:
    api = ScriptedApi(
        listing("10", obj("a", 1, "10")),
        Watch([{"type": "MODIFIED", "object": obj("a", 2, "11")},
               {"type": "ERROR", "object": {"code": 410, "message": "too old"}}]),
        listing("20", obj("a", 5, "20"), obj("b", 1, "19")),
        Watch([{"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "25"}}},
               {"type": "DELETED", "object": obj("b", 1, "26")}]),
    )  # fmt: skip
    informer = Informer(api, "ns", "Deployments in namespace ns").start()
    try:
        wait_for(
            lambda: api.calls[-1:] == ["watch"] and not api.script,
            timeout=5,
            what="the script to play out",
        )
        wait_for(lambda: set(informer.items(wait=1)) == {"a"}, timeout=5, what="b deleted")
        assert informer.items(wait=1)["a"].spec.replicas == 5
        assert informer.lists == 2 and api.calls[:4] == ["list", "watch", "list", "watch"]
        assert informer.items(wait=1)["a"].metadata.managed_fields is None
    finally:
        informer.stop()


def test_a_broken_watch_refuses_reads_until_a_list_succeeds() -> None:
    api = ScriptedApi(
        listing("1", obj("a", 1, "1")),
        Watch([{"type": "MODIFIED", "object": obj("a", 2, "2")}]),
        ConnectionError("connection reset by peer"),  # the next watch fails to open
        ConnectionError("connection refused"),  # and the list after it
    )
    informer = Informer(api, "ns", "Deployments in namespace ns", backoff=(0.05, 0.1))
    informer.start()
    try:
        wait_for(lambda: informer.error is not None, timeout=5, what="the watch to break")
        with pytest.raises(ProviderError) as raised:
            informer.items(wait=1)
        assert "Deployments in namespace ns" in str(raised.value)
        assert "hold until a new list succeeds" in str(raised.value)
        # With the script spent, lists keep failing (a watch answer has no body): the
        # informer retries until one succeeds.
        api.script.append(listing("5", obj("a", 3, "5")))
        wait_for(lambda: informer.error is None, timeout=5, what="a list to succeed")
        assert informer.items(wait=1)["a"].spec.replicas == 3
    finally:
        informer.stop()


def test_a_cache_not_listed_in_time_is_an_error_not_an_empty_namespace() -> None:
    never = threading.Event()

    def slow(namespace: str, **kwargs: Any) -> Any:
        never.wait(5)
        raise ConnectionError("gave up")

    informer = Informer(slow, "ns", "Pods in namespace ns").start()
    try:
        with pytest.raises(ProviderError, match=r"not listed within 0\.2s"):
            informer.items(wait=0.2)
    finally:
        never.set()
        informer.stop()


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
