"""The `activator` source: what `autoscaler activator` counts per pool, read from its admin
port, and a push channel that wakes the controller when a pool at zero gets a request.

Why not through Prometheus: at zero replicas the only one who knows a request is waiting is
the activator, and a scrape plus a tick interval would add up to a minute to every cold
start. So each read asks every activator replica for `/activator/v1/stats` directly, and a
background long-poll of `/activator/v1/wake` calls the controller's `on_demand` the moment a
pool with no ready endpoint holds its first request (docs/activator.md).

Several replicas: the URL's host name is resolved to every address it has (the chart's
headless admin Service has one per ready replica) and their counts are summed. A replica
that refuses the connection is not running and holds nothing (its held requests were
answered or dropped with it), so it adds 0; one that answers late or with an error makes
the reading stale, since its share of the demand is unknown.
"""

from __future__ import annotations

import logging
import socket
import threading
import urllib.parse
from collections.abc import Callable, Sequence
from typing import Any

import httpx

from autoscaler.types import Reading

from ._common import budget_seconds, failed, group_by, where
from .base import SignalKey, SignalRequest

log = logging.getLogger("autoscaler.signals.activator")

STATS_PATH = "/activator/v1/stats"
WAKE_PATH = "/activator/v1/wake"
WAKE_POLL_SECONDS = 30.0
"""How long one wake long-poll stays open before it is renewed."""
WAKE_RETRY_SECONDS = 1.0
"""Pause after a failed long-poll (an activator restarting), so a dead one is not hammered."""

Resolver = Callable[[str, int], list[str]]


def resolve_all(host: str, port: int) -> list[str]:
    """Every address of `host` (IPv4 and IPv6), sorted and without duplicates."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ConnectionError(f"cannot resolve {host!r}: {exc}") from None
    return sorted({str(info[4][0]) for info in infos})


def replica_urls(url: str, resolve: Resolver) -> list[str]:
    """One base URL per address the activator's host name resolves to."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    if _is_address(host):
        return [url]
    out = []
    for address in resolve(host, port):
        shown = f"[{address}]" if ":" in address else address
        out.append(f"{parts.scheme}://{shown}:{port}")
    return out


def _is_address(host: str) -> bool:
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
            return True
        except OSError:
            continue
    return False


