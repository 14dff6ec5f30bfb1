"""The activator's packaging (docs/activator.md): the Helm chart's `activator.*` objects and
the kustomize component k8s/components/activator.

Off by default: nothing of it renders. On: a hardened Deployment running `autoscaler
activator` with probes on its admin port, its own ServiceAccount that may only read
EndpointSlices and, with crdPools (the default), AutoscalingPools (in the watched
namespaces, which it gets as --namespace like the controller), a PodDisruptionBudget, the
proxy Service and a headless admin Service; none of its selectors touch the controller's
pods, nor theirs its. The schema and the templates refuse bad values. The kustomize
component builds the same objects. Against the API server: both pass the server-side dry
run, and an installed release's activator token can read EndpointSlices and
AutoscalingPools where granted and nothing else.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k
from kubernetes.client.exceptions import ApiException

from autoscaler.config import Config
from tests.cluster.binaries import REPO_ROOT
from tests.cluster.session import KubeCluster
from tests.kube.test_chart import (
    CHART,
    KUBE_VERSION,
    Obj,
    allowed,
    assert_least_privilege,
    flag_values,
    helm_template,
    kinds,
    kubectl_apply_dry_run,
    ok,
    one,
    parse_docs,
    run_tool,
    status,
)
from tests.kube.test_rbac import client_with_token

K8S = REPO_ROOT / "k8s"
COMPONENT = K8S / "components" / "activator"
DOC = REPO_ROOT / "docs" / "activator.md"

ENDPOINTSLICE_RULE = {
    "apiGroups": ["discovery.k8s.io"],
    "resources": ["endpointslices"],
    "verbs": ["get", "list", "watch"],
}
CRD_RULE = {
    "apiGroups": ["autoscaling.elastic-autoscaler.io"],
    "resources": ["autoscalingpools"],
    "verbs": ["get", "list", "watch"],
}


def activator_objects(objs: list[Obj]) -> list[Obj]:
    return [o for o in objs if "activator" in o["metadata"]["name"]]


def by_name(objs: list[Obj], kind: str) -> dict[str, Obj]:
    return {o["metadata"]["name"]: o for o in kinds(objs).get(kind, [])}


def names(objs: list[Obj]) -> dict[str, list[str]]:
    return {kind: sorted(o["metadata"]["name"] for o in v) for kind, v in kinds(objs).items()}


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return selector.items() <= labels.items()


def pod_labels(deployment: Obj) -> dict[str, str]:
    labels: dict[str, str] = deployment["spec"]["template"]["metadata"]["labels"]
    return labels


def assert_activator_pod(deployment: Obj, config_map: str) -> Obj:
    """Hardened like the controller, probes on the admin port, the config file mounted,
    a grace period longer than the drain. Returns the container."""
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
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    assert "memory" in container["resources"]["limits"]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "admin"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "admin"}
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts["/tmp"]["name"] == "tmp"
    assert mounts["/etc/autoscaler"] == {
        "name": "config", "mountPath": "/etc/autoscaler", "readOnly": True
    }  # fmt: skip
    assert {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}} in pod["volumes"]
    assert {"name": "config", "configMap": {"name": config_map}} in pod["volumes"]
    args = container["args"]
    assert args[:2] == ["activator", "/etc/autoscaler/config.yaml"]
    (drain,) = flag_values(args, "--drain-seconds")
    assert pod["terminationGracePeriodSeconds"] > int(drain)
    # Replicas apart when the scheduler can: preferred, never required.
    anti = pod["affinity"]["podAntiAffinity"]
    assert "requiredDuringSchedulingIgnoredDuringExecution" not in anti
    (term,) = anti["preferredDuringSchedulingIgnoredDuringExecution"]
    assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    assert (
        term["podAffinityTerm"]["labelSelector"]["matchLabels"]
        == (deployment["spec"]["selector"]["matchLabels"])
    )
    return dict(container)


def assert_services(objs: list[Obj], proxy: str, admin: str, deployment: Obj) -> None:
    services = by_name(objs, "Service")
    labels = pod_labels(deployment)
    front, headless = services[proxy], services[admin]
    assert front["spec"]["type"] == "ClusterIP"
    assert "clusterIP" not in front["spec"]
    assert front["spec"]["ports"] == [
        {"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP"}
    ]
    assert headless["spec"]["clusterIP"] == "None"  # one address per replica
    assert headless["spec"]["ports"] == [
        {"name": "admin", "port": 9091, "targetPort": "admin", "protocol": "TCP"}
    ]
    for service in (front, headless):
        assert selects(service["spec"]["selector"], labels)
    ports = {p["name"]: p["containerPort"] for p in deployment_container(deployment)["ports"]}
    assert ports == {"http": 8080, "admin": 9091}


def deployment_container(deployment: Obj) -> Obj:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return dict(container)


def assert_endpointslices_only(
    objs: list[Obj], sa: str, sa_namespace: str, crd_pools: bool = True
) -> list[str]:
    """The activator's roles allow get/list/watch on EndpointSlices (and with `crd_pools`
    AutoscalingPools) and nothing else; its ServiceAccount is bound to nothing else.
    Returns the namespaces it is granted in."""
    bindings = [
        b for b in kinds(objs).get("RoleBinding", []) + kinds(objs).get("ClusterRoleBinding", [])
        if {"kind": "ServiceAccount", "name": sa, "namespace": sa_namespace} in b["subjects"]
    ]  # fmt: skip
    assert bindings
    roles = by_name(objs, "ClusterRole") | by_name(objs, "Role")
    for binding in bindings:
        assert binding["kind"] == "RoleBinding", binding  # never cluster-wide
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": sa, "namespace": sa_namespace}
        ]
        rules = [ENDPOINTSLICE_RULE, *([CRD_RULE] if crd_pools else [])]
        assert roles[binding["roleRef"]["name"]]["rules"] == rules
    assert_least_privilege(objs)
    return sorted(b["metadata"]["namespace"] for b in bindings)


# -- Helm, offline ---------------------------------------------------------------------------
def test_activator_is_off_by_default(tmp_path: Path) -> None:
    objs = helm_template(tmp_path)
    assert activator_objects(objs) == []
    rendered = [o for o in objs if o["kind"] != "CustomResourceDefinition"]  # the pool schema
    assert "activator" not in yaml.safe_dump_all(rendered)
    # Off explicitly, with its other values set: still nothing.
    values = {"activator": {"enabled": False, "replicaCount": 3,
                            "serviceMonitor": {"enabled": True}}}  # fmt: skip
    assert activator_objects(helm_template(tmp_path, values)) == []


def test_enabled_activator_renders_its_hardened_deployment_services_rbac_and_pdb(
    tmp_path: Path,
) -> None:
    objs = helm_template(tmp_path, ON, namespace="autoscaler")
    assert names(activator_objects(objs)) == {
        "Deployment": ["ea-autoscaler-activator"],
        "ServiceAccount": ["ea-autoscaler-activator"],
        "ClusterRole": ["autoscaler-ea-autoscaler-activator"],
        "RoleBinding": ["ea-autoscaler-activator"],
        "PodDisruptionBudget": ["ea-autoscaler-activator"],
        "Service": ["ea-autoscaler-activator", "ea-autoscaler-activator-admin"],
    }
    for obj in activator_objects(objs):
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/component"] == "activator"
        assert labels["app.kubernetes.io/instance"] == "ea"
        if obj["kind"] != "ClusterRole":
            assert obj["metadata"]["namespace"] == "autoscaler"

    deployments = by_name(objs, "Deployment")
    deployment, controller = deployments["ea-autoscaler-activator"], deployments["ea-autoscaler"]
    assert deployment["spec"]["replicas"] == 2
    container = assert_activator_pod(deployment, config_map="ea-autoscaler-config")
    assert container["args"] == [
        "activator", "/etc/autoscaler/config.yaml", "--crd-pools", "--namespace=autoscaler",
        "--listen=0.0.0.0:8080", "--admin=0.0.0.0:9091", "--drain-seconds=30", "--json-logs",
    ]  # fmt: skip
    assert deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 45
    # The controller's image, security contexts and resources-style limits.
    assert container["image"] == deployment_container(controller)["image"]
    controller_pod = controller["spec"]["template"]["spec"]
    assert (
        deployment["spec"]["template"]["spec"]["securityContext"]
        == (controller_pod["securityContext"])
    )
    assert container["securityContext"] == deployment_container(controller)["securityContext"]
    # The same configuration file rolls both when it changes.
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert (
        annotations["checksum/config"]
        == (controller["spec"]["template"]["metadata"]["annotations"]["checksum/config"])
    )
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "ea-autoscaler-activator"
    assert pod["automountServiceAccountToken"] is True

    assert_services(objs, "ea-autoscaler-activator", "ea-autoscaler-activator-admin", deployment)
    granted = assert_endpointslices_only(objs, "ea-autoscaler-activator", "autoscaler")
    assert granted == ["autoscaler"]  # the release namespace: what the controller watches
    pdb = by_name(objs, "PodDisruptionBudget")["ea-autoscaler-activator"]
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]

    # The controller's objects never select the activator's pods, nor the reverse.
    activator_pods, controller_pods = pod_labels(deployment), pod_labels(controller)
    pdbs = by_name(objs, "PodDisruptionBudget")
    services = by_name(objs, "Service")
    assert not selects(controller["spec"]["selector"]["matchLabels"], activator_pods)
    assert not selects(services["ea-autoscaler-metrics"]["spec"]["selector"], activator_pods)
    assert not selects(pdbs["ea-autoscaler"]["spec"]["selector"]["matchLabels"], activator_pods)
    assert not selects(deployment["spec"]["selector"]["matchLabels"], controller_pods)
    for name in ("ea-autoscaler-activator", "ea-autoscaler-activator-admin"):
        assert not selects(services[name]["spec"]["selector"], controller_pods)
    # ... and the controller keeps its own grants: the activator is bound to none of them.
    controller_bindings = [
        b["metadata"]["name"] for b in kinds(objs)["RoleBinding"]
        if b["subjects"][0]["name"] == "ea-autoscaler"
    ]  # fmt: skip
    assert sorted(controller_bindings) == ["ea-autoscaler-leader", "ea-autoscaler-workloads"]


def test_activator_values_reach_its_objects(tmp_path: Path) -> None:
    values = {
        "rbac": {"watchNamespaces": ["llm", "batch"]},
        "config": {"existingConfigMap": "my-config"},
        "logging": {"json": False},
        "activator": {
            "enabled": True,
            "replicaCount": 3,
            "ports": {"proxy": 8000, "admin": 9000},
            "drainSeconds": 50,
            "terminationGracePeriodSeconds": 70,
            "service": {"type": "LoadBalancer", "port": 80,
                        "annotations": {"example.com/lb": "internal"}},
            "serviceAccount": {"name": "proxy-sa",
                               "annotations": {"example.com/team": "ml"}},
            "podDisruptionBudget": {"maxUnavailable": 1},
            "resources": {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"memory": "2Gi"}},
            "extraArgs": ["--kubeconfig=/etc/kube/config"],
            "extraEnv": [{"name": "EXTRA", "value": "1"}],
            "podAnnotations": {"example.com/a": "b"},
            "podLabels": {"team": "ml"},
            "priorityClassName": "system-cluster-critical",
            "nodeSelector": {"pool": "cpu"},
            "tolerations": [{"key": "cpu", "operator": "Exists"}],
            "affinity": {"nodeAffinity": {}},
            "topologySpreadConstraints": [
                {"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
                 "whenUnsatisfiable": "ScheduleAnyway"}
            ],
        },
    }  # fmt: skip
    objs = helm_template(tmp_path, values, namespace="ops")
    deployment = by_name(objs, "Deployment")["ea-autoscaler-activator"]
    assert deployment["spec"]["replicas"] == 3
    pod = deployment["spec"]["template"]["spec"]
    container = deployment_container(deployment)
    assert container["args"] == [
        "activator", "/etc/autoscaler/config.yaml", "--crd-pools", "--namespace=llm",
        "--namespace=batch", "--listen=0.0.0.0:8000", "--admin=0.0.0.0:9000",
        "--drain-seconds=50", "--kubeconfig=/etc/kube/config",
    ]  # fmt: skip
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {
        "http": 8000, "admin": 9000
    }  # fmt: skip
    assert pod["terminationGracePeriodSeconds"] == 70
    assert {"name": "EXTRA", "value": "1"} in container["env"]
    assert container["resources"] == {
        "requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "2", "memory": "2Gi"}
    }  # fmt: skip
    assert {"name": "config", "configMap": {"name": "my-config"}} in pod["volumes"]
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations == {"example.com/a": "b"}  # no checksum: the ConfigMap is not ours
    assert pod_labels(deployment)["team"] == "ml"
    assert pod["priorityClassName"] == "system-cluster-critical"
    assert pod["nodeSelector"] == {"pool": "cpu"}
    assert pod["tolerations"] == [{"key": "cpu", "operator": "Exists"}]
    assert pod["affinity"] == {"nodeAffinity": {}}  # replaces the default anti-affinity
    assert pod["topologySpreadConstraints"][0]["topologyKey"] == "topology.kubernetes.io/zone"
    assert pod["serviceAccountName"] == "proxy-sa"

    sa = by_name(objs, "ServiceAccount")["proxy-sa"]
    assert sa["metadata"]["annotations"] == {"example.com/team": "ml"}
    services = by_name(objs, "Service")
    front = services["ea-autoscaler-activator"]
    assert front["spec"]["type"] == "LoadBalancer"
    assert front["spec"]["ports"][0]["port"] == 80
    assert front["metadata"]["annotations"] == {"example.com/lb": "internal"}
    admin = services["ea-autoscaler-activator-admin"]
    assert admin["spec"]["ports"] == [
        {"name": "admin", "port": 9000, "targetPort": "admin", "protocol": "TCP"}
    ]
    # Granted in each watched namespace, exactly like the controller's workload rules.
    assert assert_endpointslices_only(objs, "proxy-sa", "ops") == ["batch", "llm"]
    pdb = by_name(objs, "PodDisruptionBudget")["ea-autoscaler-activator"]
    selector = {"matchLabels": deployment["spec"]["selector"]["matchLabels"]}
    assert pdb["spec"] == {"maxUnavailable": 1, "selector": selector}


def test_one_activator_replica_gets_no_pdb_and_no_anti_affinity(tmp_path: Path) -> None:
    objs = helm_template(tmp_path, with_activator(replicaCount=1))
    assert "ea-autoscaler-activator" not in by_name(objs, "PodDisruptionBudget")
    pod = by_name(objs, "Deployment")["ea-autoscaler-activator"]["spec"]["template"]["spec"]
    assert "affinity" not in pod


def test_without_rbac_create_the_activator_gets_no_roles(tmp_path: Path) -> None:
    objs = helm_template(tmp_path, {"rbac": {"create": False}, **ON})
    assert "ClusterRole" not in kinds(objs) and "RoleBinding" not in kinds(objs)
    assert "ea-autoscaler-activator" in by_name(objs, "Deployment")


def test_activator_service_monitor_scrapes_the_admin_port(tmp_path: Path) -> None:
    monitor_values = {"enabled": True, "labels": {"release": "kps"}}
    values = with_activator(serviceMonitor=monitor_values)
    objs = helm_template(tmp_path, values, namespace="mon")
    monitors = by_name(objs, "ServiceMonitor")
    assert list(monitors) == ["ea-autoscaler-activator"]  # the controller's stays off
    monitor = monitors["ea-autoscaler-activator"]
    assert monitor["metadata"]["labels"]["release"] == "kps"
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["mon"]}
    assert monitor["spec"]["endpoints"] == [
        {"port": "admin", "path": "/metrics", "interval": "30s", "scrapeTimeout": "10s"}
    ]
    services = by_name(objs, "Service")
    selected = [
        name for name, s in services.items()
        if selects(monitor["spec"]["selector"]["matchLabels"], s["metadata"]["labels"])
    ]  # fmt: skip
    assert "ea-autoscaler-activator-admin" in selected
    assert "ea-autoscaler-metrics" not in selected
    # The controller's ServiceMonitor, when on, does not pick up the activator's Services.
    both = {"metrics": {"serviceMonitor": {"enabled": True}}, **values}
    objs = helm_template(tmp_path, both, namespace="mon")
    controller_monitor = by_name(objs, "ServiceMonitor")["ea-autoscaler"]
    for name, service in by_name(objs, "Service").items():
        picked = selects(
            controller_monitor["spec"]["selector"]["matchLabels"], service["metadata"]["labels"]
        )
        assert picked == (name == "ea-autoscaler-metrics"), name


def test_long_release_names_keep_activator_names_distinct_and_valid(tmp_path: Path) -> None:
    release = "r" * 53
    objs = helm_template(tmp_path, ON, release=release)
    named = [(o["kind"], o["metadata"]["name"]) for o in objs]
    assert len(named) == len(set(named)), named
    for kind, name in named:
        if "activator" in name and kind != "ClusterRole":
            assert len(name) <= 63 and re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name), name
    services = sorted(by_name(objs, "Service"))
    assert len(services) == 3
    assert [s for s in services if s.endswith("-activator-admin")]
    assert [s for s in services if s.endswith("-activator")]


def test_activator_with_nothing_to_front_is_refused(tmp_path: Path) -> None:
    """Without crdPools the activator exits when no pool of its file has an `activator:`
    section: the chart says so at install time instead of shipping a crash loop."""
    # A pool without the section does not count.
    plain = {k: v for k, v in doc_config()["pools"][0].items() if k != "activator"}
    path = tmp_path / "nothing.yaml"
    path.write_text(yaml.safe_dump({**ON, "crdPools": False,
                                    "config": {"file": {"pools": [plain]}}}))  # fmt: skip
    args = ("template", "ea", str(CHART), "--kube-version", KUBE_VERSION, "--values", str(path))
    done = run_tool("helm", *args, home=tmp_path)
    assert done.returncode != 0, done.stdout
    assert "activator.enabled needs a pool with an `activator:` section" in done.stderr
    # Pools in an existing ConfigMap cannot be checked: rendered.
    existing = {"activator": {"enabled": True}, "crdPools": False,
                "config": {"existingConfigMap": "mine"}}  # fmt: skip
    objs = helm_template(tmp_path, existing)
    assert "ea-autoscaler-activator" in by_name(objs, "Deployment")
    # With crdPools the pools may be objects, created later: it serves and waits for them.
    for file in ({}, {"pools": [plain]}):
        objs = helm_template(tmp_path, {"activator": {"enabled": True}, "config": {"file": file}})
        activator = by_name(objs, "Deployment")["ea-autoscaler-activator"]
        assert "--crd-pools" in deployment_container(activator)["args"]


def test_with_crd_pools_the_activator_reads_the_controllers_namespaces_and_only_then(
    tmp_path: Path,
) -> None:
    """crdPools (on by default): the controller's --crd-pools and --namespace flags, and
    get/list/watch on AutoscalingPools (never their status) where it is bound. Off: neither
    the flags nor the rule."""
    watched = {"rbac": {"watchNamespaces": ["llm", "batch"]}}
    for crd_pools in (True, False):
        objs = helm_template(tmp_path, {**ON, **watched, "crdPools": crd_pools}, namespace="ops")
        deployments = by_name(objs, "Deployment")
        args = deployment_container(deployments["ea-autoscaler-activator"])["args"]
        controller_args = deployment_container(deployments["ea-autoscaler"])["args"]
        crd_flags = [a for a in args if a == "--crd-pools" or a.startswith("--namespace=")]
        if crd_pools:
            assert crd_flags == ["--crd-pools", "--namespace=llm", "--namespace=batch"]
            assert crd_flags == [a for a in controller_args if a in crd_flags]
        else:
            assert crd_flags == []
        granted = assert_endpointslices_only(objs, "ea-autoscaler-activator", "ops", crd_pools)
        assert granted == ["batch", "llm"]
        role = by_name(objs, "ClusterRole")["ops-ea-autoscaler-activator"]
        assert (CRD_RULE in role["rules"]) is crd_pools
        assert "autoscalingpools/status" not in yaml.safe_dump(role)


def test_helm_lint_is_clean_with_the_activator_on(tmp_path: Path) -> None:
    values = tmp_path / "on.yaml"
    on = with_activator(serviceMonitor={"enabled": True})
    values.write_text(yaml.safe_dump(on))
    args = ("lint", str(CHART), "--strict", "--kube-version", KUBE_VERSION, "--values", str(values))
    out = ok(run_tool("helm", *args, home=tmp_path))
    assert "1 chart(s) linted, 0 chart(s) failed" in out, out
    assert "[WARNING]" not in out and "[ERROR]" not in out, out


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"replicaCount": -1}, "replicaCount"),
        ({"replicaCount": 0}, "replicaCount"),
        ({"replicas": 2}, "replicas"),  # a typo is refused, not ignored
        ({"ports": {"admin": 70000}}, "admin"),
        ({"ports": {"proxy": 0}}, "proxy"),
        ({"drainSeconds": -1}, "drainSeconds"),
        ({"service": {"type": "ExternalName"}}, "type"),
        ({"serviceMonitor": {"interval": "often"}}, "interval"),
        ({"serviceAccount": {"annotations": {"a": 1}}}, "annotations"),
        ({"enabled": "yes"}, "enabled"),
        ({"drainSeconds": 60}, "must exceed activator.drainSeconds"),
        ({"ports": {"proxy": 9091}}, "must differ"),
        ({"serviceAccount": {"name": "ea-autoscaler"}}, "give the activator its own"),
    ],
)
def test_bad_activator_values_are_refused_with_a_message_naming_them(
    tmp_path: Path, values: Obj, expected: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(with_activator(**values)))
    args = ("template", "ea", str(CHART), "--kube-version", KUBE_VERSION, "--values", str(path))
    done = run_tool("helm", *args, home=tmp_path)
    assert done.returncode != 0, done.stdout
    assert expected in done.stderr, done.stderr
    assert "panic" not in done.stderr


def test_values_schema_describes_every_activator_default() -> None:
    import json

    import jsonschema

    schema = json.loads((CHART / "values.schema.json").read_text())
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())["activator"]
    described = schema["properties"]["activator"]
    assert described["additionalProperties"] is False
    assert set(defaults) == set(described["properties"])
    jsonschema.Draft7Validator({"definitions": schema["definitions"], **described}).validate(
        defaults
    )
    assert defaults["enabled"] is False and defaults["replicaCount"] == 2


def test_the_activator_command_accepts_the_charts_arguments(tmp_path: Path) -> None:
    """The flags the chart and the component pass are the activator's."""
    from autoscaler.cli import cli

    command = cli.commands.get("activator")
    if command is None:
        pytest.skip("`autoscaler activator` is not in this checkout yet")
    on = helm_template(tmp_path, with_activator(drainSeconds=10))
    for objs in (on, kustomize(COMPONENT, tmp_path)):
        args = deployment_container(
            by_name(objs, "Deployment")[
                next(n for n in by_name(objs, "Deployment") if n.endswith("activator"))
            ]
        )["args"]
        assert args[0] == "activator"
        with command.make_context("activator", list(args[1:])) as ctx:
            # Parsed: no unknown flag, no bad value.
            assert ctx.params["config_path"] == "/etc/autoscaler/config.yaml"
            assert ctx.params["crd_pools"] is True
            assert ctx.params["namespaces"] == (("autoscaler",) if objs is on else ())
            assert ctx.params["listen"] == ("0.0.0.0", 8080)
            assert ctx.params["admin"] == ("0.0.0.0", 9091)
            assert ctx.params["drain_seconds"] == (10 if objs is on else 30)
            assert ctx.params["json_logs"] is (objs is on)


