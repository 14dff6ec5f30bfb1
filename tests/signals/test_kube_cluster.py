"""The Kubernetes reader against a real API server and scheduler (tests/cluster).

The reader loads its credentials from KUBECONFIG as it would outside a cluster. Pods are
pinned to a node label no node has, so they stay Pending and the scheduler marks them
Unschedulable, whatever nodes the cluster has.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from autoscaler.signals.kube import KubePendingReader
from autoscaler.types import Reading
from tests.signals.helpers import req

pytestmark = pytest.mark.kube

NOWHERE = {"autoscaler-test/nowhere": "true"}


def pending_pod(name: str, gpus: int = 0) -> dict[str, Any]:
    resources = {"limits": {"nvidia.com/gpu": str(gpus)}} if gpus else {}
    return {
        "metadata": {"name": name, "labels": {"app": "llm"}},
        "spec": {
            "nodeSelector": NOWHERE,
            "containers": [
                {"name": "c", "image": "registry.k8s.io/pause:3.10", "resources": resources}
            ],
        },
    }


def gpu_job(name: str, completions: int) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": {"queue": "gpu"}},
        "spec": {
            "completions": completions,
            "parallelism": 2,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "nodeSelector": NOWHERE,
                    "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}],
                }
            },
        },
    }


def test_pending_gpu_pods_and_job_backlog_are_read_from_a_real_api_server(
    kube_cluster: Any,
    kube_namespace: str,
    core_v1: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from kubernetes import client as k

    batch_v1 = k.BatchV1Api(core_v1.api_client)
    for name, gpus in (("gpu-a", 1), ("gpu-b", 2), ("cpu", 0)):
        core_v1.create_namespaced_pod(kube_namespace, pending_pod(name, gpus))
    batch_v1.create_namespaced_job(kube_namespace, gpu_job("train", completions=4))

    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(kube_cluster.kubeconfig))
    source = KubePendingReader()
    ns = kube_namespace
    reqs = [
        req("kube-pending-pods", signal="pending", namespace=ns, selector="app=llm"),
        req("kube-pending-pods", signal="gpu", namespace=ns, selector="app=llm", gpu_only=True),
        req("kube-pending-pods", signal="unschedulable", namespace=ns, selector="app=llm",
            unschedulable_only=True),
        req("kube-pending-pods", signal="jobs", namespace=ns, kind="job-backlog",
            selector="queue=gpu"),
        req("kube-pending-pods", signal="other", namespace=ns, selector="app=web"),
    ]  # fmt: skip
    expected = {"pending": 3.0, "gpu": 2.0, "unschedulable": 3.0, "jobs": 4.0, "other": 0.0}

    got: dict[str, Reading] = {}
    deadline = time.monotonic() + 30  # the scheduler marks pods Unschedulable within seconds
    while time.monotonic() < deadline:
        readings = source.read(reqs, now=1.0)
        got = {r.signal: readings[r.key] for r in reqs}
        if {name: reading.value for name, reading in got.items()} == expected:
            break
        time.sleep(0.5)
    assert {name: reading.value for name, reading in got.items()} == expected, got
