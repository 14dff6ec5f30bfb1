"""The Helm chart (helm/autoscaler): `helm lint --strict` is clean, `helm template` renders
objects that say what the controller needs (security context, probes, flags, least-privilege
RBAC), the rendered objects pass the real API server's server-side dry run, and `helm
install` creates a ServiceAccount whose token can do exactly what the controller does, in
exactly the namespaces it was granted.

The helpers here (`tool`, `helm_template`, `kinds`...) are shared with test_manifests.py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k
from kubernetes.client.exceptions import ApiException

from autoscaler.config import Config
from autoscaler.kube.crd import GROUP, PLURAL
from tests.cluster.binaries import BUILD_HINT, REPO_ROOT, bin_dir, read_versions
from tests.cluster.session import KubeCluster, in_ci
from tests.kube.test_rbac import client_with_token, status_of

CHART = REPO_ROOT / "helm" / "autoscaler"
# Offline, helm assumes Kubernetes 1.20 (older than the chart's kubeVersion): render for the
# version the test cluster runs.
KUBE_VERSION = read_versions()["K8S_VERSION"]
Obj = dict[str, Any]


# -- running helm and kubectl ------------------------------------------------------------------
def tool(name: str) -> Path:
    """The built binary (make cluster-build), else one on PATH; a CI failure or a skip."""
    built = bin_dir() / name
    if built.is_file() and os.access(built, os.X_OK):
        return built
    found = shutil.which(name)
    if found:
        return Path(found)
    message = f"{name} is not built and not on PATH; {BUILD_HINT}"
    if in_ci():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def run_tool(
    name: str, *args: str, home: Path, env: dict[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run helm/kubectl with its cache, config and data kept under `home` (not the user's)."""
    full = dict(env if env is not None else os.environ)
    for var in ("HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME"):
        full[var] = str(home / var.lower())
    if env is None:
        full.pop("KUBECONFIG", None)  # offline commands must not depend on a cluster
    return subprocess.run(
        [str(tool(name)), *args],
        env=full, input=stdin, capture_output=True, text=True, timeout=180,
    )  # fmt: skip


def ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, f"{done.args} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def parse_docs(text: str) -> list[Obj]:
    return [d for d in yaml.safe_load_all(text) if d]


def helm_template(
    home: Path, values: Obj | None = None, namespace: str = "autoscaler", release: str = "ea"
) -> list[Obj]:
    """`helm template` of the chart with the given values (CRDs included), parsed."""
    args = ["template", release, str(CHART), "--namespace", namespace, "--include-crds",
            "--kube-version", KUBE_VERSION]  # fmt: skip
    if values is not None:
        path = home / f"values-{uuid.uuid4().hex[:8]}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(values))
        args += ["--values", str(path)]
    return parse_docs(ok(run_tool("helm", *args, home=home)))


def kinds(objs: list[Obj]) -> dict[str, list[Obj]]:
    out: dict[str, list[Obj]] = {}
    for obj in objs:
        out.setdefault(obj["kind"], []).append(obj)
    return out


def one(objs: list[Obj], kind: str) -> Obj:
    found = kinds(objs).get(kind, [])
    assert len(found) == 1, f"expected one {kind}, got {[o['metadata']['name'] for o in found]}"
    return found[0]


def rbac_rules(objs: list[Obj]) -> list[Obj]:
    return [r for o in objs if o["kind"] in ("Role", "ClusterRole") for r in o["rules"]]


def assert_least_privilege(objs: list[Obj]) -> None:
    """No wildcard, no Secrets or ConfigMaps, no escalation verbs, no writes to workload
    specs: what every rendering of RBAC must hold."""
    for rule in rbac_rules(objs):
        for field in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule.get(field, []), rule
        assert not {"secrets", "configmaps"} & set(rule["resources"]), rule
        assert not {"escalate", "bind", "impersonate", "deletecollection"} & set(rule["verbs"])
        if {"deployments", "statefulsets"} & set(rule["resources"]):
            assert set(rule["verbs"]) <= {"get", "list", "watch"}, rule