# -- NOTES.txt --------------------------------------------------------------------------------
def test_notes_say_where_the_activator_listens(tmp_path: Path) -> None:
    """NOTES.txt is rendered by `helm install`; `helm template --show-only` cannot show it,
    so render it as helm does, through a throwaway chart copy that outputs it as a
    template."""
    import shutil

    chart = tmp_path / "chart"
    shutil.copytree(CHART, chart)
    notes = (chart / "templates" / "NOTES.txt").read_text()
    (chart / "templates" / "notes-as-configmap.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: notes}\ndata:\n  notes: |\n"
        + '    {{- include "notes.body" . | nindent 4 }}\n'
    )
    (chart / "templates" / "_notes.tpl").write_text(
        '{{- define "notes.body" -}}\n' + notes + "\n{{- end }}\n"
    )

    def render(values: Obj) -> str:
        path = tmp_path / f"v-{uuid.uuid4().hex[:6]}.yaml"
        path.write_text(yaml.safe_dump(values))
        args = ("template", "autoscaler", str(chart), "-n", "autoscaler",
                "--kube-version", KUBE_VERSION, "--values", str(path),
                "--show-only", "templates/notes-as-configmap.yaml")  # fmt: skip
        out = ok(run_tool("helm", *args, home=tmp_path))
        return str(yaml.safe_load(out)["data"]["notes"])

    assert "ctivator" not in render({})
    text = render(ON)
    assert "http://autoscaler-activator.autoscaler.svc:8080" in text, text
    assert "url: http://autoscaler-activator-admin.autoscaler.svc:9091" in text, text
    assert "It fronts these pools of config.file: llm-chat." in text, text
    existing = render({**ON, "config": {"existingConfigMap": "mine"}})
    assert "url: http://autoscaler-activator-admin.autoscaler.svc:9091" in existing, existing
    assert "It fronts" not in existing  # the pools are in a ConfigMap the chart cannot read
    assert "every AutoscalingPool with an `activator:` section" in text  # crdPools: default on
    assert "every AutoscalingPool with an" not in render({**ON, "crdPools": False})


