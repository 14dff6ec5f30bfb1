"""A real Kubernetes control plane as local processes: etcd, API server, controllers, kwok.

``LocalCluster`` starts etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok
as plain processes listening on 127.0.0.1 only (free ports picked at start), in a fresh folder
holding keys, a static token file, the admin kubeconfig, kwok's config and every component's
log. Each start waits for readiness with a timeout and, when something does not come up,
raises ``ClusterStartError`` naming the component, its log file and the log's last lines.

Cleanup happens on every exit path: ``stop()`` (also via ``with``), an ``atexit`` hook, and
SIGTERM/SIGHUP handlers stop the processes in reverse order by process group (each component
runs in its own session), and in "owned" mode each child also gets ``PR_SET_PDEATHSIG`` so
the kernel kills it if the Python process dies without running any cleanup (SIGKILL).
PR_SET_PDEATHSIG fires when the *thread* that started the process exits, so start an owned
cluster from a thread that outlives it (pytest's main thread does).
``detach=True`` (used by ``python -m tests.cluster up``) leaves the processes running after
Python exits; ``stop_from_state()`` stops them later from the saved ``state.json``.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.cluster import nodes, pki
from tests.cluster.binaries import Binaries, find_binaries

SYSTEM_NODE = "kwok-system-0"
# A ConfigMap that tells a later session (given only KUBECONFIG) that kwok runs here.
MARKER_NAMESPACE = "kube-system"
MARKER_CONFIGMAP = "autoscaler-test-cluster"
NODE_LEASE_SECONDS = 20
LOG_TAIL_LINES = 40
STOP_GRACE_SECONDS = 10.0


class ClusterStartError(RuntimeError):
    """A component did not start or did not become ready; the message carries its log tail."""


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last lines of a log file, or a note that it is missing."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return f"(no log at {path})"
    tail = text.splitlines()[-lines:]
    return "\n".join(tail) if tail else f"(log {path} is empty)"


def free_ports(count: int) -> list[int]:
    """Distinct free TCP ports on 127.0.0.1 (all held open at once, then released)."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def pid_alive(pid: int) -> bool:
    """True while a process exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def pid_cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [p.decode(errors="replace") for p in f.read().split(b"\0") if p]
    except (FileNotFoundError, ProcessLookupError):
        return []


_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child between fork and exec
    os.setsid()
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


@dataclass
class Component:
    """One running process of the cluster."""

    name: str
    argv: list[str]
    log_path: Path
    proc: subprocess.Popen[bytes]

    @property
    def pid(self) -> int:
        return self.proc.pid

    def running(self) -> bool:
        return self.proc.poll() is None


@dataclass
class Endpoints:
    etcd_client: int
    etcd_peer: int
    apiserver: int
    controller_manager: int
    scheduler: int

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.apiserver}"


# --- cleanup on every exit path --------------------------------------------------------------

_live: weakref.WeakSet[LocalCluster] = weakref.WeakSet()
_handlers_installed = False
_handlers_lock = threading.Lock()


def _stop_all_live() -> None:
    for cluster in list(_live):
        with contextlib.suppress(Exception):
            cluster.stop()


def _install_exit_handlers() -> None:
    """atexit + SIGTERM/SIGHUP: stop owned clusters, then let the signal do what it did."""
    global _handlers_installed
    with _handlers_lock:
        if _handlers_installed:
            return
        _handlers_installed = True
    atexit.register(_stop_all_live)
    if threading.current_thread() is not threading.main_thread():
        return  # signal handlers can only be set from the main thread; atexit + pdeathsig remain
    for sig in (signal.SIGTERM, signal.SIGHUP):
        previous = signal.getsignal(sig)

        def handler(signum: int, frame: Any, _previous: Any = previous) -> None:
            _stop_all_live()
            if callable(_previous):
                _previous(signum, frame)
            elif _previous == signal.SIG_IGN:
                return
            else:
                signal.signal(signum, signal.SIG_DFL)
                os.kill(os.getpid(), signum)

        signal.signal(sig, handler)


# --- the cluster -----------------------------------------------------------------------------


@dataclass(eq=False)  # identity semantics: instances live in a WeakSet for cleanup
class LocalCluster:
    """etcd + kube-apiserver + kube-controller-manager + kube-scheduler + kwok on 127.0.0.1.

    workdir: where keys, kubeconfig, logs and etcd data go (a new temp dir when None).
    detach: leave the processes running when Python exits (for ``python -m tests.cluster up``).
    """

    workdir: Path | None = None
    binaries: Binaries | None = None
    detach: bool = False
    ready_timeout: float = 90.0
    components: list[Component] = field(default_factory=list)
    endpoints: Endpoints | None = None
    kubeconfig: Path | None = None
    startup_seconds: float | None = None
    _owns_workdir: bool = False
    _stopped: bool = False

    # -- public API --

    def start(self) -> LocalCluster:
        t0 = time.monotonic()
        self.binaries = self.binaries or find_binaries()
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="autoscaler-k8s-"))
            self._owns_workdir = True
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.logs_dir.mkdir(exist_ok=True)
        if not self.detach:
            _install_exit_handlers()
            _live.add(self)
        for attempt in (1, 2):
            try:
                self._start_all()
                break
            except ClusterStartError as e:
                self.stop(keep_workdir=True)
                # Free ports are picked, released, then bound by the component; another
                # process can take one in between. Retry once with fresh ports.
                if attempt == 2 or "address already in use" not in str(e):
                    raise
                self.logs_dir.rename(self.workdir / f"logs.attempt{attempt}")
                self.logs_dir.mkdir()
                shutil.rmtree(self.workdir / "etcd-data", ignore_errors=True)
                self._stopped = False
                if not self.detach:
                    _live.add(self)
            except BaseException:
                self.stop(keep_workdir=True)
                raise
        self.startup_seconds = time.monotonic() - t0
        self._write_state()
        return self

    def stop(self, keep_workdir: bool | None = None) -> list[str]:
        """Stop every component (reverse start order). Returns names of survivors (should be
        none). The workdir is removed when this object created it, unless keep_workdir."""
        survivors = []
        for comp in reversed(self.components):
            if not _terminate_group(comp.pid, comp.proc):
                survivors.append(f"{comp.name} (pid {comp.pid})")
        self.components.clear()
        _live.discard(self)
        self._stopped = True
        remove = self._owns_workdir if keep_workdir is None else not keep_workdir
        if remove and self.workdir is not None and self.workdir.exists() and not survivors:
            shutil.rmtree(self.workdir, ignore_errors=True)
        return survivors

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop(keep_workdir=True if exc[0] is not None else None)

    @property
    def logs_dir(self) -> Path:
        assert self.workdir is not None
        return self.workdir / "logs"

    @property
    def pids(self) -> dict[str, int]:
        return {c.name: c.pid for c in self.components}

    def describe_logs(self) -> str:
        """Each component's log path and last lines, for failure messages."""
        parts = []
        for comp in self.components:
            parts.append(f"--- {comp.name}: {comp.log_path}\n{log_tail(comp.log_path, 15)}")
        return "\n".join(parts)

    def api_client(self) -> Any:
        from kubernetes import config as kconfig

        return kconfig.new_client_from_config(config_file=str(self.kubeconfig))

    # -- start-up --

    def _start_all(self) -> None:
        assert self.workdir is not None and self.binaries is not None
        b = self.binaries
        wd = self.workdir
        keys = pki.generate(wd / "pki")
        ports = free_ports(5)
        ep = self.endpoints = Endpoints(*ports)
        self.kubeconfig = pki.write_kubeconfig(
            wd / "admin.kubeconfig", ep.server, keys.ca_cert, keys.admin_token
        )
        kubeconfig = str(self.kubeconfig)

        etcd_url = f"http://127.0.0.1:{ep.etcd_client}"
        peer_url = f"http://127.0.0.1:{ep.etcd_peer}"
        etcd = self._spawn(
            "etcd",
            [
                str(b.etcd),
                "--name=default",
                f"--data-dir={wd / 'etcd-data'}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=default={peer_url}",
                "--initial-cluster-state=new",
                "--unsafe-no-fsync=true",
                "--log-level=warn",
            ],
        )
        self._wait(etcd, "etcd /health", lambda: _http_ok(f"{etcd_url}/health", b'"true"'))

        apiserver = self._spawn(
            "kube-apiserver",
            [
                str(b.kube_apiserver),
                f"--etcd-servers={etcd_url}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={ep.apiserver}",
                f"--cert-dir={wd / 'apiserver-certs'}",
                f"--tls-cert-file={keys.serving_cert}",
                f"--tls-private-key-file={keys.serving_key}",
                f"--client-ca-file={keys.ca_cert}",
                # Published for the controller-manager/scheduler's delegated authentication.
                f"--requestheader-client-ca-file={keys.ca_cert}",
                "--requestheader-allowed-names=front-proxy-client",
                "--requestheader-username-headers=X-Remote-User",
                "--requestheader-group-headers=X-Remote-Group",
                "--requestheader-extra-headers-prefix=X-Remote-Extra-",
                f"--token-auth-file={keys.token_file}",
                "--authorization-mode=Node,RBAC",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={keys.sa_pub}",
                f"--service-account-signing-key-file={keys.sa_key}",
                f"--service-cluster-ip-range={pki.SERVICE_CIDR}",
                "--allow-privileged=true",
                # The 'kubernetes' Service's Endpoints may not hold a loopback address, and
                # nothing runs in pods here that would use them.
                "--endpoint-reconciler-type=none",
                "--profiling=false",
                "--v=1",
            ],
        )
        ca = ssl.create_default_context(cafile=str(keys.ca_cert))
        token = keys.admin_token
        self._wait(
            apiserver,
            "kube-apiserver /readyz",
            lambda: _http_ok(f"{ep.server}/readyz", b"ok", context=ca, token=token),
        )

        common = [
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            "--v=1",
        ]
        kcm = self._spawn(
            "kube-controller-manager",
            [
                str(b.kube_controller_manager),
                *common,
                f"--secure-port={ep.controller_manager}",
                f"--cert-dir={wd / 'kcm-certs'}",
                f"--service-account-private-key-file={keys.sa_key}",
                "--use-service-account-credentials=true",
                f"--root-ca-file={keys.ca_cert}",
                f"--service-cluster-ip-range={pki.SERVICE_CIDR}",
            ],
        )
        scheduler = self._spawn(
            "kube-scheduler",
            [
                str(b.kube_scheduler),
                *common,
                f"--secure-port={ep.scheduler}",
            ],
        )
        # The health endpoints of these two serve a self-signed certificate they generate
        # themselves; only the listener's liveness is checked here, on 127.0.0.1.
        insecure = ssl.create_default_context()
        insecure.check_hostname = False
        insecure.verify_mode = ssl.CERT_NONE
        self._wait(
            kcm,
            "kube-controller-manager /healthz",
            lambda: _http_ok(
                f"https://127.0.0.1:{ep.controller_manager}/healthz", b"ok", context=insecure
            ),
        )
        self._wait(
            scheduler,
            "kube-scheduler /healthz",
            lambda: _http_ok(f"https://127.0.0.1:{ep.scheduler}/healthz", b"ok", context=insecure),
        )

        kwok_home = wd / "kwok-home"  # kwok also reads ~/.kwok/kwok.yaml; give it an empty home
        kwok_home.mkdir(exist_ok=True)
        kwok_config = wd / "kwok.yaml"
        kwok_config.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "config.kwok.x-k8s.io/v1alpha1",
                    "kind": "KwokConfiguration",
                    "options": {
                        "cidr": "10.0.0.1/16",
                        "nodeIP": "10.255.0.1",
                        "manageAllNodes": False,
                        "manageNodesWithAnnotationSelector": nodes.KWOK_SELECTOR,
                        "nodeLeaseDurationSeconds": NODE_LEASE_SECONDS,
                    },
                },
                sort_keys=False,
            )
        )
        kwok = self._spawn(
            "kwok",
            [
                str(b.kwok),
                f"--kubeconfig={kubeconfig}",
                f"--config={kwok_config}",
                "--manage-all-nodes=false",
                f"--manage-nodes-with-annotation-selector={nodes.KWOK_SELECTOR}",
                "--cidr=10.0.0.1/16",
                "--node-ip=10.255.0.1",
                # Without node leases kwok heartbeats node status only every ~10 minutes, and
                # the node lifecycle controller marks nodes NotReady (and their pods not Ready)
                # after its 50 s grace period. With leases kwok renews every duration/4.
                f"--node-lease-duration-seconds={NODE_LEASE_SECONDS}",
            ],
            env={"HOME": str(kwok_home), "KWOK_WORKDIR": str(kwok_home / ".kwok")},
        )

        client = self.api_client()
        try:
            from kubernetes import client as k

            core = k.CoreV1Api(client)
            self._wait(
                kcm,
                "the 'default' ServiceAccount (created by kube-controller-manager)",
                lambda: _exists(lambda: core.read_namespaced_service_account("default", "default")),
            )
            nodes.create_fake_node(
                core, SYSTEM_NODE, cpu="32", memory="128Gi", pods=250, labels={"role": "system"}
            )
            self._wait(
                kwok,
                f"node {SYSTEM_NODE} Ready (kwok)",
                lambda: nodes.node_ready(core, SYSTEM_NODE),
            )
            self._wait(
                kwok,
                f"kwok's lease for node {SYSTEM_NODE} in kube-node-lease",
                lambda: _exists(
                    lambda: k.CoordinationV1Api(client).read_namespaced_lease(
                        SYSTEM_NODE, "kube-node-lease"
                    )
                ),
            )
            core.create_namespaced_config_map(
                MARKER_NAMESPACE,
                {
                    "metadata": {"name": MARKER_CONFIGMAP},
                    "data": {"kwok": "true", "harness": "tests.cluster"},
                },
            )
        finally:
            client.close()

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> Component:
        assert self.workdir is not None
        log_path = self.logs_dir / f"{name}.log"
        child_env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
        child_env.update(env or {})
        with open(log_path, "ab") as log:
            log.write(f"$ {' '.join(argv)}\n".encode())
            log.flush()
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                env=child_env,
                # Own process group/session, so a stop reaches anything the component spawns.
                start_new_session=self.detach,
                preexec_fn=None if self.detach else _die_with_parent,
            )
        comp = Component(name=name, argv=argv, log_path=log_path, proc=proc)
        self.components.append(comp)
        self._write_state()
        return comp

    def _wait(self, comp: Component, what: str, ready: Callable[[], bool]) -> None:
        deadline = time.monotonic() + self.ready_timeout
        last_error: Exception | None = None
        while True:
            if not comp.running():
                raise ClusterStartError(
                    f"{comp.name} exited with code {comp.proc.returncode} while waiting for "
                    f"{what}.\nLog: {comp.log_path}\n{log_tail(comp.log_path)}"
                )
            try:
                if ready():
                    return
            except Exception as e:  # not ready yet; remembered for the timeout message
                last_error = e
            if time.monotonic() > deadline:
                detail = f" (last error: {last_error!r})" if last_error else ""
                raise ClusterStartError(
                    f"timed out after {self.ready_timeout:.0f}s waiting for {what}{detail}.\n"
                    f"Log of {comp.name}: {comp.log_path}\n{log_tail(comp.log_path)}"
                )
            time.sleep(0.2)

    def _write_state(self) -> None:
        if self.workdir is None:
            return
        state = {
            "pid_of_starter": os.getpid(),
            "detached": self.detach,
            "kubeconfig": str(self.kubeconfig) if self.kubeconfig else None,
            "server": self.endpoints.server if self.endpoints else None,
            "components": [
                {"name": c.name, "pid": c.pid, "exe": c.argv[0], "log": str(c.log_path)}
                for c in self.components
            ],
            "startup_seconds": self.startup_seconds,
        }
        tmp = self.workdir / "state.json.tmp"
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(self.workdir / "state.json")


