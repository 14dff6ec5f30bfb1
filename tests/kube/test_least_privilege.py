"""Least privilege, proven against the real API server: the chart is installed with helm, a
token is made for its ServiceAccount (TokenRequest), and every request here is made as the
controller. Each call the controller makes is allowed; each one it never makes, and that a
stolen token would want, is refused (403), by RBAC or by the chart's
ValidatingAdmissionPolicies (templates/admission-policy.yaml).

What the controller calls is in autoscaler/providers/kube_workload.py (scale subresource,
pod-deletion-cost patch, pod delete), kube_jobs.py (Jobs list/create/delete),
autoscaler/kube/ (AutoscalingPools, their status, Events, the Lease) and the informers of
autoscaler/clients/ (list and watch of workloads and pods).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k
from kubernetes.client.exceptions import ApiException

from autoscaler.clients.kube import Labels
from autoscaler.config import Config
from autoscaler.kube.crd import GROUP, PLURAL, VERSION
from autoscaler.providers.kube_jobs import JobProvider
from autoscaler.providers.kube_workload import WorkloadProvider
from tests.cluster.session import KubeCluster
from tests.cluster.wait import wait_for
from tests.kube.test_chart import (
    CHART,
    Obj,
    assert_least_privilege,
    helm_template,
    kinds,
    ok,
    rbac_rules,
    run_tool,
)
from tests.kube.test_rbac import client_with_token, status_of

RELEASE = "ea"
SA = "ea-autoscaler"
INSTALLATION = "lp-test"
OWNER = "elastic-autoscaler.io/owner"
POOL = "elastic-autoscaler.io/pool"
IMAGE = "registry.k8s.io/pause:3.10"
COST = "controller.kubernetes.io/pod-deletion-cost"
GANG_ADMISSION = "elastic-autoscaler.io/gang-admission"
VALUES = {
    "installationId": INSTALLATION,
    "replicaCount": 1,
    "rbac": {
        "scaleTargets": {
            "deployments": ["owned", "served", "workers"],
            "statefulsets": ["owned-sts"],
        }
    },
    "admissionPolicy": {"jobs": {"images": [IMAGE, "registry.example/batch/*"]}},
}


# -- helpers -----------------------------------------------------------------------------------
def refused(call: Callable[..., Any], *args: Any, **kwargs: Any) -> str:
    """The 403 message of a call that must be refused."""
    try:
        call(*args, **kwargs)
    except ApiException as e:
        assert e.status == 403, f"expected 403, got {e.status}: {e.body}"
        return str(e.body)
    raise AssertionError(f"{getattr(call, '__name__', call)}{args} was allowed")


def by_policy(call: Callable[..., Any], *args: Any, **kwargs: Any) -> str:
    """Refused by one of the chart's admission policies (RBAC let it through)."""
    message = refused(call, *args, **kwargs)
    assert "ValidatingAdmissionPolicy" in message and "denied request" in message, message
    return message


def by_rbac(call: Callable[..., Any], *args: Any, **kwargs: Any) -> str:
    message = refused(call, *args, **kwargs)
    assert "cannot" in message and "ValidatingAdmissionPolicy" not in message, message
    return message


def dry_run(call: Callable[..., Any], *args: Any, **kwargs: Any) -> str:
    """What a dry run of the call answers: "allowed", or the status and message."""
    try:
        call(*args, dry_run="All", **kwargs)
    except ApiException as e:
        return f"{e.status}: {e.body}"
    return "allowed"


def labels(name: str, owner: str | None) -> dict[str, str]:
    out = {"app": name}
    if owner is not None:
        out[OWNER] = owner
    return out


def deployment(name: str, owner: str | None, replicas: int = 0) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": labels(name, owner)},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": IMAGE}]},
            },
        },
    }


def stateful_set(name: str, owner: str | None) -> dict[str, Any]:
    body = deployment(name, owner)
    body["spec"]["serviceName"] = name
    return body


def job(
    name: str,
    *,
    image: str = IMAGE,
    owner: str | None = INSTALLATION,
    pool: str | None = "batch",
    **pod: Any,
) -> dict[str, Any]:
    """A Job as kube_jobs.JobProvider.manifest makes it from a pool's template."""
    job_labels = {}
    if owner is not None:
        job_labels[OWNER] = owner
    if pool is not None:
        job_labels[POOL] = pool
    container = {"name": "work", "image": image, **pod.pop("container", {})}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": job_labels},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"labels": dict(job_labels)},
                "spec": {"restartPolicy": "Never", "containers": [container], **pod},
            },
        },
    }