# -- the documentation -----------------------------------------------------------------------
def doc_config() -> Obj:
    """The pool example of docs/activator.md."""
    blocks = re.findall(r"```yaml\n(.*?)```", DOC.read_text(), flags=re.S)
    (pools,) = [b for b in blocks if b.startswith("pools:")]
    loaded: Obj = yaml.safe_load(pools)
    return loaded


# The activator on, fronting the docs' pool (the chart refuses it with nothing to front).
ON: Obj = {"activator": {"enabled": True}, "config": {"file": doc_config()}}


def with_activator(**activator: Any) -> Obj:
    return {"activator": {"enabled": True, **activator}, "config": {"file": doc_config()}}


def test_the_docs_pool_example_is_a_valid_configuration() -> None:
    # The chart's config.file: the chart adds installation.id (from installationId).
    config = Config.model_validate({"installation": {"id": "default"}, **doc_config()})
    (pool,) = config.pools
    assert pool.activator is not None and pool.activator.backend.service == "vllm-llama-3-8b"
    # Its activator URL is the admin Service the chart creates for release `autoscaler`.
    url = doc_config()["pools"][0]["signals"]["held"]["source"]["url"]
    assert url == "http://autoscaler-activator-admin.autoscaler:9091"
    text = DOC.read_text()
    assert 'base_url="http://autoscaler-activator.autoscaler:8080/v1"' in text
    assert "(activator.md)" in (REPO_ROOT / "docs" / "kubernetes.md").read_text()