def deployment_container(objs: list[Obj]) -> Obj:
    containers: list[Obj] = one(objs, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def assert_hardened(deployment: Obj) -> None:
    """Non-root, read-only root filesystem, no capabilities, RuntimeDefault seccomp, limits,
    and both probes on the health port."""
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 65532
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["runAsNonRoot"] is True
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert set(container["resources"]) == {"requests", "limits"}
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    assert "memory" in container["resources"]["limits"]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "health"}
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"metrics": 8080, "health": 8081}
    # The read-only root needs a writable /tmp (matplotlib's config folder lives there).
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert mounts.get("/tmp") == "tmp"
    assert {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}} in pod["volumes"]


def flag_values(args: list[str], flag: str) -> list[str]:
    """Every value given to `flag`, whether written `--flag=v` or `--flag v`."""
    out = []
    for i, arg in enumerate(args):
        if arg.startswith(f"{flag}="):
            out.append(arg.split("=", 1)[1])
        elif arg == flag and i + 1 < len(args):
            out.append(args[i + 1])
    return out


# -- offline: lint and template ------------------------------------------------------------------
def test_helm_lint_is_clean_even_with_strict(tmp_path: Path) -> None:
    monitor = tmp_path / "monitor.yaml"
    monitor.write_text("metrics: {serviceMonitor: {enabled: true}}\naws: {region: us-east-1}\n")
    for extra in ([], ["--strict"], ["--strict", "--values", str(monitor)]):
        args = ("lint", str(CHART), "--kube-version", KUBE_VERSION, *extra)
        out = ok(run_tool("helm", *args, home=tmp_path))
        assert "1 chart(s) linted, 0 chart(s) failed" in out, out
        assert "[WARNING]" not in out and "[ERROR]" not in out, out