class ActivatorReader:
    """Reads `activator` signals; one instance serves every pool of a controller."""

    def __init__(
        self,
        settings: Any = None,
        resolve: Resolver = resolve_all,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._settings = settings
        self._resolve = resolve
        self._client = httpx.Client(transport=transport, follow_redirects=False)
        self._on_demand: Callable[[], None] | None = None
        self._wakers: dict[str, _Waker] = {}
        self._lock = threading.Lock()
        self._closed = threading.Event()

    # -- pull: one stats call per activator replica ----------------------------------
    def read(self, requests: Sequence[SignalRequest], now: float) -> dict[SignalKey, Reading]:
        out: dict[SignalKey, Reading] = {}
        for url, reqs in group_by(requests, lambda r: r.source.url).items():
            self._start_waker(url)
            budget = min(budget_seconds(r, self._settings) for r in reqs)
            try:
                pools = self._stats(url, budget)
            except _Unusable as exc:
                for r in reqs:
                    out[r.key] = failed(now, exc.code, f"{where(r)}: {exc}")
                continue
            for r in reqs:
                out[r.key] = _value(r, pools, now)
        return out

    def _stats(self, url: str, budget: float) -> dict[str, list[dict[str, Any]]]:
        """Per pool, the stats of every replica that answered."""
        try:
            replicas = replica_urls(url, self._resolve)
        except ConnectionError as exc:
            raise _Unusable("resolve", f"activator {url}: {exc}; is its Service there?") from None
        pools: dict[str, list[dict[str, Any]]] = {}
        refused = 0
        for base in replicas:
            try:
                answer = self._client.get(base + STATS_PATH, timeout=budget)
            except httpx.ConnectError:
                refused += 1  # not running: holds nothing
                continue
            except httpx.TimeoutException:
                raise _Unusable(
                    "timeout", f"activator {base} gave no stats within {budget:.2f}s"
                ) from None
            except httpx.HTTPError as exc:
                raise _Unusable("connect", f"activator {base}: {exc}") from None
            if answer.status_code != 200:
                raise _Unusable(
                    f"http_{answer.status_code}",
                    f"activator {base}{STATS_PATH} answered {answer.status_code}",
                )
            try:
                body = answer.json()
                by_pool = body["pools"]
                if not isinstance(by_pool, dict):
                    raise TypeError("`pools` is not an object")
            except (ValueError, KeyError, TypeError) as exc:
                raise _Unusable(
                    "bad_answer", f"activator {base}{STATS_PATH} is not activator stats: {exc}"
                ) from None
            for name, stats in by_pool.items():
                if isinstance(stats, dict):
                    pools.setdefault(str(name), []).append(stats)
        if refused == len(replicas):
            raise _Unusable(
                "connect",
                f"no activator answers at {url} ({len(replicas)} address(es) refused); "
                "is it running?",
            )
        return pools

    # -- push: wake the controller when a pool at zero gets demand --------------------
    def watch(self, on_demand: Callable[[], None]) -> None:
        """Call `on_demand` whenever an activator reports a pool with held requests and no
        ready endpoint (from a background thread)."""
        self._on_demand = on_demand

    def _start_waker(self, url: str) -> None:
        if self._on_demand is None or self._closed.is_set():
            return
        with self._lock:
            if url not in self._wakers:
                waker = _Waker(url, self._resolve, self._on_demand, self._closed)
                self._wakers[url] = waker
                waker.start()

    def close(self) -> None:
        self._closed.set()
        for waker in list(self._wakers.values()):
            waker.close()
        self._client.close()


class _Unusable(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _value(request: SignalRequest, pools: dict[str, list[dict[str, Any]]], now: float) -> Reading:
    """The metric of the request's pool, summed over replicas (latency: the worst)."""
    name = request.source.pool or request.pool
    replicas = pools.get(name)
    if replicas is None:
        return failed(
            now,
            "unknown_pool",
            f"{where(request)}: the activator fronts no pool {name!r} (has: "
            f"{', '.join(sorted(pools)) or 'none'}); give the pool an `activator:` section "
            "in the activator's config, or set `pool:` on this source",
        )
    metric = request.source.metric
    try:
        if metric == "latency":
            seen = [float(s["latency"]) for s in replicas if s.get("latency") is not None]
            return Reading(max(seen), now) if seen else Reading(None, now)
        if metric == "demand":
            value = sum(float(s["waiting"]) + float(s["in_flight"]) for s in replicas)
        else:
            value = sum(float(s[metric]) for s in replicas)
    except (KeyError, TypeError, ValueError) as exc:
        return failed(now, "bad_answer", f"{where(request)}: activator stats lack {exc}")
    if not 0 <= value < float("inf"):
        return failed(now, "bad_answer", f"{where(request)}: activator {metric} is {value}")
    return Reading(value, now)


class _Waker:
    """Long-polls every replica of one activator for cold demand; one thread per replica,
    re-resolved as replicas come and go."""

    def __init__(
        self,
        url: str,
        resolve: Resolver,
        on_demand: Callable[[], None],
        closed: threading.Event,
    ) -> None:
        self.url = url
        self._resolve = resolve
        self._on_demand = on_demand
        self._closed = closed
        self._client = httpx.Client(follow_redirects=False)
        self._threads: dict[str, threading.Thread] = {}
        self._thread = threading.Thread(target=self._supervise, daemon=True, name="wake")

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._client.close()

    def _supervise(self) -> None:
        while not self._closed.is_set():
            try:
                replicas = replica_urls(self.url, self._resolve)
            except ConnectionError:
                replicas = []
            for base in replicas:
                thread = self._threads.get(base)
                if thread is None or not thread.is_alive():
                    thread = threading.Thread(
                        target=self._poll, args=(base,), daemon=True, name="wake-poll"
                    )
                    self._threads[base] = thread
                    thread.start()
            self._closed.wait(5.0)

    def _poll(self, base: str) -> None:
        """Follow one replica's wake generation until it goes or we close."""
        generation: int | None = None
        while not self._closed.is_set():
            after = -1 if generation is None else generation
            try:
                answer = self._client.get(
                    f"{base}{WAKE_PATH}",
                    params={"after": after, "timeout": WAKE_POLL_SECONDS},
                    timeout=WAKE_POLL_SECONDS + 5.0,
                )
                body = answer.json() if answer.status_code == 200 else None
            except (httpx.HTTPError, ValueError, RuntimeError):
                body = None  # RuntimeError: the client was closed under us
            if not isinstance(body, dict) or not isinstance(body.get("generation"), int):
                if self._closed.wait(WAKE_RETRY_SECONDS):
                    return
                generation = None  # a restarted replica counts from 0 again
                continue
            new = body["generation"]
            changed = generation is not None and new != generation
            if body.get("cold") and (generation is None or changed):
                log.info("activator %s: demand at zero for %s; ticking now", base, body["cold"])
                self._on_demand()
            generation = new
