"""A real local Ray cluster for the executor tests: a head and a second node on 127.0.0.1.

`ray start --head` (one CPU, no dashboard) and `ray start --address` for a second node with
one CPU, so tasks run on two worker nodes; every port either node listens on is a free
one picked here, and the cluster keeps its files in its own temporary folder. Each node
runs with `--block` in a process session of its own, and `stop` ends those sessions
(SIGTERM, then SIGKILL): `ray stop` would end every Ray process of this user on the
machine, other people's clusters included. `stop` is idempotent and runs on every path
(the fixture's `finally`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .fixtures import in_ci
from .processes import HOST, ServerStartError, free_port, wait_until

START_TIMEOUT = 120.0
"""Seconds for both nodes to join: Ray starts in 10-30 s on a loaded 2-core machine."""


def ray_binary() -> str:
    """The `ray` command of this Python (the virtual environment's), so the nodes run the
    same Ray and import the same autoscaler package as the test."""
    here = Path(sys.executable).parent / "ray"
    if here.exists():
        return str(here)
    found = shutil.which("ray")
    if found is None:
        raise ServerStartError("the `ray` command is not installed with Ray")
    return found


class RayCluster:
    def __init__(self, cpus_per_node: int = 1) -> None:
        self.ray = ray_binary()
        self.port = free_port()
        self.address = f"{HOST}:{self.port}"
        self.cpus_per_node = cpus_per_node
        # Short: Ray's Unix sockets live under it and a socket path has ~100 characters.
        self.temp = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))
        self.nodes: list[subprocess.Popen[bytes]] = []

    def _ports(self) -> list[str]:
        return [
            "--node-manager-port", str(free_port()),
            "--object-manager-port", str(free_port()),
            "--dashboard-agent-listen-port", str(free_port()),
            "--dashboard-agent-grpc-port", str(free_port()),
            "--runtime-env-agent-port", str(free_port()),
            "--metrics-export-port", str(free_port()),
        ]  # fmt: skip

    def _node(self, name: str, args: list[str]) -> None:
        log = open(self.temp / f"{name}.log", "wb")  # noqa: SIM115 - the child keeps it
        env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
        command = [
            self.ray, "start", "--block", "--node-ip-address", HOST,
            "--num-cpus", str(self.cpus_per_node), "--disable-usage-stats",
            *self._ports(), *args,
        ]  # fmt: skip
        self.nodes.append(
            subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        )
        log.close()

    def cpus(self) -> float:
        """The CPUs the cluster has now (each node brings `cpus_per_node`)."""
        done = subprocess.run(
            [self.ray, "status", "--address", self.address],
            capture_output=True,
            text=True,
            timeout=30,
        )
        for line in done.stdout.splitlines():
            if line.strip().endswith(" CPU") and "/" in line:
                return float(line.split("/")[1].split()[0])
        return 0.0

    def start(self) -> None:
        self._node(
            "head",
            [
                "--head", "--port", str(self.port), "--include-dashboard=false",
                "--temp-dir", str(self.temp),
            ],
        )  # fmt: skip
        self._wait(1)
        self._node("worker", ["--address", self.address])
        self._wait(2)

    def _wait(self, nodes: int) -> None:
        want = nodes * self.cpus_per_node
        end = time.monotonic() + START_TIMEOUT
        while time.monotonic() < end:
            if any(p.poll() is not None for p in self.nodes):
                raise ServerStartError(f"a Ray node exited at start:\n{self.log_tail()}")
            if wait_until(lambda: self.cpus() >= want, 1.0, 1.0):
                return
        raise ServerStartError(f"Ray did not reach {nodes} node(s):\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        out = []
        for log in sorted(self.temp.glob("*.log")):
            text = log.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"--- {log.name}\n" + "\n".join(text))
        return "\n".join(out)

    def stop(self) -> None:
        """End both nodes' sessions (each node's raylet, GCS and workers), then remove the
        folder; safe to call twice."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for node in self.nodes:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(node.pid, sig)
            end = time.monotonic() + 8
            while time.monotonic() < end and self._session_processes():
                time.sleep(0.2)
            if not self._session_processes():
                break
        for node in self.nodes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                node.wait(5)
        self.nodes = []
        shutil.rmtree(self.temp, ignore_errors=True)

    def _session_processes(self) -> list[int]:
        """Processes still alive in the nodes' sessions (zombies excluded)."""
        sessions = {node.pid for node in self.nodes}
        alive = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if fields[0] != "Z" and int(fields[3]) in sessions:
                alive.append(int(entry.name))
        return alive


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[RayCluster]:
    """One real two-node Ray cluster for the whole test session (Ray is slow to start)."""
    try:
        import ray  # noqa: F401
    except ImportError:
        message = "Ray is not installed: pip install 'elastic-autoscaler[ray]'"
        if in_ci():
            pytest.fail(f"CI=true and {message}", pytrace=False)
        pytest.skip(message)
    cluster = RayCluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