def test_the_docs_name_the_objects_the_chart_creates(tmp_path: Path) -> None:
    objs = helm_template(tmp_path, ON, namespace="autoscaler", release="autoscaler")
    text = DOC.read_text()
    for obj in activator_objects(objs):
        assert f"`{obj['metadata']['name']}`" in text, obj["metadata"]["name"]
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())["activator"]
    for key in defaults:
        assert f"`activator.{key}" in text or f"`.{key}`" in text, key


# -- kustomize ---------------------------------------------------------------------------------
def kustomize(path: Path, home: Path) -> list[Obj]:
    return parse_docs(ok(run_tool("kubectl", "kustomize", str(path), home=home)))


def overlay_with_component(tmp_path: Path, namespaces: tuple[str, ...] = ("llm",)) -> Path:
    """An overlay as docs/activator.md shows: the example overlay plus the component, a
    settings file with an activator pool, a RoleBinding for the pool's namespace and the
    controller's --namespace flags for the activator too."""
    root = tmp_path / "overlay"
    root.mkdir(parents=True, exist_ok=True)
    rel = Path(os.path.relpath(K8S, root))  # kustomize refuses absolute paths
    (root / "config.yaml").write_text(yaml.safe_dump(
        {"installation": {"id": "example"}, **doc_config()}
    ))  # fmt: skip
    bindings = []
    for ns in namespaces:
        name = f"rolebinding-activator-{ns}.yaml"
        (root / name).write_text(yaml.safe_dump({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "elastic-autoscaler-activator", "namespace": ns},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                        "name": "elastic-autoscaler-activator"},
            "subjects": [{"kind": "ServiceAccount", "name": "elastic-autoscaler-activator",
                          "namespace": "elastic-autoscaler"}],
        }))  # fmt: skip
        bindings.append(name)
    (root / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "resources": [str(rel / "overlays" / "example"), *bindings],
        "components": [str(rel / "components" / "activator")],
        "configMapGenerator": [{"name": "elastic-autoscaler-config",
                                "namespace": "elastic-autoscaler", "behavior": "replace",
                                "files": ["config.yaml"]}],
        "patches": [{"target": {"kind": "Deployment", "name": "elastic-autoscaler-activator"},
                     "patch": yaml.safe_dump([
                         {"op": "add", "path": "/spec/template/spec/containers/0/args/-",
                          "value": f"--namespace={ns}"}
                         for ns in ("elastic-autoscaler", *namespaces)])}],
    }))  # fmt: skip
    return root