@dataclass
class AsController:
    """The APIs, authenticated as the release's ServiceAccount, and its namespace."""

    ns: str
    api: Any  # the ApiClient, for the controller's own providers
    core: Any
    apps: Any
    batch: Any
    coordination: Any
    custom: Any
    authz: Any

    def may(self, verb: str, resource: str, namespace: str = "", **extra: str) -> bool:
        attrs = {"verb": verb, "resource": resource, "namespace": namespace, **extra}
        review = self.authz.create_self_subject_access_review(
            {"spec": {"resourceAttributes": attrs}}
        )
        return bool(review.status.allowed)


@contextmanager
def install(
    cluster: KubeCluster, kube_api: Any, core_v1: Any, ns: str, home: Path, values: dict[str, Any]
) -> Iterator[AsController]:
    """helm install the chart in `ns`, yield its ServiceAccount's APIs, then uninstall."""
    env = cluster.tool_env()
    path = home / "values.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(values))
    installed = run_tool(
        "helm", "install", RELEASE, str(CHART), "--namespace", ns, "--values", str(path),
        home=home, env=env,
    )  # fmt: skip
    try:
        ok(installed)
        token = core_v1.create_namespaced_service_account_token(
            SA, ns, {"spec": {"expirationSeconds": 900}}
        ).status.token
        with client_with_token(kube_api, token) as api:
            yield AsController(
                ns, api, k.CoreV1Api(api), k.AppsV1Api(api), k.BatchV1Api(api),
                k.CoordinationV1Api(api), k.CustomObjectsApi(api), k.AuthorizationV1Api(api),
            )  # fmt: skip
    finally:
        # The policies and ClusterRoles are cluster-scoped: uninstall removes them.
        ok(run_tool("helm", "uninstall", RELEASE, "--namespace", ns, home=home, env=env))
    admission: Any = k.AdmissionregistrationV1Api(kube_api)
    left = [
        o.metadata.name
        for o in admission.list_validating_admission_policy().items
        + admission.list_validating_admission_policy_binding().items
        if o.metadata.name.startswith(f"{ns}-{RELEASE}-autoscaler")
    ]
    assert not left, left


def fresh_namespace(core_v1: Any) -> str:
    name = f"t-{uuid.uuid4().hex[:10]}"
    core_v1.create_namespace({"metadata": {"name": name, "labels": {"autoscaler-test": "1"}}})
    return name


def drop_namespace(core_v1: Any, name: str) -> None:
    try:
        core_v1.delete_namespace(name)
    except ApiException as e:
        if e.status != 404:
            raise


# -- offline: what the chart renders ------------------------------------------------------------
def scale_rules(objs: list[Obj]) -> dict[str, list[str] | None]:
    """Each scale subresource granted, with its resourceNames (None: every name)."""
    out: dict[str, list[str] | None] = {}
    for rule in rbac_rules(objs):
        for resource in rule["resources"]:
            if resource.endswith("/scale"):
                out[resource] = rule.get("resourceNames")
    return out


def policies(objs: list[Obj]) -> dict[str, Obj]:
    return {p["metadata"]["name"]: p for p in kinds(objs).get("ValidatingAdmissionPolicy", [])}


def variables(policy: Obj) -> dict[str, str]:
    return {v["name"]: v["expression"] for v in policy["spec"].get("variables", [])}


def test_default_render_has_no_node_access_and_polices_pods_and_jobs(tmp_path: Path) -> None:
    objs = helm_template(tmp_path, namespace="ops")
    assert_least_privilege(objs)
    assert "ClusterRoleBinding" not in kinds(objs)  # nothing cluster-wide
    for rule in rbac_rules(objs):
        assert not {"nodes", "pods/eviction"} & set(rule["resources"]), rule
        assert "update" not in rule["verbs"] or rule["resources"] == ["leases"], rule
    # AutoscalingPools are unknown at install: scale is not narrowed by name.
    assert scale_rules(objs) == {"deployments/scale": None, "statefulsets/scale": None}
    found = policies(objs)
    assert sorted(found) == [
        "ops-ea-autoscaler-job-admission",
        "ops-ea-autoscaler-jobs",
        "ops-ea-autoscaler-pods",
    ]
    bindings = kinds(objs)["ValidatingAdmissionPolicyBinding"]
    assert {b["spec"]["policyName"]: b["spec"]["validationActions"] for b in bindings} == {
        name: ["Deny"] for name in found
    }
    for policy in found.values():
        assert policy["apiVersion"] == "admissionregistration.k8s.io/v1"
        assert policy["spec"]["failurePolicy"] == "Fail"
        assert "paramKind" not in policy["spec"]
        (condition,) = policy["spec"]["matchConditions"]
        expected = 'request.userInfo.username == "system:serviceaccount:ops:ea-autoscaler"'
        assert condition["expression"] == expected
        assert {v["reason"] for v in policy["spec"]["validations"]} == {"Forbidden"}
    jobs = variables(found["ops-ea-autoscaler-jobs"])
    assert jobs["images"] == "[]"  # no Job can be created until images are listed
    assert jobs["serviceAccounts"] == '["default"]'
    assert jobs["owner"] == '"elastic-autoscaler.io/owner"'