def test_default_render_is_the_hardened_controller_with_its_flags_and_nothing_more(
    tmp_path: Path,
) -> None:
    objs = helm_template(tmp_path, namespace="autoscaler")
    found = {kind: sorted(o["metadata"]["name"] for o in v) for kind, v in kinds(objs).items()}
    assert found == {
        "CustomResourceDefinition": [f"{PLURAL}.{GROUP}", f"autoscalingtriggers.{GROUP}"],
        "ServiceAccount": ["ea-autoscaler"],
        "ClusterRole": ["autoscaler-ea-autoscaler-workloads"],  # bound per namespace only
        "ConfigMap": ["ea-autoscaler-config"],
        "Role": ["ea-autoscaler-leader"],
        "RoleBinding": ["ea-autoscaler-leader", "ea-autoscaler-workloads"],
        "Deployment": ["ea-autoscaler"],
        "Service": ["ea-autoscaler-metrics"],
        "PodDisruptionBudget": ["ea-autoscaler"],
        # What RBAC cannot narrow (tests/kube/test_least_privilege.py).
        "ValidatingAdmissionPolicy": [
            "autoscaler-ea-autoscaler-job-admission",
            "autoscaler-ea-autoscaler-jobs",
            "autoscaler-ea-autoscaler-pods",
        ],
        "ValidatingAdmissionPolicyBinding": [
            "autoscaler-ea-autoscaler-job-admission",
            "autoscaler-ea-autoscaler-jobs",
            "autoscaler-ea-autoscaler-pods",
        ],
    }
    deployment = one(objs, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    assert_hardened(deployment)
    container = deployment_container(objs)
    args = container["args"]
    assert args[0] == "run"
    for flag in ("--crd-pools", "--leader-elect", "--json-logs"):
        assert flag in args
    assert flag_values(args, "--health-port") == ["8081"]
    assert flag_values(args, "--metrics-port") == ["8080"]
    assert flag_values(args, "--namespace") == ["autoscaler"]  # its own, and only that
    assert flag_values(args, "--lease-name") == ["ea-autoscaler"]
    assert flag_values(args, "--lease-namespace") == ["autoscaler"]
    assert flag_values(args, "--identity") == ["$(POD_NAME)"]
    # The configuration file carries the installation id; with --crd-pools it needs no pools.
    assert flag_values(args, "--config") == ["/etc/autoscaler/config.yaml"]
    settings = yaml.safe_load(one(objs, "ConfigMap")["data"]["config.yaml"])
    # no shared "default": the release's own id unless installationId is set
    assert settings == {"installation": {"id": "autoscaler-ea"}}
    assert container["image"] == "ghcr.io/elastic-autoscaler/autoscaler:0.1.0"  # appVersion
    env = {e["name"]: e for e in container["env"]}
    assert env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    assert "AWS_REGION" not in env

    sa = one(objs, "ServiceAccount")
    assert "annotations" not in sa["metadata"]
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == "ea-autoscaler"
    assert_least_privilege(objs)
    for binding in kinds(objs)["RoleBinding"]:
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "ea-autoscaler", "namespace": "autoscaler"}
        ]

    service = one(objs, "Service")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert service["spec"]["ports"] == [
        {"name": "metrics", "port": 8080, "targetPort": "metrics", "protocol": "TCP"}
    ]
    pdb = one(objs, "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()


def test_values_reach_the_objects(tmp_path: Path) -> None:
    pools = {
        "controller": {"interval": "30s"},
        "pools": [
            {
                "name": "chat",
                "target": {"kind": "deployment", "namespace": "llm", "name": "vllm"},
                "min": 1,
                "max": 4,
                "signals": {"queue": {"source": {"type": "static", "value": 3}}},
                "policy": {"type": "queue-depth", "signal": "queue", "target_per_replica": 2},
            }
        ],
    }
    values = {
        "image": {"repository": "registry.example/ea", "tag": "1.2.3", "pullPolicy": "Always"},
        "replicaCount": 3,
        "installationId": "prod-eu",
        "config": {"file": pools},
        "aws": {
            "region": "eu-west-1",
            "roleArn": "arn:aws:iam::123456789012:role/autoscaler",
        },
        "rbac": {"watchNamespaces": ["llm", "batch"], "nodes": False},
        "leaderElection": {"leaseName": "ea-lock", "leaseDuration": 30},
        "extraArgs": ["--dry-run"],
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "infra", "operator": "Exists", "effect": "NoSchedule"}],
        "affinity": {"nodeAffinity": {}},
        "resources": {"requests": {"cpu": "200m", "memory": "300Mi"}, "limits": {"memory": "1Gi"}},
        "metrics": {"service": {"enabled": False}},
        "podDisruptionBudget": {"maxUnavailable": 1},
    }
    objs = helm_template(tmp_path, values, namespace="ops")
    by_kind = kinds(objs)
    assert "Service" not in by_kind
    assert "ClusterRoleBinding" not in by_kind  # no nodes
    assert "node-provisioning" not in str(objs)  # off by default
    assert [o["metadata"]["name"] for o in by_kind["ClusterRole"]] == [
        "ops-ea-autoscaler-workloads"
    ]
    # One RoleBinding per watched namespace; the lease Role stays in the release namespace.
    bindings = {(b["metadata"]["namespace"], b["metadata"]["name"]) for b in by_kind["RoleBinding"]}
    assert bindings == {
        ("llm", "ea-autoscaler-workloads"),
        ("batch", "ea-autoscaler-workloads"),
        ("ops", "ea-autoscaler-leader"),
    }
    leader = one(objs, "Role")
    assert {"resourceNames": ["ea-lock"]}.items() <= leader["rules"][1].items()

    deployment = one(objs, "Deployment")
    assert deployment["spec"]["replicas"] == 3
    pod = deployment["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert pod["tolerations"] == values["tolerations"]
    assert pod["affinity"] == {"nodeAffinity": {}}
    container = deployment_container(objs)
    assert container["image"] == "registry.example/ea:1.2.3"
    assert container["imagePullPolicy"] == "Always"
    # Helm merges maps with the defaults: the default CPU limit stays unless set to null.
    assert container["resources"] == {
        "requests": {"cpu": "200m", "memory": "300Mi"},
        "limits": {"cpu": "1", "memory": "1Gi"},
    }
    args = container["args"]
    assert flag_values(args, "--namespace") == ["llm", "batch"]
    assert flag_values(args, "--lease-name") == ["ea-lock"]
    assert flag_values(args, "--lease-duration") == ["30"]
    assert flag_values(args, "--config") == ["/etc/autoscaler/config.yaml"]
    assert args[-1] == "--dry-run"
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["AWS_REGION"] == "eu-west-1"
    sa = one(objs, "ServiceAccount")
    assert sa["metadata"]["annotations"] == {
        "eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/autoscaler"
    }
    assert one(objs, "PodDisruptionBudget")["spec"] == {
        "maxUnavailable": 1,
        "selector": {"matchLabels": deployment["spec"]["selector"]["matchLabels"]},
    }

    # The file: mounted from the ConfigMap, with the installation id, and valid.
    configmap = one(objs, "ConfigMap")
    assert {"name": "config", "configMap": {"name": configmap["metadata"]["name"]}} in pod[
        "volumes"
    ]
    mount = {"name": "config", "mountPath": "/etc/autoscaler", "readOnly": True}
    assert mount in container["volumeMounts"]
    text = configmap["data"]["config.yaml"]
    config = Config.model_validate(yaml.safe_load(text))
    assert config.installation.id == "prod-eu"
    assert [p.name for p in config.pools] == ["chat"]
    checksum = deployment["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
    assert len(checksum) == 64


def test_service_monitor_when_enabled_scrapes_the_metrics_service(tmp_path: Path) -> None:
    assert "ServiceMonitor" not in kinds(helm_template(tmp_path))  # off by default
    values = {
        "metrics": {
            "serviceMonitor": {"enabled": True, "interval": "15s", "labels": {"release": "kps"}}
        }
    }
    objs = helm_template(tmp_path, values, namespace="mon")
    monitor = one(objs, "ServiceMonitor")
    service = one(objs, "Service")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["namespace"] == "mon"
    assert monitor["metadata"]["labels"]["release"] == "kps"
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["mon"]}
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    port_names = [p["name"] for p in service["spec"]["ports"]]
    assert monitor["spec"]["endpoints"] == [
        {"port": "metrics", "path": "/metrics", "interval": "15s", "scrapeTimeout": "10s"}
    ]
    assert "metrics" in port_names


def test_node_provisioning_gets_its_cluster_wide_grants_only_when_asked(tmp_path: Path) -> None:
    objs = helm_template(tmp_path, {"rbac": {"nodeProvisioning": True}}, namespace="ops")
    roles = {r["metadata"]["name"]: r["rules"] for r in kinds(objs)["ClusterRole"]}
    assert roles["ops-ea-autoscaler-node-provisioning"] == [
        {"apiGroups": [""], "resources": ["nodes"],
         "verbs": ["get", "list", "watch", "patch", "delete"]},
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["list", "watch"]},
        {"apiGroups": [""], "resources": ["pods/eviction"], "verbs": ["create"]},
        {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["get", "list"]},
    ]  # fmt: skip
    bindings = [b["roleRef"]["name"] for b in kinds(objs)["ClusterRoleBinding"]]
    assert "ops-ea-autoscaler-node-provisioning" in bindings
    assert_least_privilege(objs)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"replicaCount": 0}, "replicaCount"),
        ({"replicas": 2}, "replicas"),  # a typo is refused, not ignored
        ({"image": {"repository": "x", "pullPolicy": "Sometimes"}}, "pullPolicy"),
        ({"installationId": "no spaces"}, "installationId"),
        ({"aws": {"roleArn": "my-role"}}, "roleArn"),
        ({"rbac": {"watchNamespaces": ["Bad_NS"]}}, "watchNamespaces"),
        ({"leaderElection": {"enabled": False}}, "needs leaderElection.enabled"),
        ({"crdPools": False}, "nothing to scale"),
        ({"config": {"file": {"installation": {"id": "other"}}}}, "differs from installationId"),
        (
            {"metrics": {"service": {"enabled": False}, "serviceMonitor": {"enabled": True}}},
            "needs metrics.service.enabled",
        ),
    ],
)
def test_bad_values_are_refused_with_a_message_naming_them(
    tmp_path: Path, values: Obj, expected: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(values))
    args = ("template", "ea", str(CHART), "--kube-version", KUBE_VERSION, "--values", str(path))
    done = run_tool("helm", *args, home=tmp_path)
    assert done.returncode != 0, done.stdout
    assert expected in done.stderr, done.stderr
    assert "panic" not in done.stderr