def test_component_alone_holds_the_activators_objects(tmp_path: Path) -> None:
    objs = kustomize(COMPONENT, tmp_path)
    assert names(objs) == {
        "Deployment": ["elastic-autoscaler-activator"],
        "ServiceAccount": ["elastic-autoscaler-activator"],
        "ClusterRole": ["elastic-autoscaler-activator"],
        "RoleBinding": ["elastic-autoscaler-activator"],
        "PodDisruptionBudget": ["elastic-autoscaler-activator"],
        "Service": ["elastic-autoscaler-activator", "elastic-autoscaler-activator-admin"],
    }
    for obj in objs:
        if obj["kind"] != "ClusterRole":
            assert obj["metadata"]["namespace"] == "elastic-autoscaler", obj["metadata"]
    deployment = one(objs, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    assert_activator_pod(deployment, config_map="elastic-autoscaler-config")
    assert_services(objs, "elastic-autoscaler-activator", "elastic-autoscaler-activator-admin",
                    deployment)  # fmt: skip
    granted = assert_endpointslices_only(objs, "elastic-autoscaler-activator", "elastic-autoscaler")
    assert granted == ["elastic-autoscaler"]
    assert one(objs, "PodDisruptionBudget")["spec"]["minAvailable"] == 1


def test_component_added_to_the_example_overlay(tmp_path: Path) -> None:
    objs = kustomize(overlay_with_component(tmp_path), tmp_path)
    deployments = by_name(objs, "Deployment")
    assert sorted(deployments) == ["elastic-autoscaler", "elastic-autoscaler-activator"]
    controller, activator = (
        deployments["elastic-autoscaler"],
        deployments["elastic-autoscaler-activator"],
    )
    # Both read the one generated ConfigMap (hash-suffixed name, rewritten in both).
    (configmap,) = kinds(objs)["ConfigMap"]
    name = configmap["metadata"]["name"]
    assert name.startswith("elastic-autoscaler-config-")
    for deployment in (controller, activator):
        volumes = deployment["spec"]["template"]["spec"]["volumes"]
        assert {"name": "config", "configMap": {"name": name}} in volumes
    config = Config.model_validate(yaml.safe_load(configmap["data"]["config.yaml"]))
    assert [p.name for p in config.pools if p.activator] == ["llm-chat"]
    # It reads AutoscalingPools where the controller does.
    flags = [a for a in deployment_container(activator)["args"] if a.startswith("--namespace=")]
    assert flags == [a for a in deployment_container(controller)["args"] if a in flags]
    assert flags == ["--namespace=elastic-autoscaler", "--namespace=llm"]
    # EndpointSlices in its own namespace and the pool's; the controller's grants unchanged.
    granted = assert_endpointslices_only(objs, "elastic-autoscaler-activator", "elastic-autoscaler")
    assert granted == ["elastic-autoscaler", "llm"]
    assert not selects(controller["spec"]["selector"]["matchLabels"], pod_labels(activator))
    assert not selects(activator["spec"]["selector"]["matchLabels"], pod_labels(controller))
    for pdb in kinds(objs)["PodDisruptionBudget"]:
        matched = [d for d in deployments.values()
                   if selects(pdb["spec"]["selector"]["matchLabels"], pod_labels(d))]  # fmt: skip
        assert len(matched) == 1, pdb["metadata"]["name"]


def test_component_is_the_charts_activator(tmp_path: Path) -> None:
    """Two copies (plain YAML and the chart); they must not drift apart."""
    kustomized = kustomize(COMPONENT, tmp_path)
    chart = helm_template(tmp_path, ON)
    plain = one(kustomized, "Deployment")
    templated = by_name(chart, "Deployment")["ea-autoscaler-activator"]
    assert plain["spec"]["replicas"] == templated["spec"]["replicas"]
    plain_pod, chart_pod = plain["spec"]["template"]["spec"], templated["spec"]["template"]["spec"]
    for key in ("securityContext", "terminationGracePeriodSeconds", "automountServiceAccountToken"):
        assert plain_pod[key] == chart_pod[key], key
    for key in ("image", "env", "securityContext", "resources", "ports",
                "livenessProbe", "readinessProbe", "volumeMounts"):  # fmt: skip
        assert deployment_container(plain)[key] == deployment_container(templated)[key], key
    # The chart adds --json-logs (logging.json); the plain manifests log text, like the base.
    # The chart names the watched namespaces; the plain manifests read their own, like the
    # base's controller (an overlay adds --namespace flags to both).
    chart_args = [a for a in deployment_container(templated)["args"]
                  if a != "--json-logs" and not a.startswith("--namespace=")]  # fmt: skip
    assert deployment_container(plain)["args"] == chart_args
    volume_types = sorted((v["name"], sorted(set(v) - {"name"})) for v in plain_pod["volumes"])
    assert volume_types == sorted(
        (v["name"], sorted(set(v) - {"name"})) for v in chart_pod["volumes"]
    )
    assert (
        one(kustomized, "ClusterRole")["rules"]
        == by_name(chart, "ClusterRole")["autoscaler-ea-autoscaler-activator"]["rules"]
    )
    for name, suffix in (("elastic-autoscaler-activator", "-activator"),
                         ("elastic-autoscaler-activator-admin", "-activator-admin")):  # fmt: skip
        plain_svc = by_name(kustomized, "Service")[name]["spec"]
        chart_svc = by_name(chart, "Service")[f"ea-autoscaler{suffix}"]["spec"]
        for key in ("type", "ports"):
            assert plain_svc[key] == chart_svc[key], (name, key)
        assert plain_svc.get("clusterIP") == chart_svc.get("clusterIP"), name
    plain_pdb = one(kustomized, "PodDisruptionBudget")["spec"]
    chart_pdb = by_name(chart, "PodDisruptionBudget")["ea-autoscaler-activator"]["spec"]
    assert plain_pdb["minAvailable"] == chart_pdb["minAvailable"]


# -- against the API server ------------------------------------------------------------------------
def retarget(objs: list[Obj], namespaces: dict[str, str]) -> list[Obj]:
    out = [yaml.safe_load(yaml.safe_dump(o)) for o in objs]
    for obj in out:
        meta = obj["metadata"]
        if obj["kind"] == "Namespace":
            meta["name"] = namespaces[meta["name"]]
        if meta.get("namespace"):
            meta["namespace"] = namespaces[meta["namespace"]]
        for subject in obj.get("subjects", []):
            subject["namespace"] = namespaces[subject["namespace"]]
        if obj["kind"] == "Deployment":
            container = obj["spec"]["template"]["spec"]["containers"][0]
            container["args"] = [
                f"--namespace={namespaces[a.split('=', 1)[1]]}"
                if a.startswith("--namespace=") else a
                for a in container["args"]
            ]  # fmt: skip
    return out


@pytest.fixture
def two_namespaces(core_v1: Any) -> Iterator[list[str]]:
    names_ = [f"t-{uuid.uuid4().hex[:10]}" for _ in range(2)]
    for name in names_:
        core_v1.create_namespace({"metadata": {"name": name, "labels": {"autoscaler-test": "1"}}})
    try:
        yield names_
    finally:
        for name in names_:
            try:
                core_v1.delete_namespace(name)
            except ApiException as e:
                if e.status != 404:
                    raise


@pytest.mark.kube
def test_rendered_activator_passes_the_api_servers_server_side_dry_run(
    kube_cluster: KubeCluster, kube_namespace: str, two_namespaces: list[str], tmp_path: Path
) -> None:
    values = {"config": {"file": doc_config()}, **ON}
    objs = helm_template(tmp_path, values, namespace=kube_namespace, release="dry")
    assert activator_objects(objs)
    out = kubectl_apply_dry_run(kube_cluster, objs)
    assert out.count("(server dry run)") == len(objs), out

    llm, _ = two_namespaces
    overlay = kustomize(overlay_with_component(tmp_path), tmp_path)
    # The example overlay's Namespace object is the test's own (it exists already).
    overlay = retarget(overlay, {"elastic-autoscaler": kube_namespace, "llm": llm})
    out = kubectl_apply_dry_run(kube_cluster, overlay)
    assert out.count("(server dry run)") == len(overlay), out


@pytest.mark.kube
def test_helm_install_gives_the_activator_a_token_that_reads_slices_and_pools_only(
    kube_cluster: KubeCluster,
    kube_api: Any,
    core_v1: Any,
    apps_v1: Any,
    rbac_v1: Any,
    kube_namespace: str,
    two_namespaces: list[str],
    tmp_path: Path,
) -> None:
    ns = kube_namespace
    granted, foreign = two_namespaces
    env = kube_cluster.tool_env()
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({
        "rbac": {"watchNamespaces": [ns, granted]},
        "config": {"file": doc_config()},
        **ON,
    }))  # fmt: skip
    installed = run_tool("helm", "install", "ea", str(CHART), "--namespace", ns,
                         "--values", str(values), home=tmp_path, env=env)  # fmt: skip
    try:
        notes = ok(installed)
        assert f"http://ea-autoscaler-activator.{ns}.svc:8080" in notes, notes
        assert f"url: http://ea-autoscaler-activator-admin.{ns}.svc:9091" in notes, notes
        assert "It fronts these pools of config.file: llm-chat." in notes, notes
        deployment = apps_v1.read_namespaced_deployment("ea-autoscaler-activator", ns)
        assert deployment.spec.replicas == 2
        assert deployment.spec.template.spec.service_account_name == "ea-autoscaler-activator"
        admin = core_v1.read_namespaced_service("ea-autoscaler-activator-admin", ns)
        assert admin.spec.cluster_ip == "None"
        front = core_v1.read_namespaced_service("ea-autoscaler-activator", ns)
        assert front.spec.cluster_ip not in (None, "None")
        for where in (ns, granted):
            binding = rbac_v1.read_namespaced_role_binding("ea-autoscaler-activator", where)
            assert binding.role_ref.name == f"{ns}-ea-autoscaler-activator"

        token = core_v1.create_namespaced_service_account_token(
            "ea-autoscaler-activator", ns, {"spec": {"expirationSeconds": 600}}
        ).status.token
        with client_with_token(kube_api, token) as as_activator:
            discovery = k.DiscoveryV1Api(as_activator)
            core = k.CoreV1Api(as_activator)
            authz = k.AuthorizationV1Api(as_activator)
            for where in (ns, granted):
                assert status(discovery.list_namespaced_endpoint_slice, where) == 200
                assert allowed(authz, "watch", "endpointslices", where, group="discovery.k8s.io")
                assert not allowed(authz, "create", "endpointslices", where,
                                   group="discovery.k8s.io")  # fmt: skip
                assert status(core.list_namespaced_pod, where) == 403
                assert status(core.list_namespaced_service, where) == 403
                assert status(core.list_namespaced_secret, where) == 403
                assert not allowed(authz, "patch", "deployments", where, group="apps",
                                   subresource="scale")  # fmt: skip
                # crdPools (the default): it reads the objects, never writes them.
                assert allowed(authz, "list", "autoscalingpools", where,
                               group="autoscaling.elastic-autoscaler.io")  # fmt: skip
                assert not allowed(authz, "patch", "autoscalingpools", where,
                                   group="autoscaling.elastic-autoscaler.io",
                                   subresource="status")  # fmt: skip
            assert status(discovery.list_namespaced_endpoint_slice, foreign) == 403
            assert status(discovery.list_endpoint_slice_for_all_namespaces) == 403
            assert not allowed(authz, "create", "leases", ns, group="coordination.k8s.io")
            assert status(core.list_node) == 403
    finally:
        ok(run_tool("helm", "uninstall", "ea", "--namespace", ns, home=tmp_path, env=env))
    roles = [r.metadata.name for r in rbac_v1.list_cluster_role().items]
    assert f"{ns}-ea-autoscaler-activator" not in roles
