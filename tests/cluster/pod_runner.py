"""Pod runner: run the containers of test pods as host processes, acting as their kubelet.

kwok runs no containers: it marks a pod Running and, for a Job's pod, Succeeded at once
(its built-in `pod-complete` stage), whatever the command would have done. Tests whose
Jobs must really run (an Optuna worker, an evaluation script) use this runner instead: it
registers one Node of its own, which kwok does not manage (no `kwok.x-k8s.io/node`
annotation), keeps it Ready (Ready condition and a lease in kube-node-lease, as a kubelet
does), and for every pod the scheduler binds to that node and that matches `selector`:

1. marks it Running (Ready, its container running) and starts its first container's
   `command` + `args` on the host, with the runner's `env`, then the container's own
   literal `env` values, and `POD_NAME`/`POD_NAMESPACE`, in `cwd`;
2. when the process exits, marks the pod Succeeded (exit 0) or Failed with that exit code
   in the container's `terminated` state, so the real Job controller completes or fails
   the Job;
3. when the pod is deleted (or gone: a grace-0 deletion does not wait for a kubelet), kills
   its process and confirms the deletion.

Pods reach the runner's node by selecting its label: put `runner.node_selector` in the pod
template's `nodeSelector`. Usage::

    runner = PodRunner(core_v1, namespace=ns, selector="app=trial", env={"X": "1"}, cwd=ROOT)
    runner.start()          # creates the Node and a background thread
    ...                     # pods with nodeSelector runner.node_selector run as processes
    runner.exit_codes       # {pod name: exit code} of the pods that finished
    runner.stop()           # kills what still runs, deletes the Node and its lease

Each process's stdout and stderr go to `<log_dir>/<pod>.log`; `describe()` summarizes the
pods seen and their logs' tails, for a failing test's message.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import subprocess
import tempfile
import threading
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kubernetes.client.exceptions import ApiException

log = logging.getLogger(__name__)

RUNNER_LABEL = "autoscaler-test/pod-runner"
LEASE_NAMESPACE = "kube-node-lease"
HEARTBEAT_SECONDS = 5.0


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _stamp() -> str:
    return _now().strftime("%Y-%m-%dT%H:%M:%SZ")


class PodRunner:
    """The kubelet of one Node whose matching pods run as host processes; see the module."""

    def __init__(
        self,
        core_v1: Any,
        *,
        namespace: str,
        selector: str = "",
        node: str | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | Path | None = None,
        log_dir: str | Path | None = None,
        poll_seconds: float = 0.3,
    ) -> None:
        self.core_v1 = core_v1
        self.namespace = namespace
        self.selector = selector
        self.node = node or f"pod-runner-{uuid.uuid4().hex[:8]}"
        self.env = dict(env or {})
        self.cwd = str(cwd) if cwd is not None else None
        self.log_dir = Path(log_dir or tempfile.mkdtemp(prefix="pod-runner-"))
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.poll_seconds = poll_seconds
        self.exit_codes: dict[str, int] = {}
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_heartbeat = 0.0
        self._errors: list[str] = []

    @property
    def node_selector(self) -> dict[str, str]:
        """What a pod template's `nodeSelector` needs to run on this runner."""
        return {RUNNER_LABEL: self.node}

    # -- life cycle ----------------------------------------------------------------------
    def start(self) -> PodRunner:
        self._create_node()
        self._heartbeat(force=True)
        self._thread = threading.Thread(target=self._loop, name="pod-runner", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        for proc in self._procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
        self._procs.clear()
        for delete in (
            lambda: self.core_v1.delete_node(self.node),
            lambda: self._coordination().delete_namespaced_lease(self.node, LEASE_NAMESPACE),
        ):
            try:
                delete()
            except ApiException as e:
                if e.status != 404:
                    raise

    def running(self) -> list[str]:
        """Pods whose process still runs."""
        return [name for name, proc in self._procs.items() if proc.poll() is None]

    def describe(self) -> str:
        """The pods run so far, their exit codes, and each log's last lines."""
        parts = [f"node {self.node}; exit codes {self.exit_codes}; running {self.running()}"]
        parts += [f"errors: {e}" for e in self._errors[-5:]]
        for path in sorted(self.log_dir.glob("*.log")):
            tail = path.read_text(errors="replace").strip().splitlines()[-5:]
            parts.append(f"{path.stem}: " + " | ".join(tail))
        return "\n".join(parts)

    # -- the node ------------------------------------------------------------------------
    def _create_node(self) -> None:
        capacity = {"cpu": "16", "memory": "64Gi", "pods": "110", "ephemeral-storage": "100Gi"}
        self.core_v1.create_node(
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": self.node,
                    "labels": {
                        "kubernetes.io/hostname": self.node,
                        "kubernetes.io/os": "linux",
                        "kubernetes.io/arch": "amd64",
                        RUNNER_LABEL: self.node,
                    },
                },
                "status": {"capacity": capacity, "allocatable": dict(capacity)},
            }
        )

    def _heartbeat(self, force: bool = False) -> None:
        """Ready condition and lease renewed, so the node lifecycle controller keeps the
        node schedulable (it taints a node whose heartbeats stop)."""
        now = _now().timestamp()
        if not force and now - self._last_heartbeat < HEARTBEAT_SECONDS:
            return
        self._last_heartbeat = now
        ready = {
            "type": "Ready",
            "status": "True",
            "reason": "PodRunnerReady",
            "message": "tests.cluster.pod_runner runs this node's pods as host processes",
            "lastHeartbeatTime": _stamp(),
            "lastTransitionTime": _stamp(),
        }
        self.core_v1.patch_node_status(self.node, {"status": {"conditions": [ready]}})
        self._renew_lease()

    def _coordination(self) -> Any:
        from kubernetes import client

        return client.CoordinationV1Api(self.core_v1.api_client)

    def _renew_lease(self) -> None:
        api = self._coordination()
        body = {
            "metadata": {"name": self.node, "namespace": LEASE_NAMESPACE},
            "spec": {
                "holderIdentity": self.node,
                "leaseDurationSeconds": 40,
                "renewTime": _now().strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            },
        }
        try:
            api.patch_namespaced_lease(self.node, LEASE_NAMESPACE, body)
        except ApiException as e:
            if e.status != 404:
                raise
            api.create_namespaced_lease(LEASE_NAMESPACE, body)

    # -- the pods ------------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._heartbeat()
                self._sync()
            except Exception as e:  # a flaky call must not stop the runner; retried next round
                self._errors.append(f"{type(e).__name__}: {e}")
                log.warning("pod runner: %s", e)
            self._stop.wait(self.poll_seconds)

    def _sync(self) -> None:
        pods = self.core_v1.list_namespaced_pod(
            self.namespace,
            label_selector=self.selector,
            field_selector=f"spec.nodeName={self.node}",
        ).items
        for pod in pods:
            name = pod.metadata.name
            if pod.metadata.deletion_timestamp is not None:
                self._kill(name)
                self._confirm_deletion(name)
            elif self._new(name) and pod.status.phase == "Pending":
                self._run(pod)
        present = {pod.metadata.name for pod in pods}
        for name, proc in list(self._procs.items()):
            if name not in present:  # deleted at once (grace 0): nobody waits on a kubelet
                self._kill(name)
            code = proc.poll()
            if code is not None and name not in self.exit_codes:
                self._finish(name, code)  # first: a failed status write is retried
                self.exit_codes[name] = code

    def _new(self, name: str) -> bool:
        """Not started by this runner yet."""
        return name not in self._procs and name not in self.exit_codes

    def _run(self, pod: Any) -> None:
        name = pod.metadata.name
        container = pod.spec.containers[0]
        argv = list(container.command or []) + list(container.args or [])
        if not argv:  # the image's entrypoint is unknown here: fail the pod, say why
            (self.log_dir / f"{name}.log").write_text("pod runner: the container has no command\n")
            self._finish(name, 127)
            self.exit_codes[name] = 127
            return
        env = {**os.environ, **self.env, "POD_NAME": name, "POD_NAMESPACE": self.namespace}
        for var in container.env or []:
            if var.value is not None:
                env[var.name] = var.value
        started = _stamp()
        with (self.log_dir / f"{name}.log").open("wb") as out:
            try:
                proc = subprocess.Popen(
                    argv, env=env, cwd=self.cwd, stdout=out, stderr=subprocess.STDOUT
                )
            except OSError as e:  # as a kubelet would: the container cannot start
                out.write(f"pod runner: cannot start {argv}: {e}\n".encode())
                self._finish(name, 127)
                self.exit_codes[name] = 127
                return
        self._procs[name] = proc
        self._status(name, "Running", {"running": {"startedAt": started}}, ready=True)
        log.info("pod runner: %s started: %s", name, " ".join(argv))

    def _finish(self, name: str, code: int) -> None:
        terminated = {
            "exitCode": code,
            "reason": "Completed" if code == 0 else "Error",
            "startedAt": _stamp(),
            "finishedAt": _stamp(),
        }
        phase = "Succeeded" if code == 0 else "Failed"
        try:
            self._status(name, phase, {"terminated": terminated}, ready=False)
        except ApiException as e:
            if e.status != 404:
                raise
        log.info("pod runner: %s exited %d", name, code)

    def _status(self, name: str, phase: str, state: dict[str, Any], *, ready: bool) -> None:
        pod = self.core_v1.read_namespaced_pod(name, self.namespace)
        container = pod.spec.containers[0]
        flag = "True" if ready else "False"
        conditions = [
            {"type": t, "status": s, "lastTransitionTime": _stamp()}
            for t, s in (
                ("PodScheduled", "True"),
                ("Initialized", "True"),
                ("ContainersReady", flag),
                ("Ready", flag),
            )
        ]
        status = {
            "phase": phase,
            "hostIP": "10.255.0.2",
            "podIP": "10.255.0.3",
            "startTime": _stamp(),
            "conditions": conditions,
            "containerStatuses": [
                {
                    "name": container.name,
                    "image": container.image,
                    "imageID": "",
                    "ready": ready,
                    "started": ready,
                    "restartCount": 0,
                    "state": state,
                }
            ],
        }
        self.core_v1.patch_namespaced_pod_status(name, self.namespace, {"status": status})

    def _kill(self, name: str) -> None:
        proc = self._procs.get(name)
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)

    def _confirm_deletion(self, name: str) -> None:
        try:
            self.core_v1.delete_namespaced_pod(name, self.namespace, grace_period_seconds=0)
        except ApiException as e:
            if e.status != 404:
                raise
