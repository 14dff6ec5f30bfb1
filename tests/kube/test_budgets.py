"""Budgets against a real kube-apiserver: two AutoscalingPools of different priority share
the installation's dollars-per-hour budget; the high-priority one gets its capacity, the
other stops at what fits, and its status and Event name the budget."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from kubernetes import client as k

from autoscaler.kube import crd
from tests.kube.test_crd import install_crd, pool_object
from tests.kube.test_process import autoscaler, deployment, events, pool_status, replicas


def budgeted_pool(kube_api: Any, namespace: str, name: str, target: str, priority: int) -> None:
    spec = {
        "target": {"kind": "deployment", "name": target},
        "max": 6,
        "priority": priority,
        "cost_per_hour": 4,
        "signals": {"queue": {"source": {"type": "static", "value": 25}}},
        "policy": {"type": "queue-depth", "target_per_replica": 10},
    }
    k.CustomObjectsApi(kube_api).create_namespaced_custom_object(
        crd.GROUP, crd.VERSION, namespace, crd.PLURAL, pool_object(name, spec)
    )


def test_a_shared_budget_goes_to_the_higher_priority_and_the_reason_reaches_status_and_events(
    kube_cluster, kube_api, apps_v1, core_v1, kube_namespace, tmp_path: Path
):
    ns = kube_namespace
    install_crd(kube_api)
    deployment(apps_v1, ns, "web")
    deployment(apps_v1, ns, "jobs")
    budgeted_pool(kube_api, ns, "serving", "web", priority=10)
    budgeted_pool(kube_api, ns, "batch", "jobs", priority=0)
    settings = tmp_path / "settings.yaml"
    settings.write_text("installation: {id: default, budget: {dollars_per_hour: 20}}\n")
    cmd = autoscaler(kube_cluster.kubeconfig, ns, "--once", "--json", "-c", str(settings))
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr

    # both want 3 at $4 each; $8 in use, $12 left: serving +2, batch the last +1
    tick = json.loads(proc.stdout)
    desired = {d["pool"]: d["desired"] for d in tick["decisions"]}
    assert desired == {"serving": 3, "batch": 2}
    assert (replicas(apps_v1, ns, "web"), replicas(apps_v1, ns, "jobs")) == (3, 2)
    reason = "budget: installation $20/h reached -> 2"
    status = pool_status(kube_api, ns, "batch")
    assert status["desired"] == 2 and status["reason"].endswith(reason)
    scaling = {c["type"]: c for c in status["conditions"]}["Scaling"]
    assert scaling["message"].endswith(reason)
    assert "budget" in json.loads(status["plannerMemory"])  # the day's spend is kept
    [event] = events(core_v1, ns, "jobs")
    assert event.reason == "ScaledUp" and event.message.endswith(reason)
    assert "budget" not in pool_status(kube_api, ns, "serving")["reason"]
