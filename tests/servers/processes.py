"""Real servers for the signal tests and the bench, started and stopped by the caller.

`RedisServer` and `PrometheusServer` run Debian's `redis-server` and `prometheus` on a free
port of 127.0.0.1 with their own temporary data directories; `MetricsExporter` is a tiny
HTTP server publishing DCGM-like and vLLM-like gauges whose values a test sets, for
Prometheus to scrape; `SlowPrometheus` speaks the Prometheus query API but answers only
after a delay. Everything binds 127.0.0.1 only and is stopped on every path (`stop` is
idempotent and ends with SIGKILL where SIGTERM was not enough).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from .tls import TlsFiles

HOST = "127.0.0.1"
INSTALL_HINT = "`make servers` (scripts/install-servers.sh) installs them"


class MissingServer(Exception):
    """A server binary is not installed."""


class ServerStartError(Exception):
    """A server did not become ready; the message ends with its log's tail."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def find_binary(name: str) -> str:
    """The binary's path: PATH first, then the sbin folders Debian uses."""
    found = shutil.which(name)
    if found:
        return found
    for folder in ("/usr/sbin", "/usr/bin", "/usr/local/bin", "/usr/local/sbin"):
        candidate = Path(folder) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    raise MissingServer(f"`{name}` is not installed; {INSTALL_HINT}")


