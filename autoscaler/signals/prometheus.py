"""The `prometheus` source: instant PromQL queries, many at once, against any number of servers.

Each server (a base URL with its auth, TLS options and headers) gets one shared
`httpx.Client` with a connection pool and its own small thread pool (`_promclient`), so a
slow or dead server uses up only its own threads and its queries time out on their own;
the queries to other servers are not held up. Identical queries to one server in one read
are sent once, and up to `batch_size` queries with the same timeout travel in one request.

What a result means (docs/signals.md): an empty vector is *missing* (a reading with no
value: the pool holds), never zero, unless the signal sets `empty_as_zero`; several series
are an error unless `aggregate` says how to combine them; NaN, infinities and negative
values are errors. This module must never turn a failed, empty or unusable answer into a
number, and never raise for one signal's failure: each comes back as a stale reading whose
error names the code, the pool, the signal, the server and what to do.
"""

from __future__ import annotations

import concurrent.futures as cf
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from autoscaler.clock import SystemClock
from autoscaler.deadlines import Late, wait_all
from autoscaler.types import Reading

from ._common import budget_seconds, checked_value, failed, group_by, where
from ._promclient import Answers, BearerTokenFile, PrometheusServer, ServerKey
from ._promql import PromResult, QueryFailed, combine
from .base import SignalKey, SignalRequest

DEFAULT_CONCURRENCY = 8
"""Requests in flight to one server at once (threads and pooled connections)."""

DEFAULT_BATCH_SIZE = 25
"""Queries sent together in one request (see docs/signals.md for the measurements)."""


_MONOTONIC = SystemClock().monotonic


class PrometheusReader:
    """Reads `prometheus` signals; one instance serves every pool of a controller."""

    def __init__(
        self,
        settings: Any = None,
        transport: httpx.BaseTransport | None = None,
        concurrency: int = DEFAULT_CONCURRENCY,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> None:
        """`transport` replaces the network (httpx.MockTransport in tests); `concurrency` is
        the number of requests in flight per server; `batch_size` the most queries in one
        request (1: no batching)."""
        self._settings = settings
        self._transport = transport
        self._concurrency = concurrency
        self._batch_size = max(1, batch_size)
        self._servers: dict[ServerKey, PrometheusServer] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            servers, self._servers = list(self._servers.values()), {}
        for server in servers:
            server.close()

    def read(self, requests: Sequence[SignalRequest], now: float) -> dict[SignalKey, Reading]:
        started = _MONOTONIC()
        out: dict[SignalKey, Reading] = {}
        pending: list[_Pending] = []
        for key, reqs in group_by(requests, lambda r: ServerKey.of(r.source)).items():
            try:
                server = self._server(key)
            except QueryFailed as exc:
                out.update(_failed_each(reqs, now, key.url, exc))
                continue
            pending.extend(self._submit(server, reqs, started))
        answers = wait_all([(job.future, job.budget) for job in pending], started)
        for job, answer in zip(pending, answers, strict=True):
            out.update(job.readings(now, answer))
        return out

    def _submit(
        self, server: PrometheusServer, reqs: list[SignalRequest], started: float
    ) -> list[_Pending]:
        by_query = group_by(reqs, lambda r: r.source.effective_query)
        budgets = {
            q: min(budget_seconds(r, self._settings) for r in same) for q, same in by_query.items()
        }
        jobs = []
        for budget, queries in batches(budgets, server.solo, self._batch_size):
            future = server.submit(queries, budget)
            wanted = {q: by_query[q] for q in queries}
            jobs.append(_Pending(server.url, wanted, future, budget))
        return jobs

    def _server(self, key: ServerKey) -> PrometheusServer:
        with self._lock:
            server = self._servers.get(key)
            if server is None:
                server = PrometheusServer(key, self._transport, self._concurrency)
                self._servers[key] = server
            return server


def batches(budgets: dict[str, float], solo: set[str], size: int) -> list[tuple[float, list[str]]]:
    """Queries grouped into requests: at most `size` per request, one timeout (seconds) per
    request, and each query in `solo` alone."""
    out: list[tuple[float, list[str]]] = []
    by_budget: dict[float, list[str]] = {}
    for query, budget in budgets.items():
        if size <= 1 or query in solo:
            out.append((budget, [query]))
        else:
            by_budget.setdefault(budget, []).append(query)
    for budget, queries in by_budget.items():
        out.extend((budget, queries[i : i + size]) for i in range(0, len(queries), size))
    return out


@dataclass
class _Pending:
    """One request in flight for some signals, and when the source stops waiting for it."""

    url: str
    queries: dict[str, list[SignalRequest]]
    future: cf.Future[Answers]
    budget: float
    """Seconds from the start of the read."""

    @property
    def requests(self) -> list[SignalRequest]:
        return [r for same in self.queries.values() for r in same]

    def readings(self, now: float, answers: Answers | BaseException) -> dict[SignalKey, Reading]:
        """The readings from what the request answered (or how it failed). A late request
        not started yet was cancelled, never sent; a started one is ended by httpx."""
        if isinstance(answers, Late):
            late = QueryFailed("timeout", f"no answer within {self.budget:.2f}s")
            return _failed_each(self.requests, now, self.url, late)
        if isinstance(answers, QueryFailed):
            return _failed_each(self.requests, now, self.url, answers)
        if isinstance(answers, BaseException):  # a bug must still stay within these signals
            bug = QueryFailed("source_error", f"{type(answers).__name__}: {answers}")
            return _failed_each(self.requests, now, self.url, bug)
        out: dict[SignalKey, Reading] = {}
        for query, same in self.queries.items():
            answer = answers[query]
            if isinstance(answer, QueryFailed):
                out.update(_failed_each(same, now, self.url, answer))
            else:
                out.update({r.key: _interpret(r, answer, now, self.url) for r in same})
        return out


def _interpret(req: SignalRequest, result: PromResult, now: float, url: str) -> Reading:
    """One signal's reading from its query's result (shared by identical queries)."""
    src = req.source
    try:
        value = combine(result, src.result_aggregate)
    except QueryFailed as exc:
        return _failed_one(req, now, url, exc)
    if value is None:
        return Reading(0.0, now) if src.empty_as_zero else Reading(None, now)
    return checked_value(now, value, f"{where(req)}: prometheus {url} query {result.query!r}")


def _failed_one(req: SignalRequest, now: float, url: str, exc: QueryFailed) -> Reading:
    return failed(now, exc.code, f"{where(req)}: prometheus {url}: {exc.message}")


def _failed_each(
    reqs: Sequence[SignalRequest], now: float, url: str, exc: QueryFailed
) -> dict[SignalKey, Reading]:
    return {r.key: _failed_one(r, now, url, exc) for r in reqs}


__all__ = ["BearerTokenFile", "PrometheusReader", "ServerKey", "batches"]
