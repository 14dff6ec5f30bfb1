"""The fake Kubernetes API behaves as the API server does where callers can tell: a test that
uses it can only fail for the right reasons if the fake itself is right."""

from __future__ import annotations

import json
import threading

import pytest
from kubernetes import client as k
from kubernetes.client.exceptions import ApiException

from autoscaler.clock import FakeClock
from tests.fakes.kube_api import FakeKube


def pod(name: str, labels: dict[str, str], phase: str = "Running", node: str = "") -> k.V1Pod:
    return k.V1Pod(
        metadata=k.V1ObjectMeta(name=name, namespace="ns", labels=labels),
        spec=k.V1PodSpec(containers=[k.V1Container(name="c")], node_name=node or None),
        status=k.V1PodStatus(phase=phase),
    )


def deployment(name: str = "d", replicas: int = 1) -> dict:
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": "ns"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": "c"}]}}}}  # fmt: skip


def names(listed: k.V1PodList) -> list[str]:
    return [p.metadata.name for p in listed.items]


def test_lists_select_by_labels_and_fields_as_the_server_does() -> None:
    kube = FakeKube()
    kube.add(pod("a", {"app": "x", "tier": "gpu"}), pod("b", {"app": "y"}, phase="Succeeded"),
             pod("c", {"app": "x"}, node="n1"))  # fmt: skip
    listed = kube.core.list_namespaced_pod
    assert names(listed("ns", label_selector="app=x")) == ["a", "c"]
    assert names(listed("ns", label_selector="app in (x, y),!tier")) == ["b", "c"]
    assert names(listed("ns", label_selector="app notin (x),tier")) == []
    assert names(listed("ns", label_selector="tier,app!=y")) == ["a"]
    assert names(listed("ns", field_selector="status.phase!=Succeeded,spec.nodeName=")) == ["a"]
    assert names(kube.core.list_pod_for_all_namespaces(field_selector="spec.nodeName=n1")) == [
        "c"
    ]
    assert names(listed("other")) == []
    with pytest.raises(ApiException) as bad:
        listed("ns", label_selector="app in x")
    assert bad.value.status == 400


def test_lists_page_with_limit_and_continue() -> None:
    kube = FakeKube()
    kube.add(*(pod(f"p{i:02}", {}) for i in range(5)))
    first = kube.core.list_namespaced_pod("ns", limit=2)
    second = kube.core.list_namespaced_pod("ns", limit=2, _continue=first.metadata._continue)
    last = kube.core.list_namespaced_pod("ns", limit=2, _continue=second.metadata._continue)
    assert names(first) + names(second) + names(last) == [f"p{i:02}" for i in range(5)]
    assert last.metadata._continue is None


def test_writes_keep_identity_bump_versions_and_refuse_what_the_server_refuses() -> None:
    kube = FakeKube(FakeClock(0.0))
    kube.add(deployment())
    made = kube.get("Deployment", "d", "ns")["metadata"]
    kube.apps.patch_namespaced_deployment_scale("d", "ns", {"spec": {"replicas": 4}})
    kube.apps.patch_namespaced_deployment_status("d", "ns", {"status": {"readyReplicas": 2},
                                                              "spec": {"replicas": 9}})  # fmt: skip
    now = kube.get("Deployment", "d", "ns")
    assert now["spec"]["replicas"] == 4, "a status write leaves the spec alone"
    assert now["status"] == {"readyReplicas": 2}
    assert now["metadata"]["uid"] == made["uid"]
    assert now["metadata"]["generation"] == made["generation"] + 1  # the spec changed once
    assert int(now["metadata"]["resourceVersion"]) > int(made["resourceVersion"])
    assert kube.apps.read_namespaced_deployment_scale("d", "ns").spec.replicas == 4

    for call, status in [
        (lambda: kube.apps.create_namespaced_deployment("ns", deployment()), 409),
        (lambda: kube.apps.read_namespaced_deployment("gone", "ns"), 404),
        (lambda: kube.apps.delete_namespaced_deployment("gone", "ns"), 404),
        (lambda: kube.core.create_namespaced_pod_eviction("gone", "ns", {}), 404),
        (lambda: kube.add({**deployment("bad"), "spec": {"replicas": 1}}), 422),
    ]:
        with pytest.raises(ApiException) as refused:
            call()
        assert refused.value.status == status
        assert json.loads(refused.value.body)["code"] == status


