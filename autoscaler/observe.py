"""Observe: read every signal and every pool's capacity concurrently, within a deadline.

Each source type runs in its own thread. A source type that fails, raises or is late yields
stale readings for its own requests only; the tick goes on. Each type is waited for until
its own timeout (counted from the start of the tick, never from when an earlier type was
done) or the overall deadline, whichever comes first. A source whose previous read has not
returned is not asked again until it does, so a hung endpoint cannot pile up threads.

Every read is timed and every stale reading counted by source type and error code in
`autoscaler.telemetry`. This module must never raise for a failed read, and never turn a
failure into a value.
"""

from __future__ import annotations

import concurrent.futures as cf
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

from . import telemetry
from .signals._common import fail_all
from .signals.base import SignalKey, SignalRequest, SignalSource
from .types import Reading

T = TypeVar("T")

_Readings = dict[SignalKey, Reading]


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
        """Every requested signal, by (pool, signal); failures come back as stale readings.

        `timeouts` are seconds per source type; `deadline_seconds` bounds the whole call.
        """
        started = time.monotonic()
        futures = {
            kind: self._submit(f"source:{kind}", _timed(kind, sources[kind], reqs, now))
            for kind, reqs in requests.items()
        }
        # Wait in order of expiry: a type's wait ends at its own timeout after `started`.
        expiry = {
            kind: started + min(timeouts.get(kind, deadline_seconds), deadline_seconds)
            for kind in futures
        }
        out: _Readings = {}
        for kind in sorted(futures, key=expiry.__getitem__):
            allowed = expiry[kind] - started
            got = _collect(kind, futures[kind], requests[kind], now, expiry[kind], allowed)
            telemetry.record_readings(kind, got)
            out.update(got)
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


def _timed(
    kind: str, source: SignalSource, reqs: Sequence[SignalRequest], now: float
) -> Callable[[], _Readings]:
    """The read, timed into telemetry when it returns (a late read is timed too)."""

    def read() -> _Readings:
        t0 = time.monotonic()
        try:
            return source.read(reqs, now)
        finally:
            telemetry.record_read_seconds(kind, time.monotonic() - t0)

    return read


def _collect(
    kind: str,
    future: cf.Future[_Readings] | None,
    reqs: Sequence[SignalRequest],
    now: float,
    expiry: float,
    allowed_seconds: float,
) -> _Readings:
    """One source type's readings, or stale ones saying why there are none."""
    if future is None:
        return fail_all(
            reqs, now, "busy", f"the {kind} source's previous read is still running; not asked"
        )
    try:
        got = future.result(timeout=max(0.0, expiry - time.monotonic()))
    except cf.TimeoutError:
        return fail_all(
            reqs, now, "timeout", f"the {kind} source gave no answer within {allowed_seconds:.2f}s"
        )
    except Exception as exc:  # a source bug or dead endpoint: stale, not fatal
        return fail_all(reqs, now, "source_error", f"{kind} source: {type(exc).__name__}: {exc}")
    return {
        r.key: got.get(r.key)
        or Reading(None, now, f"missing: the {kind} source returned nothing for this signal")
        for r in reqs
    }
