"""Fake (kwok) nodes behave like real ones where the tests rely on it: labels, capacity and
taints reach the scheduler, and kwok keeps renewing each node's Lease, so nodes do not turn
NotReady (and their pods un-Ready) after the node lifecycle controller's grace period."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from kubernetes import client as k

from tests.cluster import nodes
from tests.cluster.wait import wait_for

pytestmark = pytest.mark.kube


def pod(name: str, node: str, tolerate: bool) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "nodeSelector": {"kubernetes.io/hostname": node},
        "terminationGracePeriodSeconds": 0,
        "containers": [
            {
                "name": "main",
                "image": "registry.k8s.io/pause:3.10",
                "resources": {"limits": {nodes.GPU_RESOURCE: "1"}},
            }
        ],
    }
    if tolerate:
        spec["tolerations"] = [{"key": nodes.GPU_RESOURCE, "operator": "Exists"}]
    return {"metadata": {"name": name}, "spec": spec}


def test_a_fake_gpu_node_carries_its_labels_capacity_and_taint_to_the_scheduler(
    kwok_cluster: Any, core_v1: Any, kube_namespace: str
) -> None:
    name = f"fake-{uuid.uuid4().hex[:8]}"
    nodes.create_fake_node(
        core_v1,
        name,
        cpu="4",
        memory="16Gi",
        gpus=1,
        instance_type="g6.xlarge",
        zone="us-east-1c",
        gpu_product="NVIDIA-L4",
        taints=[nodes.GPU_TAINT],
    )
    try:
        node = nodes.wait_node_ready(core_v1, name, timeout=30)
        assert node.metadata.labels[nodes.LABEL_INSTANCE_TYPE] == "g6.xlarge"
        assert node.metadata.labels[nodes.LABEL_ZONE] == "us-east-1c"
        assert node.metadata.labels[nodes.LABEL_GPU_PRODUCT] == "NVIDIA-L4"
        assert node.status.allocatable[nodes.GPU_RESOURCE] == "1"
        assert node.spec.taints[0].key == nodes.GPU_RESOURCE

        ns = kube_namespace
        core_v1.create_namespaced_pod(ns, pod("untolerated", name, tolerate=False))
        core_v1.create_namespaced_pod(ns, pod("tolerated", name, tolerate=True))

        def phase(p: str) -> str:
            return str(core_v1.read_namespaced_pod(p, ns).status.phase)

        wait_for(lambda: phase("tolerated") == "Running", timeout=60, what="tolerated pod Running")
        blocked = core_v1.read_namespaced_pod("untolerated", ns)
        assert blocked.status.phase == "Pending"
        assert any(
            c.type == "PodScheduled" and c.reason == "Unschedulable"
            for c in blocked.status.conditions or []
        ), blocked.status
    finally:
        core_v1.delete_collection_namespaced_pod(kube_namespace, grace_period_seconds=0)
        nodes.delete_node(core_v1, name)


def test_kwok_keeps_renewing_the_lease_of_a_fake_node(
    kwok_cluster: Any, kube_api: Any, core_v1: Any
) -> None:
    name = f"fake-{uuid.uuid4().hex[:8]}"
    leases = k.CoordinationV1Api(kube_api)
    nodes.create_fake_node(core_v1, name)
    try:
        nodes.wait_node_ready(core_v1, name, timeout=30)

        def renew_time() -> Any:
            try:
                lease = leases.read_namespaced_lease(name, "kube-node-lease")
                return lease.spec.renew_time if lease.spec else None
            except k.exceptions.ApiException as e:
                if e.status == 404:
                    return None
                raise

        first = wait_for(renew_time, timeout=30, what=f"kwok's lease for node {name}")
        wait_for(
            lambda: (renewed := renew_time()) is not None and renewed > first,
            timeout=30,
            what=f"kwok to renew the lease of node {name}",
        )
        assert nodes.node_ready(core_v1, name)
    finally:
        nodes.delete_node(core_v1, name)