# --- helpers -------------------------------------------------------------------------------


_no_proxy_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _http_ok(
    url: str, expect: bytes, context: ssl.SSLContext | None = None, token: str | None = None
) -> bool:
    req = urllib.request.Request(url)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    handlers: list[urllib.request.BaseHandler] = [urllib.request.ProxyHandler({})]
    if context is not None:
        handlers.append(urllib.request.HTTPSHandler(context=context))
    opener = urllib.request.build_opener(*handlers) if context else _no_proxy_opener
    try:
        with opener.open(req, timeout=3) as resp:
            return resp.status == 200 and expect in resp.read()
    except (urllib.error.URLError, ConnectionError, TimeoutError, ssl.SSLError):
        return False


def _exists(read: Callable[[], object]) -> bool:
    from kubernetes.client.exceptions import ApiException

    try:
        read()
        return True
    except ApiException as e:
        if e.status == 404:
            return False
        raise


def _terminate_group(pid: int, proc: subprocess.Popen[bytes] | None = None) -> bool:
    """SIGTERM the process (and its group when it leads one), SIGKILL after a grace period.
    Returns True when it is gone."""

    def send(sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if os.getpgid(pid) == pid:
                os.killpg(pid, sig)
            else:
                os.kill(pid, sig)

    def gone() -> bool:
        if proc is not None:
            return proc.poll() is not None
        return not pid_alive(pid)

    if gone():
        return True
    send(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    while time.monotonic() < deadline:
        if gone():
            return True
        time.sleep(0.05)
    send(signal.SIGKILL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if gone():
            return True
        time.sleep(0.05)
    return False


def stop_from_state(workdir: Path, remove: bool = True) -> list[str]:
    """Stop the processes listed in workdir/state.json (a detached cluster). Only a pid whose
    command line still starts with the recorded executable is signalled (pids get reused).
    Returns the names of processes that could not be stopped."""
    state_file = workdir / "state.json"
    if not state_file.exists():
        return []
    state = json.loads(state_file.read_text())
    survivors = []
    for comp in reversed(state.get("components", [])):
        pid, exe = int(comp["pid"]), comp["exe"]
        cmd = pid_cmdline(pid)
        if not cmd or cmd[0] != exe:
            continue  # already gone (or the pid now belongs to something else)
        if not _terminate_group(pid):
            survivors.append(f"{comp['name']} (pid {pid})")
    if remove and not survivors:
        shutil.rmtree(workdir, ignore_errors=True)
    return survivors


def running_from_state(workdir: Path) -> dict[str, int]:
    """Components of a saved cluster whose processes are still running."""
    state_file = workdir / "state.json"
    if not state_file.exists():
        return {}
    state = json.loads(state_file.read_text())
    alive = {}
    for comp in state.get("components", []):
        cmd = pid_cmdline(int(comp["pid"]))
        if cmd and cmd[0] == comp["exe"] and pid_alive(int(comp["pid"])):
            alive[comp["name"]] = int(comp["pid"])
    return alive


@contextlib.contextmanager
def local_cluster(**kwargs: Any) -> Iterator[LocalCluster]:
    """``with local_cluster() as c:`` -- start, yield, always stop."""
    cluster = LocalCluster(**kwargs)
    try:
        yield cluster.start()
    finally:
        cluster.stop()


def log(msg: str) -> None:
    print(f"[test-cluster] {msg}", file=sys.stderr, flush=True)
