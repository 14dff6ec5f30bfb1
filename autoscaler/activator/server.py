"""The activator as one object: build from a config, start on two ports, stop gracefully.

Why one object: the CLI, the tests and the benchmarks all run the same thing in-process
(`await Activator(config).start(...)`), on ports they choose (0: any free one). `stop`
is the SIGTERM path: stop accepting, answer held requests 503 (Retry-After) so clients
retry elsewhere, let forwarded ones finish for up to `drain_seconds`, then close.

With a `source` (the pools of a file and of AutoscalingPool objects), the pools are loaded
at start and every `reload_seconds`, and the fronted set changes in place (`fronting`).
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
from autoscaler.pool_sources import LoadedPools

from .admin import Metrics, admin_app
from .bodies import REPLAY_LIMIT, SNIFF_LIMIT
from .endpoints import ServiceEndpoints
from .fronting import Front, Fronted, Watcher, fronts_of
from .holding import Demand, Limits, PoolState
from .proxy import Proxy
from .reload import PoolLoader, Reloader
from .routes import Router

log = logging.getLogger("autoscaler.activator")


class NoActivatorPools(ValueError):
    """The configuration fronts no pool."""


class Activator:
    """The proxy and admin servers for every pool of `config` with an `activator` section.

    Service backends are watched through `list_slices` (a `list_namespaced_endpoint_slice`
    method; default: the cluster `kubeconfig` names, or in-cluster) unless `watch` is
    False, when their endpoints stay empty until `set_endpoints` (tests). Static `urls`
    backends are always ready.

    `source` (`load()` -> LoadedPools or None) gives the pools at start and every
    `reload_seconds` after; `config` is then what to front until the first load (None:
    nothing). Without `serve_empty`, a `config` that fronts no pool is NoActivatorPools;
    with it the activator serves (every request 404) until pools come.
    """

    def __init__(
        self,
        config: Config | None,
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
        source: PoolLoader | None = None,
        reload_seconds: float = 10.0,
        serve_empty: bool = False,
    ) -> None:
        fronts = fronts_of(config)
        if not fronts and not serve_empty:
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
        self.metrics = Metrics(self.pools)
        self.router = Router([])

        def new_state(name: str, limits: Limits) -> PoolState:
            return PoolState(name, limits, self.demand, monotonic, cooldown=cooldown)

        self._fronted = Fronted(new_state, self.metrics, self.router, self.pools)
        self._fronted.apply(fronts)
        self._reloader = (
            Reloader(source, self._apply, reload_seconds) if source is not None else None
        )
        self._reloading: asyncio.Task[None] | None = None
        self._stopping: set[asyncio.Task[None]] = set()
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
        return self._fronted.not_ready()

    async def reload(self) -> bool:
        """Load the pools from the source now and apply them (also done at start and every
        `reload_seconds`); False without a source or when it could not look."""
        return self._reloader is not None and await self._reloader.once()

    def _apply(self, loaded: LoadedPools) -> None:
        """On the loop: front what was loaded; stop the watches that went, off the loop."""
        for watch in self._fronted.apply(fronts_of(loaded.config), loaded.refs):
            task = asyncio.create_task(asyncio.to_thread(watch.stop))
            self._stopping.add(task)
            task.add_done_callback(self._stopping.discard)

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
        await self.reload()
        if self._watch and self._fronted.services() and self._list_slices is None:
            self._list_slices = self._cluster_lister()
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
        self._fronted.start_watches(self._watcher(loop) if self._watch else None)
        if self._reloader is not None:
            self._reloading = asyncio.create_task(self._reloader.run())

    def _watcher(self, loop: asyncio.AbstractEventLoop) -> Watcher:
        def watch(state: PoolState, front: Front) -> ServiceEndpoints:
            if self._list_slices is None:  # the first Service came with a reload
                self._list_slices = self._cluster_lister()
            watching = ServiceEndpoints(state, front.spec.backend, front.namespace,
                                        self._list_slices, loop)  # fmt: skip
            watching.start()
            return watching

        return watch

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
        if self._reloading is not None:
            self._reloading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reloading
            self._reloading = None
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
        watches = list(self._fronted.watches.values())
        self._fronted.watches.clear()
        if watches or self._stopping:
            await asyncio.gather(*(asyncio.to_thread(w.stop) for w in watches), *self._stopping)
        if self._session is not None:
            with contextlib.suppress(Exception):
                await self._session.close()
            self._session = None