def test_pools_in_the_file_name_the_workloads_and_images_it_may_use(tmp_path: Path) -> None:
    def pool(name: str, target: Obj) -> Obj:
        return {"name": name, "target": target, "max": 2,
                "signals": {"queue": {"source": {"type": "static", "value": 1}}},
                "policy": {"type": "queue-depth", "target_per_replica": 1}}  # fmt: skip

    template = {"spec": {"template": {"spec": {
        "restartPolicy": "Never",
        "initContainers": [{"name": "fetch", "image": "registry.example/fetch:2"}],
        "containers": [{"name": "work", "image": "registry.example/train:1"}],
    }}}}  # fmt: skip
    file = {
        "installation": {"tag_prefix": "ea.example.com"},
        "pools": [
            pool("chat", {"kind": "deployment", "name": "vllm"}),
            pool("embed", {"kind": "deployment", "namespace": "llm", "name": "tei"}),
            pool("kv", {"kind": "statefulset", "name": "cache"}),
            pool("train", {"kind": "job", "template": template}),
        ],
    }
    values = {
        "crdPools": False,
        "installationId": "prod",
        "config": {"file": file},
        "rbac": {"scaleTargets": {"deployments": ["extra"]}},
        "admissionPolicy": {"jobs": {"images": ["registry.example/team/*"]}},
    }
    objs = helm_template(tmp_path, values)
    assert_least_privilege(objs)
    assert scale_rules(objs) == {
        "deployments/scale": ["extra", "tei", "vllm"],
        "statefulsets/scale": ["cache"],
    }
    jobs = variables(policies(objs)["autoscaler-ea-autoscaler-jobs"])
    assert jobs["images"] == '["registry.example/fetch:2","registry.example/train:1"]'
    assert jobs["imagePrefixes"] == '["registry.example/team/"]'
    assert jobs["owner"] == '"ea.example.com/owner"' and jobs["pool"] == '"ea.example.com/pool"'
    rules = policies(objs)["autoscaler-ea-autoscaler-jobs"]["spec"]["validations"]
    assert '== "prod"' in rules[0]["expression"]

    # Only Job pools in the file: no scale subresource at all.
    values["config"] = {"file": {"pools": [pool("train", {"kind": "job", "template": template})]}}
    values["rbac"] = {}
    assert scale_rules(helm_template(tmp_path, values)) == {}
    # AutoscalingPools too: names listed in values still narrow it.
    crd = {"rbac": {"scaleTargets": {"statefulsets": ["kv"]}}}
    assert scale_rules(helm_template(tmp_path, crd)) == {
        "deployments/scale": None,
        "statefulsets/scale": ["kv"],
    }


def test_the_policies_are_optional_and_need_kubernetes_1_30(tmp_path: Path) -> None:
    off = helm_template(tmp_path, {"admissionPolicy": {"enabled": False}})
    assert not {"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"} & set(kinds(off))
    args = ("template", "ea", str(CHART), "--kube-version", "1.29.4")
    done = run_tool("helm", *args, home=tmp_path)
    assert done.returncode != 0
    assert "admissionPolicy.enabled needs Kubernetes >= 1.30" in done.stderr, done.stderr
    nodes = helm_template(tmp_path, {"rbac": {"nodes": True}})
    assert [r["metadata"]["name"] for r in kinds(nodes)["ClusterRoleBinding"]] == [
        "autoscaler-ea-autoscaler-nodes"
    ]


