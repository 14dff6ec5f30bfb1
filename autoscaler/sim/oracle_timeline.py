"""The oracle's replicas over time, for the report: the schedule `oracle()` pays for.

`oracle()` only sums replica-seconds; this lays the same schedule out in time, level by
level (the k-th replica runs whenever k are needed, kept through gaps shorter than the
startup, requested `startup` seconds before a cold run), so the report can draw the bound
beside the policies. Sampled on the controller's tick grid, the same rows a policy's
timeline has. Its integral over time is `oracle().replica_seconds` (a test holds the two
together). Arithmetic over the trace only, like the oracle itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .oracle import _in_use


@dataclass
class OracleSchedule:
    """Replica intervals of the oracle: each is `[requested, ready, released)` seconds."""

    requested: list[float] = field(default_factory=list)
    ready: list[float] = field(default_factory=list)
    released: list[float] = field(default_factory=list)
    cold_start_times: list[float] = field(default_factory=list)
    """When the pool went from no replica to one (a level-1 run that was not warm)."""

    def replica_seconds(self) -> float:
        return float(np.sum(np.asarray(self.released) - np.asarray(self.requested)))

    def timeline(self, tick_seconds: float) -> dict[str, list[float]]:
        """`t`, `desired` (requested, billed) and `ready` replicas at each tick, from 0 to
        the last release."""
        end = max(self.released, default=0.0)
        t = np.arange(0.0, end + tick_seconds, tick_seconds)
        return {
            "t": t.tolist(),
            "desired": _count(t, self.requested, self.released).tolist(),
            "ready": _count(t, self.ready, self.released).tolist(),
        }


def _count(t: np.ndarray, begins: list[float], ends: list[float]) -> np.ndarray:
    """How many `[begin, end)` intervals hold each time of `t`."""
    up = np.searchsorted(np.sort(np.asarray(begins)), t, side="right")
    down = np.searchsorted(np.sort(np.asarray(ends)), t, side="right")
    return (up - down).astype(int)


def oracle_schedule(
    arrivals: np.ndarray,
    durations: np.ndarray,
    slots_held: np.ndarray,
    slots_per_replica: int,
    startup_seconds: float,
    warm_replicas: int | None = None,
    warm_until: float | None = None,
) -> OracleSchedule:
    """The oracle's replica intervals; `warm_replicas` and `warm_until` as in `oracle()`."""
    schedule = OracleSchedule()
    if len(arrivals) == 0:
        return schedule
    times, in_use = _in_use(arrivals, durations, slots_held)
    replicas = -(-in_use // slots_per_replica)
    starts_at, ends_at, held = times[:-1], times[1:], replicas[:-1]
    for level in range(1, int(replicas.max()) + 1):
        warm_from = _warm_from(level, float(times[0]), warm_replicas, warm_until)
        needed = held >= level
        edges = np.diff(np.concatenate([[0], needed.astype(np.int8), [0]]))
        up, down = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        if len(up) == 0:
            continue
        begin, end = starts_at[up], ends_at[down - 1]
        # A gap shorter than the startup is bridged: the replica is kept, as oracle() bills.
        keep = np.concatenate([[False], (begin[1:] - end[:-1]) < startup_seconds])
        run_begin = begin[~keep]
        run_end = end[np.concatenate([~keep[1:], [True]])]
        for i, (b, e) in enumerate(zip(run_begin, run_end, strict=True)):
            cold = not (i == 0 and b <= warm_from)
            schedule.requested.append(float(b - startup_seconds if cold else b))
            schedule.ready.append(float(b))
            schedule.released.append(float(e))
            if cold and level == 1:
                schedule.cold_start_times.append(float(b - startup_seconds))
    return schedule


def _warm_from(
    level: int, first: float, warm_replicas: int | None, warm_until: float | None
) -> float:
    """Until when the `level`-th replica's first run counts as already running: oracle()'s
    rule (a replica the simulated pool started with pays no startup)."""
    if warm_replicas is None:
        return first
    if level <= warm_replicas:
        return first if warm_until is None else max(warm_until, first)
    return -np.inf
