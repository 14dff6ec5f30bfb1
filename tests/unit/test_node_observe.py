"""The observe step's reading (observe.py): pending pods, requests, workload and Nodes read
from API objects into plain values; and our instances' states from those values."""

from __future__ import annotations

from typing import Any

from kubernetes import client as k

from autoscaler.clients.kube import Labels
from autoscaler.nodes.binpack import Resources
from autoscaler.nodes.catalog import GIB
from autoscaler.nodes.inventory import OurInstance, classify, instance_id
from autoscaler.nodes.observe import (
    forbids_disruption,
    is_unschedulable,
    is_workload,
    node_view,
    pod_view,
    pod_views,
)
from autoscaler.nodes.pending import PendingPod, group
from autoscaler.nodes.plan import pending_gpu_pods

LABELS = Labels("me", "example.io")


def gpu_pending(pods: list[Any], namespaces: list[str] | None = None) -> list[PendingPod]:
    """The pending GPU pods among `pods`, as the observe step reads and the plan keeps them."""
    return pending_gpu_pods(pod_views(pods, set(), LABELS), namespaces or ())


def container(requests: dict[str, str], limits: dict[str, str] | None = None) -> Any:
    return k.V1Container(
        name="c", resources=k.V1ResourceRequirements(requests=requests, limits=limits)
    )


def pod(
    name: str = "p",
    containers: list[Any] | None = None,
    *,
    reason: str = "Unschedulable",
    namespace: str = "ns",
    init: list[Any] | None = None,
    selector: dict[str, str] | None = None,
    tolerations: list[Any] | None = None,
    annotations: dict[str, str] | None = None,
    owner_kind: str | None = None,
    node: str | None = None,
    phase: str = "Pending",
) -> Any:
    owners = (
        [k.V1OwnerReference(api_version="apps/v1", kind=owner_kind, name="o", uid="u")]
        if owner_kind
        else None
    )
    return k.V1Pod(
        metadata=k.V1ObjectMeta(
            name=name,
            namespace=namespace,
            annotations=annotations,
            owner_references=owners,
        ),
        spec=k.V1PodSpec(
            containers=containers or [container({"cpu": "1"}, {"nvidia.com/gpu": "1"})],
            init_containers=init,
            node_selector=selector,
            tolerations=tolerations,
            node_name=node,
        ),
        status=k.V1PodStatus(
            phase=phase,
            conditions=[k.V1PodCondition(type="PodScheduled", status="False", reason=reason)],
        ),
    )


def test_only_unschedulable_gpu_pods_in_the_namespaces_count() -> None:
    pods = [
        pod("gpu"),
        pod("cpu-only", [container({"cpu": "1"})]),
        pod("not-tried", reason="SchedulingGated"),
        pod("elsewhere", namespace="other"),
    ]
    assert [p.name for p in gpu_pending(pods, ["ns"])] == ["ns/gpu"]
    assert len(gpu_pending(pods)) == 2
    assert not is_unschedulable(pod("bound", node="n1"))


def test_requests_sum_containers_take_limits_alone_and_respect_init_containers() -> None:
    containers = [
        container({"cpu": "500m", "memory": "1Gi"}, {"nvidia.com/gpu": "2"}),
        container({"cpu": "1500m", "memory": "3Gi"}),
    ]
    init = [container({"cpu": "4", "memory": "1Gi"})]
    (found,) = gpu_pending([pod("p", containers, init=init)])
    assert found.demand == Resources(2, 4000, 4 * GIB)


def test_selectors_and_taints_decide_which_types_a_group_may_use() -> None:
    gpu_taint = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}
    shapes = {
        "g6.xlarge": ({"node.kubernetes.io/instance-type": "g6.xlarge", "pool": "a"}, []),
        "g5.xlarge": ({"node.kubernetes.io/instance-type": "g5.xlarge", "pool": "a"}, [gpu_taint]),
    }
    tolerant = [k.V1Toleration(key="nvidia.com/gpu", operator="Exists", effect="NoSchedule")]
    pods = gpu_pending(
        [
            pod("any", selector={"pool": "a"}, tolerations=tolerant),
            pod("intolerant", selector={"pool": "a"}),
            pod("pinned", selector={"node.kubernetes.io/instance-type": "g5.xlarge"}),
            pod("lost", selector={"pool": "b"}),
        ]
    )
    groups, refused = group(pods, shapes)
    types = {g.pods[0]: g.types for g in groups}
    assert types["ns/any"] == {"g6.xlarge", "g5.xlarge"}
    assert types["ns/intolerant"] == {"g6.xlarge"}
    assert "ns/pinned" in refused and "taint" in refused["ns/pinned"]
    assert "pool=b" in refused["ns/lost"] and "nodes.labels" in refused["ns/lost"]