# -- the default install: AutoscalingPools (pools unknown to the chart), policies on ------------
@pytest.fixture(scope="module")
def controller(
    kube_cluster: KubeCluster,
    kube_api: Any,
    core_v1: Any,
    apps_v1: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[AsController]:
    """The chart installed with its defaults (crdPools, the admission policy) in a fresh
    namespace holding, made by the admin: Deployments and StatefulSets labelled as this
    installation's pools or not, a Deployment with two pods, and a bare pod."""
    ns = fresh_namespace(core_v1)
    try:
        apps_v1.create_namespaced_deployment(ns, deployment("owned", INSTALLATION))
        apps_v1.create_namespaced_deployment(ns, deployment("served", INSTALLATION, replicas=2))
        apps_v1.create_namespaced_deployment(ns, deployment("workers", INSTALLATION, replicas=2))
        apps_v1.create_namespaced_deployment(ns, deployment("foreign", None))
        apps_v1.create_namespaced_deployment(ns, deployment("theirs", "another-installation"))
        apps_v1.create_namespaced_stateful_set(ns, stateful_set("owned-sts", INSTALLATION))
        apps_v1.create_namespaced_stateful_set(ns, stateful_set("foreign-sts", None))
        bare = {"metadata": {"name": "loner", "labels": {"app": "loner"}},
                "spec": {"containers": [{"name": "c", "image": IMAGE}]}}  # fmt: skip
        core_v1.create_namespaced_pod(ns, bare)
        home = tmp_path_factory.mktemp("helm")
        with install(kube_cluster, kube_api, core_v1, ns, home, VALUES) as as_controller:
            served_pods(core_v1, ns)  # the ReplicaSet made them
            wait_until_the_policies_are_in_force(as_controller)
            yield as_controller
    finally:
        drop_namespace(core_v1, ns)


def served_pods(core_v1: Any, ns: str, app: str = "served", count: int = 2) -> list[str]:
    def names() -> list[str]:
        pods = core_v1.list_namespaced_pod(ns, label_selector=f"app={app}").items
        live = [p.metadata.name for p in pods if p.metadata.deletion_timestamp is None]
        return sorted(live) if len(live) == count else []

    return wait_for(
        names, timeout=60, what=f"the ReplicaSet of Deployment {app} to have {count} pods"
    )


def wait_until_the_policies_are_in_force(c: AsController) -> None:
    """Policies and bindings reach the API server's admission through informers: a dry run
    of a forbidden call says when they are there."""
    pod = c.core.list_namespaced_pod(c.ns, label_selector="app=served").items[0].metadata.name
    probes = {
        "pods": (c.core.patch_namespaced_pod, pod, c.ns, {"metadata": {"labels": {"x": "y"}}}),
        "jobs": (c.batch.create_namespaced_job, c.ns, job("probe", image="busybox")),
    }
    for name, (call, *args) in probes.items():

        def answer(call: Any = call, args: list[Any] = args) -> str:
            return dry_run(call, *args)

        def in_force(answer: Callable[[], str] = answer) -> bool:
            return "ValidatingAdmissionPolicy" in answer()

        wait_for(
            in_force,
            timeout=30,
            what=f"the {name} admission policy to be in force",
            describe=answer,
        )


@pytest.mark.kube
def test_the_controllers_own_calls_are_allowed(controller: AsController, core_v1: Any) -> None:
    c = controller
    # The informers and signal readers: list, and watch, in the watched namespace.
    c.core.list_namespaced_pod(c.ns)
    c.apps.list_namespaced_deployment(c.ns)
    c.apps.list_namespaced_stateful_set(c.ns)
    c.batch.list_namespaced_job(c.ns)
    c.custom.list_namespaced_custom_object(GROUP, VERSION, c.ns, PLURAL)
    for watch in (c.core.list_namespaced_pod, c.apps.list_namespaced_deployment):
        stream = watch(c.ns, watch=True, timeout_seconds=1, _preload_content=False)
        assert stream.status == 200
        stream.release_conn()
    # The workload provider: read scale and status, scale an owned pool.
    assert not c.apps.read_namespaced_deployment_scale("owned", c.ns).spec.replicas
    c.apps.read_namespaced_deployment_status("owned", c.ns)
    c.apps.read_namespaced_stateful_set_status("owned-sts", c.ns)
    c.apps.patch_namespaced_deployment_scale("owned", c.ns, {"spec": {"replicas": 2}})
    assert c.apps.read_namespaced_deployment_scale("owned", c.ns).spec.replicas == 2
    c.apps.patch_namespaced_stateful_set_scale("owned-sts", c.ns, {"spec": {"replicas": 1}})
    # Scale-in: the deletion cost on a pod, then that pod deleted.
    first, second = served_pods(core_v1, c.ns)
    c.core.patch_namespaced_pod(first, c.ns, {"metadata": {"annotations": {COST: "-1000"}}})
    c.core.patch_namespaced_pod(first, c.ns, {"metadata": {"annotations": {COST: "250"}}})
    assert core_v1.read_namespaced_pod(first, c.ns).metadata.annotations[COST] == "250"
    c.core.delete_namespaced_pod(second, c.ns)
    # A Job pool: a Job from the template (an image of the list, or under an allowed prefix),
    # then deleted when finished.
    c.batch.create_namespaced_job(c.ns, job("batch-0"))
    c.batch.create_namespaced_job(c.ns, job("batch-1", image="registry.example/batch/x:1"))
    c.batch.delete_namespaced_job("batch-0", c.ns, propagation_policy="Background")
    # Status and Events of an AutoscalingPool.
    pool = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "AutoscalingPool",
            "metadata": {"name": "chat"},
            "spec": {"target": {"kind": "deployment", "name": "owned"}, "max": 2,
                     "signals": {"queue": {"source": {"type": "static", "value": 1}}},
                     "policy": {"type": "queue-depth", "target_per_replica": 1}}}  # fmt: skip
    k.CustomObjectsApi(core_v1.api_client).create_namespaced_custom_object(
        GROUP, VERSION, c.ns, PLURAL, pool
    )
    c.custom.patch_namespaced_custom_object_status(
        GROUP, VERSION, c.ns, PLURAL, "chat", {"status": {"desiredReplicas": 2}}
    )
    event = c.core.create_namespaced_event(
        c.ns,
        {
            "metadata": {"name": f"chat.{uuid.uuid4().hex[:12]}"},
            "involvedObject": {"kind": "AutoscalingPool", "name": "chat", "namespace": c.ns,
                               "apiVersion": f"{GROUP}/{VERSION}"},
            "reason": "Scaled", "message": "2 -> 3", "type": "Normal", "count": 1,
        },
    )  # fmt: skip
    c.core.patch_namespaced_event(event.metadata.name, c.ns, {"count": 2})
    # Leader election: create the Lease, renew it.
    lease = c.coordination.create_namespaced_lease(
        c.ns, {"metadata": {"name": SA}, "spec": {"holderIdentity": "pod-a"}}
    )
    lease.spec.holder_identity = "pod-b"
    c.coordination.replace_namespaced_lease(SA, c.ns, lease)
    assert c.coordination.read_namespaced_lease(SA, c.ns).spec.holder_identity == "pod-b"


