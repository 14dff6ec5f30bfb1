"""Command line for the local test cluster: ``python -m tests.cluster up|down|status|env``.

``up`` starts a cluster that keeps running after the command returns and prints
``export KUBECONFIG=...`` on stdout (everything else goes to stderr), so
``eval "$(python -m tests.cluster up)"`` points kubectl, helm and the tests at it. Its state
(pids, kubeconfig, keys, logs, etcd data) lives in one known folder, by default
``${XDG_CACHE_HOME:-~/.cache}/elastic-autoscaler/cluster`` (``--dir`` or
``AUTOSCALER_CLUSTER_DIR`` to change it); ``down`` stops exactly the processes recorded there.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys
from pathlib import Path

from tests.cluster.binaries import MissingBinariesError
from tests.cluster.harness import (
    ClusterStartError,
    LocalCluster,
    running_from_state,
    stop_from_state,
)

COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")


def default_dir() -> Path:
    override = os.environ.get("AUTOSCALER_CLUSTER_DIR")
    if override:
        return Path(override).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "elastic-autoscaler" / "cluster"


def say(msg: str) -> None:
    print(f"[test-cluster] {msg}", file=sys.stderr, flush=True)


def export_line(workdir: Path) -> str:
    return f"export KUBECONFIG={shlex.quote(str(workdir / 'admin.kubeconfig'))}"


def cmd_up(workdir: Path, timeout: float) -> int:
    alive = running_from_state(workdir)
    if set(alive) == set(COMPONENTS):
        say(f"already running (state in {workdir})")
        print(export_line(workdir))
        return 0
    if alive:
        say(f"stopping the remains of an earlier cluster: {', '.join(alive)}")
    survivors = stop_from_state(workdir, remove=False)
    if survivors:
        say(f"could not stop {', '.join(survivors)}; not starting another cluster")
        return 1
    if workdir.exists():
        shutil.rmtree(workdir)
    say(
        f"starting etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok in {workdir}"
    )
    cluster = LocalCluster(workdir=workdir, detach=True, ready_timeout=timeout)
    try:
        cluster.start()
    except MissingBinariesError as e:
        say(str(e))
        return 1
    except ClusterStartError as e:
        say(f"the cluster failed to start (logs kept in {workdir / 'logs'}):\n{e}")
        return 1
    assert cluster.endpoints is not None
    say(f"up in {cluster.startup_seconds:.1f}s: API server {cluster.endpoints.server}")
    say(f"logs: {cluster.logs_dir}; stop it with: python -m tests.cluster down")
    print(export_line(workdir))
    return 0


def cmd_down(workdir: Path) -> int:
    if not (workdir / "state.json").exists():
        say(f"no cluster state in {workdir}; nothing to stop")
        return 0
    survivors = stop_from_state(workdir, remove=True)
    if survivors:
        say(f"could not stop: {', '.join(survivors)} (state kept in {workdir})")
        return 1
    say("stopped")
    return 0


def cmd_status(workdir: Path) -> int:
    alive = running_from_state(workdir)
    if not alive:
        say(f"not running (state dir {workdir})")
        return 1
    for name in COMPONENTS:
        pid = alive.get(name)
        say(f"{name:<24} {'pid ' + str(pid) if pid else 'NOT RUNNING'}")
    print(export_line(workdir))
    return 0 if set(alive) == set(COMPONENTS) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.cluster", description=__doc__)
    parser.add_argument("command", choices=["up", "down", "status", "env"])
    parser.add_argument("--dir", type=Path, default=None, help="state folder")
    parser.add_argument("--timeout", type=float, default=120.0, help="readiness timeout (s)")
    args = parser.parse_args(argv)
    workdir = (args.dir or default_dir()).resolve()
    if args.command == "up":
        return cmd_up(workdir, args.timeout)
    if args.command == "down":
        return cmd_down(workdir)
    return cmd_status(workdir)


if __name__ == "__main__":
    sys.exit(main())
