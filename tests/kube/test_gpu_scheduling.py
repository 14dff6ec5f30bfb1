"""GPU pods against the real scheduler: Pending without GPU nodes, Running once fake GPU nodes
join, and a Deployment's pod count following its scale subresource (needs kwok)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from tests.cluster import nodes
from tests.cluster.wait import wait_for

pytestmark = pytest.mark.kube

GPU_TOLERATION = {
    "key": nodes.GPU_RESOURCE,
    "operator": "Equal",
    "value": "present",
    "effect": "NoSchedule",
}


def gpu_deployment(name: str, pool: str, replicas: int) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "nodeSelector": {
                        nodes.LABEL_GPU_PRESENT: "true",
                        "autoscaler-test/pool": pool,
                    },
                    "tolerations": [GPU_TOLERATION],
                    "terminationGracePeriodSeconds": 0,
                    "containers": [
                        {
                            "name": "model",
                            "image": "registry.k8s.io/pause:3.10",
                            "resources": {
                                "requests": {"cpu": "1", "memory": "1Gi"},
                                "limits": {nodes.GPU_RESOURCE: "1"},
                            },
                        }
                    ],
                },
            },
        },
    }


def live_pods(core_v1: Any, ns: str, app: str) -> list[Any]:
    pods = core_v1.list_namespaced_pod(ns, label_selector=f"app={app}").items
    return [p for p in pods if p.metadata.deletion_timestamp is None]


def unschedulable(pod: Any) -> bool:
    for cond in pod.status.conditions or []:
        if cond.type == "PodScheduled":
            return bool(cond.status == "False" and cond.reason == "Unschedulable")
    return False


def running_ready(pod: Any) -> bool:
    if pod.status.phase != "Running" or not pod.spec.node_name:
        return False
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


def summary(pods: list[Any]) -> str:
    return (
        ", ".join(f"{p.metadata.name}:{p.status.phase}@{p.spec.node_name or '-'}" for p in pods)
        or "no pods"
    )


def wait_pods(
    core_v1: Any, ns: str, app: str, ok: Callable[[list[Any]], bool], *, timeout: float, what: str
) -> list[Any]:
    """Wait until the live pods of app satisfy ok; return them."""

    def check() -> list[Any] | None:
        pods = live_pods(core_v1, ns, app)
        return pods if ok(pods) else None

    found = wait_for(
        check, timeout=timeout, what=what, describe=lambda: summary(live_pods(core_v1, ns, app))
    )
    assert found is not None  # wait_for returns only a truthy result
    return found


def test_gpu_pods_stay_pending_without_gpu_nodes_and_run_once_two_8_gpu_nodes_join(
    kwok_cluster: Any, core_v1: Any, apps_v1: Any, kube_namespace: str
) -> None:
    ns = kube_namespace
    pool = ns  # a pool label unique to this test, so no other node can satisfy the selector
    app = "llm"
    node_names = [f"{ns}-gpu-{i}" for i in range(2)]
    apps_v1.create_namespaced_deployment(ns, gpu_deployment(app, pool, replicas=10))
    try:
        # 1. No GPU node: the scheduler reports every pod Unschedulable.
        pending = wait_pods(
            core_v1,
            ns,
            app,
            lambda ps: len(ps) == 10 and all(map(unschedulable, ps)),
            timeout=60,
            what="10 pods marked Unschedulable by the scheduler",
        )
        message = next(c.message for c in pending[0].status.conditions if c.type == "PodScheduled")
        assert "node(s) didn't match" in message or "Insufficient" in message, message

        # 2. Two 8-GPU nodes join: all 10 pods are bound and kwok reports them Running/Ready.
        for name in node_names:
            nodes.create_fake_node(
                core_v1,
                name,
                cpu="96",
                memory="1152Gi",
                gpus=8,
                instance_type="p4d.24xlarge",
                zone="us-east-1a",
                gpu_product="NVIDIA-A100-SXM4-40GB",
                labels={"autoscaler-test/pool": pool},
                taints=[nodes.GPU_TAINT],
            )
        for name in node_names:
            nodes.wait_node_ready(core_v1, name, timeout=30)
        running = wait_pods(
            core_v1,
            ns,
            app,
            lambda ps: len(ps) == 10 and all(map(running_ready, ps)),
            timeout=90,
            what="10 pods Running and Ready on the GPU nodes",
        )
        per_node: dict[str, int] = {}
        for pod in running:
            per_node[pod.spec.node_name] = per_node.get(pod.spec.node_name, 0) + 1
        assert set(per_node) <= set(node_names), per_node
        assert all(count <= 8 for count in per_node.values()), per_node

        # 3. The scale subresource drives the pod count, down ...
        apps_v1.patch_namespaced_deployment_scale(app, ns, {"spec": {"replicas": 4}})
        assert apps_v1.read_namespaced_deployment_scale(app, ns).spec.replicas == 4
        wait_pods(
            core_v1,
            ns,
            app,
            lambda ps: len(ps) == 4 and all(map(running_ready, ps)),
            timeout=60,
            what="4 running pods after scaling to 4",
        )
        # ... and up past the 16 GPUs there are: 16 run, the 17th is Unschedulable.
        apps_v1.patch_namespaced_deployment_scale(app, ns, {"spec": {"replicas": 17}})

        wait_pods(
            core_v1,
            ns,
            app,
            lambda ps: (
                len(ps) == 17
                and sum(map(running_ready, ps)) == 16
                and sum(map(unschedulable, ps)) == 1
            ),
            timeout=90,
            what="16 pods running (all GPUs used) and 1 Unschedulable after scaling to 17",
        )

        # The Deployment's status (and so the scale subresource's) catches up asynchronously.
        def scale_reports_17() -> Any:
            scale = apps_v1.read_namespaced_deployment_scale(app, ns)
            return scale if scale.status.replicas == 17 else None

        scale = wait_for(
            scale_reports_17, timeout=30, what="the scale subresource to report 17 replicas"
        )
        assert scale.spec.replicas == 17
    finally:
        # Pods first (kwok finishes their deletion), then the nodes they ran on.
        try:
            apps_v1.delete_namespaced_deployment(app, ns, propagation_policy="Foreground")
        except ApiException as e:
            if e.status != 404:
                raise
        try:
            wait_for(
                lambda: not core_v1.list_namespaced_pod(ns, label_selector=f"app={app}").items,
                timeout=30,
                what="the deployment's pods to be deleted",
            )
        finally:
            for name in node_names:
                nodes.delete_node(core_v1, name)