def test_a_replace_with_a_stale_resource_version_is_a_conflict() -> None:
    kube = FakeKube()
    lease = k.V1Lease(metadata=k.V1ObjectMeta(name="l"), spec=k.V1LeaseSpec(holder_identity="a"))
    kube.coordination.create_namespaced_lease("ns", lease)
    mine = kube.coordination.read_namespaced_lease("l", "ns")
    theirs = kube.coordination.read_namespaced_lease("l", "ns")
    theirs.spec.holder_identity = "b"
    kube.coordination.replace_namespaced_lease("l", "ns", theirs)
    mine.spec.holder_identity = "c"
    with pytest.raises(ApiException) as conflict:
        kube.coordination.replace_namespaced_lease("l", "ns", mine)
    assert conflict.value.status == 409
    assert kube.coordination.read_namespaced_lease("l", "ns").spec.holder_identity == "b"


def test_custom_objects_are_dicts_and_status_patches_merge() -> None:
    kube = FakeKube()
    kube.add({"apiVersion": "example.io/v1", "kind": "Widget",
              "metadata": {"name": "w", "namespace": "ns"}, "spec": {"size": 1}})  # fmt: skip
    args = ("example.io", "v1", "ns", "widgets")
    kube.custom.patch_namespaced_custom_object_status(*args, "w", {"status": {"a": 1, "b": 2}})
    kube.custom.patch_namespaced_custom_object_status(*args, "w", {"status": {"a": None}})
    got = kube.custom.get_namespaced_custom_object(*args, "w")
    assert got["status"] == {"b": 2} and got["spec"] == {"size": 1}
    assert [w["metadata"]["name"] for w in kube.custom.list_namespaced_custom_object(*args)[
        "items"]] == ["w"]  # fmt: skip


def test_a_watch_resumes_after_its_version_and_is_gone_once_compacted() -> None:
    kube = FakeKube()
    kube.add(deployment("a"))
    version = kube.apps.list_namespaced_deployment("ns").metadata.resource_version
    kube.edit("Deployment", "a", {"spec": {"replicas": 2}}, "ns")
    kube.remove("Deployment", "a", "ns")

    def events(**kw: object) -> list[tuple[str, object]]:
        watch = kube.apps.list_namespaced_deployment(
            "ns", watch=True, _preload_content=False, timeout_seconds=0.2, **kw
        )
        body = b"".join(watch.stream())
        return [(e["type"], e["object"].get("code") or e["object"]["metadata"]["name"])
                for e in map(json.loads, body.splitlines())]  # fmt: skip

    assert events(resource_version=version) == [("MODIFIED", "a"), ("DELETED", "a")]
    kube.compact()
    assert events(resource_version=version) == [("ERROR", 410)]


def test_the_views_offer_only_their_real_classs_methods() -> None:
    kube = FakeKube()
    with pytest.raises(AttributeError, match="CoreV1Api has no method 'list_namespaced_job'"):
        kube.core.list_namespaced_job("ns")
    assert kube.batch.list_namespaced_job("ns").items == []


def test_faults_apply_to_the_calls_they_name_and_wear_off() -> None:
    kube = FakeKube(FakeClock(0.0))
    kube.add(pod("a", {}), pod("b", {}))
    kube.inject("create_namespaced_pod_eviction", name="a", error=ConnectionError("x"), times=1)
    kube.inject("list_namespaced_pod", delay=30.0, times=1)
    with pytest.raises(ConnectionError):
        kube.core.create_namespaced_pod_eviction("a", "ns", {})
    kube.core.create_namespaced_pod_eviction("b", "ns", {})  # another pod: no fault
    kube.core.create_namespaced_pod_eviction("a", "ns", {})  # the fault was used up
    assert kube.names("Pod") == []
    kube.core.list_namespaced_pod("ns")
    assert kube.clock.now() == 30.0, "a delay passes on the fake's clock"
    gate = threading.Event()
    kube.inject("*", hold=gate)
    answered = threading.Event()
    threading.Thread(target=lambda: (kube.core.list_node(), answered.set()), daemon=True).start()
    assert not answered.wait(0.1)
    gate.set()
    assert answered.wait(5)