@pytest.mark.kube
def test_the_controllers_own_providers_work_with_these_grants(
    controller: AsController, core_v1: Any, apps_v1: Any
) -> None:
    """Not a list of calls that might drift from the code: the controller's own workload and
    Job providers, authenticated as its ServiceAccount, scale up, remove a named pod, price
    pods and scale down, and create and list Jobs from a template."""
    c = controller
    template = {"spec": {"backoffLimit": 0, "template": {"spec": {
        "restartPolicy": "Never", "containers": [{"name": "work", "image": IMAGE}],
    }}}}  # fmt: skip
    config = Config.model_validate(
        {
            "installation": {"id": INSTALLATION},
            "pools": [
                {"name": "serve", "target": {"kind": "deployment", "namespace": c.ns,
                                             "name": "workers"},
                 "max": 4, "signals": {"queue": {"source": {"type": "static", "value": 1}}},
                 "policy": {"type": "queue-depth", "target_per_replica": 1}},
                {"name": "batch", "target": {"kind": "job", "namespace": c.ns,
                                             "template": template},
                 "max": 4, "signals": {"queue": {"source": {"type": "static", "value": 1}}},
                 "policy": {"type": "queue-depth", "target_per_replica": 1}},
            ],
        }
    )  # fmt: skip
    serve, batch = config.pools
    labels = Labels(INSTALLATION)
    workloads = WorkloadProvider(labels, api=c.api)
    workloads.scale(serve, 3, "up-1")
    first, *_ = served_pods(core_v1, c.ns, "workers", 3)
    workloads.remove(serve, [first], "remove-1")  # its cost, the count, then the pod
    assert apps_v1.read_namespaced_deployment_scale("workers", c.ns).spec.replicas == 2
    for name, busy in zip(served_pods(core_v1, c.ns, "workers", 2), ("0", "1"), strict=True):
        core_v1.patch_namespaced_pod(
            name, c.ns, {"metadata": {"annotations": {labels.busy_key: busy}}}
        )
    workloads.scale(serve, 1, "down-1")  # prices both pods first
    assert apps_v1.read_namespaced_deployment_scale("workers", c.ns).spec.replicas == 1
    costs = [
        (p.metadata.annotations or {}).get(COST)
        for p in core_v1.list_namespaced_pod(c.ns, label_selector="app=workers").items
    ]
    assert [cost for cost in costs if cost is not None], costs

    jobs = JobProvider(labels, api=c.api)
    jobs.scale(batch, 2, "backlog-1")
    assert jobs.describe(batch).desired == 2
    jobs.tidy(batch)


