"""Helm against the real API server: ``helm install --wait`` of a tiny chart returns once its
pods are Ready, and ``helm uninstall`` removes them."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.binaries import BUILD_HINT
from tests.cluster.session import KubeCluster, in_ci
from tests.cluster.wait import wait_for

pytestmark = pytest.mark.kube

CHART = Path(__file__).parent / "charts" / "tiny"


def helm(cluster: KubeCluster, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert cluster.helm is not None
    env = cluster.tool_env()
    # Keep helm's cache/config/data out of the user's home.
    for var in ("HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME"):
        env[var] = str(home / var.lower())
    return subprocess.run(
        [str(cluster.helm), *args], env=env, capture_output=True, text=True, timeout=180
    )


def test_helm_install_wait_returns_with_the_chart_pods_ready_and_uninstall_removes_them(
    kube_cluster: KubeCluster, core_v1: Any, apps_v1: Any, kube_namespace: str, tmp_path: Path
) -> None:
    if kube_cluster.helm is None:
        message = f"helm is not built and not on PATH; {BUILD_HINT}"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    ns = kube_namespace
    selector = "app.kubernetes.io/instance=tiny"

    done = helm(
        kube_cluster, tmp_path, "install", "tiny", str(CHART),
        "--namespace", ns, "--wait", "--timeout", "120s", "--debug",
    )  # fmt: skip
    assert done.returncode == 0, f"helm install failed:\n{done.stdout}\n{done.stderr}"

    # --wait returned: the release's pods are there and Ready, without any further waiting.
    pods = core_v1.list_namespaced_pod(ns, label_selector=selector).items
    assert len(pods) == 2, [p.metadata.name for p in pods]
    for pod in pods:
        ready = [c for c in pod.status.conditions or [] if c.type == "Ready"]
        assert ready and ready[0].status == "True", (pod.metadata.name, pod.status)
    assert apps_v1.read_namespaced_deployment("tiny-tiny", ns).status.ready_replicas == 2

    listed = helm(kube_cluster, tmp_path, "list", "--namespace", ns, "--short")
    assert listed.stdout.split() == ["tiny"], listed

    done = helm(kube_cluster, tmp_path, "uninstall", "tiny", "--namespace", ns, "--wait")
    assert done.returncode == 0, f"helm uninstall failed:\n{done.stdout}\n{done.stderr}"
    wait_for(
        lambda: not core_v1.list_namespaced_pod(ns, label_selector=selector).items,
        timeout=60,
        what="the release's pods to be gone after helm uninstall",
    )
    assert not apps_v1.list_namespaced_deployment(ns).items
    assert not core_v1.list_namespaced_config_map(ns, label_selector=selector).items
