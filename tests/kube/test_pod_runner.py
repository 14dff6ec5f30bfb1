"""tests/cluster/pod_runner.py against the real API server and scheduler: a pod bound to the
runner's node runs its command as a host process and ends Succeeded or Failed with the
exit code; a deleted pod's process is killed and the deletion confirmed; foreign pods (not
matching the selector) are left alone."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from tests.cluster.pod_runner import PodRunner
from tests.cluster.wait import wait_for

pytestmark = pytest.mark.kube


def pod(name: str, argv: list[str], selector: dict[str, str], app: str = "runner-test") -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": app}},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 0,
            "nodeSelector": selector,
            "containers": [
                {
                    "name": "main",
                    "image": "python:3.11-slim",
                    "command": argv,
                    "env": [{"name": "GREETING", "value": "hello"}],
                }
            ],
        },
    }


def phase(core_v1: Any, ns: str, name: str) -> str | None:
    try:
        return str(core_v1.read_namespaced_pod(name, ns).status.phase)
    except ApiException as e:
        if e.status == 404:
            return None
        raise


def test_pods_run_as_processes_and_end_with_their_exit_code(
    kwok_cluster: Any, core_v1: Any, kube_namespace: str, tmp_path: Path
) -> None:
    runner = PodRunner(
        core_v1, namespace=kube_namespace, selector="app=runner-test", log_dir=tmp_path,
        env={"FROM_RUNNER": "yes"},
    ).start()  # fmt: skip
    ns, sel = kube_namespace, runner.node_selector
    script = "import os, sys; print(os.environ['GREETING'], os.environ['FROM_RUNNER']); sys.exit(3)"
    try:
        core_v1.create_namespaced_pod(ns, pod("ok", [sys.executable, "-c", "print('hi')"], sel))
        core_v1.create_namespaced_pod(ns, pod("bad", [sys.executable, "-c", script], sel))
        core_v1.create_namespaced_pod(ns, pod("long", ["sleep", "300"], sel))
        core_v1.create_namespaced_pod(ns, pod("theirs", ["true"], sel, app="other"))

        wait_for(lambda: phase(core_v1, ns, "ok") == "Succeeded", timeout=60, what="ok done",
                 describe=runner.describe)  # fmt: skip
        wait_for(lambda: phase(core_v1, ns, "bad") == "Failed", timeout=60, what="bad failed",
                 describe=runner.describe)  # fmt: skip
        bad = core_v1.read_namespaced_pod("bad", ns).status.container_statuses[0]
        assert bad.state.terminated.exit_code == 3
        assert (tmp_path / f"{'bad'}.log").read_text().strip() == "hello yes"

        wait_for(lambda: "long" in runner.running(), timeout=60, what="long running")
        assert phase(core_v1, ns, "long") == "Running"
        core_v1.delete_namespaced_pod("long", ns)
        wait_for(lambda: phase(core_v1, ns, "long") is None, timeout=60, what="long deleted",
                 describe=runner.describe)  # fmt: skip
        wait_for(lambda: runner.running() == [], timeout=10, what="long's process killed")
        assert runner.exit_codes["long"] < 0  # killed by a signal
        assert phase(core_v1, ns, "theirs") == "Pending"  # not ours: never run
        assert set(runner.exit_codes) >= {"ok", "bad"} and "theirs" not in runner.exit_codes
    finally:
        runner.stop()
    with pytest.raises(ApiException):
        core_v1.read_node(runner.node)
