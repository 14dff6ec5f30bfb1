"""End to end: an LLM-serving pool wakes from zero through the activator, serves every held
request with its full streamed body, goes back to zero after its keep-alive and wakes again.

The chart is `helm install`ed with the activator enabled; `autoscaler activator` and
`autoscaler run` then run on the host as subprocesses, each with its own ServiceAccount's
token from the chart (so the chart's RBAC is what is tested: the activator may only read
EndpointSlices). The pool's Service has no selector: the test owns its EndpointSlice and
plays the endpoints controller, marking the endpoint ready once the backend (a fake OpenAI
server) answers, as the kubelet's readiness probe would. The API server refuses loopback
addresses in an EndpointSlice, so the backend listens on BACKEND_HOST, a TEST-NET-3 address
(RFC 5737: never routed) that the test puts on the loopback interface for its duration:
reachable from this machine only, like 127.0.0.1. The path:

    requests arrive at 0 replicas -> held -> the controller is woken and scales 0 -> 1
    (long before its 20 s interval) -> the pod turns Running (kwok) -> backend up, endpoint
    ready -> every held request completes, streamed; overflow -> 503 + Retry-After;
    held past hold_timeout -> 504; a client that leaves frees its slot
    -> idle: back to 0 -> a new request wakes it again.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.cluster import nodes
from tests.cluster.session import KubeCluster
from tests.kube.test_chart import CHART, ok, run_tool
from tests.kube.test_e2e_llm_serving import stop_controller, token_kubeconfig, wait_until
from tests.servers.processes import free_port

pytestmark = [pytest.mark.kube]

PREFIX = "elastic-autoscaler.io"
MODEL = "llama-test"
INTERVAL = 20.0
"""The controller's interval: a wake well under it can only come from the wake channel."""
BACKEND_HOST = "203.0.113.7"


@pytest.fixture
def backend_host() -> Iterator[str]:
    """BACKEND_HOST on the loopback interface (root: as `make test` runs here and in CI)."""
    added = subprocess.run(["ip", "addr", "add", f"{BACKEND_HOST}/32", "dev", "lo"],
                           capture_output=True, text=True)  # fmt: skip
    if added.returncode != 0 and "exists" not in added.stderr:
        pytest.fail(f"cannot put {BACKEND_HOST} on lo for the backend: {added.stderr.strip()}")
    try:
        yield BACKEND_HOST
    finally:
        if added.returncode == 0:
            subprocess.run(["ip", "addr", "del", f"{BACKEND_HOST}/32", "dev", "lo"], check=False)


class Backend:
    """The fake OpenAI server as a process on `host`:`port`, started when the pod runs."""

    def __init__(self, host: str, log: Path) -> None:
        self.host, self.log = host, log
        with socket.socket() as s:
            s.bind((host, 0))
            self.port = int(s.getsockname()[1])
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("w") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tests.servers.fake_openai", "--host", self.host,
                 "--port", str(self.port), "--tokens", "6"],
                stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://{self.host}:{self.port}/v1/models").status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError(f"the fake backend did not start:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


@pytest.fixture
def chart_tokens(kube_cluster: KubeCluster, core_v1: Any, kube_namespace: str,
                 tmp_path: Path) -> Iterator[tuple[str, str, str]]:  # fmt: skip
    """(installation id, controller token, activator token) of the chart installed with the
    activator enabled; uninstalled afterwards."""
    ns, owner = kube_namespace, f"act-{uuid.uuid4().hex[:8]}"
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({
        "installationId": owner,
        "rbac": {"watchNamespaces": [ns]},
        "activator": {"enabled": True},
        "config": {"existingConfigMap": "not-used-here"},
    }))  # fmt: skip
    env = kube_cluster.tool_env()
    home = tmp_path / "helm"
    ok(run_tool("helm", "install", "e2e", str(CHART), "--namespace", ns,
                "--values", str(values), home=home, env=env))  # fmt: skip
    try:
        tokens = [
            core_v1.create_namespaced_service_account_token(
                name, ns, {"spec": {"expirationSeconds": 1800}}
            ).status.token
            for name in ("e2e-autoscaler", "e2e-autoscaler-activator")
        ]
        yield owner, tokens[0], tokens[1]
    finally:
        ok(run_tool("helm", "uninstall", "e2e", "--namespace", ns, home=home, env=env))


def endpoint_slice(name: str, service: str, port: int, ready: bool | None) -> dict[str, Any]:
    """The Service's one EndpointSlice: BACKEND_HOST:`port`, ready or not; None: no endpoint."""
    endpoints = [] if ready is None else [
        {"addresses": [BACKEND_HOST], "conditions": {"ready": ready}}
    ]  # fmt: skip
    return {
        "metadata": {"name": name, "labels": {
            "kubernetes.io/service-name": service,
            "endpointslice.kubernetes.io/managed-by": "e2e-test"}},
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
    }  # fmt: skip


