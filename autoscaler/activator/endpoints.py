"""Where each pool's requests go: fixed URLs, or the ready endpoints of a Service.

Why EndpointSlices and a watch: a Service's slices list exactly the pods that are ready to
take traffic (what kube-proxy routes to), and a watch sees a replica turn ready as the API
server does, so a held request goes out within milliseconds of the replica's readiness
probe passing. The watch runs in a thread (the Kubernetes client blocks); each change is
handed to the event loop with `call_soon_threadsafe`, where `PoolState.set_endpoints`
releases held requests at once.

`slice_urls` is the pure translation (slices -> URLs), tested with plain objects; an
endpoint is ready unless its `conditions.ready` is false, and its port is the slice port
named by `backend.port`, that number, or the slice's first port.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from typing import Any

from autoscaler.config.activator import ActivatorBackend

from .holding import PoolState

log = logging.getLogger("autoscaler.activator")


def slice_urls(slices: Iterable[Any], port: int | str | None, scheme: str = "http") -> list[str]:
    """URLs of the ready endpoints of EndpointSlices (objects with the client models'
    attribute names, e.g. `Raw`), without duplicates, in a stable order."""
    urls: list[str] = []
    for piece in slices:
        number = _port(piece.ports or [], port)
        if number is None:
            continue
        for endpoint in piece.endpoints or []:
            conditions = endpoint.conditions
            if conditions is not None and conditions.ready is False:
                continue
            for address in endpoint.addresses or []:
                host = f"[{address}]" if ":" in address else address
                urls.append(f"{scheme}://{host}:{number}")
    return sorted(dict.fromkeys(urls))


def _port(ports: list[Any], wanted: int | str | None) -> int | None:
    if isinstance(wanted, int):
        return wanted
    if isinstance(wanted, str):
        return next((int(p.port) for p in ports if p.name == wanted and p.port), None)
    return next((int(p.port) for p in ports if p.port), None)


class ServiceEndpoints:
    """Keeps one pool's endpoints equal to the ready endpoints of its Service."""

    def __init__(
        self,
        pool: PoolState,
        backend: ActivatorBackend,
        namespace: str,
        list_call: Callable[..., Any],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        from autoscaler.clients.kube_endpoints import ServiceSlices

        assert backend.service is not None
        self.pool = pool
        self.what = f"Service {namespace}/{backend.service}"
        self._backend = backend
        self._loop = loop
        self._last: list[str] | None = None
        self._detached = False
        self._slices = ServiceSlices(list_call, namespace, backend.service, self._changed)

    @property
    def listed(self) -> bool:
        return self._slices.listed

    def start(self) -> None:
        self._slices.start()

    def stop(self) -> None:
        """Stop the watch (blocks while its thread ends: call it off the loop)."""
        self.detach()
        self._slices.stop()

    def detach(self) -> None:
        """From the loop: hand the pool no more endpoints, even ones already on their way
        (the pool is dropped, or now has another backend)."""
        self._detached = True

    def _deliver(self, urls: list[str]) -> None:
        if not self._detached:
            self.pool.set_endpoints(urls)

    def _changed(self, slices: list[Any]) -> None:
        """From the watch thread: hand a changed set of URLs to the loop."""
        urls = slice_urls(slices, self._backend.port, self._backend.scheme)
        if urls == self._last:
            return
        self._last = urls
        log.info("pool %s: %d ready endpoint(s) in %s", self.pool.name, len(urls), self.what)
        with contextlib.suppress(RuntimeError):  # the loop closed under a stopping watch
            self._loop.call_soon_threadsafe(self._deliver, urls)
