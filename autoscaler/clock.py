"""Time, injected: the only module that reads the machine's clocks.

The controller, the process loop, sources, providers and the kube plug-ins take a Clock, so
the simulator and tests drive time explicitly (`FakeClock.advance`) and nothing depends on
how fast the machine runs. Two readings, as the standard library has them:

- `now()`: seconds since the epoch (or since the simulation started), for what is stamped
  or compared across processes (a Lease's renew time, an Event, a status, a trace);
- `monotonic()`: seconds on a clock that never goes back, for deadlines and intervals.

`stopwatch()` measures how long a piece of code took on this machine (a tick's duration
for metrics, the simulator's own wall time). It is not domain time, so it is not injected.
This module must never be bypassed: no other module imports `time` to read a clock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch (or since the simulation started)."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back; only differences mean anything."""
        ...

    def sleep(self, seconds: float) -> None: ...

    def wait(self, event: threading.Event, seconds: float) -> bool:
        """Wait up to `seconds` for `event`; True when it was set."""
        ...


class SystemClock:
    """Wall-clock time; `sleep` and `wait` really wait."""

    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)

    def wait(self, event: threading.Event, seconds: float) -> bool:
        return event.wait(max(0.0, seconds))


class FakeClock:
    """Time that moves only when told; `sleep` and `wait` advance it instantly."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)

    def now(self) -> float:
        return self._now

    def monotonic(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"cannot move a clock backwards (advance by {seconds} s)")
        self._now += seconds

    def sleep(self, seconds: float) -> None:
        self.advance(max(0.0, seconds))

    def wait(self, event: threading.Event, seconds: float) -> bool:
        if event.is_set():
            return True
        self.advance(max(0.0, seconds))
        return event.is_set()


def stopwatch() -> Callable[[], float]:
    """Start measuring; the returned function gives the seconds elapsed since (machine
    time, for durations reported about the machine itself, never for decisions)."""
    started = time.perf_counter()
    return lambda: time.perf_counter() - started


def wall_ns() -> int:
    """Nanoseconds since the epoch, for names that must be unique over time (Events)."""
    return time.time_ns()
