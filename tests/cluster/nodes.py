"""Fake Nodes for tests: kwok-managed Nodes with a chosen capacity, labels and taints.

A Node carrying the annotation ``kwok.x-k8s.io/node: fake`` is adopted by kwok, which keeps
it Ready (conditions, lease) and marks Pods bound to it Running. The scheduler treats it like
any node, so GPU capacity (``nvidia.com/gpu``), node selectors, affinities and taints all work
as they would on a real cluster. Only containers do not run.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

KWOK_ANNOTATION = "kwok.x-k8s.io/node"
KWOK_SELECTOR = f"{KWOK_ANNOTATION}=fake"
GPU_RESOURCE = "nvidia.com/gpu"

LABEL_INSTANCE_TYPE = "node.kubernetes.io/instance-type"
LABEL_ZONE = "topology.kubernetes.io/zone"
LABEL_REGION = "topology.kubernetes.io/region"
LABEL_GPU_PRODUCT = "nvidia.com/gpu.product"
LABEL_GPU_COUNT = "nvidia.com/gpu.count"
LABEL_GPU_PRESENT = "nvidia.com/gpu.present"


def taint(key: str, value: str = "", effect: str = "NoSchedule") -> dict[str, str]:
    """A taint as the API expects it (effect: NoSchedule, PreferNoSchedule or NoExecute)."""
    t = {"key": key, "effect": effect}
    if value:
        t["value"] = value
    return t


GPU_TAINT = taint(GPU_RESOURCE, "present", "NoSchedule")


def fake_node(
    name: str,
    *,
    cpu: str = "8",
    memory: str = "32Gi",
    gpus: int = 0,
    pods: int = 110,
    ephemeral_storage: str = "100Gi",
    instance_type: str | None = None,
    zone: str | None = None,
    region: str | None = None,
    gpu_product: str | None = None,
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    taints: Iterable[Mapping[str, str]] = (),
    provider_id: str | None = None,
) -> dict[str, Any]:
    """The manifest of a kwok-managed Node (a plain dict, accepted by the Kubernetes client)."""
    capacity = {
        "cpu": cpu,
        "memory": memory,
        "pods": str(pods),
        "ephemeral-storage": ephemeral_storage,
    }
    node_labels = {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "type": "kwok",
    }
    if instance_type:
        node_labels[LABEL_INSTANCE_TYPE] = instance_type
    if zone:
        node_labels[LABEL_ZONE] = zone
    if region:
        node_labels[LABEL_REGION] = region
    if gpus:
        capacity[GPU_RESOURCE] = str(gpus)
        node_labels[LABEL_GPU_PRESENT] = "true"
        node_labels[LABEL_GPU_COUNT] = str(gpus)
    if gpu_product:
        node_labels[LABEL_GPU_PRODUCT] = gpu_product
    node_labels.update(labels or {})
    spec: dict[str, Any] = {}
    taint_list = [dict(t) for t in taints]
    if taint_list:
        spec["taints"] = taint_list
    if provider_id:
        spec["providerID"] = provider_id
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": node_labels,
            "annotations": {KWOK_ANNOTATION: "fake", **(annotations or {})},
        },
        "spec": spec,
        "status": {"capacity": capacity, "allocatable": dict(capacity)},
    }


def create_fake_node(core_v1: Any, name: str, **kwargs: Any) -> Any:
    """Create a kwok-managed Node (see fake_node for the keyword arguments)."""
    return core_v1.create_node(fake_node(name, **kwargs))


def delete_node(core_v1: Any, name: str) -> bool:
    """Delete a Node; False when it did not exist."""
    from kubernetes.client.exceptions import ApiException

    try:
        core_v1.delete_node(name)
        return True
    except ApiException as e:
        if e.status == 404:
            return False
        raise


def node_ready(core_v1: Any, name: str) -> bool:
    """True when the Node exists and its Ready condition is True."""
    from kubernetes.client.exceptions import ApiException

    try:
        node = core_v1.read_node(name)
    except ApiException as e:
        if e.status == 404:
            return False
        raise
    for cond in (node.status and node.status.conditions) or []:
        if cond.type == "Ready":
            return bool(cond.status == "True")
    return False


def wait_node_ready(core_v1: Any, name: str, timeout: float = 30.0) -> Any:
    """Wait until the Node is Ready (kwok marks it so); return it. TimeoutError otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if node_ready(core_v1, name):
            return core_v1.read_node(name)
        time.sleep(0.2)
    raise TimeoutError(
        f"node {name} not Ready after {timeout:.0f}s (is kwok running and managing "
        f"nodes annotated {KWOK_SELECTOR}?)"
    )