@pytest.mark.kube
def test_a_pod_patch_may_only_set_the_deletion_cost(controller: AsController, core_v1: Any) -> None:
    c = controller
    pod = served_pods(core_v1, c.ns)[0]
    before = core_v1.read_namespaced_pod(pod, c.ns)
    image = {"spec": {"containers": [{"name": "c", "image": "evil.example/miner:1"}]}}
    assert "may not change the spec" in by_policy(c.core.patch_namespaced_pod, pod, c.ns, image)
    label = {"metadata": {"labels": {"app": "elsewhere"}}}
    assert "labels" in by_policy(c.core.patch_namespaced_pod, pod, c.ns, label)
    extra = {"metadata": {"labels": {"exposed": "true"}}}
    by_policy(c.core.patch_namespaced_pod, pod, c.ns, extra)
    note = {"metadata": {"annotations": {"prometheus.io/scrape": "true"}}}
    assert "pod-deletion-cost" in by_policy(c.core.patch_namespaced_pod, pod, c.ns, note)
    junk = {"metadata": {"annotations": {COST: "cheap"}}}  # the API server's own validation
    assert status_of(lambda: c.core.patch_namespaced_pod(pod, c.ns, junk)) == 422
    orphan = {"metadata": {"ownerReferences": None}}
    by_policy(c.core.patch_namespaced_pod, pod, c.ns, orphan)
    after = core_v1.read_namespaced_pod(pod, c.ns)
    assert after.spec.containers[0].image == before.spec.containers[0].image == IMAGE
    assert after.metadata.labels == before.metadata.labels
    assert after.metadata.owner_references == before.metadata.owner_references
    # Deletes: a Deployment's pod only, never a bare pod (or a StatefulSet's, a Job's).
    assert "is not one" in by_policy(c.core.delete_namespaced_pod, "loner", c.ns)
    core_v1.read_namespaced_pod("loner", c.ns)
    # Never a pod's subresources: exec, status, ephemeral containers, bindings.
    assert not c.may("create", "pods", c.ns, subresource="exec")
    assert not c.may("patch", "pods", c.ns, subresource="status")
    assert not c.may("patch", "pods", c.ns, subresource="ephemeralcontainers")
    assert not c.may("create", "pods", c.ns)


@pytest.mark.kube
def test_jobs_only_from_the_pools_templates(controller: AsController, apps_v1: Any) -> None:
    c = controller
    create = c.batch.create_namespaced_job
    assert "busybox" in by_policy(create, c.ns, job("other-image", image="busybox:latest"))
    # A prefix is a prefix, not a substring.
    by_policy(create, c.ns, job("near-miss", image="evil.example/registry.example/batch/x"))
    init = job("init-image")
    init["spec"]["template"]["spec"]["initContainers"] = [{"name": "i", "image": "alpine"}]
    by_policy(create, c.ns, init)
    assert "ServiceAccount" in by_policy(
        create, c.ns, job("admin-sa", serviceAccountName="cluster-admin-sa")
    )
    secret_volume = {"name": "s", "secret": {"secretName": "db-password"}}
    assert "volume types" in by_policy(create, c.ns, job("secret-volume", volumes=[secret_volume]))
    host = {"name": "h", "hostPath": {"path": "/var/run"}}
    by_policy(create, c.ns, job("host-path", volumes=[host]))
    projected = {"name": "p", "projected": {"sources": [{"secret": {"name": "db-password"}}]}}
    by_policy(create, c.ns, job("projected-secret", volumes=[projected]))
    env = {"env": [{"name": "P", "valueFrom": {"secretKeyRef": {"name": "db", "key": "p"}}}]}
    assert "Secrets" in by_policy(create, c.ns, job("secret-env", container=env))
    env_from = {"envFrom": [{"secretRef": {"name": "db"}}]}
    by_policy(create, c.ns, job("secret-env-from", container=env_from))
    privileged = {"securityContext": {"privileged": True}}
    assert "privileged" in by_policy(create, c.ns, job("privileged", container=privileged))
    by_policy(create, c.ns, job("host-network", hostNetwork=True))
    # Not the controller's: no owner label, another installation's, no pool label.
    assert "own Jobs" in by_policy(create, c.ns, job("unlabelled", owner=None))
    by_policy(create, c.ns, job("someone-elses", owner="another-installation"))
    by_policy(create, c.ns, job("no-pool", pool=None))
    # The allowed volume types still work.
    scratch = {"name": "scratch", "emptyDir": {}}
    c.batch.create_namespaced_job(c.ns, job("scratch", volumes=[scratch]), dry_run="All")
    # It deletes only its own Jobs.
    admin_batch: Any = k.BatchV1Api(apps_v1.api_client)
    admin_batch.create_namespaced_job(c.ns, job("team-job", owner=None, pool=None))
    assert "own Jobs" in by_policy(c.batch.delete_namespaced_job, "team-job", c.ns)
    # Never a CronJob (a Job patch only unsuspends a gang: test_a_job_may_only_be_unsuspended).
    assert not c.may("create", "cronjobs", c.ns, group="batch")