def test_identical_pods_share_one_group() -> None:
    groups, _ = group(gpu_pending([pod(f"p{i}") for i in range(5)]), {"g6.xlarge": ({}, [])})
    assert len(groups) == 1 and len(groups[0].pods) == 5


def test_daemonset_mirror_and_finished_pods_are_not_workload() -> None:
    assert is_workload(pod("web", phase="Running"))
    assert not is_workload(pod("ds", owner_kind="DaemonSet", phase="Running"))
    assert not is_workload(
        pod("static", annotations={"kubernetes.io/config.mirror": "x"}, phase="Running")
    )
    assert not is_workload(pod("done", phase="Succeeded"))


def test_do_not_disrupt_is_read_from_our_prefix_only() -> None:
    assert forbids_disruption(pod(annotations={"example.io/do-not-disrupt": "true"}), LABELS)
    assert not forbids_disruption(pod(annotations={"other.io/do-not-disrupt": "true"}), LABELS)
    assert not forbids_disruption(pod(annotations={"example.io/do-not-disrupt": "no"}), LABELS)


def test_provider_ids_name_instances_and_nothing_else() -> None:
    assert instance_id("aws:///us-east-1a/i-0abc") == "i-0abc"
    assert instance_id("aws:///us-east-1a/") is None
    assert instance_id("gce://project/zone/i-0abc") is None
    assert instance_id(None) is None


def node(name: str, provider: str, gpus: str | None, ready: bool = True, taint: str = "") -> Any:
    alloc = {"cpu": "4", "memory": "16Gi", **({"nvidia.com/gpu": gpus} if gpus else {})}
    return k.V1Node(
        metadata=k.V1ObjectMeta(name=name),
        spec=k.V1NodeSpec(
            provider_id=provider,
            taints=[k.V1Taint(key=taint, effect="NoSchedule")] if taint else None,
        ),
        status=k.V1NodeStatus(
            allocatable=alloc,
            conditions=[k.V1NodeCondition(type="Ready", status="True" if ready else "False")],
        ),
    )


def test_a_node_counts_as_ready_only_with_its_gpus_and_foreign_nodes_not_at_all() -> None:
    ours = [OurInstance(f"i-{n}", "g6.xlarge", True, 0.0) for n in range(5)]
    seen = [
        node("n0", "aws:///z/i-0", "1"),
        node("n1", "aws:///z/i-1", None),  # the device plugin has not reported yet
        node("n2", "aws:///z/i-2", "1", ready=False),
        node("n3", "aws:///z/i-3", "1", taint="mine/disrupting"),
        node("foreign", "aws:///z/i-9", "1"),
    ]
    views = [node_view(n, "mine/disrupting") for n in seen]
    bound = [pod("busy", node="n0", phase="Running"), pod("far", node="foreign", phase="Running")]
    tracked = classify(ours, views, [pod_view(p, LABELS) for p in bound])
    states = {t.instance.id: t.state for t in tracked}
    assert states == {
        "i-0": "ready",
        "i-1": "in-flight",
        "i-2": "in-flight",
        "i-3": "draining",
        "i-4": "in-flight",
    }
    assert [p.name for p in tracked[0].pods] == ["ns/busy"]
    assert all(t.node is None or t.node.name != "foreign" for t in tracked)


def test_a_node_view_keeps_allocatable_labels_taints_and_our_cordon() -> None:
    view = node_view(node("n3", "aws:///z/i-3", "2", taint="mine/disrupting"), "mine/disrupting")
    assert view.instance_id == "i-3" and view.ready and view.cordoned_by_us
    assert view.allocatable == Resources(2, 4000, 16 * GIB)
    assert view.taints == ({"key": "mine/disrupting", "value": "", "effect": "NoSchedule"},)


def test_only_pods_pending_or_bound_to_our_nodes_are_read() -> None:
    pods = [
        pod("waiting"),
        pod("ours", node="n0", phase="Running"),
        pod("elsewhere", node="foreign", phase="Running"),
    ]
    assert [v.name for v in pod_views(pods, {"n0"}, LABELS)] == ["ns/waiting", "ns/ours"]
