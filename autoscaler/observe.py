"""Observe: read every signal and every pool's capacity concurrently, within a deadline.

A source or provider that fails or is late yields stale readings (or an unknown capacity)
for its own pools only; the tick goes on. A source whose previous read has not returned is
not asked again until it does, so a hung endpoint cannot pile up threads.
"""

from __future__ import annotations

import concurrent.futures as cf
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

from .signals.base import SignalKey, SignalRequest, SignalSource
from .types import Reading

T = TypeVar("T")


class Observer:
    """Runs reads on a shared thread pool with per-call timeouts and an overall deadline."""

    def __init__(self, max_workers: int = 32) -> None:
        self._pool = cf.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="observe")
        self._busy: dict[str, cf.Future[object]] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _submit(self, key: str, fn: Callable[[], T]) -> cf.Future[T] | None:
        with self._lock:
            running = self._busy.get(key)
            if running is not None and not running.done():
                return None
            future = self._pool.submit(fn)
            self._busy[key] = future  # type: ignore[assignment]
            return future

    def read_signals(
        self,
        sources: Mapping[str, SignalSource],
        requests: Mapping[str, Sequence[SignalRequest]],
        now: float,
        timeouts: Mapping[str, float],
        deadline_seconds: float,
    ) -> dict[SignalKey, Reading]:
        """Every requested signal, by (pool, signal); failures come back as stale readings."""
        started = time.monotonic()
        futures: dict[str, cf.Future[dict[SignalKey, Reading]] | None] = {}
        for kind, reqs in requests.items():
            source = sources[kind]
            futures[kind] = self._submit(
                f"source:{kind}",
                lambda s=source, r=reqs: s.read(r, now),  # type: ignore[misc]
            )
        out: dict[SignalKey, Reading] = {}
        for kind, future in futures.items():
            reqs = requests[kind]
            if future is None:
                out.update(_failed(reqs, now, "previous read still running"))
                continue
            left = deadline_seconds - (time.monotonic() - started)
            wait = max(0.0, min(timeouts.get(kind, deadline_seconds), left))
            try:
                got = future.result(timeout=wait)
            except cf.TimeoutError:
                out.update(_failed(reqs, now, f"timeout after {wait:.1f}s"))
                continue
            except Exception as exc:  # a source bug or dead endpoint: stale, not fatal
                out.update(_failed(reqs, now, f"{type(exc).__name__}: {exc}"))
                continue
            for req in reqs:
                out[req.key] = got.get(req.key) or Reading(None, now, "source returned nothing")
        return out

    def call_each(
        self, calls: Mapping[str, Callable[[], T]], deadline_seconds: float
    ) -> dict[str, T | BaseException]:
        """Run independent calls concurrently; each result, or the exception it raised."""
        started = time.monotonic()
        futures = {k: self._pool.submit(fn) for k, fn in calls.items()}
        out: dict[str, T | BaseException] = {}
        for key, future in futures.items():
            left = max(0.0, deadline_seconds - (time.monotonic() - started))
            try:
                out[key] = future.result(timeout=left)
            except cf.TimeoutError:
                out[key] = TimeoutError(f"no answer within {deadline_seconds:.1f}s")
            except Exception as exc:
                out[key] = exc
        return out


def _failed(reqs: Sequence[SignalRequest], now: float, why: str) -> dict[SignalKey, Reading]:
    return {r.key: Reading(None, now, why) for r in reqs}
