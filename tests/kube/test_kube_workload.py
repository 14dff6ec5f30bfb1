"""The deployment/statefulset provider against the real API server: replicas through the scale
subresource with pods Running on kwok GPU nodes, idle pods priced out first on scale-in, and
workloads without our owner label left alone."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from autoscaler.clients.kube import DELETION_COST, Labels
from autoscaler.clock import FakeClock
from autoscaler.config import Config, Pool, load_config
from autoscaler.errors import NotFound, ProviderError
from autoscaler.providers import build_providers
from autoscaler.providers.kube_workload import WorkloadProvider
from autoscaler.types import Capacity
from tests.cluster import nodes
from tests.cluster.wait import wait_for

pytestmark = pytest.mark.kube

INSTALLATION = "kube-test"
PREFIX = "elastic-autoscaler.io"
OWNER = {f"{PREFIX}/owner": INSTALLATION}
BUSY = f"{PREFIX}/busy"
IN_FLIGHT = f"{PREFIX}/in-flight"
GPU_TOLERATION = {"key": nodes.GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}


def workload_pool(kind: str, namespace: str, name: str, **target: Any) -> Pool:
    config = Config.model_validate(
        {
            "installation": {"id": INSTALLATION, "tag_prefix": PREFIX},
            "pools": [
                {
                    "name": name,
                    "target": {"kind": kind, "namespace": namespace, "name": name, **target},
                    "max": 20,
                    "signals": {"queue": {"source": {"type": "static", "value": 0}}},
                    "policy": {"type": "queue-depth", "target_per_replica": 1},
                }
            ],
        }
    )
    return config.pools[0]


def workload(
    name: str,
    replicas: int,
    *,
    kind: str = "Deployment",
    labels: dict[str, str] | None = None,
    gpu_pool: str | None = None,
) -> dict[str, Any]:
    """A Deployment or StatefulSet of pause pods; with `gpu_pool`, each asks for one GPU
    on the fake GPU nodes labelled with that pool."""
    app = {"app": name}
    container: dict[str, Any] = {
        "name": "main",
        "image": "registry.k8s.io/pause:3.10",
        "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
    }
    pod_spec: dict[str, Any] = {"terminationGracePeriodSeconds": 0, "containers": [container]}
    if gpu_pool:
        container["resources"]["limits"] = {nodes.GPU_RESOURCE: "1"}
        pod_spec["nodeSelector"] = {"autoscaler-test/pool": gpu_pool}
        pod_spec["tolerations"] = [GPU_TOLERATION]
    spec: dict[str, Any] = {
        "replicas": replicas,
        "selector": {"matchLabels": app},
        "template": {"metadata": {"labels": app}, "spec": pod_spec},
    }
    if kind == "StatefulSet":
        spec["serviceName"] = name
        spec["podManagementPolicy"] = "Parallel"
    return {
        "apiVersion": "apps/v1",
        "kind": kind,
        "metadata": {"name": name, "labels": dict(labels if labels is not None else OWNER)},
        "spec": spec,
    }


def running_pods(core_v1: Any, ns: str, app: str) -> list[Any]:
    pods = core_v1.list_namespaced_pod(ns, label_selector=f"app={app}").items
    return [p for p in pods if p.metadata.deletion_timestamp is None]


def wait_running(core_v1: Any, ns: str, app: str, count: int, timeout: float = 60.0) -> list[Any]:
    def check() -> list[Any]:
        pods = running_pods(core_v1, ns, app)
        ready = [p for p in pods if p.status.phase == "Running"]
        return pods if len(pods) == count == len(ready) else []

    return wait_for(check, timeout=timeout, what=f"{count} running pods of {app}")


@pytest.fixture
def provider(kube_api: Any) -> WorkloadProvider:
    return WorkloadProvider(Labels(INSTALLATION, PREFIX), api=kube_api)


@pytest.fixture
def gpu_pool_nodes(kwok_cluster: Any, core_v1: Any) -> Iterator[str]:
    """Two fake 4-GPU nodes labelled with a fresh pool name; deleted afterwards."""
    pool = f"w-{uuid.uuid4().hex[:6]}"
    names = [f"{pool}-gpu-{i}" for i in range(2)]
    for name in names:
        nodes.create_fake_node(
            core_v1,
            name,
            gpus=4,
            cpu="48",
            memory="192Gi",
            instance_type="g5.12xlarge",
            labels={"autoscaler-test/pool": pool},
            taints=[nodes.GPU_TAINT],
        )
    for name in names:
        nodes.wait_node_ready(core_v1, name)
    yield pool
    for name in names:
        nodes.delete_node(core_v1, name)


def test_a_deployment_scales_through_the_scale_subresource_onto_gpu_nodes(
    provider: WorkloadProvider,
    apps_v1: Any,
    core_v1: Any,
    kube_namespace: str,
    gpu_pool_nodes: str,
) -> None:
    apps_v1.create_namespaced_deployment(
        kube_namespace, workload("llm", 0, gpu_pool=gpu_pool_nodes)
    )
    pool = workload_pool("deployment", kube_namespace, "llm")
    assert provider.describe(pool).desired == 0

    provider.scale(pool, 6, "req-1")
    assert apps_v1.read_namespaced_deployment_scale("llm", kube_namespace).spec.replicas == 6
    pods = wait_running(core_v1, kube_namespace, "llm", 6)
    assert {p.spec.node_name for p in pods} == {
        f"{gpu_pool_nodes}-gpu-0",
        f"{gpu_pool_nodes}-gpu-1",
    }

    def settled() -> Capacity | None:
        c = provider.describe(pool)
        return c if c.ready == 6 else None

    capacity = wait_for(settled, timeout=30, what="6 ready replicas")
    assert capacity is not None
    assert (capacity.desired, capacity.pending, len(capacity.members)) == (6, 0, 6)
    assert all(m.ready for m in capacity.members)

    provider.scale(pool, 2, "req-2")
    wait_running(core_v1, kube_namespace, "llm", 2)
    assert provider.describe(pool).desired == 2


def deletion_costs_until_gone(
    core_v1: Any, ns: str, app: str, since: str, gone: int, timeout: int = 60
) -> dict[str, str | None]:
    """Each pod's deletion-cost annotation as last seen, replaying pod events from resource
    version `since` until `gone` pods were deleted (so deleted pods' costs are seen too)."""
    from kubernetes import watch

    costs: dict[str, str | None] = {}
    deleted: set[str] = set()
    stream = watch.Watch().stream(  # type: ignore[no-untyped-call]
        core_v1.list_namespaced_pod,
        ns,
        label_selector=f"app={app}",
        resource_version=since,
        timeout_seconds=timeout,
    )
    for event in stream:
        pod = event["object"]
        costs[pod.metadata.name] = (pod.metadata.annotations or {}).get(DELETION_COST)
        if event["type"] == "DELETED":
            deleted.add(pod.metadata.name)
        if len(deleted) >= gone:
            break
    assert len(deleted) >= gone, f"only {sorted(deleted)} deleted within {timeout}s"
    return costs


def annotate(core_v1: Any, ns: str, pods: dict[str, dict[str, str]]) -> None:
    for name, values in pods.items():
        core_v1.patch_namespaced_pod(name, ns, {"metadata": {"annotations": values}})


def test_idle_pods_get_the_lowest_deletion_cost_and_go_first_on_scale_in(
    provider: WorkloadProvider, apps_v1: Any, core_v1: Any, kube_namespace: str
) -> None:
    apps_v1.create_namespaced_deployment(kube_namespace, workload("svc", 3))
    names = sorted(p.metadata.name for p in wait_running(core_v1, kube_namespace, "svc", 3))
    busiest, idle, half = names
    annotate(
        core_v1, kube_namespace, {busiest: {BUSY: "0.9"}, idle: {BUSY: "idle"}, half: {BUSY: "0.4"}}
    )
    pool = workload_pool("deployment", kube_namespace, "svc")
    since = core_v1.list_namespaced_pod(kube_namespace).metadata.resource_version

    provider.scale(pool, 1, "req-1")

    costs = deletion_costs_until_gone(core_v1, kube_namespace, "svc", since, gone=2)
    assert costs == {busiest: "900", idle: "0", half: "400"}
    survivors = wait_running(core_v1, kube_namespace, "svc", 1)
    assert [p.metadata.name for p in survivors] == [busiest]
    assert provider.describe(pool).members[0].busy == 0.9


def test_pods_serving_requests_outlive_idle_ones_and_unknown_ones(
    provider: WorkloadProvider, apps_v1: Any, core_v1: Any, kube_namespace: str
) -> None:
    apps_v1.create_namespaced_deployment(kube_namespace, workload("api", 4))
    names = sorted(p.metadata.name for p in wait_running(core_v1, kube_namespace, "api", 4))
    serving, idle, silent, also_serving = names
    annotate(
        core_v1,
        kube_namespace,
        {serving: {IN_FLIGHT: "3"}, idle: {IN_FLIGHT: "0"}, also_serving: {IN_FLIGHT: "1"}},
    )
    pool = workload_pool("deployment", kube_namespace, "api")
    since = core_v1.list_namespaced_pod(kube_namespace).metadata.resource_version

    provider.scale(pool, 2, "req-1")

    costs = deletion_costs_until_gone(core_v1, kube_namespace, "api", since, gone=2)
    # A pod that says nothing counts as busy (1000) but below one with requests in flight.
    assert costs == {serving: "1003", idle: "0", silent: "1000", also_serving: "1001"}
    survivors = wait_running(core_v1, kube_namespace, "api", 2)
    assert sorted(p.metadata.name for p in survivors) == sorted([serving, also_serving])


def test_without_any_busyness_signal_no_deletion_cost_is_written(
    provider: WorkloadProvider, apps_v1: Any, core_v1: Any, kube_namespace: str
) -> None:
    apps_v1.create_namespaced_deployment(kube_namespace, workload("plain", 3))
    wait_running(core_v1, kube_namespace, "plain", 3)
    pool = workload_pool("deployment", kube_namespace, "plain")

    provider.scale(pool, 2, "req-1")

    left = wait_running(core_v1, kube_namespace, "plain", 2)
    assert all(DELETION_COST not in (p.metadata.annotations or {}) for p in left)


def test_remove_takes_exactly_the_named_pods(
    provider: WorkloadProvider, apps_v1: Any, core_v1: Any, kube_namespace: str
) -> None:
    apps_v1.create_namespaced_deployment(kube_namespace, workload("svc", 3))
    names = sorted(p.metadata.name for p in wait_running(core_v1, kube_namespace, "svc", 3))
    pool = workload_pool("deployment", kube_namespace, "svc")

    provider.remove(pool, [names[1]], "req-1")

    left = wait_running(core_v1, kube_namespace, "svc", 2)
    assert sorted(p.metadata.name for p in left) == [names[0], names[2]]
    with pytest.raises(NotFound, match="pod-that-is-not-there"):
        provider.remove(pool, ["pod-that-is-not-there"], "req-2")


def test_a_deployment_without_our_owner_label_is_left_alone(
    provider: WorkloadProvider, apps_v1: Any, kube_namespace: str
) -> None:
    foreign = {f"{PREFIX}/owner": "someone-else"}
    apps_v1.create_namespaced_deployment(kube_namespace, workload("theirs", 1, labels=foreign))
    apps_v1.create_namespaced_deployment(kube_namespace, workload("nobodys", 1, labels={}))
    pool = workload_pool("deployment", kube_namespace, "theirs")
    unlabelled = workload_pool("deployment", kube_namespace, "nobodys")

    with pytest.raises(
        ProviderError, match=r"not labelled elastic-autoscaler\.io/owner=kube-test"
    ) as e:
        provider.scale(pool, 5, "req-1")
    assert e.value.code == "NotOwned"
    assert "owner=someone-else" in str(e.value) and "require_owner_label: false" in str(e.value)
    with pytest.raises(ProviderError, match="it has no owner label"):
        provider.scale(unlabelled, 0, "req-1")
    with pytest.raises(ProviderError, match="not labelled"):
        provider.describe(unlabelled)
    for name in ("theirs", "nobodys"):
        assert apps_v1.read_namespaced_deployment_scale(name, kube_namespace).spec.replicas == 1

    opted_out = workload_pool("deployment", kube_namespace, "theirs", require_owner_label=False)
    provider.scale(opted_out, 2, "req-2")
    assert apps_v1.read_namespaced_deployment_scale("theirs", kube_namespace).spec.replicas == 2


def test_a_missing_deployment_is_not_found_naming_the_pool_and_object(
    provider: WorkloadProvider, kube_namespace: str
) -> None:
    pool = workload_pool("deployment", kube_namespace, "ghost")
    with pytest.raises(NotFound, match=f"pool ghost: Deployment {kube_namespace}/ghost"):
        provider.describe(pool)
    with pytest.raises(NotFound, match="not found"):
        provider.scale(pool, 1, "req-1")


def test_a_retried_request_does_not_undo_a_later_change(
    provider: WorkloadProvider, kube_api: Any, apps_v1: Any, kube_namespace: str
) -> None:
    apps_v1.create_namespaced_deployment(kube_namespace, workload("web", 1))
    pool = workload_pool("deployment", kube_namespace, "web")
    provider.scale(pool, 3, "req-1")
    apps_v1.patch_namespaced_deployment_scale("web", kube_namespace, {"spec": {"replicas": 4}})

    provider.scale(pool, 3, "req-1")  # the same request again: already applied

    assert apps_v1.read_namespaced_deployment_scale("web", kube_namespace).spec.replicas == 4
    restarted = WorkloadProvider(provider.labels, api=kube_api)
    restarted.scale(pool, 3, "req-1")  # after a crash it converges to what was asked
    assert apps_v1.read_namespaced_deployment_scale("web", kube_namespace).spec.replicas == 3


def test_a_statefulset_scales_and_reports_its_ready_replicas(
    provider: WorkloadProvider, apps_v1: Any, core_v1: Any, kube_namespace: str
) -> None:
    apps_v1.create_namespaced_stateful_set(kube_namespace, workload("db", 1, kind="StatefulSet"))
    pool = workload_pool("statefulset", kube_namespace, "db")
    provider.scale(pool, 3, "req-1")
    provider.scale(pool, 3, "req-1")  # a retry changes nothing
    assert apps_v1.read_namespaced_stateful_set_scale("db", kube_namespace).spec.replicas == 3
    wait_running(core_v1, kube_namespace, "db", 3)

    def three_ready() -> Capacity | None:
        c = provider.describe(pool)
        return c if c.ready == 3 else None

    capacity = wait_for(three_ready, timeout=30, what="3 ready replicas")
    assert capacity is not None
    assert sorted(m.id for m in capacity.members) == ["db-0", "db-1", "db-2"]
    assert (capacity.desired, capacity.pending) == (3, 0)
    with pytest.raises(ProviderError, match="highest ordinals"):
        provider.remove(pool, ["db-0"], "req-2")

    provider.scale(pool, 1, "req-3")

    left = wait_running(core_v1, kube_namespace, "db", 1)
    assert [p.metadata.name for p in left] == ["db-0"]
    assert all(DELETION_COST not in (p.metadata.annotations or {}) for p in left)
    provider.remove(pool, ["db-0"], "req-4")
    # The API leaves a zero count out of the Scale (omitempty): None reads as 0.
    assert not apps_v1.read_namespaced_stateful_set_scale("db", kube_namespace).spec.replicas
    assert provider.describe(pool).desired == 0


def test_providers_built_from_a_config_file_find_the_cluster_through_kubeconfig(
    kube_cluster: Any,
    apps_v1: Any,
    kube_namespace: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Any,
) -> None:
    apps_v1.create_namespaced_deployment(kube_namespace, workload("from-file", 2))
    (tmp_path / "job.yaml").write_text(
        "apiVersion: batch/v1\nkind: Job\nspec:\n  template:\n    spec:\n"
        "      restartPolicy: Never\n      containers: [{name: w, image: x}]\n"
    )
    (tmp_path / "autoscaler.yaml").write_text(
        f"""
installation: {{id: {INSTALLATION}, tag_prefix: {PREFIX}}}
pools:
  - name: web
    target: {{kind: deployment, namespace: {kube_namespace}, name: from-file}}
    max: 4
    signals: {{queue: {{source: {{type: static, value: 0}}}}}}
    policy: {{type: queue-depth, target_per_replica: 1}}
  - name: batch
    target: {{kind: job, namespace: {kube_namespace}, template_file: job.yaml}}
    max: 4
    signals: {{queue: {{source: {{type: static, value: 0}}}}}}
    policy: {{type: queue-depth, target_per_replica: 1}}
"""
    )
    config = load_config(str(tmp_path / "autoscaler.yaml"))
    monkeypatch.setenv("KUBECONFIG", str(kube_cluster.kubeconfig))

    providers = build_providers(config, FakeClock())

    web, batch = config.pools
    assert providers["deployment"].describe(web).desired == 2
    providers["job"].scale(batch, 1, "req-1")  # the template file is found beside the config
    assert providers["job"].describe(batch).desired == 1


def test_without_credentials_the_error_says_where_it_looked(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing-kubeconfig"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    provider = WorkloadProvider(Labels(INSTALLATION, PREFIX))
    with pytest.raises(ProviderError, match="no Kubernetes credentials") as e:
        provider.describe(workload_pool("deployment", "default", "any"))
    assert e.value.code == "KubeConfig"
