"""The oracle: a clairvoyant bound on what any policy can reach on a trace.

It sees every future arrival. With startup latency L it requests at time t the capacity the
workload needs at t + L, and releases capacity the moment it is no longer needed — unless
it is needed again within L, when keeping it is cheaper than relaunching — so no request
ever waits. Capacity is fluid (work packs perfectly onto replicas), which makes it
a bound rather than a policy. Alongside it, the work lower bound: the busy replica-seconds
the trace needs at 100 % utilization. Arithmetic over the trace only: it never runs the
controller or the simulated cluster.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class OracleResult:
    replica_seconds: float
    scale_actions: int
    peak_replicas: int
    work_replica_seconds: float
    cold_starts: int = 0
    """Times it goes from no replica to one (its first replica started, not kept warm)."""


def _in_use(
    arrivals: np.ndarray, durations: np.ndarray, slots_held: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Every arrival and departure in time order, and the slots in use just after each. At
    equal times departures go first: a bound must not count phantom overlap."""
    times = np.concatenate([arrivals, arrivals + durations])
    deltas = np.concatenate([slots_held, -slots_held]).astype(np.int64)
    order = np.lexsort((deltas, times))
    return times[order], np.cumsum(deltas[order])


def oracle(
    arrivals: np.ndarray,
    durations: np.ndarray,
    slots_held: np.ndarray,
    slots_per_replica: int,
    startup_seconds: float,
    warm_replicas: int | None = None,
    warm_until: float | None = None,
) -> OracleResult:
    """Replica-seconds the oracle provisions (including each replica's startup).
    `warm_replicas`: how many replicas are already running at the start, as in the
    simulated pool (its warm start, or a cold start's `min`), each paying no startup for
    its first run if that begins by `warm_until` (default: the first arrival); None: as
    many as the first arrival needs."""
    if len(arrivals) == 0:
        return OracleResult(0.0, 0, 0, 0.0)
    times, in_use = _in_use(arrivals, durations, slots_held)
    replicas = -(-in_use // slots_per_replica)  # ceil for non-negative ints
    starts_at, ends_at = times[:-1], times[1:]
    held = replicas[:-1]
    total = 0.0
    actions = 0
    cold_starts = 0
    for level in range(1, int(replicas.max()) + 1):
        if warm_replicas is None:
            warm_from = float(times[0])
        elif level <= warm_replicas:
            warm_from = float(times[0]) if warm_until is None else max(warm_until, times[0])
        else:
            warm_from = -np.inf
        seconds, runs, cold = _level_cost(
            held >= level, starts_at, ends_at, startup_seconds, warm_from=warm_from
        )
        total += seconds
        actions += 2 * runs
        if level == 1:
            cold_starts = cold
    work = float(np.sum(durations * slots_held)) / slots_per_replica
    return OracleResult(total, actions, int(replicas.max()), work, cold_starts)


def _level_cost(
    needed: np.ndarray,
    starts_at: np.ndarray,
    ends_at: np.ndarray,
    startup: float,
    warm_from: float,
) -> tuple[float, int, int]:
    """Replica-seconds for the k-th replica, its runs and its cold starts: it runs whenever
    k are needed, and is kept through any gap shorter than the startup latency (relaunching
    would cost more). A replica whose first run begins by `warm_from` was already running
    (the simulated pool's start), so that run pays no startup; with `warm_from` -inf its
    first run is a cold start too."""
    edges = np.diff(np.concatenate([[0], needed.astype(np.int8), [0]]))
    up = np.flatnonzero(edges == 1)
    down = np.flatnonzero(edges == -1)
    if len(up) == 0:
        return 0.0, 0, 0
    begin, end = starts_at[up], ends_at[down - 1]
    gaps = begin[1:] - end[:-1]
    bridged = gaps < startup
    runs = 1 + int(np.count_nonzero(~bridged))
    seconds = float(np.sum(end - begin)) + float(np.sum(gaps[bridged]))
    cold = runs - (1 if begin[0] <= warm_from else 0)
    return seconds + startup * cold, runs, cold


def peak_need(
    arrivals: np.ndarray,
    durations: np.ndarray,
    slots_held: np.ndarray,
    slots_per_replica: int,
    until: float,
) -> int:
    """Most replicas the work needs at once before `until`, with no waiting (fluid)."""
    early = arrivals < until
    if not early.any():
        return 0
    times, in_use = _in_use(arrivals[early], durations[early], slots_held[early])
    in_use = in_use[times < until]
    return int(-(-in_use.max() // slots_per_replica)) if len(in_use) else 0


def stepwise_need(
    arrivals: np.ndarray,
    durations: np.ndarray,
    slots_held: np.ndarray,
    slots_per_replica: int,
    step: float,
) -> float:
    """Replica-seconds of a hindsight schedule that changes capacity only every `step`
    seconds, instantly and for free, holding in each step the most replicas the work needs
    at any moment of it with no waiting (fluid).

    Not a bound: a policy may let a few requests wait, and the oracle may change capacity at
    any moment. It answers a narrower question: how much could knowing the future, minute by
    minute, save over a well-chosen fixed capacity? On a steady trace, almost nothing.
    """
    if len(arrivals) == 0:
        return 0.0
    times, in_use = _in_use(arrivals, durations, slots_held)
    replicas = -(-in_use // slots_per_replica)
    windows = int(times[-1] // step) + 1
    peak = np.zeros(windows, dtype=np.int64)
    np.maximum.at(peak, (times // step).astype(np.int64), replicas)
    # A step with no event holds what the last event before it left running.
    before = np.searchsorted(times, np.arange(windows) * step, side="left") - 1
    carried = np.where(before >= 0, replicas[np.maximum(before, 0)], 0)
    return float(np.maximum(peak, carried).sum() * step)