@pytest.mark.kube
def test_a_job_may_only_be_unsuspended_for_gang_admission(
    controller: AsController, apps_v1: Any
) -> None:
    """Gang admission (docs/nodes.md): the controller's one change to a Job is spec.suspend
    from true to false, on a Job labelled for it; the patch is the actuator's."""
    c = controller
    admin_batch: Any = k.BatchV1Api(apps_v1.api_client)

    def gang_job(name: str, *, labelled: bool = True) -> dict[str, Any]:
        body = job(name, owner=None, pool=None)
        body["spec"]["suspend"] = True
        if labelled:
            body["metadata"]["labels"][GANG_ADMISSION] = "true"
        return body

    for name in ("gang-a", "gang-b"):
        admin_batch.create_namespaced_job(c.ns, gang_job(name))
    admin_batch.create_namespaced_job(c.ns, gang_job("plain", labelled=False))
    patch = c.batch.patch_namespaced_job

    def unsuspend(uid: str) -> list[dict[str, Any]]:
        return [
            {"op": "test", "path": "/metadata/uid", "value": uid},
            {"op": "test", "path": "/spec/suspend", "value": True},
            {"op": "replace", "path": "/spec/suspend", "value": False},
        ]

    uid = {n: admin_batch.read_namespaced_job(n, c.ns).metadata.uid for n in ("gang-a", "plain")}
    # Not labelled for gang admission: refused, even the unsuspend (once the policy is there).
    wait_for(
        lambda: (
            "ValidatingAdmissionPolicy" in dry_run(patch, "plain", c.ns, unsuspend(uid["plain"]))
        ),
        timeout=30,
        what="the job-admission policy to be in force",
    )
    assert "gang-admission" in by_policy(patch, "plain", c.ns, unsuspend(uid["plain"]))
    # Anything but spec.suspend: the pod template (an image, a nodeSelector), parallelism,
    # labels; nor suspend with anything else.
    selector = {"spec": {"template": {"spec": {"nodeSelector": {"x": "y"}}}}}
    assert "only unsuspend" in by_policy(patch, "gang-a", c.ns, selector)
    selector["spec"]["suspend"] = False
    assert "nothing of Job" in by_policy(patch, "gang-a", c.ns, selector)
    with_image = {
        "spec": {
            "suspend": False,
            "template": {"spec": {"containers": [{"name": "c", "image": "busybox"}]}},
        }
    }
    try:
        patch("gang-a", c.ns, with_image)
        raise AssertionError("an image patch was allowed")
    except ApiException as e:
        assert e.status in (403, 422), e.body  # the API server's validation may refuse first
    labelled = {"spec": {"suspend": False}, "metadata": {"labels": {"team": "x"}}}
    assert "labels" in by_policy(patch, "gang-a", c.ns, labelled)
    more = {"spec": {"suspend": False, "parallelism": 2}}
    assert "nothing of Job" in by_policy(patch, "gang-a", c.ns, more)
    # The actuator's patch passes, once; a Job is never suspended again.
    patch("gang-a", c.ns, unsuspend(uid["gang-a"]))
    assert admin_batch.read_namespaced_job("gang-a", c.ns).spec.suspend is False
    assert "only unsuspend" in by_policy(patch, "gang-a", c.ns, {"spec": {"suspend": True}})
    # A merge patch of spec.suspend alone is the same change, and allowed.
    patch("gang-b", c.ns, {"spec": {"suspend": False}}, dry_run="All")


