"""The set of pools the activator fronts, changed in place while it runs.

Why in place: the proxy, the admin port and the metrics all read one `pools` dict and one
`Router`, so a pool that comes, changes or goes is seen by the next request without a
restart, and nothing held is lost that need not be:

- a new pool gets its state, its route and, for `backend.service`, its EndpointSlice watch;
- a pool that is gone is dropped: its held requests are answered 503 with Retry-After (the
  client retries and, if the pool is back, gets it), its watch stops, its metrics go;
- a changed pool keeps its state (held and in-flight requests, counts): new limits and
  routes apply from the next request; a changed backend re-points it (the old watch stops,
  the new backend's endpoints replace the old ones, held requests wait for them).

Routes keep the order they are given: the file's pools, then the AutoscalingPool objects'.
Everything here runs on the event loop's thread; stopping a watch blocks, so `apply`
returns the watches to stop and the caller stops them off the loop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from autoscaler.config import Config
from autoscaler.config.activator import ActivatorSpec

from .admin import Metrics
from .endpoints import ServiceEndpoints
from .holding import Limits, PoolState
from .routes import Route, Router

log = logging.getLogger("autoscaler.activator")

Watcher = Callable[[PoolState, "Front"], ServiceEndpoints]
"""Builds and starts the watch of a pool's Service."""


@dataclass(frozen=True, eq=True)
class Front:
    """One fronted pool: its name, its `activator` section and its Service's namespace."""

    name: str
    spec: ActivatorSpec
    namespace: str

    @property
    def limits(self) -> Limits:
        return Limits(
            self.spec.max_queue,
            self.spec.hold_timeout,
            self.spec.retry_after,
            self.spec.concurrency_per_endpoint,
        )

    def same_backend(self, other: Front) -> bool:
        return self.spec.backend == other.spec.backend and self.namespace == other.namespace


def fronts_of(config: Config | None) -> list[Front]:
    """The pools of `config` with an `activator` section, in its order."""
    fronts = []
    for pool in config.pools if config is not None else []:
        spec = pool.activator
        if spec is None:
            continue
        namespace = spec.backend.namespace or getattr(pool.target, "namespace", None)
        fronts.append(Front(pool.name, spec, namespace or "default"))
    return fronts


class Fronted:
    """The pools fronted now: `pools` (name -> state, in route order), their routes in
    `router`, and the watches of their Services once `start_watches` has been called."""

    def __init__(
        self, new_state: Callable[[str, Limits], PoolState], metrics: Metrics, router: Router,
        pools: dict[str, PoolState],
    ) -> None:  # fmt: skip
        self.pools = pools
        self.fronts: dict[str, Front] = {}
        self.watches: dict[str, ServiceEndpoints] = {}
        self._gating: list[ServiceEndpoints] = []
        self._new_state = new_state
        self._metrics = metrics
        self._router = router
        self._watcher: Watcher | None = None

    def services(self) -> bool:
        """Whether a fronted pool's backend is a Service."""
        return any(f.spec.backend.service for f in self.fronts.values())

    def not_ready(self) -> list[str]:
        """The watches of the pools fronted at start that have not listed yet. Pools that
        come later do not gate readiness: one bad object must not take every pool's traffic
        away (their requests are held until their watch lists)."""
        return [w.what for w in self._gating if w in self.watches.values() and not w.listed]

    def start_watches(self, watcher: Watcher | None) -> None:
        """Watch the Services of the pools fronted now, and of those that come later (None:
        never; the caller sets endpoints)."""
        self._watcher = watcher
        for front in self.fronts.values():
            self._watch(front)
        self._gating = list(self.watches.values())

    def apply(self, fronts: Sequence[Front], refs: Mapping[str, object] | None = None
              ) -> list[ServiceEndpoints]:  # fmt: skip
        """Front exactly `fronts`; `refs` names the AutoscalingPool of a pool (for the
        logs). Returns the watches to stop, already detached from their pools."""
        refs = refs or {}
        wanted = {f.name: f for f in fronts}
        stopping = [w for name in list(self.fronts) if name not in wanted
                    for w in self._drop(name)]  # fmt: skip
        for front in fronts:
            old = self.fronts.get(front.name)
            where = f"AutoscalingPool {refs[front.name]}" if front.name in refs else "the file"
            if old is None:
                self._add(front)
                log.info("activator: fronting pool %s (from %s)", front.name, where)
            elif old != front:
                stopping += self._update(old, front)
                log.info("activator: pool %s changed (from %s); updated in place", front.name,
                         where)  # fmt: skip
        self.fronts = wanted
        ordered = {name: self.pools[name] for name in wanted}
        self.pools.clear()
        self.pools.update(ordered)
        self._router.routes = [Route.of(f.name, f.spec) for f in fronts]
        return stopping

    def _add(self, front: Front) -> None:
        state = self._new_state(front.name, front.limits)
        state.observer = self._metrics
        self._metrics.track(front.name)
        self.pools[front.name] = state
        self.fronts[front.name] = front
        if front.spec.backend.urls is not None:
            state.set_endpoints(front.spec.backend.urls)
        self._watch(front)

    def _update(self, old: Front, new: Front) -> list[ServiceEndpoints]:
        state = self.pools[new.name]
        state.limits = new.limits
        self.fronts[new.name] = new
        if old.same_backend(new):
            return []
        stopping = self._unwatch(new.name)
        state.set_endpoints(new.spec.backend.urls or [])
        self._watch(new)
        return stopping

    def _drop(self, name: str) -> list[ServiceEndpoints]:
        state = self.pools.pop(name)
        del self.fronts[name]
        state.observer = None
        self._metrics.forget(name)
        state.shutdown(f"pool {name!r} is no longer fronted by this activator; retry the request")
        log.info("activator: pool %s is gone; no longer fronting it", name)
        return self._unwatch(name)

    def _watch(self, front: Front) -> None:
        if self._watcher is None or not front.spec.backend.service or front.name in self.watches:
            return
        try:
            self.watches[front.name] = self._watcher(self.pools[front.name], front)
        except Exception as exc:  # no credentials: the pool is fronted, its requests held
            log.warning("activator: pool %s: cannot watch Service %s/%s: %s", front.name,
                        front.namespace, front.spec.backend.service, exc)  # fmt: skip

    def _unwatch(self, name: str) -> list[ServiceEndpoints]:
        watch = self.watches.pop(name, None)
        if watch is None:
            return []
        watch.detach()
        return [watch]
