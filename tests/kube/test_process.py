"""`autoscaler run` as a process against a real kube-apiserver: an AutoscalingPool with a
static signal scales a real Deployment; status on the AutoscalingPool, an Event on the
Deployment, the Lease held while running and released on SIGTERM; `--dry-run` changes
nothing but still reports; a standby takes over when the leader stops."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes import client as k
from kubernetes.client.exceptions import ApiException

from autoscaler.kube import crd
from tests.kube.test_crd import install_crd, pool_object

OWNER = "elastic-autoscaler.io/owner"


def wait_for(what: str, check: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout:g}s waiting for {what} (last: {last!r})")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(port: int, path: str) -> str:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
        return str(resp.read().decode())


def deployment(apps_v1: Any, namespace: str, name: str, replicas: int = 1) -> None:
    labels = {"app": name}
    apps_v1.create_namespaced_deployment(
        namespace,
        {
            "metadata": {"name": name, "labels": {OWNER: "default", **labels}},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.9"}]},
                },
            },
        },
    )


def autoscaling_pool(kube_api: Any, namespace: str, name: str, target: str) -> None:
    install_crd(kube_api)
    spec = {
        "target": {"kind": "deployment", "name": target},
        "max": 6,
        "signals": {"queue": {"source": {"type": "static", "value": 25}}},
        "policy": {"type": "queue-depth", "target_per_replica": 10},
    }
    k.CustomObjectsApi(kube_api).create_namespaced_custom_object(
        crd.GROUP, crd.VERSION, namespace, crd.PLURAL, pool_object(name, spec)
    )


def pool_status(kube_api: Any, namespace: str, name: str) -> dict[str, Any]:
    got = k.CustomObjectsApi(kube_api).get_namespaced_custom_object(
        crd.GROUP, crd.VERSION, namespace, crd.PLURAL, name
    )
    return dict(got.get("status") or {})


def replicas(apps_v1: Any, namespace: str, name: str) -> int:
    return int(apps_v1.read_namespaced_deployment(name, namespace).spec.replicas)


def events(core_v1: Any, namespace: str, name: str) -> list[Any]:
    selector = f"involvedObject.kind=Deployment,involvedObject.name={name}"
    found = core_v1.list_namespaced_event(namespace, field_selector=selector).items
    return [e for e in found if e.source and e.source.component == "elastic-autoscaler"]


def lease_holder(kube_api: Any, namespace: str) -> str | None:
    """Who holds the controller's Lease ("" when released; None before it exists)."""
    try:
        lease = k.CoordinationV1Api(kube_api).read_namespaced_lease("elastic-autoscaler", namespace)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return str(lease.spec.holder_identity or "")


def autoscaler(kubeconfig: Any, namespace: str, *args: str) -> list[str]:
    return [
        sys.executable, "-m", "autoscaler.cli", "run", "--crd-pools", "--installation-id",
        "default", "-n", namespace,
        "--kubeconfig", str(kubeconfig), "--json-logs", *args,
    ]  # fmt: skip


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)


