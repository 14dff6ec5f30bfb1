"""Kill -9 cycles of `autoscaler run` on a `deployment` pool against the real API server,
its traffic delayed 0.4 s by a TCP proxy so kills land mid-call: every replica count the
Deployment ever took (a watch) is one a live process wanted, no pod is left over or
orphaned, and the last run converges. `python bench/chaos.py` runs more cycles.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.cluster.session import KubeCluster
from tests.cluster.wait import wait_for

from .driver import run_chaos
from .scenarios import DeploymentChaos

pytestmark = pytest.mark.kube

CYCLES = 8


def test_kill9_cycles_of_a_deployment_pool_write_only_wanted_counts_and_converge(
    kube_cluster: KubeCluster, kube_api: Any, kube_namespace: str, tmp_path: Path
) -> None:
    scenario = DeploymentChaos(
        tmp_path, kube_api=kube_api, kubeconfig=kube_cluster.kubeconfig, namespace=kube_namespace
    )
    result = run_chaos(scenario, CYCLES, seed=19)
    assert result.ok, result.report()
    assert result.doubles == 0 and result.orphans == 0
    assert result.killed_having_acted >= 1, result.report()


def test_the_audit_counts_a_replica_count_no_live_process_wanted(
    kube_cluster: KubeCluster, kube_api: Any, kube_namespace: str, tmp_path: Path
) -> None:
    """Not vacuous: a scale the watch sees with no process alive to want it is a double."""
    from kubernetes import client as k

    scenario = DeploymentChaos(
        tmp_path, kube_api=kube_api, kubeconfig=kube_cluster.kubeconfig, namespace=kube_namespace
    )
    scenario.setup()
    try:
        k.AppsV1Api(kube_api).patch_namespaced_deployment_scale(
            scenario.deployment, kube_namespace, {"spec": {"replicas": 3}}
        )
        wait_for(lambda: len(scenario.writes) == 2, timeout=10, what="the watch to see 3")
        audit = scenario.audit(3)
    finally:
        scenario.teardown()
    assert (audit.launches, audit.doubles) == (3, 1), audit.problems
    assert "replicas set to 3" in audit.problems[0]
