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
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

from . import telemetry
from .clock import Clock, SystemClock, stopwatch
from .deadlines import Late, wait_all
from .signals._common import fail_all
from .signals.base import SignalKey, SignalRequest, SignalSource
from .types import Reading

T = TypeVar("T")

_Readings = dict[SignalKey, Reading]


class Observer:
    """Runs reads on a shared thread pool with per-call timeouts and an overall deadline."""

    def __init__(self, max_workers: int = 32, clock: Clock | None = None) -> None:
        self._monotonic = (clock or SystemClock()).monotonic
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
        started = self._monotonic()
        kinds = list(requests)
        futures = [
            self._submit(f"source:{kind}", _timed(kind, sources[kind], requests[kind], now))
            for kind in kinds
        ]
        # A type's wait ends at its own timeout after `started`, bounded by the deadline.
        budgets = [min(timeouts.get(kind, deadline_seconds), deadline_seconds) for kind in kinds]
        asked = [(f, b) for f, b in zip(futures, budgets, strict=True) if f is not None]
        answered: list[_Readings | BaseException] = wait_all(
            asked, started, cancel_late=False, monotonic=self._monotonic
        )
        answers = iter(answered)
        out: _Readings = {}
        for kind, future in zip(kinds, futures, strict=True):
            outcome = next(answers) if future is not None else None
            got = _collect(kind, outcome, requests[kind], now)
            telemetry.record_readings(kind, got)
            out.update(got)
        return out

    def call_each(
        self, calls: Mapping[str, Callable[[], T]], deadline_seconds: float
    ) -> dict[str, T | BaseException]:
        """Run independent calls concurrently; each result, or the exception it raised."""
        started = self._monotonic()
        keys = list(calls)
        work = [(self._pool.submit(calls[k]), deadline_seconds) for k in keys]
        answers = wait_all(work, started, cancel_late=False, monotonic=self._monotonic)
        out: dict[str, T | BaseException] = {}
        for key, answer in zip(keys, answers, strict=True):
            if isinstance(answer, Late):
                answer = TimeoutError(f"no answer within {deadline_seconds:.1f}s")
            out[key] = answer
        return out


def _timed(
    kind: str, source: SignalSource, reqs: Sequence[SignalRequest], now: float
) -> Callable[[], _Readings]:
    """The read, timed into telemetry when it returns (a late read is timed too)."""

    def read() -> _Readings:
        elapsed = stopwatch()
        try:
            return source.read(reqs, now)
        finally:
            telemetry.record_read_seconds(kind, elapsed())

    return read


def _collect(
    kind: str,
    outcome: _Readings | BaseException | None,
    reqs: Sequence[SignalRequest],
    now: float,
) -> _Readings:
    """One source type's readings, or stale ones saying why there are none (None: it was
    not asked, its previous read still running)."""
    if outcome is None:
        return fail_all(
            reqs, now, "busy", f"the {kind} source's previous read is still running; not asked"
        )
    if isinstance(outcome, Late):
        return fail_all(
            reqs, now, "timeout", f"the {kind} source gave no answer within {outcome.budget:.2f}s"
        )
    if isinstance(outcome, BaseException):  # a source bug or dead endpoint: stale, not fatal
        return fail_all(
            reqs, now, "source_error", f"{kind} source: {type(outcome).__name__}: {outcome}"
        )
    return {
        r.key: outcome.get(r.key)
        or Reading(None, now, f"missing: the {kind} source returned nothing for this signal")
        for r in reqs
    }