def test_values_schema_is_valid_json_schema_and_accepts_the_defaults() -> None:
    import jsonschema

    schema = json.loads((CHART / "values.schema.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    jsonschema.Draft7Validator(schema).validate(defaults)
    # Every top-level value is described by the schema (no undocumented knobs).
    assert set(defaults) <= set(schema["properties"])


# -- against the API server ------------------------------------------------------------------------
def kubectl_apply_dry_run(cluster: KubeCluster, objs: list[Obj]) -> str:
    """Server-side apply in dry-run mode: every admission step and schema check runs, and
    nothing is stored."""
    assert cluster.kubectl is not None, f"kubectl is not built; {BUILD_HINT}"
    text = yaml.safe_dump_all(objs)
    done = subprocess.run(
        [
            str(cluster.kubectl), "apply", "--server-side", "--dry-run=server",
            "--force-conflicts", "--field-manager=autoscaler-tests", "-f", "-",
        ],
        env=cluster.tool_env(), input=text, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    return ok(done)


@pytest.mark.kube
def test_rendered_chart_passes_the_api_servers_server_side_dry_run(
    kube_cluster: KubeCluster, kube_namespace: str, tmp_path: Path
) -> None:
    values = {
        "config": {
            "file": {
                "pools": [
                    {
                        "name": "p",
                        "target": {"kind": "deployment", "name": "w"},
                        "max": 2,
                        "signals": {"queue": {"source": {"type": "static", "value": 1}}},
                        "policy": {"type": "queue-depth", "target_per_replica": 1},
                    }
                ]
            }
        },
        "aws": {"region": "us-east-1", "roleArn": "arn:aws:iam::123456789012:role/x"},
    }
    objs = helm_template(tmp_path, values, namespace=kube_namespace, release="dry")
    out = kubectl_apply_dry_run(kube_cluster, objs)
    applied = [line for line in out.splitlines() if "(server dry run)" in line]
    assert len(applied) == len(objs), out


@pytest.fixture
def extra_namespaces(core_v1: Any) -> Iterator[list[str]]:
    """Two more fresh namespaces: one the release is granted, one it is not."""
    names = [f"t-{uuid.uuid4().hex[:10]}" for _ in range(2)]
    for name in names:
        core_v1.create_namespace({"metadata": {"name": name, "labels": {"autoscaler-test": "1"}}})
    try:
        yield names
    finally:
        for name in names:
            try:
                core_v1.delete_namespace(name)
            except ApiException as e:
                if e.status != 404:
                    raise


def a_deployment(apps_v1: Any, namespace: str, name: str = "workers") -> None:
    labels = {"app": name}
    apps_v1.create_namespaced_deployment(
        namespace,
        {
            "metadata": {"name": name, "labels": labels},
            "spec": {
                "replicas": 0,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]},
                },
            },
        },
    )


