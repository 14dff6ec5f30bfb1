"""The activator as one object: build from a config, start on two ports, stop gracefully.

Why one object: the CLI, the tests and the benchmarks all run the same thing in-process
(`await Activator(config).start(...)`), on ports they choose (0: any free one). `stop`
is the SIGTERM path: stop accepting, answer held requests 503 (Retry-After) so clients
retry elsewhere, let forwarded ones finish for up to `drain_seconds`, then close.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from typing import Any

import aiohttp
from aiohttp import web

from autoscaler.clock import Clock, SystemClock
from autoscaler.config import Config

from .admin import Metrics, admin_app
from .bodies import REPLAY_LIMIT, SNIFF_LIMIT
from .endpoints import ServiceEndpoints
from .holding import Demand, Limits, PoolState
from .proxy import Proxy
from .routes import Route, Router

log = logging.getLogger("autoscaler.activator")


class NoActivatorPools(ValueError):
    """The configuration fronts no pool."""


class Activator:
    """The proxy and admin servers for every pool of `config` with an `activator` section.

    Service backends are watched through `list_slices` (a `list_namespaced_endpoint_slice`
    method; default: the cluster `kubeconfig` names, or in-cluster) unless `watch` is
    False, when their endpoints stay empty until `set_endpoints` (tests). Static `urls`
    backends are always ready.
    """

    def __init__(
        self,
        config: Config,
        *,
        kubeconfig: str | None = None,
        list_slices: Callable[..., Any] | None = None,
        watch: bool = True,
        clock: Clock | None = None,
        drain_seconds: float = 30.0,
        connect_timeout: float = 5.0,
        cooldown: float = 0.5,
        sniff_limit: int = SNIFF_LIMIT,
        replay_limit: int = REPLAY_LIMIT,
    ) -> None:
        fronted = [p for p in config.pools if p.activator is not None]
        if not fronted:
            raise NoActivatorPools(
                "no pool has an `activator` section, so there is nothing to front; add one "
                "to the pools that should serve from zero"
            )
        self._kubeconfig = kubeconfig
        self._list_slices = list_slices
        self._watch = watch
        self.drain_seconds = drain_seconds
        self._connect_timeout = connect_timeout
        self._sniff_limit = sniff_limit
        self._replay_limit = replay_limit
        monotonic = (clock or SystemClock()).monotonic
        self.demand = Demand()
        self.pools: dict[str, PoolState] = {}
        routes = []
        for pool in fronted:
            spec = pool.activator
            assert spec is not None
            limits = Limits(spec.max_queue, spec.hold_timeout, spec.retry_after)
            self.pools[pool.name] = PoolState(
                pool.name, limits, self.demand, monotonic, cooldown=cooldown
            )
            if spec.backend.urls is not None:
                self.pools[pool.name].set_endpoints(spec.backend.urls)
            routes.append(Route.of(pool.name, spec))
        self.metrics = Metrics(self.pools)
        for state in self.pools.values():
            state.observer = self.metrics
        self.router = Router(routes)
        self._services = [
            (self.pools[p.name], p.activator.backend,
             p.activator.backend.namespace or getattr(p.target, "namespace", None) or "default")
            for p in fronted if p.activator is not None and p.activator.backend.service
        ]  # fmt: skip
        self._watches: list[ServiceEndpoints] = []
        self._proxy: Proxy | None = None
        self._session: aiohttp.ClientSession | None = None
        self._runners: list[web.AppRunner] = []
        self.ports: tuple[int, int] = (0, 0)
        """(proxy port, admin port) once started."""

    # -- in-process API ---------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.ports[0]}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.ports[1]}"

    def set_endpoints(self, pool: str, urls: Iterable[str]) -> None:
        """Replace `pool`'s ready endpoints (on the loop's thread); held requests go at once."""
        self.pools[pool].set_endpoints(urls)

    def not_ready(self) -> list[str]:
        return [w.what for w in self._watches if not w.listed]

    async def start(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        admin_host: str = "127.0.0.1",
        admin_port: int = 0,
    ) -> None:
        """Listen (port 0: any free port; `ports` says which) and start the watches.
        OSError when a port cannot be bound; NoCredentials when Kubernetes is needed and
        cannot be reached."""
        loop = asyncio.get_running_loop()
        if self._services and self._watch:
            list_slices = self._list_slices or self._cluster_lister()
            for state, backend, namespace in self._services:
                self._watches.append(ServiceEndpoints(state, backend, namespace, list_slices, loop))
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, enable_cleanup_closed=False),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=self._connect_timeout),
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
            skip_auto_headers=("Accept", "Accept-Encoding", "User-Agent", "Content-Type"),
        )  # fmt: skip
        self._proxy = Proxy(self.router, self.pools, self._session, self._sniff_limit,
                            self._replay_limit, self.metrics.unrouted)  # fmt: skip
        proxy_app = web.Application()
        proxy_app.router.add_route("*", "/{tail:.*}", self._proxy.handle)
        admin = admin_app(self.pools, self.demand, self.metrics, self.not_ready)
        try:
            proxy_port = await self._listen(proxy_app, host, port, self.drain_seconds)
            admin_port = await self._listen(admin, admin_host, admin_port, 1.0)
        except BaseException:
            await self._close()
            raise
        self.ports = (proxy_port, admin_port)
        for watch in self._watches:
            watch.start()

    def _cluster_lister(self) -> Callable[..., Any]:
        from autoscaler.clients.kube import connect
        from autoscaler.clients.kube_endpoints import slice_lister

        return slice_lister(connect(self._kubeconfig))

    async def _listen(self, app: web.Application, host: str, port: int, drain: float) -> int:
        runner = web.AppRunner(app, access_log=None, handler_cancellation=True,
                               shutdown_timeout=drain)  # fmt: skip
        await runner.setup()
        self._runners.append(runner)
        site = web.TCPSite(runner, host, port)
        await site.start()
        return int(runner.addresses[-1][1])

    async def stop(self) -> None:
        """Stop accepting; held requests get 503 with Retry-After; forwarded ones finish
        (up to `drain_seconds`); then everything closes."""
        if self._proxy is not None:
            self._proxy.draining = True
        if self._runners:
            for site in list(self._runners[0].sites):
                await site.stop()
        for pool in self.pools.values():
            pool.shutdown()
        self.demand.close()
        await self._close()

    async def _close(self) -> None:
        for runner in self._runners:
            await runner.cleanup()
        self._runners = []
        if self._watches:
            await asyncio.gather(*(asyncio.to_thread(w.stop) for w in self._watches))
            self._watches = []
        if self._session is not None:
            with contextlib.suppress(Exception):
                await self._session.close()
            self._session = None
