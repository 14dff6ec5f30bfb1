"""The cluster harness itself: every listener is on 127.0.0.1, and no process survives a stop,
a signal, a killed parent, or ``python -m tests.cluster down``."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.binaries import REPO_ROOT, Binaries
from tests.cluster.harness import LocalCluster, pid_alive, stop_from_state
from tests.cluster.wait import wait_for

pytestmark = pytest.mark.kube


def socket_inodes(pid: int) -> set[str]:
    inodes = set()
    fd_dir = Path(f"/proc/{pid}/fd")
    for fd in fd_dir.iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def listening_addresses(pid: int) -> set[tuple[str, int]]:
    """(ip, port) of the TCP sockets in LISTEN state that process pid holds."""
    inodes = socket_inodes(pid)
    found = set()
    for table, v6 in (("/proc/net/tcp", False), ("/proc/net/tcp6", True)):
        with open(table) as f:
            next(f)
            for line in f:
                fields = line.split()
                local, state, inode = fields[1], fields[3], fields[9]
                if state != "0A" or inode not in inodes:  # 0A = LISTEN
                    continue
                hex_ip, hex_port = local.split(":")
                raw = bytes.fromhex(hex_ip)
                if v6:  # four little-endian 32-bit words
                    raw = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
                    ip = socket.inet_ntop(socket.AF_INET6, raw)
                else:
                    ip = socket.inet_ntop(socket.AF_INET, raw[::-1])
                found.add((ip, int(hex_port, 16)))
    return found


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def all_gone(pids: dict[str, int]) -> bool:
    return not any(pid_alive(p) for p in pids.values())


def test_a_local_cluster_listens_only_on_127_0_0_1_and_stop_leaves_no_process_or_port_behind(
    local_binaries: Binaries,
) -> None:
    cluster = LocalCluster(binaries=local_binaries).start()
    try:
        pids = cluster.pids
        assert set(pids) == {
            "etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"
        }  # fmt: skip
        listeners = {name: listening_addresses(pid) for name, pid in pids.items()}
        everything = set().union(*listeners.values())
        assert everything, "found no listening sockets at all; the check would prove nothing"
        assert {ip for ip, _ in everything} == {"127.0.0.1"}, listeners
        ports = [port for _, port in everything]
        workdir = cluster.workdir
        assert workdir is not None
    finally:
        survivors = cluster.stop()
    assert survivors == []
    assert all_gone(pids), {n: p for n, p in pids.items() if pid_alive(p)}
    assert not [p for p in ports if port_open(p)]
    assert not workdir.exists()


CHILD = """
import json, sys, time
from tests.cluster.harness import LocalCluster
cluster = LocalCluster().start()
print(json.dumps({"pids": cluster.pids, "workdir": str(cluster.workdir)}), flush=True)
time.sleep(600)
"""


def start_child_cluster(log: Path, binaries: Binaries) -> tuple[subprocess.Popen[str], Any]:
    env = dict(os.environ, AUTOSCALER_K8S_BIN_DIR=str(binaries.etcd.parent))
    env.pop("KUBECONFIG", None)
    with open(log, "w") as err:
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD],
            cwd=REPO_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )
    line: list[str] = []
    assert child.stdout is not None
    out = child.stdout
    reader = threading.Thread(target=lambda: line.append(out.readline()), daemon=True)
    reader.start()
    reader.join(120)
    if not line or not line[0].strip():
        child.kill()
        child.wait()
        pytest.fail(f"the child never reported its cluster; its stderr:\n{log.read_text()}")
    return child, json.loads(line[0])


@pytest.mark.parametrize(
    "sig",
    [signal.SIGTERM, signal.SIGINT, signal.SIGKILL],
    ids=["sigterm-runs-the-handler", "sigint-runs-atexit", "sigkill-relies-on-pdeathsig"],
)
def test_a_signalled_or_killed_owner_process_takes_its_whole_cluster_with_it(
    local_binaries: Binaries, tmp_path: Path, sig: signal.Signals
) -> None:
    child, info = start_child_cluster(tmp_path / "child.log", local_binaries)
    pids: dict[str, int] = info["pids"]
    workdir = Path(info["workdir"])
    try:
        assert len(pids) == 5 and all(pid_alive(p) for p in pids.values())
        child.send_signal(sig)
        child.wait(timeout=60)
        wait_for(
            lambda: all_gone(pids),
            timeout=30,
            what=f"every cluster process to exit after {sig.name} to its owner",
            describe=lambda: str({n: p for n, p in pids.items() if pid_alive(p)}),
        )
        if sig != signal.SIGKILL:  # a cleanup that ran also removes the temp dir
            assert not workdir.exists(), (tmp_path / "child.log").read_text()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        for pid in pids.values():
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(workdir, ignore_errors=True)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop("KUBECONFIG", None)
    return subprocess.run(
        [sys.executable, "-m", "tests.cluster", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_cluster_up_prints_a_kubeconfig_export_and_down_stops_every_process(
    local_binaries: Binaries, tmp_path: Path
) -> None:
    from kubernetes import client as k
    from kubernetes import config as kconfig

    state = tmp_path / "cluster"
    try:
        up = run_cli("up", "--dir", str(state))
        assert up.returncode == 0, up.stderr
        assert up.stdout.strip() == f"export KUBECONFIG={state / 'admin.kubeconfig'}", up
        pids = {
            c["name"]: c["pid"]
            for c in json.loads((state / "state.json").read_text())["components"]
        }
        # The command has returned; the cluster keeps running and answers.
        assert len(pids) == 5 and all(pid_alive(p) for p in pids.values())
        api = kconfig.new_client_from_config(config_file=str(state / "admin.kubeconfig"))
        with api:
            names = [n.metadata.name for n in k.CoreV1Api(api).list_node().items]
        assert "kwok-system-0" in names

        again = run_cli("up", "--dir", str(state))
        assert again.returncode == 0 and "already running" in again.stderr, again
        assert run_cli("status", "--dir", str(state)).returncode == 0

        down = run_cli("down", "--dir", str(state))
        assert down.returncode == 0, down.stderr
        assert all_gone(pids), {n: p for n, p in pids.items() if pid_alive(p)}
        assert not state.exists()
        assert run_cli("status", "--dir", str(state)).returncode == 1
    finally:
        stop_from_state(state)
