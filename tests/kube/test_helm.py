"""Helm against the real API server, with the project's chart (helm/autoscaler): ``helm
install --wait`` returns once the controller's pods are Ready, and ``helm uninstall`` removes
what the release created, its cluster-wide RBAC included.

The test cluster's kwok nodes mark pods Ready without running them, so nothing here needs
the controller's image. Helm checks the chart's ``kubeVersion`` against the server's, so an
install also shows that the test cluster reports a real version (not v0.0.0).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k

from tests.cluster.session import KubeCluster
from tests.cluster.wait import wait_for
from tests.kube.test_chart import CHART, ok, run_tool

pytestmark = pytest.mark.kube

RELEASE = "ea"
SELECTOR = f"app.kubernetes.io/instance={RELEASE}"


def test_helm_install_wait_returns_with_the_controller_ready_and_uninstall_removes_the_release(
    kube_cluster: KubeCluster,
    core_v1: Any,
    apps_v1: Any,
    rbac_v1: Any,
    kube_namespace: str,
    tmp_path: Path,
) -> None:
    ns, env = kube_namespace, kube_cluster.tool_env()
    installed = run_tool(
        "helm", "install", RELEASE, str(CHART), "--namespace", ns,
        "--wait", "--timeout", "120s", home=tmp_path, env=env,
    )  # fmt: skip
    try:
        ok(installed)
        # --wait returned: the release's pods are there and Ready, without any further waiting.
        pods = core_v1.list_namespaced_pod(ns, label_selector=SELECTOR).items
        assert len(pods) == 2, [p.metadata.name for p in pods]  # the chart's replicaCount
        for pod in pods:
            ready = [c for c in pod.status.conditions or [] if c.type == "Ready"]
            assert ready and ready[0].status == "True", (pod.metadata.name, pod.status)
        assert apps_v1.read_namespaced_deployment("ea-autoscaler", ns).status.ready_replicas == 2
        listed = ok(run_tool("helm", "list", "--namespace", ns, "--short", home=tmp_path, env=env))
        assert listed.split() == [RELEASE]
    finally:
        uninstalled = run_tool(
            "helm", "uninstall", RELEASE, "--namespace", ns, "--wait", home=tmp_path, env=env
        )
    ok(uninstalled)
    wait_for(
        lambda: not core_v1.list_namespaced_pod(ns, label_selector=SELECTOR).items,
        timeout=60,
        what="the release's pods to be gone after helm uninstall",
    )
    assert not apps_v1.list_namespaced_deployment(ns).items
    assert not core_v1.list_namespaced_config_map(ns, label_selector=SELECTOR).items
    # ClusterRoles outlive a namespace: uninstall must remove them itself.
    ours = f"{ns}-{RELEASE}-autoscaler"
    roles = [r.metadata.name for r in rbac_v1.list_cluster_role().items]
    bindings = [b.metadata.name for b in rbac_v1.list_cluster_role_binding().items]
    assert not [name for name in roles + bindings if name.startswith(ours)], (roles, bindings)


def test_helm_install_wait_with_the_activator_returns_with_both_ready_and_uninstall_removes_it(
    kube_cluster: KubeCluster,
    core_v1: Any,
    apps_v1: Any,
    rbac_v1: Any,
    kube_namespace: str,
    tmp_path: Path,
) -> None:
    """activator.enabled=true (docs/activator.md): its Deployment, Services, ServiceAccount,
    RBAC and PDB are created, and --wait waits for its pods too."""
    ns, env = kube_namespace, kube_cluster.tool_env()
    # The chart refuses the activator without a pool for it to front.
    pool = {
        "name": "chat",
        "target": {"kind": "deployment", "name": "vllm"},
        "max": 2,
        "activator": {"backend": {"service": "vllm"}},
        "signals": {"held": {"source": {"type": "static", "value": 0}}},
        "policy": {"type": "queue-depth", "signal": "held", "target_per_replica": 1},
    }
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({"activator": {"enabled": True},
                                      "config": {"file": {"pools": [pool]}}}))  # fmt: skip
    installed = run_tool(
        "helm", "install", RELEASE, str(CHART), "--namespace", ns, "--values", str(values),
        "--wait", "--timeout", "120s", home=tmp_path, env=env,
    )  # fmt: skip
    activator = f"{RELEASE}-autoscaler-activator"
    try:
        ok(installed)
        pods = core_v1.list_namespaced_pod(ns, label_selector=SELECTOR).items
        assert len(pods) == 4, [p.metadata.name for p in pods]  # 2 controllers, 2 activators
        for pod in pods:
            ready = [c for c in pod.status.conditions or [] if c.type == "Ready"]
            assert ready and ready[0].status == "True", (pod.metadata.name, pod.status)
        deployment = apps_v1.read_namespaced_deployment(activator, ns)
        assert deployment.status.ready_replicas == 2
        assert deployment.spec.template.spec.containers[0].args[0] == "activator"
        assert apps_v1.read_namespaced_deployment("ea-autoscaler", ns).status.ready_replicas == 2
        assert core_v1.read_namespaced_service(activator, ns).spec.ports[0].port == 8080
        admin = core_v1.read_namespaced_service(f"{activator}-admin", ns)
        assert admin.spec.cluster_ip == "None"
        core_v1.read_namespaced_service_account(activator, ns)
        rbac_v1.read_namespaced_role_binding(activator, ns)
        rbac_v1.read_cluster_role(f"{ns}-{activator}")
        k.PolicyV1Api(core_v1.api_client).read_namespaced_pod_disruption_budget(activator, ns)
    finally:
        uninstalled = run_tool(
            "helm", "uninstall", RELEASE, "--namespace", ns, "--wait", home=tmp_path, env=env
        )
    ok(uninstalled)
    wait_for(
        lambda: not core_v1.list_namespaced_pod(ns, label_selector=SELECTOR).items,
        timeout=60,
        what="the release's pods to be gone after helm uninstall",
    )
    assert not apps_v1.list_namespaced_deployment(ns).items
    assert not core_v1.list_namespaced_service(ns, label_selector=SELECTOR).items
    roles = [r.metadata.name for r in rbac_v1.list_cluster_role().items]
    assert f"{ns}-{activator}" not in roles
