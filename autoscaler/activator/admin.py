"""The admin port: stats and the wake long-poll for the controller, metrics, probes.

Why a port of its own: the proxy port forwards every path to the pools, so nothing of ours
may claim one there. The controller's `activator` signal source reads `/activator/v1/stats`
each tick and long-polls `/activator/v1/wake`, which answers the moment a pool with no
ready endpoint starts holding (so a pool at zero is woken within about a second of its
first request, not at its next tick). `/metrics` is for Prometheus and people; `/healthz`
says the process answers, `/readyz` that every Service watch has listed once.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from .holding import OUTCOMES, Demand, PoolState

WAKE_MAX_SECONDS = 60.0
PREFIX = "autoscaler_activator"
_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_HOLD_BUCKETS = (0.01, 0.1, 0.5, 1, 5, 10, 30, 60, 120, 300, 600, 1800)
_POOL_OUTCOMES = tuple(o for o in OUTCOMES if o != "no_route")


class Metrics:
    """The activator's Prometheus metrics, in a registry of its own; the pools report to
    it (`holding.Observer`), and gauges are read from the pools at each scrape."""

    def __init__(self, pools: Mapping[str, PoolState]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._requests = Counter(
            f"{PREFIX}_requests_total", "Requests that ended, by pool and outcome",
            ["pool", "outcome"], registry=self.registry,
        )  # fmt: skip
        self._arrivals = Counter(
            f"{PREFIX}_arrivals_total", "Requests routed to the pool", ["pool"],
            registry=self.registry,
        )  # fmt: skip
        self._latency = Histogram(
            f"{PREFIX}_request_seconds",
            "Seconds from forwarding a request to the end of its answer",
            ["pool"], buckets=_LATENCY_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self._hold = Histogram(
            f"{PREFIX}_hold_seconds",
            "Seconds a request was held waiting for a ready endpoint (held requests only)",
            ["pool"], buckets=_HOLD_BUCKETS, registry=self.registry,
        )  # fmt: skip
        for name in pools:
            self.track(name)
        self._unrouted = self._requests.labels("", "no_route")
        self.registry.register(_Gauges(pools))

    def track(self, pool: str) -> None:
        """Show `pool`'s series from now on (at zero until something happens)."""
        self._arrivals.labels(pool)
        self._latency.labels(pool)
        self._hold.labels(pool)
        for outcome in _POOL_OUTCOMES:
            self._requests.labels(pool, outcome)

    def forget(self, pool: str) -> None:
        """Drop `pool`'s series (it is no longer fronted)."""
        for metric in (self._arrivals, self._latency, self._hold):
            with contextlib.suppress(KeyError):
                metric.remove(pool)
        for outcome in _POOL_OUTCOMES:
            with contextlib.suppress(KeyError):
                self._requests.remove(pool, outcome)

    def arrived(self, pool: str) -> None:
        self._arrivals.labels(pool).inc()

    def finished(self, pool: str, outcome: str, hold: float | None, latency: float | None) -> None:
        self._requests.labels(pool, outcome).inc()
        if hold is not None:
            self._hold.labels(pool).observe(hold)
        if latency is not None:
            self._latency.labels(pool).observe(latency)

    def unrouted(self) -> None:
        self._unrouted.inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _Gauges:
    """Held, in flight and ready endpoints, read from the pools when scraped."""

    def __init__(self, pools: Mapping[str, PoolState]) -> None:
        self._pools = pools

    def collect(self) -> Iterator[Metric]:
        for name, help_text in (
            ("waiting", "Requests held waiting for a ready endpoint"),
            ("in_flight", "Requests forwarded and not yet answered"),
            ("ready_endpoints", "Ready endpoints"),
        ):
            family = GaugeMetricFamily(f"{PREFIX}_{name}", help_text, labels=["pool"])
            for pool in self._pools.values():
                family.add_metric([pool.name], float(getattr(pool, name)))
            yield family


def pool_stats(pool: PoolState) -> dict[str, Any]:
    counts = pool.counts
    return {
        "waiting": pool.waiting,
        "in_flight": pool.in_flight,
        "arrival_rate": pool.arrivals.rate(),
        "latency": pool.latencies.mean(),
        "ready_endpoints": pool.ready_endpoints,
        "served": counts["served"],
        "rejected": counts["rejected_full"] + counts["shutdown"],
        "timed_out": counts["timed_out"],
        "client_gone": counts["client_gone"],
        "backend_error": counts["backend_error"],
    }


def admin_app(
    pools: Mapping[str, PoolState],
    demand: Demand,
    metrics: Metrics,
    not_ready: Callable[[], list[str]],
) -> web.Application:
    """The admin application; `not_ready()` names the watches that have not listed yet."""

    def stats_body() -> dict[str, Any]:
        return {
            "generation": demand.generation,
            "pools": {name: pool_stats(pool) for name, pool in pools.items()},
        }

    async def stats(request: web.Request) -> web.Response:
        return web.json_response(stats_body())

    async def wake(request: web.Request) -> web.Response:
        try:
            after = int(request.query.get("after", "-1"))
            timeout = float(request.query.get("timeout", "30"))
        except ValueError:
            return _bad("`after` must be an integer generation and `timeout` seconds")
        if not math.isfinite(timeout) or timeout < 0:
            return _bad(f"`timeout` must be 0 to {WAKE_MAX_SECONDS:g} seconds")
        generation = await demand.wait(after, min(timeout, WAKE_MAX_SECONDS))
        cold = [name for name, pool in pools.items() if pool.cold]
        return web.json_response({"generation": generation, "cold": cold})

    async def prometheus(request: web.Request) -> web.Response:
        response = web.Response(body=metrics.render())
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(request: web.Request) -> web.Response:
        waiting = not_ready()
        if waiting:
            return web.json_response(
                {"status": "not ready", "message": f"not listed yet: {', '.join(waiting)}"},
                status=503,
            )
        return web.json_response({"status": "ready"})

    app = web.Application()
    app.router.add_get("/activator/v1/stats", stats)
    app.router.add_get("/activator/v1/wake", wake)
    app.router.add_get("/metrics", prometheus)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app


def _bad(message: str) -> web.Response:
    return web.json_response({"error": {"message": message, "code": 400}}, status=400)