@pytest.mark.kube
def test_scale_only_the_named_pools(controller: AsController) -> None:
    """rbac.scaleTargets names the pools' workloads (RBAC resourceNames): any other is
    refused, labelled or not. (No admission policy can check the owner label instead: a
    scale request's object is an autoscaling/v1 Scale, without the workload's labels.)"""
    c = controller
    scale = {"spec": {"replicas": 5}}
    for name in ("foreign", "theirs"):
        message = by_rbac(c.apps.patch_namespaced_deployment_scale, name, c.ns, scale)
        assert 'cannot patch resource \\"deployments/scale\\"' in message, message
        by_rbac(c.apps.read_namespaced_deployment_scale, name, c.ns)
    by_rbac(c.apps.patch_namespaced_stateful_set_scale, "foreign-sts", c.ns, scale)
    # A PUT of the subresource: not a verb the controller uses.
    current = c.apps.read_namespaced_deployment_scale("owned", c.ns)
    by_rbac(c.apps.replace_namespaced_deployment_scale, "owned", c.ns, current)
    # The workload itself (its spec, its replicas) only through the scale subresource.
    by_rbac(c.apps.patch_namespaced_deployment, "owned", c.ns, {"spec": {"replicas": 5}})
    assert not c.may("update", "deployments", c.ns, group="apps")
    assert not c.may("create", "deployments", c.ns, group="apps")


@pytest.mark.kube
def test_nothing_cluster_wide_nor_secrets_without_node_provisioning(
    controller: AsController,
) -> None:
    c = controller
    by_rbac(c.core.list_node)
    by_rbac(c.core.patch_node, "any-node", {"spec": {"unschedulable": True}})
    assert not c.may("patch", "nodes")
    assert not c.may("create", "pods", c.ns, subresource="eviction")
    by_rbac(c.core.list_pod_for_all_namespaces)
    by_rbac(c.core.list_namespaced_secret, c.ns)
    by_rbac(c.core.list_namespaced_config_map, c.ns)
    by_rbac(c.coordination.read_namespaced_lease, "someone-elses-lease", c.ns)
    by_rbac(c.core.list_namespaced_pod, "kube-system")


# -- pools known to the chart: RBAC names them ---------------------------------------------------
@pytest.mark.kube
def test_with_the_pools_in_the_file_rbac_names_the_workloads_it_may_scale(
    kube_cluster: KubeCluster, kube_api: Any, core_v1: Any, apps_v1: Any, tmp_path: Path
) -> None:
    """crdPools off and the pools in config.file: scale is granted on their targets by name
    (RBAC resourceNames), so another Deployment is refused by RBAC before any policy, even
    one labelled as this installation's. Node provisioning on: Nodes become readable."""
    ns = fresh_namespace(core_v1)
    pool = {
        "name": "chat",
        "target": {"kind": "deployment", "namespace": ns, "name": "vllm"},
        "max": 4,
        "signals": {"queue": {"source": {"type": "static", "value": 1}}},
        "policy": {"type": "queue-depth", "target_per_replica": 1},
    }
    values = {**VALUES, "crdPools": False, "config": {"file": {"pools": [pool]}},
              "rbac": {"nodeProvisioning": True}}  # fmt: skip
    try:
        for name in ("vllm", "labelled-but-not-a-pool"):
            apps_v1.create_namespaced_deployment(ns, deployment(name, INSTALLATION))
        with install(kube_cluster, kube_api, core_v1, ns, tmp_path, values) as c:
            c.apps.patch_namespaced_deployment_scale("vllm", ns, {"spec": {"replicas": 1}})
            message = by_rbac(
                c.apps.patch_namespaced_deployment_scale,
                "labelled-but-not-a-pool", ns, {"spec": {"replicas": 1}},
            )  # fmt: skip
            assert 'cannot patch resource \\"deployments/scale\\"' in message, message
            assert not c.may("patch", "statefulsets", ns, group="apps", subresource="scale")
            # GPU node provisioning: Nodes and evictions, cluster-wide.
            c.core.list_node()
            assert c.may("patch", "nodes") and c.may("delete", "nodes")
            assert c.may("create", "pods", "kube-system", subresource="eviction")
    finally:
        drop_namespace(core_v1, ns)
