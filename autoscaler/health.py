"""The controller process's HTTP endpoints: `/healthz` (the process is alive), `/readyz`
(the first tick completed, or this replica knows it is a standby) and `/metrics` (the
project's Prometheus registry, `autoscaler.telemetry.REGISTRY`).

Serving must never block or fail the control loop: the servers run in daemon threads and
only read flags the loop sets.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from autoscaler.telemetry import REGISTRY


class Health:
    """Flags the loop sets and the probes read."""

    def __init__(self) -> None:
        self.alive = threading.Event()
        self.ready = threading.Event()
        self.why_not_ready = "starting: no tick completed and leadership unknown"
        self.alive.set()

    def set_ready(self) -> None:
        self.ready.set()

    def set_not_ready(self, why: str) -> None:
        self.why_not_ready = why
        self.ready.clear()


Route = Callable[[], tuple[int, str, bytes]]


def _text(code: int, body: str) -> tuple[int, str, bytes]:
    return code, "text/plain; charset=utf-8", (body + "\n").encode()


def routes(health: Health, metrics: bool, probes: bool) -> dict[str, Route]:
    """Path -> handler for one server (the metrics and health ports may differ)."""
    table: dict[str, Route] = {}
    if probes:
        table["/healthz"] = lambda: (
            _text(200, "ok") if health.alive.is_set() else _text(503, "not alive")
        )
        table["/readyz"] = lambda: (
            _text(200, "ok") if health.ready.is_set() else _text(503, health.why_not_ready)
        )
    if metrics:
        table["/metrics"] = lambda: (200, CONTENT_TYPE_LATEST, generate_latest(REGISTRY))
    return table


def _handler(table: dict[str, Route]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            route = table.get(self.path.split("?", 1)[0])
            code, ctype, body = route() if route else _text(404, "not found")
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # probes are not news
            return

    return Handler


class Endpoints:
    """One or two HTTP servers (health and metrics on the same port or on two)."""

    def __init__(
        self, health: Health, host: str, health_port: int | None, metrics_port: int | None
    ) -> None:
        self.servers: list[ThreadingHTTPServer] = []
        self._started = False
        ports: dict[int, tuple[bool, bool]] = {}
        if health_port is not None:
            ports[health_port] = (False, True)
        if metrics_port is not None:
            probes = ports.get(metrics_port, (False, False))[1]
            ports[metrics_port] = (True, probes)
        for port, (metrics, probes) in ports.items():
            try:
                server = ThreadingHTTPServer(
                    (host, port), _handler(routes(health, metrics, probes))
                )
            except OSError as exc:
                self.close()
                what = "metrics" if metrics and not probes else "health"
                raise ValueError(
                    f"--{what}-port {port}: cannot listen on {host}: {exc.strerror or exc}"
                ) from None
            server.daemon_threads = True
            self.servers.append(server)

    def start(self) -> Endpoints:
        self._started = True
        for server in self.servers:
            threading.Thread(target=server.serve_forever, name="http", daemon=True).start()
        return self

    def ports(self) -> list[int]:
        """The bound ports (useful with port 0)."""
        return [int(s.server_address[1]) for s in self.servers]

    def close(self) -> None:
        for server in self.servers:
            if self._started:  # shutdown() waits for serve_forever, forever if never started
                server.shutdown()
            server.server_close()