def allowed(authz: Any, verb: str, resource: str, namespace: str = "", **extra: str) -> bool:
    """SelfSubjectAccessReview: may the caller do this? (asked without doing it)."""
    attrs = {"verb": verb, "resource": resource, "namespace": namespace, **extra}
    review = authz.create_self_subject_access_review({"spec": {"resourceAttributes": attrs}})
    return bool(review.status.allowed)


@pytest.mark.kube
def test_helm_install_creates_the_controller_and_its_token_can_do_exactly_its_job(
    kube_cluster: KubeCluster,
    kube_api: Any,
    core_v1: Any,
    apps_v1: Any,
    rbac_v1: Any,
    kube_namespace: str,
    extra_namespaces: list[str],
    tmp_path: Path,
) -> None:
    ns = kube_namespace
    granted, foreign = extra_namespaces
    release = "ea"
    env = kube_cluster.tool_env()
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({"rbac": {"watchNamespaces": [ns, granted]}}))
    installed = run_tool(
        "helm", "install", release, str(CHART), "--namespace", ns,
        "--values", str(values), home=tmp_path, env=env,
    )  # fmt: skip
    try:
        notes = ok(installed)
        # NOTES.txt: rendered, and says where the controller acts.
        assert "It watches, and is granted RBAC in, these namespaces only:" in notes, notes
        assert f"  - {ns}\n  - {granted}\n" in notes, notes
        check_installed_objects(kube_api, core_v1, apps_v1, rbac_v1, ns, granted)
        sa = "ea-autoscaler"
        token = core_v1.create_namespaced_service_account_token(
            sa, ns, {"spec": {"expirationSeconds": 600}}
        ).status.token
        for where in (ns, granted, foreign):
            a_deployment(apps_v1, where)
        with client_with_token(kube_api, token) as as_controller:
            check_rbac(k.AppsV1Api(as_controller), k.CoreV1Api(as_controller),
                       k.CoordinationV1Api(as_controller),
                       k.AuthorizationV1Api(as_controller), ns, granted, foreign)  # fmt: skip
    finally:
        # ClusterRoles outlive the namespace: uninstall so the shared cluster stays clean.
        ok(run_tool("helm", "uninstall", release, "--namespace", ns, home=tmp_path, env=env))
    names = [r.metadata.name for r in rbac_v1.list_cluster_role().items]
    assert not [n for n in names if n.startswith(f"{ns}-ea-autoscaler")], names