def start(processes: list[subprocess.Popen[str]], cmd: list[str]) -> subprocess.Popen[str]:
    env = {k_: v for k_, v in os.environ.items() if k_ != "KUBERNETES_SERVICE_HOST"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    processes.append(proc)
    return proc


def stop(proc: subprocess.Popen[str]) -> tuple[int, list[dict[str, Any]]]:
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    lines = []
    for line in err.splitlines():
        try:
            lines.append(json.loads(line))
        except ValueError:
            lines.append({"message": line})
    return proc.returncode, lines


def test_the_controller_scales_a_deployment_reports_and_releases_its_lease(
    kube_cluster, kube_api, apps_v1, core_v1, kube_namespace, processes
):
    ns = kube_namespace
    deployment(apps_v1, ns, "web")
    autoscaling_pool(kube_api, ns, "chat", "web")
    port = free_port()
    proc = start(processes, autoscaler(
        kube_cluster.kubeconfig, ns, "--leader-elect", "--lease-namespace", ns,
        "--identity", "replica-a", "--lease-duration", "3s", "--interval", "0.5",
        "--bind", "127.0.0.1", "--health-port", str(port), "--metrics-port", str(port),
    ))  # fmt: skip

    wait_for("3 replicas", lambda: replicas(apps_v1, ns, "web") == 3)
    status = wait_for("status", lambda: pool_status(kube_api, ns, "chat").get("desired") == 3)
    status = pool_status(kube_api, ns, "chat")
    assert status["signals"] == {"queue": 25.0}
    assert status["reason"]
    conditions = {c["type"]: c["status"] for c in status["conditions"]}
    assert conditions == {"Valid": "True", "Scaling": "True"}
    assert status["observedGeneration"] == 1
    [event] = wait_for("an Event", lambda: events(core_v1, ns, "web"))
    assert (event.type, event.reason) == ("Normal", "ScaledUp")
    assert event.message.startswith("pool chat: 1 -> 3: ")
    assert status["reason"] in event.message
    assert lease_holder(kube_api, ns) == "replica-a"
    assert get(port, "/readyz") == "ok\n"
    metrics = get(port, "/metrics")
    assert "autoscaler_leader 1.0" in metrics
    assert 'autoscaler_pool_desired_replicas{pool="chat"} 3.0' in metrics
    assert 'autoscaler_signal_value{pool="chat",signal="queue"} 25.0' in metrics

    code, logs = stop(proc)
    assert code == 0, logs[-5:]
    assert lease_holder(kube_api, ns) == ""
    assert any("released" in line.get("message", "") for line in logs)
    assert not any("Traceback" in json.dumps(line) for line in logs)
    assert replicas(apps_v1, ns, "web") == 3
    assert len(events(core_v1, ns, "web")) == 1  # holds at 3 without a new Event


def test_dry_run_decides_and_reports_but_changes_nothing(
    kube_cluster, kube_api, apps_v1, core_v1, kube_namespace
):
    ns = kube_namespace
    deployment(apps_v1, ns, "web")
    autoscaling_pool(kube_api, ns, "chat", "web")
    proc = subprocess.run(
        autoscaler(kube_cluster.kubeconfig, ns, "--dry-run", "--once", "--json"),
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    tick = json.loads(proc.stdout)
    assert [(d["pool"], d["current"], d["desired"]) for d in tick["decisions"]] == [("chat", 1, 3)]
    assert [a["applied"] for a in tick["actions"]] == [False]
    assert replicas(apps_v1, ns, "web") == 1
    assert pool_status(kube_api, ns, "chat")["desired"] == 3
    [event] = events(core_v1, ns, "web")
    assert event.reason == "DryRunScaledUp"


def test_a_restarted_controller_keeps_the_cooldown_it_left_in_the_pool_status(
    kube_cluster, kube_api, apps_v1, kube_namespace
):
    """No --state (a read-only root filesystem in the cluster): the planner's memory lives
    in the AutoscalingPool status, so a new process honours the last one's cooldown."""
    ns = kube_namespace
    deployment(apps_v1, ns, "web")
    autoscaling_pool(kube_api, ns, "chat", "web")
    custom = k.CustomObjectsApi(kube_api)
    behavior = {"cooldown": "10m", "scale_down": {"stabilization_window": 0},
                "scale_to_zero_after": 0}  # fmt: skip
    custom.patch_namespaced_custom_object(
        crd.GROUP, crd.VERSION, ns, crd.PLURAL, "chat", {"spec": {"behavior": behavior}}
    )

    def once() -> dict[str, Any]:
        proc = subprocess.run(autoscaler(kube_cluster.kubeconfig, ns, "--once", "--json"),
                              capture_output=True, text=True, timeout=120)  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        [decision] = json.loads(proc.stdout)["decisions"]
        return dict(decision)

    assert once()["desired"] == 3 and replicas(apps_v1, ns, "web") == 3
    memory = json.loads(pool_status(kube_api, ns, "chat")["plannerMemory"])
    assert memory["last_scale_at"] is not None and memory["actions"] > 0
    custom.patch_namespaced_custom_object(  # the backlog is gone: one replica would do
        crd.GROUP, crd.VERSION, ns, crd.PLURAL, "chat",
        {"spec": {"signals": {"queue": {"source": {"type": "static", "value": 5}}}}},
    )  # fmt: skip
    held = once()  # a new process, started after the first exited
    assert (held["recommended"], held["desired"]) == (1, 3), held
    assert "cooldown" in held["reason"]
    assert replicas(apps_v1, ns, "web") == 3


def test_a_standby_acts_only_after_the_leader_stops(
    kube_cluster, kube_api, apps_v1, kube_namespace, processes
):
    ns = kube_namespace
    deployment(apps_v1, ns, "web")
    autoscaling_pool(kube_api, ns, "chat", "web")
    common = ("--leader-elect", "--lease-namespace", ns, "--lease-duration", "3s",
              "--interval", "0.5", "--bind", "127.0.0.1")  # fmt: skip
    port_a, port_b = free_port(), free_port()
    a = start(processes, autoscaler(
        kube_cluster.kubeconfig, ns, *common, "--identity", "a", "--health-port", str(port_a)
    ))  # fmt: skip
    wait_for("a leads", lambda: lease_holder(kube_api, ns) == "a")
    b = start(processes, autoscaler(
        kube_cluster.kubeconfig, ns, *common, "--identity", "b", "--health-port", str(port_b),
        "--metrics-port", str(port_b),
    ))  # fmt: skip
    wait_for("b ready as a standby", lambda: _ok(port_b, "/readyz"))
    assert "autoscaler_leader 0.0" in get(port_b, "/metrics")
    wait_for("3 replicas", lambda: replicas(apps_v1, ns, "web") == 3)
    code, a_logs = stop(a)
    assert code == 0
    took_over = time.monotonic()
    wait_for("b leads", lambda: lease_holder(kube_api, ns) == "b", timeout=10)
    assert time.monotonic() - took_over < 3.0  # released: no need to wait the lease out
    apps_v1.patch_namespaced_deployment_scale("web", ns, {"spec": {"replicas": 1}})
    wait_for("b scales back to 3", lambda: replicas(apps_v1, ns, "web") == 3)
    code, b_logs = stop(b)
    assert code == 0
    assert any("leading as a" in line.get("message", "") for line in a_logs)
    # b decided nothing (no decision lines, which carry "pool") before it led.
    led = next(i for i, line in enumerate(b_logs) if "leading as b" in line.get("message", ""))
    assert not any("pool" in line for line in b_logs[:led])
    assert any(line.get("pool") == "chat" for line in b_logs[led:])


def _ok(port: int, path: str) -> bool:
    try:
        return get(port, path) == "ok\n"
    except OSError:
        return False


def test_a_repeated_event_is_counted_not_written_again(kube_api, apps_v1, core_v1, kube_namespace):
    from autoscaler.kube.events import EventRecorder

    deployment(apps_v1, kube_namespace, "web")
    recorder = EventRecorder(kube_api, lambda: (None, {}), "test")
    obj = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "web",
        "namespace": kube_namespace,
    }
    for _ in range(3):
        recorder.emit(obj, "Normal", "DryRunScaledUp", "pool chat: 1 -> 3: queue")
    recorder.emit(obj, "Normal", "DryRunScaledUp", "pool chat: 1 -> 4: queue")
    found = sorted(events(core_v1, kube_namespace, "web"), key=lambda e: e.message)
    assert [(e.message, e.count) for e in found] == [
        ("pool chat: 1 -> 3: queue", 3),
        ("pool chat: 1 -> 4: queue", 1),
    ]