def start(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("w") as out:
        return subprocess.Popen([sys.executable, "-m", "autoscaler", *args],
                                stdout=out, stderr=subprocess.STDOUT)  # fmt: skip


def stats(admin: str) -> dict[str, Any]:
    return dict(httpx.get(f"{admin}/activator/v1/stats", timeout=5).json()["pools"])


class Client(threading.Thread):
    """One streamed completion through the activator, in its own thread."""

    def __init__(self, url: str, model: str = MODEL, timeout: float = 120.0) -> None:
        super().__init__(daemon=True)
        self.url, self.model, self.timeout = url, model, timeout
        self.status: int | None = None
        self.headers: dict[str, str] = {}
        self.chunks: list[str] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        body = {"model": self.model, "prompt": "hi", "max_tokens": 6, "stream": True}
        try:
            with httpx.stream("POST", f"{self.url}/v1/completions", json=body,
                              timeout=self.timeout) as answer:  # fmt: skip
                self.status, self.headers = answer.status_code, dict(answer.headers)
                for line in answer.iter_lines():
                    if line.startswith("data: "):
                        self.chunks.append(line[len("data: ") :])
        except BaseException as exc:  # reported by the test
            self.error = exc

    def text(self) -> str:
        return "".join(json.loads(c)["choices"][0]["text"] for c in self.chunks[:-1])


def test_a_pool_at_zero_wakes_through_the_activator_serves_every_held_request_and_sleeps(
    kwok_cluster: KubeCluster,
    kube_api: Any,
    core_v1: Any,
    apps_v1: Any,
    kube_namespace: str,
    chart_tokens: tuple[str, str, str],
    backend_host: str,
    tmp_path: Path,
) -> None:
    from kubernetes import client as k

    ns = kube_namespace
    owner, controller_token, activator_token = chart_tokens
    discovery = k.DiscoveryV1Api(kube_api)
    node = f"act-{owner}"
    nodes.create_fake_node(core_v1, node, labels={"e2e": owner})
    for name in ("chat", "lonely"):
        apps_v1.create_namespaced_deployment(ns, {
            "metadata": {"name": name, "labels": {f"{PREFIX}/owner": owner}},
            "spec": {"replicas": 0, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}}, "spec": {
                         "nodeSelector": {"e2e": owner},
                         "containers": [{"name": "vllm", "image": "vllm"}]}}},
        })  # fmt: skip
        core_v1.create_namespaced_service(ns, {
            "metadata": {"name": name},
            "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8000}]},
        })  # fmt: skip
    backend = Backend(backend_host, tmp_path / "backend.log")
    discovery.create_namespaced_endpoint_slice(ns, endpoint_slice("chat-1", "chat",
                                                                  backend.port, None))  # fmt: skip
    # `lonely` never gets an endpoint: its requests show the hold timeout.
    discovery.create_namespaced_endpoint_slice(ns, endpoint_slice("lonely-1", "lonely", 1, None))

    proxy_port, admin_port = free_port(), free_port()
    url, admin = f"http://127.0.0.1:{proxy_port}", f"http://127.0.0.1:{admin_port}"

    def pool(name: str, activator: dict[str, Any]) -> dict[str, Any]:
        return {
            "name": name, "min": 0, "max": 2,
            "target": {"kind": "deployment", "namespace": ns, "name": name},
            "activator": {"backend": {"service": name, "port": "http"}, **activator},
            "signals": {"demand": {"source": {"type": "activator", "url": admin,
                                              "metric": "demand"}}},
            "policy": {"type": "queue-depth", "signal": "demand", "target_per_replica": 8},
            "behavior": {"scale_down": {"stabilization_window": 0}, "cooldown": 0,
                         "scale_to_zero_after": "2s"},
        }  # fmt: skip

    config = tmp_path / "autoscaler.yaml"
    config.write_text(yaml.safe_dump({
        "installation": {"id": owner, "tag_prefix": PREFIX},
        "controller": {"interval": f"{INTERVAL:g}s"},
        "pools": [
            pool("chat", {"models": [MODEL], "max_queue": 3, "hold_timeout": "90s"}),
            pool("lonely", {"models": ["lonely"], "hold_timeout": "2s"}),
        ],
    }))  # fmt: skip
    activator_log, controller_log = tmp_path / "activator.log", tmp_path / "controller.log"
    activator = start(["activator", str(config), "--listen", f"127.0.0.1:{proxy_port}",
                       "--admin", f"127.0.0.1:{admin_port}", "--kubeconfig",
                       str(token_kubeconfig(kube_api, activator_token,
                                            tmp_path / "activator.kubeconfig"))],
                      activator_log)  # fmt: skip
    controller: subprocess.Popen[bytes] | None = None
    replicas = lambda name="chat": (  # noqa: E731
        apps_v1.read_namespaced_deployment_scale(name, ns).spec.replicas or 0
    )

    def set_endpoint(ready: bool | None) -> None:
        discovery.replace_namespaced_endpoint_slice(
            "chat-1", ns, endpoint_slice("chat-1", "chat", backend.port, ready)
        )

    def running() -> bool:
        pods = core_v1.list_namespaced_pod(ns, label_selector="app=chat").items
        return any(p.status.phase == "Running" for p in pods)

    try:
        wait_until(lambda: _ready(admin), 30, "the activator to be ready", activator_log)
        controller = start(["run", "--config", str(config), "--kubeconfig",
                            str(token_kubeconfig(kube_api, controller_token,
                                                 tmp_path / "controller.kubeconfig"))],
                           controller_log)  # fmt: skip
        wait_until(lambda: "scaling 2 pool" in controller_log.read_text(), 30,
                   "the controller to start", controller_log)  # fmt: skip
        time.sleep(2.0)  # its first tick is done; the next periodic one is INTERVAL away

        # Requests arrive at zero: held, and the controller is woken at once.
        first = time.monotonic()
        held = [Client(url), Client(url)]
        for c in held:
            c.start()
        wait_until(lambda: stats(admin)["chat"]["waiting"] == 2, 10, "2 held requests",
                   activator_log)  # fmt: skip
        wait_until(lambda: replicas() == 1, INTERVAL / 2, "the Deployment to scale 0 -> 1 "
                   "(woken, not at the next interval)", controller_log)  # fmt: skip
        woken_after = time.monotonic() - first

        # A client that gives up while held frees its place in the queue.
        leaver = Client(url, timeout=0.5)
        leaver.run()
        assert isinstance(leaver.error, httpx.TimeoutException), leaver.error
        wait_until(lambda: stats(admin)["chat"]["waiting"] == 2, 10,
                   "the leaver's place freed", activator_log)  # fmt: skip
        held.append(Client(url))
        held[-1].start()
        wait_until(lambda: stats(admin)["chat"]["waiting"] == 3, 10, "3 held requests",
                   activator_log)  # fmt: skip
        # The queue holds 3 (max_queue): a fourth gets 503 with Retry-After at once.
        overflow = Client(url)
        overflow.run()
        assert overflow.status == 503, (overflow.status, overflow.error)
        assert int(overflow.headers["retry-after"]) > 0
        # A pool whose endpoint never comes answers 504 after its hold_timeout (2 s).
        lonely = Client(url, model="lonely")
        lonely.run()
        assert lonely.status == 504, (lonely.status, lonely.error)

        # The pod runs (kwok); the backend starts and the endpoint turns ready.
        wait_until(running, 60, "the chat pod Running", controller_log)
        backend.start()
        set_endpoint(True)
        for c in held:
            c.join(timeout=30)
            assert c.error is None and c.status == 200, (c.status, c.error)
            assert c.chunks[-1] == "[DONE]" and c.text().split() == [f"tok{i}" for i in range(6)], (
                c.chunks
            )
        counts = stats(admin)["chat"]
        assert counts["waiting"] == 0 and counts["served"] == 3, counts
        assert counts["rejected"] == 1 and counts["client_gone"] == 1, counts
        assert stats(admin)["lonely"]["timed_out"] == 1

        # Idle: back to zero after the keep-alive (at a periodic tick), and the endpoint
        # goes with the pod.
        wait_until(lambda: replicas() == 0, 2 * INTERVAL + 10, "the pool back at 0",
                   controller_log)  # fmt: skip
        set_endpoint(None)
        # ... and one more request wakes it again.
        again = time.monotonic()
        late = Client(url)
        late.start()
        wait_until(lambda: replicas() == 1, INTERVAL / 2, "the pool woken a second time",
                   controller_log)  # fmt: skip
        woken_again_after = time.monotonic() - again
        wait_until(running, 60, "the chat pod Running again", controller_log)
        set_endpoint(True)
        late.join(timeout=30)
        assert late.status == 200 and late.chunks[-1] == "[DONE]", (late.status, late.error)
        print(f"woken after {woken_after:.2f}s and {woken_again_after:.2f}s "
              f"(interval {INTERVAL:g}s)")  # fmt: skip

        stop_controller(controller, controller_log)
        controller = None
        activator.terminate()
        assert activator.wait(timeout=40) == 0, activator_log.read_text()[-3000:]
        text = activator_log.read_text()
        assert "Traceback" not in text and "Forbidden" not in text, text[-3000:]
    except BaseException:
        _dump(activator_log, controller_log)
        raise
    finally:
        for proc in (controller, activator):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
        backend.stop()
        nodes.delete_node(core_v1, node)


def _ready(admin: str) -> bool:
    try:
        return httpx.get(f"{admin}/readyz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _dump(*logs: Path) -> None:
    for log in logs:
        if log.exists():
            print(f"--- {log.name}\n{log.read_text(errors='replace')[-4000:]}")