def check_installed_objects(
    kube_api: Any, core_v1: Any, apps_v1: Any, rbac_v1: Any, ns: str, granted: str
) -> None:
    sa = core_v1.read_namespaced_service_account("ea-autoscaler", ns)
    assert sa.metadata.labels["app.kubernetes.io/instance"] == "ea"
    rbac_v1.read_namespaced_role("ea-autoscaler-leader", ns)
    rbac_v1.read_namespaced_role_binding("ea-autoscaler-leader", ns)
    for where in (ns, granted):
        binding = rbac_v1.read_namespaced_role_binding("ea-autoscaler-workloads", where)
        assert binding.role_ref.name == f"{ns}-ea-autoscaler-workloads"
    rbac_v1.read_cluster_role(f"{ns}-ea-autoscaler-workloads")
    bindings = [b.metadata.name for b in rbac_v1.list_cluster_role_binding().items]
    assert not [n for n in bindings if n.startswith(f"{ns}-ea-autoscaler")], bindings
    crd = k.ApiextensionsV1Api(kube_api).read_custom_resource_definition(f"{PLURAL}.{GROUP}")
    assert crd.spec.names.kind == "AutoscalingPool"
    deployment = apps_v1.read_namespaced_deployment("ea-autoscaler", ns)
    assert deployment.spec.replicas == 2
    assert deployment.spec.template.spec.service_account_name == "ea-autoscaler"
    assert deployment.spec.template.spec.containers[0].security_context.read_only_root_filesystem


def status(call: Any, *args: Any) -> int:
    """The HTTP status of one API call: 200 when it succeeds."""
    return status_of(lambda: call(*args))


def check_rbac(
    apps: Any, core: Any, coordination: Any, authz: Any, ns: str, granted: str, foreign: str
) -> None:
    """What the controller does works in its namespaces; everything else is refused."""
    scale = {"spec": {"replicas": 1}}
    for where in (ns, granted):
        assert status(apps.patch_namespaced_deployment_scale, "workers", where, scale) == 200
        assert status(core.list_namespaced_pod, where) == 200
        event = {
            "metadata": {"generateName": "autoscaler-"},
            "involvedObject": {"kind": "Deployment", "name": "workers", "namespace": where},
            "reason": "Scaled",
            "message": "test",
            "type": "Normal",
        }
        assert status(core.create_namespaced_event, where, event) == 200
        assert allowed(authz, "patch", "autoscalingpools", where, group=GROUP, subresource="status")
        assert allowed(authz, "create", "jobs", where, group="batch")
        # Evictions drain nodes: only with rbac.nodeProvisioning.
        assert not allowed(authz, "create", "pods", where, subresource="eviction")
        # Never the workload's spec, never Secrets.
        assert not allowed(authz, "patch", "deployments", where, group="apps")
        assert status(core.list_namespaced_secret, where) == 403
        assert not allowed(authz, "get", "secrets", where)

    # The Lease: created and renewed in its own namespace only, and only the named one.
    lease = {"metadata": {"name": "ea-autoscaler"}, "spec": {"holderIdentity": "test"}}
    assert status(coordination.create_namespaced_lease, ns, lease) == 200
    assert status(coordination.read_namespaced_lease, "ea-autoscaler", ns) == 200
    assert status(coordination.read_namespaced_lease, "someone-else", ns) == 403
    assert status(coordination.create_namespaced_lease, granted, lease) == 403

    # A namespace it was not granted: nothing at all.
    assert status(apps.patch_namespaced_deployment_scale, "workers", foreign, scale) == 403
    assert status(apps.read_namespaced_deployment, "workers", foreign) == 403
    assert status(core.list_namespaced_pod, foreign) == 403
    assert not allowed(authz, "list", "autoscalingpools", foreign, group=GROUP)
    assert not allowed(authz, "create", "events", foreign)
    assert not allowed(authz, "list", "secrets", "")  # cluster-wide: no

    # Nodes are cluster-scoped: nothing without rbac.nodeProvisioning.
    assert status(core.list_node) == 403
    assert not allowed(authz, "patch", "nodes")
    assert not allowed(authz, "delete", "nodes")