def wait_until(check: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """True once `check()` is true within `timeout` seconds."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        with contextlib.suppress(Exception):
            if check():
                return True
        time.sleep(interval)
    return False


class _Process:
    """One server process whose output goes to a log file."""

    def __init__(self, name: str, workdir: Path) -> None:
        self.name = name
        self.workdir = workdir
        self.log = workdir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def spawn(self, argv: list[str]) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                argv, cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def fail(self, what: str) -> ServerStartError:
        tail = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
        self.stop()
        return ServerStartError(f"{self.name} {what}; log {self.log}:\n{tail}")


class RedisServer:
    """`redis-server` on 127.0.0.1 without persistence; restartable on the same port.

    With `tls` it listens for TLS only (rediss://); with `password` it requires AUTH.
    """

    def __init__(
        self,
        workdir: Path,
        port: int | None = None,
        password: str | None = None,
        tls: TlsFiles | None = None,
    ) -> None:
        self.binary = find_binary("redis-server")
        self.port = port or free_port()
        self.password = password
        self.tls = tls
        self._process = _Process("redis-server", workdir)

    @property
    def url(self) -> str:
        return f"{'rediss' if self.tls else 'redis'}://{HOST}:{self.port}/0"

    def start(self) -> RedisServer:
        argv = [self.binary, "--bind", HOST, "--save", "", "--appendonly", "no",
                "--dir", str(self._process.workdir)]  # fmt: skip
        if self.tls:
            tls = self.tls
            argv += ["--port", "0", "--tls-port", str(self.port),
                     "--tls-cert-file", str(tls.cert), "--tls-key-file", str(tls.key),
                     "--tls-ca-cert-file", str(tls.ca), "--tls-auth-clients", "no"]  # fmt: skip
        else:
            argv += ["--port", str(self.port)]
        if self.password:
            argv += ["--requirepass", self.password]
        self._process.spawn(argv)
        if not wait_until(self._answers, timeout=10):
            raise self._process.fail(f"did not listen on {HOST}:{self.port} within 10s")
        return self

    def _answers(self) -> bool:
        if not self._process.running:
            raise self._process.fail("exited during startup")
        with socket.create_connection((HOST, self.port), timeout=1):
            return True

    def stop(self) -> None:
        self._process.stop()


class PrometheusServer:
    """`prometheus` on 127.0.0.1 scraping `targets` every `scrape_interval`."""

    def __init__(
        self,
        workdir: Path,
        targets: list[str],
        port: int | None = None,
        scrape_interval: str = "1s",
        web_config: dict[str, Any] | None = None,
    ) -> None:
        """`web_config` is Prometheus' --web.config.file content (TLS, basic auth)."""
        self.binary = find_binary("prometheus")
        self.port = port or free_port()
        self.workdir = workdir
        self.web_config = web_config
        self._process = _Process("prometheus", workdir)
        config = {
            "global": {"scrape_interval": scrape_interval, "evaluation_interval": "1m"},
            "scrape_configs": [{"job_name": "test", "static_configs": [{"targets": targets}]}],
        }
        # JSON is YAML: no YAML writer needed.
        (workdir / "prometheus.yml").parent.mkdir(parents=True, exist_ok=True)
        (workdir / "prometheus.yml").write_text(json.dumps(config))

    @property
    def url(self) -> str:
        tls = self.web_config and "tls_server_config" in self.web_config
        return f"{'https' if tls else 'http'}://{HOST}:{self.port}"

    def start(self) -> PrometheusServer:
        argv = [self.binary, f"--config.file={self.workdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                f"--web.listen-address={HOST}:{self.port}", "--log.level=warn"]  # fmt: skip
        if self.web_config is not None:
            web = self.workdir / "web.yml"
            web.write_text(json.dumps(self.web_config))
            argv.append(f"--web.config.file={web}")
        self._process.spawn(argv)
        end = time.monotonic() + 30
        while not self._ready():
            if not self._process.running:
                raise self._process.fail("exited during startup")
            if time.monotonic() > end:
                raise self._process.fail(f"was not ready on {self.url} within 30s")
            time.sleep(0.1)
        return self

    def _ready(self) -> bool:
        if self.web_config is not None:  # TLS or auth: a listening port is enough
            with contextlib.suppress(OSError), socket.create_connection((HOST, self.port), 1):
                return True
            return False
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def query(self, promql: str) -> list[dict[str, Any]]:
        data = urllib.parse.urlencode({"query": promql}).encode()
        with urllib.request.urlopen(f"{self.url}/api/v1/query", data=data, timeout=5) as r:
            return list(json.load(r)["data"]["result"])

    def wait_for(self, promql: str, value: float | None, timeout: float = 15.0) -> None:
        """Until the query returns `value` (one series), or nothing when `value` is None."""

        def arrived() -> bool:
            result = self.query(promql)
            if value is None:
                return not result
            return len(result) == 1 and math.isclose(float(result[0]["value"][1]), value)

        if not wait_until(arrived, timeout, interval=0.2):
            raise AssertionError(f"prometheus never answered {promql!r} with {value}")

    def stop(self) -> None:
        self._process.stop()


class MetricsExporter:
    """Gauges in the Prometheus text format at http://127.0.0.1:<port>/metrics."""

    def __init__(self) -> None:
        self._values: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        self._lock = threading.Lock()
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = exporter.render().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                # A Prometheus stopped by its test mid-scrape has hung up: nobody to answer.
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer((HOST, 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def address(self) -> str:
        return f"{HOST}:{self._server.server_address[1]}"

    def set(self, name: str, value: float, **labels: str) -> None:
        with self._lock:
            self._values[(name, tuple(sorted(labels.items())))] = value

    def remove(self, name: str, **labels: str) -> None:
        with self._lock:
            self._values.pop((name, tuple(sorted(labels.items()))), None)

    def render(self) -> str:
        with self._lock:
            items = sorted(self._values.items())
        lines, typed = [], set()
        for (name, labels), value in items:
            if name not in typed:
                lines.append(f"# TYPE {name} gauge")
                typed.add(name)
            inner = ",".join(f'{k}="{v}"' for k, v in labels)
            lines.append(f"{name}{{{inner}}} {_format(value)}")
        return "\n".join(lines) + "\n"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _format(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


class SlowPrometheus:
    """Answers /api/v1/query with one series after `delay` seconds: a server that hangs."""

    def __init__(self, delay: float, value: float = 1.0) -> None:
        self.delay = delay
        self.value = value
        self.calls = 0
        self._stopping = threading.Event()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                stub.calls += 1
                stub._stopping.wait(stub.delay)
                body = json.dumps(
                    {"status": "success", "data": {"resultType": "vector", "result": [
                        {"metric": {}, "value": [time.time(), str(stub.value)]}]}}
                ).encode()  # fmt: skip
                with contextlib.suppress(OSError):
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer((HOST, 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self._server.server_address[1]}"

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()


def port_is_closed(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return False
    except OSError:
        return True


__all__ = [
    "HOST",
    "INSTALL_HINT",
    "MetricsExporter",
    "MissingServer",
    "PrometheusServer",
    "RedisServer",
    "ServerStartError",
    "SlowPrometheus",
    "find_binary",
    "free_port",
    "port_is_closed",
    "wait_until",
]
