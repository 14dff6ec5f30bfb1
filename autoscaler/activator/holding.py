"""Per pool: the FIFO of held requests, the choice of endpoint, and the counts the stats show.

Why hold at all: a pool scaled to zero has no endpoint, and a request refused then is lost
to the client. So a request that finds nothing ready waits here, in arrival order, bounded
by `max_queue` (more: `QueueFull`) and by its deadline (`TimeoutError`), until
`set_endpoints` brings one; it then gets an endpoint with its load already reserved, so a
burst released at once spreads over the endpoints. The first request held by a pool with
no ready endpoint is "cold demand": it bumps `Demand`'s generation, which answers the
controller's long poll, so the pool is woken within a second of its first request.

Pure asyncio and no I/O: the proxy, the endpoint watchers and the tests drive it. Windows
(`Window`) read an injected monotonic clock, so their rates are testable without waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

OUTCOMES = (
    "served", "rejected_full", "timed_out", "client_gone", "backend_error", "no_route",
    "shutdown",
)  # fmt: skip
"""How a request ended. `served`: the backend answered (any status); `shutdown`: held when
the activator stopped (503, retry elsewhere)."""

WINDOW_SECONDS = 60


class QueueFull(Exception):
    """The pool already holds `max_queue` requests."""


class ShuttingDown(Exception):
    """The activator is stopping, or no longer fronts the pool: held requests are answered
    503 to be retried elsewhere. Its text, when given, says which."""


class Observer(Protocol):
    """Where a pool reports arrivals and endings (the Prometheus metrics)."""

    def arrived(self, pool: str) -> None: ...

    def finished(self, pool: str, outcome: str, hold: float | None, latency: float | None) -> None:
        """`hold`: seconds held (None: never held); `latency`: seconds from forwarding to
        the end of the answer (None: not answered by a backend)."""
        ...


@dataclass(frozen=True)
class Limits:
    max_queue: int
    hold_timeout: float
    retry_after: float
    per_endpoint: int | None = None
    """Requests one endpoint is given at once; None: no limit."""


class Window:
    """Counts and sums per whole second over the last `span` seconds of `clock`."""

    def __init__(self, clock: Callable[[], float], span: int = WINDOW_SECONDS) -> None:
        self._clock = clock
        self._span = span
        self._started = clock()
        self._buckets: deque[list[float]] = deque()  # [second, count, sum]

    def add(self, value: float = 0.0) -> None:
        second = float(int(self._clock()))
        last = self._buckets[-1] if self._buckets else None
        if last is not None and last[0] == second:
            last[1] += 1
            last[2] += value
        else:
            self._buckets.append([second, 1, value])
            self._trim(second)

    def _trim(self, now: float) -> None:
        while self._buckets and self._buckets[0][0] <= now - self._span:
            self._buckets.popleft()

    def rate(self) -> float:
        """Events per second over the window (over the time since start while shorter,
        at least 1 s)."""
        now = self._clock()
        self._trim(float(int(now)))
        count = sum(b[1] for b in self._buckets)
        return count / min(float(self._span), max(1.0, now - self._started))

    def mean(self) -> float | None:
        """Mean of the values added within the window; None when there were none."""
        self._trim(float(int(self._clock())))
        count = sum(b[1] for b in self._buckets)
        return sum(b[2] for b in self._buckets) / count if count else None


class Demand:
    """The wake channel: `generation` grows by one each time a pool with no ready endpoint
    starts holding (0 -> 1 held); `wait` is the long poll."""

    def __init__(self) -> None:
        self.generation = 0
        self._changed = asyncio.Event()
        self._closed = False

    def bump(self) -> None:
        self.generation += 1
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def wait(self, after: int, timeout: float) -> int:
        """Return the generation once it differs from `after` (at once when it already
        does: a caller ahead of us saw an activator that restarted), or after `timeout`."""
        if self.generation == after and not self._closed:
            changed = self._changed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), timeout)
        return self.generation

    def close(self) -> None:
        """Answer every long poll now (the activator is stopping)."""
        self._closed = True
        self._changed.set()


class PoolState:
    """One pool's endpoints, held requests, in-flight count and outcome counts."""

    def __init__(
        self,
        name: str,
        limits: Limits,
        demand: Demand,
        clock: Callable[[], float],
        observer: Observer | None = None,
        cooldown: float = 0.5,
    ) -> None:
        """`cooldown`: seconds an endpoint that refused a connection is passed over."""
        self.name = name
        self.limits = limits
        self.observer = observer
        self._demand = demand
        self._cooldown = cooldown
        self._endpoints: list[str] = []
        self._load: dict[str, int] = {}  # requests given each endpoint and not yet released
        self._cooling: dict[str, float] = {}  # endpoint -> loop time it may be tried again
        self._retry: asyncio.TimerHandle | None = None
        self._queue: deque[asyncio.Future[str]] = deque()
        self._next = 0
        self._closed = False
        self._closed_why = ""
        self.in_flight = 0
        self.counts: Counter[str] = Counter()
        self.arrivals = Window(clock)
        self.latencies = Window(clock)

    # -- what the stats read ----------------------------------------------------------
    @property
    def waiting(self) -> int:
        return len(self._queue)

    @property
    def endpoints(self) -> list[str]:
        return list(self._endpoints)

    @property
    def ready_endpoints(self) -> int:
        return len(self._endpoints)

    @property
    def cold(self) -> bool:
        """Requests are held and no endpoint is ready: the controller must wake the pool."""
        return bool(self._queue) and not self._endpoints

    # -- endpoints ----------------------------------------------------------------------
    def set_endpoints(self, urls: Iterable[str]) -> None:
        """The ready endpoints now (replacing the previous set); held requests go at once."""
        self._endpoints = list(dict.fromkeys(urls))
        self._cooling = {u: t for u, t in self._cooling.items() if u in self._endpoints}
        self._dispatch()

    def take(self) -> str | None:
        """An endpoint for a request arriving now, or None when it must be held (nothing
        ready, or earlier requests are held: they go first)."""
        if self._queue or self._closed:
            return None
        return self._pick()

    def release(self, url: str) -> None:
        """A request given `url` is finished with it (with a per-endpoint limit, the next
        held request takes its place)."""
        left = self._load.get(url, 0) - 1
        if left > 0:
            self._load[url] = left
        else:
            self._load.pop(url, None)
        if self._queue and self.limits.per_endpoint is not None:
            self._dispatch()

    def failed(self, url: str) -> None:
        """`url` refused a request's connection: release it and pass it over for a while."""
        if url in self._endpoints:  # first, so the release below does not hand it out again
            self._cooling[url] = asyncio.get_running_loop().time() + self._cooldown
        self.release(url)

    def _pick(self) -> str | None:
        """The ready endpoint with the fewest requests, round robin among equals; None when
        every one is at the per-endpoint limit."""
        count = len(self._endpoints)
        if not count:
            return None
        cap = self.limits.per_endpoint
        now = asyncio.get_running_loop().time() if self._cooling else 0.0
        best, best_load, best_at = None, 0, 0
        for step in range(count):
            at = (self._next + step) % count
            url = self._endpoints[at]
            until = self._cooling.get(url)
            if until is not None:
                if until > now:
                    continue
                del self._cooling[url]
            load = self._load.get(url, 0)
            if cap is not None and load >= cap:
                continue
            if best is None or load < best_load:
                best, best_load, best_at = url, load, at
                if load == 0:
                    break
        if best is None:
            return None
        self._next = best_at + 1
        self._load[best] = best_load + 1
        return best

    # -- holding --------------------------------------------------------------------------
    async def hold(self, deadline: float, first: bool = False) -> str:
        """Wait for an endpoint until loop time `deadline`. `first`: a request already
        accepted and sent back (its endpoint failed) goes ahead of the queue and past
        `max_queue`. Raises QueueFull, ShuttingDown or TimeoutError; a cancelled wait (the
        client went away) leaves the queue at once."""
        if self._closed:
            raise ShuttingDown(self._closed_why)
        if not first and len(self._queue) >= self.limits.max_queue:
            raise QueueFull
        waiter: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        if not self._queue and not self._endpoints:
            self._demand.bump()
        if first:
            self._queue.appendleft(waiter)
        else:
            self._queue.append(waiter)
        self._dispatch()
        try:
            async with asyncio.timeout_at(deadline):
                return await waiter
        except BaseException:
            self._forget(waiter)
            raise

    def _forget(self, waiter: asyncio.Future[str]) -> None:
        with contextlib.suppress(ValueError):
            self._queue.remove(waiter)
        if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
            self.release(waiter.result())  # given an endpoint, but gone before using it

    def _dispatch(self) -> None:
        """Give held requests endpoints, in arrival order, while any is ready."""
        while self._queue:
            waiter = self._queue[0]
            if waiter.done():
                self._queue.popleft()
                continue
            url = self._pick()
            if url is None:
                break
            self._queue.popleft()
            waiter.set_result(url)
        if self._queue and self._cooling and self._retry is None:
            loop = asyncio.get_running_loop()
            self._retry = loop.call_at(min(self._cooling.values()), self._retry_cooled)

    def _retry_cooled(self) -> None:
        self._retry = None
        self._dispatch()

    def shutdown(self, why: str = "") -> None:
        """Answer every held request ShuttingDown (with `why`) and refuse new ones."""
        self._closed = True
        self._closed_why = why
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        while self._queue:
            waiter = self._queue.popleft()
            if not waiter.done():
                waiter.set_exception(ShuttingDown(why))

    # -- counting ---------------------------------------------------------------------------
    def arrive(self) -> None:
        self.arrivals.add()
        if self.observer is not None:
            self.observer.arrived(self.name)

    def record(self, outcome: str, hold: float | None = None, latency: float | None = None) -> None:
        self.counts[outcome] += 1
        if latency is not None:
            self.latencies.add(latency)
        if self.observer is not None:
            self.observer.finished(self.name, outcome, hold, latency)
