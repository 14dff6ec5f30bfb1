"""The plain manifests (k8s/): the committed CRD is the generated one, the kustomize base and
the example overlay build, their RBAC is the chart's, the objects pass the real API server's
server-side dry run, and the example AutoscalingPools are accepted by both the CRD schema
and the controller's own validation. Plus static checks of the Dockerfile (tests/image builds
the image and runs it)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from autoscaler.cli import run as run_cmd
from autoscaler.config.file_settings import load_settings
from autoscaler.kube.crd import GROUP, KIND, PLURAL, VERSION, crd, crd_yaml
from autoscaler.kube.pools import parse_pool
from autoscaler.pool_sources import PoolProblem
from tests.cluster.binaries import REPO_ROOT
from tests.cluster.session import KubeCluster
from tests.kube.test_chart import (
    CHART,
    Obj,
    assert_hardened,
    assert_least_privilege,
    helm_template,
    kinds,
    kubectl_apply_dry_run,
    ok,
    one,
    parse_docs,
    run_tool,
)

K8S = REPO_ROOT / "k8s"
BASE = K8S / "base"
OVERLAY = K8S / "overlays" / "example"
EXAMPLES = sorted((K8S / "examples").glob("*.yaml"))


def kustomize(path: Path, home: Path) -> list[Obj]:
    return parse_docs(ok(run_tool("kubectl", "kustomize", str(path), home=home)))


def retarget(objs: list[Obj], namespaces: dict[str, str]) -> list[Obj]:
    """The same objects in other namespaces (the test's fresh ones): metadata, ServiceAccount
    subjects, the Namespace object and --namespace flags."""
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
                if a.startswith("--namespace=")
                else a
                for a in container["args"]
            ]
    return out


# -- generated files ---------------------------------------------------------------------------
def test_committed_crds_are_the_generated_ones() -> None:
    expected = crd_yaml()
    for path in (BASE / "crd.yaml", CHART / "crds" / f"{PLURAL}.yaml"):
        assert path.read_text(encoding="utf-8") == expected, (
            f"{path} is stale; run: python scripts/gen_manifests.py"
        )
    done = subprocess.run(
        [sys.executable, "scripts/gen_manifests.py", "--check"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


def test_gen_manifests_check_names_a_stale_file(tmp_path: Path, monkeypatch: Any) -> None:
    sys.path.insert(0, str(REPO_ROOT / "scripts"))
    try:
        import gen_manifests
    finally:
        sys.path.remove(str(REPO_ROOT / "scripts"))
    stale = tmp_path / "crd.yaml"
    stale.write_text("# an old CRD\n")
    monkeypatch.setattr(gen_manifests, "TARGETS", (stale, tmp_path / "missing.yaml"))
    monkeypatch.setattr(gen_manifests, "TRIGGER_TARGETS", ())
    monkeypatch.setattr(gen_manifests, "ROOT", tmp_path)
    assert gen_manifests.stale() == [stale, tmp_path / "missing.yaml"]
    assert gen_manifests.main(["--check"]) == 1
    assert gen_manifests.main([]) == 0
    assert stale.read_text() == crd_yaml() == (tmp_path / "missing.yaml").read_text()
    assert gen_manifests.main(["--check"]) == 0


# -- kustomize ---------------------------------------------------------------------------------
def test_kustomize_base_builds_the_hardened_controller(tmp_path: Path) -> None:
    objs = kustomize(BASE, tmp_path)
    found = {kind: sorted(o["metadata"]["name"] for o in v) for kind, v in kinds(objs).items()}
    assert found == {
        "CustomResourceDefinition": [f"{PLURAL}.{GROUP}"],
        "ServiceAccount": ["elastic-autoscaler"],
        "ClusterRole": ["elastic-autoscaler-workloads"],
        "Role": ["elastic-autoscaler-leader"],
        "RoleBinding": ["elastic-autoscaler-leader", "elastic-autoscaler-workloads"],
        "Deployment": ["elastic-autoscaler"],
        "Service": ["elastic-autoscaler-metrics"],
        "PodDisruptionBudget": ["elastic-autoscaler"],
    }
    assert one(objs, "CustomResourceDefinition")["spec"] == crd()["spec"]
    for obj in objs:
        if obj["kind"] not in ("CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding"):
            assert obj["metadata"]["namespace"] == "elastic-autoscaler", obj["metadata"]
    deployment = one(objs, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    assert_hardened(deployment)
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == [
        "run", "--crd-pools", "--leader-elect", "--health-port", "8081", "--metrics-port", "8080",
    ]  # fmt: skip
    assert_least_privilege(objs)
    for binding in kinds(objs)["RoleBinding"]:
        assert binding["subjects"] == [
            {
                "kind": "ServiceAccount",
                "name": "elastic-autoscaler",
                "namespace": "elastic-autoscaler",
            }
        ]
    assert one(objs, "PodDisruptionBudget")["spec"]["minAvailable"] == 1


def test_example_overlay_watches_a_second_namespace(tmp_path: Path) -> None:
    objs = kustomize(OVERLAY, tmp_path)
    assert one(objs, "Namespace")["metadata"]["name"] == "elastic-autoscaler"
    args = one(objs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert [a for a in args if a.startswith("--namespace")] == [
        "--namespace=elastic-autoscaler",
        "--namespace=llm",
    ]
    # Each watched namespace has its RoleBinding to the workload rules.
    workload_bindings = sorted(
        b["metadata"]["namespace"]
        for b in kinds(objs)["RoleBinding"]
        if b["roleRef"]["name"] == "elastic-autoscaler-workloads"
    )
    assert workload_bindings == ["elastic-autoscaler", "llm"]
    sa = one(objs, "ServiceAccount")
    assert "eks.amazonaws.com/role-arn" in sa["metadata"]["annotations"]
    # The settings file: generated ConfigMap, mounted, passed, and valid without pools.
    configmap = one(objs, "ConfigMap")
    pod = one(objs, "Deployment")["spec"]["template"]["spec"]
    assert {"name": "config", "configMap": {"name": configmap["metadata"]["name"]}} in pod[
        "volumes"
    ]
    assert "--config=/etc/autoscaler/config.yaml" in args
    path = tmp_path / "config.yaml"
    path.write_text(configmap["data"]["config.yaml"])
    settings = load_settings(str(path), pools_optional=True)
    assert settings.installation.id == "example"


def accepted_by_the_cli(args: list[str]) -> None:
    """`autoscaler run` parses these arguments (unknown flags or bad values raise)."""
    assert args[0] == "run", args
    expanded = [a.replace("$(POD_NAME)", "autoscaler-0") for a in args[1:]]
    with run_cmd.make_context("run", expanded) as ctx:
        assert ctx.params["crd_pools"] is True
        assert ctx.params["leader_elect"] is True
        assert ctx.params["health_port"] == 8081
        assert ctx.params["metrics_port"] == 8080


def test_every_deployment_passes_flags_the_controller_accepts(tmp_path: Path) -> None:
    def args_of(objs: list[Obj]) -> list[str]:
        container = one(objs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
        return list(container["args"])

    accepted_by_the_cli(args_of(kustomize(BASE, tmp_path)))
    accepted_by_the_cli(args_of(kustomize(OVERLAY, tmp_path)))
    accepted_by_the_cli(args_of(helm_template(tmp_path)))
    values = {"interval": "30s", "leaderElection": {"leaseDuration": 20},
              "rbac": {"watchNamespaces": ["a", "b"]}, "extraArgs": ["--dry-run"]}  # fmt: skip
    accepted_by_the_cli(args_of(helm_template(tmp_path, values)))
    with pytest.raises(click.UsageError, match="--no-such-flag"):
        accepted_by_the_cli(["run", "--crd-pools", "--no-such-flag"])


def test_base_rbac_is_the_charts_rbac(tmp_path: Path) -> None:
    """Two copies of the rules (plain YAML and the chart); they must not drift apart."""

    def rules(objs: list[Obj], suffix: str) -> list[Obj]:
        roles = kinds(objs)["ClusterRole"] + kinds(objs)["Role"]
        (role,) = [r for r in roles if r["metadata"]["name"].endswith(suffix)]
        return [{k: v for k, v in rule.items() if k != "resourceNames"} for rule in role["rules"]]

    base = kustomize(BASE, tmp_path)
    chart = helm_template(tmp_path)
    for suffix in ("-workloads", "-leader"):
        assert rules(base, suffix) == rules(chart, suffix), suffix
    base_pod = one(base, "Deployment")["spec"]["template"]["spec"]
    chart_pod = one(chart, "Deployment")["spec"]["template"]["spec"]
    assert base_pod["securityContext"] == chart_pod["securityContext"]
    tmp = [v for v in chart_pod["volumes"] if v["name"] == "tmp"]
    assert base_pod["volumes"] == tmp
    for key in ("securityContext", "resources", "ports", "livenessProbe", "readinessProbe"):
        assert base_pod["containers"][0][key] == chart_pod["containers"][0][key], key


# -- examples ------------------------------------------------------------------------------------
def test_examples_are_autoscaling_pools_the_controller_accepts() -> None:
    assert len(EXAMPLES) >= 3
    for path in EXAMPLES:
        (obj,) = parse_docs(path.read_text())
        assert obj["apiVersion"] == f"{GROUP}/{VERSION}" and obj["kind"] == KIND, path
        obj["metadata"]["namespace"] = "team-a"
        parsed = parse_pool(obj)
        assert not isinstance(parsed, PoolProblem), (path, parsed)
        assert parsed.name == obj["metadata"]["name"]
        assert parsed.target.namespace == "team-a"  # type: ignore[union-attr]


# -- the API server ------------------------------------------------------------------------------
@pytest.mark.kube
def test_kustomize_base_and_overlay_pass_the_api_servers_server_side_dry_run(
    kube_cluster: KubeCluster, kube_namespace: str, core_v1: Any, tmp_path: Path
) -> None:
    base = retarget(kustomize(BASE, tmp_path), {"elastic-autoscaler": kube_namespace})
    out = kubectl_apply_dry_run(kube_cluster, base)
    assert out.count("(server dry run)") == len(base), out

    second = f"{kube_namespace}-llm"
    core_v1.create_namespace({"metadata": {"name": second, "labels": {"autoscaler-test": "1"}}})
    try:
        overlay = retarget(
            kustomize(OVERLAY, tmp_path), {"elastic-autoscaler": kube_namespace, "llm": second}
        )
        out = kubectl_apply_dry_run(kube_cluster, overlay)
        assert out.count("(server dry run)") == len(overlay), out
    finally:
        core_v1.delete_namespace(second)


@pytest.mark.kube
def test_the_crd_accepts_the_examples_and_refuses_a_broken_pool(
    kube_cluster: KubeCluster, kube_namespace: str, tmp_path: Path
) -> None:
    assert kube_cluster.kubectl is not None
    env = kube_cluster.tool_env()

    def kubectl(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return run_tool("kubectl", *args, home=tmp_path, env=env, stdin=stdin)

    # Really install the CRD (idempotent; other tests may have installed the same one).
    ok(kubectl("apply", "--server-side", "--force-conflicts",
               "--field-manager=autoscaler-tests", "-f", str(BASE / "crd.yaml")))  # fmt: skip
    ok(kubectl("wait", "--for=condition=Established", "--timeout=60s",
               f"crd/{PLURAL}.{GROUP}"))  # fmt: skip
    for path in EXAMPLES:
        out = ok(kubectl("apply", "--server-side", "--dry-run=server", "-n", kube_namespace,
                         "-f", str(path)))  # fmt: skip
        assert "(server dry run)" in out, (path, out)

    (broken,) = parse_docs(EXAMPLES[0].read_text())
    broken["spec"]["target"]["kind"] = "daemonset"
    done = kubectl("apply", "--server-side", "--dry-run=server", "-n", kube_namespace,
                   "-f", "-", stdin=yaml.safe_dump(broken))  # fmt: skip
    assert done.returncode != 0
    assert "spec.target.kind" in done.stderr, done.stderr


# -- the Dockerfile (static; tests/image builds the image and runs it) ----------------------------
def test_dockerfile_runs_the_controller_as_non_root_and_copies_only_what_it_needs() -> None:
    text = (REPO_ROOT / "Dockerfile").read_text()
    stages = re.findall(r"^FROM\s+(\S+)", text, flags=re.M)
    assert len(stages) == 2, stages  # builder + runtime
    assert "ARG BASE=python:3.11-slim" in text
    assert re.search(r"^USER 65532:65532$", text, flags=re.M)
    assert 'ENTRYPOINT ["autoscaler"]' in text
    cmd = re.search(r"^CMD (\[.*\])$", text, flags=re.M)
    assert cmd is not None
    base_args = kustomize_free_base_args()
    assert yaml.safe_load(cmd.group(1)) == base_args
    # The context is the folder of wheels scripts/build-image.sh makes (deps/, app/), never
    # the repository: .dockerignore lets nothing else in.
    ignored = [
        line.strip()
        for line in (REPO_ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    copied = [
        part
        for line in re.findall(r"^COPY (?!--from)(.+)$", text, flags=re.M)
        for part in line.split()[:-1]
    ]
    assert copied == ["deps/", "app/"], copied
    assert ignored == ["*", "!deps/", "!app/"], ignored


def kustomize_free_base_args() -> list[str]:
    """The base Deployment's args, read from the file (no kubectl needed)."""
    deployment = yaml.safe_load((BASE / "deployment.yaml").read_text())
    args: list[str] = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    return args
