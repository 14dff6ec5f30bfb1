"""The `activator` source against stand-in activators on 127.0.0.1: counts summed over
replicas, a stopped replica adds nothing, a broken one makes the reading stale, an unknown
pool is named, and the wake long-poll calls `on_demand` when a pool at zero gets demand.
(The real activator is read by tests/activator and the end-to-end test.)"""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from autoscaler.config.sources import ActivatorSource
from autoscaler.signals import SignalRequest, build_source
from autoscaler.signals.activator import ActivatorReader, replica_urls


class StubActivator:
    """Answers /activator/v1/stats with `pools` and /activator/v1/wake with `cold` once
    `generation` passes the caller's; `status` makes stats fail."""

    def __init__(self) -> None:
        self.pools: dict[str, dict[str, Any]] = {}
        self.status = 200
        self.generation = 0
        self.cold: list[str] = []
        self.changed = threading.Condition()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                url = urllib.parse.urlsplit(self.path)
                query = urllib.parse.parse_qs(url.query)
                if url.path == "/activator/v1/stats":
                    body = {"generation": stub.generation, "pools": stub.pools}
                    self._answer(stub.status, body)
                elif url.path == "/activator/v1/wake":
                    after = int(query["after"][0])
                    with stub.changed:
                        stub.changed.wait_for(
                            lambda: stub.generation != after, float(query["timeout"][0])
                        )
                        body = {"generation": stub.generation, "cold": list(stub.cold)}
                    self._answer(200, body)
                else:
                    self._answer(404, {})

            def _answer(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def demand(self, pool: str) -> None:
        with self.changed:
            self.generation += 1
            self.cold = [pool]
            self.changed.notify_all()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stubs() -> Iterator[list[StubActivator]]:
    made = [StubActivator(), StubActivator()]
    yield made
    for stub in made:
        stub.stop()


def stats(waiting: int, in_flight: int, rate: float, latency: float | None) -> dict[str, Any]:
    return {"waiting": waiting, "in_flight": in_flight, "arrival_rate": rate, "latency": latency}


def request(pool: str, metric: str, url: str, source_pool: str | None = None) -> SignalRequest:
    return SignalRequest(
        pool,
        metric,
        ActivatorSource(url=url, metric=metric, pool=source_pool),  # type: ignore[arg-type]
    )


def test_every_replica_of_the_activator_is_read_and_counts_are_summed(stubs, monkeypatch):
    a, b = stubs
    a.pools = {"chat": stats(3, 2, 1.5, 0.4)}
    b.pools = {"chat": stats(1, 4, 0.5, 0.9)}
    import autoscaler.signals.activator as module

    monkeypatch.setattr(module, "replica_urls", lambda url, resolve: [a.url, b.url])
    reader = ActivatorReader()
    reqs = [
        request("chat", m, "http://activator.test:9091")
        for m in ("waiting", "in_flight", "demand", "arrival_rate", "latency")
    ]
    got = {k[1]: r.value for k, r in reader.read(reqs, 5.0).items()}
    assert got == {
        "waiting": 4,
        "in_flight": 6,
        "demand": 10,
        "arrival_rate": 2.0,
        "latency": 0.9,  # the worst replica's: latency is not additive
    }
    reader.close()


def test_a_stopped_replica_holds_nothing_but_a_broken_one_makes_the_reading_stale(
    stubs, monkeypatch
):
    a, b = stubs
    a.pools = {"chat": stats(3, 0, 1.0, None)}
    b_url = b.url
    b.stop()  # its port now refuses connections
    import autoscaler.signals.activator as module

    monkeypatch.setattr(module, "replica_urls", lambda url, resolve: [a.url, b_url])
    reader = ActivatorReader()
    (reading,) = reader.read([request("chat", "waiting", "http://x:1")], 5.0).values()
    assert reading.value == 3 and reading.error is None
    a.status = 500
    (reading,) = reader.read([request("chat", "waiting", "http://x:1")], 6.0).values()
    assert reading.value is None and reading.error.startswith("http_500")
    reader.close()


def test_no_replica_answering_is_stale_not_zero(stubs):
    a, _ = stubs
    url = a.url
    a.stop()
    reader = ActivatorReader()
    (reading,) = reader.read([request("chat", "waiting", url)], 5.0).values()
    assert reading.value is None and reading.error.startswith("connect")
    assert "is it running?" in reading.error
    reader.close()


def test_an_unknown_pool_is_named_with_the_pools_the_activator_has(stubs):
    a, _ = stubs
    a.pools = {"chat": stats(0, 0, 0.0, None)}
    reader = ActivatorReader()
    (reading,) = reader.read([request("other", "waiting", a.url)], 5.0).values()
    assert reading.error.startswith("unknown_pool") and "has: chat" in reading.error
    (reading,) = reader.read([request("other", "waiting", a.url, source_pool="chat")], 5.0).values()
    assert reading.value == 0
    reader.close()


def test_the_wake_long_poll_calls_on_demand_when_a_pool_at_zero_gets_a_request(stubs):
    a, _ = stubs
    a.pools = {"chat": stats(0, 0, 0.0, None)}
    woken = threading.Event()
    reader = ActivatorReader()
    reader.watch(woken.set)
    reader.read([request("chat", "waiting", a.url)], 5.0)  # starts the long-poll
    time.sleep(0.3)
    assert not woken.is_set()  # nothing cold yet
    started = time.monotonic()
    a.demand("chat")
    assert woken.wait(5), "on_demand was not called"
    assert time.monotonic() - started < 1.0
    reader.close()


def test_the_source_is_built_by_type_and_replica_urls_use_every_address():
    assert isinstance(build_source("activator", "pools[0].signals.x.source"), ActivatorReader)
    assert replica_urls("http://act:9091", lambda h, p: ["10.0.0.2", "10.0.0.1"]) == [
        "http://10.0.0.2:9091",
        "http://10.0.0.1:9091",
    ]
    assert replica_urls("http://127.0.0.1:9091", lambda h, p: []) == ["http://127.0.0.1:9091"]
    assert replica_urls("http://[::1]:9091", lambda h, p: []) == ["http://[::1]:9091"]
    assert replica_urls("http://act:9091", lambda h, p: ["fd00::1"]) == ["http://[fd00::1]:9091"]
