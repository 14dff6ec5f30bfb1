"""The simulated world: replicas (or nodes) with units of capacity, and work that queues.

One model serves both workloads the simulator knows:
- LLM serving: a replica has `slots` units; a request holds one unit for its service time;
- GPU batch: a node has `gpus_per_node` units; a job holds `num_gpu` units on one node
  (first-fit over nodes, oldest first; a job that does not fit does not block smaller ones
  behind it, as the Kubernetes scheduler behaves).

A new replica is billed from the moment it is requested and becomes ready `startup`
seconds later. Scale-in removes starting replicas first, then idle ready ones (newest first),
then busy ones (least busy first), which drain: they take no new work, finish what they hold
and are billed until then (graceful termination; running work, a request or a batch job, is
never killed). A policy that never asks for fewer replicas than hold work (`packing`) only
ever removes starting and idle ones.

Signals are what production would see: queue length, work in flight, arrival rate over a
window, GPU utilization (busy share of ready units, averaged over the last interval),
measured service time, and optionally a delay before they are visible.

Speed matters (a day of requests at a 1 s tick in seconds of wall time): the event loop
works on plain lists and heaps; nothing here allocates per request beyond a heap entry.
Where every request holds exactly one unit (LLM serving), `advance` runs one inlined loop
over local variables (`autoscaler/sim/fast_loop.py`); it does the same arithmetic in the same order
as the general loop, so both give bit-identical results (tests/sim/test_fast_path.py).
"""

from __future__ import annotations

import heapq
import math
from bisect import bisect_right
from collections import deque

import numpy as np

from autoscaler.types import Capacity

from .fast_loop import advance_one_unit

INF = math.inf


class Replica:
    """A replica (or node). A plain class, not a dataclass: compiled, it is an extension
    type with typed fields (cluster.pxd)."""

    __slots__ = ("busy", "created", "draining", "ended", "id", "listed", "ready_at", "up")

    def __init__(self, id: int, created: float, ready_at: float) -> None:
        self.id = id
        self.created = created
        self.ready_at = ready_at
        self.busy = 0
        self.draining = False
        self.ended: float | None = None
        self.listed = False  # in the free heap already (no duplicates)
        self.up = False  # its ready event was processed while not draining (counted ready)


class Cluster:
    """Replicas, queued and running work, and the signals they produce."""

    def __init__(
        self,
        arrivals: np.ndarray,
        durations: np.ndarray,
        units: np.ndarray,
        units_per_replica: int,
        startup_seconds: float,
        rate_window_seconds: float = 60.0,
        service_window_seconds: float = 300.0,
        signal_delay_seconds: float = 0.0,
    ) -> None:
        if len(units) and int(units.max()) > units_per_replica:
            raise ValueError(
                f"a job needs {int(units.max())} units but a replica has {units_per_replica}; "
                "raise gpus_per_node (or slots)"
            )
        self.arr = arrivals.tolist()
        self.dur = durations.tolist()
        self.units = units.tolist()
        self.unit_one = bool(len(units) == 0 or int(units.max()) == 1)
        # every request holds exactly one unit: the inlined event loop applies
        self.fast = bool(len(units) == 0 or int(units.min()) == int(units.max()) == 1)
        self.per = units_per_replica
        self.startup = startup_seconds
        self.rate_window = rate_window_seconds
        self.service_window = service_window_seconds
        self.delay = signal_delay_seconds
        n = len(self.arr)
        self.start = [math.nan] * n
        self.replicas: dict[int, Replica] = {}
        self.live_count = 0  # replicas not draining
        self.up_count = 0  # of those, ready (ready event processed)
        self._capacity = Capacity(0, 0, 0)
        self.next_id = 0
        self.next_arrival = 0
        self.queue: deque[int] = deque()
        self.queued_units = 0
        self.pending_ready: list[tuple[float, int]] = []
        self.completions: list[tuple[float, int, int]] = []
        self.free: list[int] = []  # replica ids with a free unit (lazy; unit-one fast path)
        self.busy_units = 0
        self.running = 0
        self.ready_units = 0
        self.clock = 0.0
        self.busy_area = 0.0
        self.ready_area = 0.0
        self.billed_seconds = 0.0  # replica-seconds of replicas already ended
        self.done_service = 0.0  # unit-seconds of completed work
        self.recent_service: deque[tuple[float, float]] = deque()
        self.recent_sum = 0.0
        self.snapshots: deque[tuple[float, dict[str, float | None]]] = deque()
        self._last_busy_area = 0.0
        self._last_ready_area = 0.0
        # Arrivals at or before the rate window's start, and that start: it only moves
        # forward as the clock does, so the count is kept, not searched for (see _measure).
        self._window_count = 0
        self._window_from = -INF
        # `busy_replicas` walks the replicas: measured only when a policy asks for it.
        self.measure_busy = False

    # -- capacity ------------------------------------------------------------------------
    def live(self) -> list[Replica]:
        return [r for r in self.replicas.values() if not r.draining]

    def capacity(self) -> Capacity:
        pending = self.pending_ready
        if not pending or pending[0][0] > self.clock:
            # Every replica ready by now has had its ready event: the counters are exact.
            # Capacity is frozen, so the last one is handed out again while it is unchanged.
            last = self._capacity
            if last.desired != self.live_count or last.ready != self.up_count:
                last = Capacity(self.live_count, self.up_count, self.live_count - self.up_count)
                self._capacity = last
            return last
        desired = ready = 0
        now = self.clock
        for r in self.replicas.values():
            if not r.draining:
                desired += 1
                if r.ready_at <= now:
                    ready += 1
        return Capacity(desired, ready, desired - ready)

    def add(self, count: int, now: float, ready: bool = False) -> None:
        for _ in range(count):
            rid = self.next_id
            self.next_id += 1
            ready_at = now if ready else now + self.startup
            self.replicas[rid] = Replica(rid, now, ready_at)
            self.live_count += 1
            heapq.heappush(self.pending_ready, (ready_at, rid))
        if ready:
            self.advance(now)

    def scale(self, desired: int, now: float) -> None:
        live = self.live()
        if desired > len(live):
            self.add(desired - len(live), now)
            return
        surplus = len(live) - desired
        if surplus <= 0:
            return
        starting = sorted((r for r in live if r.ready_at > now), key=lambda r: -r.id)
        idle = sorted((r for r in live if r.ready_at <= now and r.busy == 0), key=lambda r: -r.id)
        busy = sorted(
            (r for r in live if r.ready_at <= now and r.busy > 0), key=lambda r: (r.busy, -r.id)
        )
        for r in (starting + idle + busy)[:surplus]:
            if r.ready_at <= now:
                self.ready_units -= self.per
            r.draining = True
            self.live_count -= 1
            if r.up:
                r.up = False
                self.up_count -= 1
            if r.busy == 0:
                self._end(r, now)
        self._dispatch(now)

    def _end(self, r: Replica, now: float) -> None:
        r.ended = now
        self.billed_seconds += now - r.created
        del self.replicas[r.id]

    # -- events --------------------------------------------------------------------------
    def advance(self, t: float) -> None:
        """Process every arrival, completion and replica start up to time `t`."""
        if self.fast:
            advance_one_unit(self, t)
            return
        arr, n = self.arr, len(self.arr)
        pending, completions = self.pending_ready, self.completions
        while True:
            ta = arr[self.next_arrival] if self.next_arrival < n else INF
            tc = completions[0][0] if completions else INF
            tr = pending[0][0] if pending else INF
            tmin = ta if ta < tc else tc
            if tr < tmin:
                tmin = tr
            if tmin > t:
                break
            dt = tmin - self.clock  # integrate busy and ready units (inlined: hot loop)
            if dt > 0:
                self.busy_area += self.busy_units * dt
                self.ready_area += self.ready_units * dt
                self.clock = tmin
            if tr == tmin:
                _, rid = heapq.heappop(pending)
                r = self.replicas.get(rid)
                if r is not None and not r.draining:
                    self.ready_units += self.per
                    r.up = True
                    self.up_count += 1
                    self._list(r)
                    self._dispatch(tmin)
            elif tc == tmin:
                _, rid, item = heapq.heappop(completions)
                self._complete(rid, item, tmin)
            else:
                item = self.next_arrival
                self.next_arrival += 1
                self.queue.append(item)
                self.queued_units += self.units[item]
                self._dispatch(tmin)
        self._integrate(t)

    def _integrate(self, t: float) -> None:
        dt = t - self.clock
        if dt > 0:
            self.busy_area += self.busy_units * dt
            self.ready_area += self.ready_units * dt
            self.clock = t

    def _complete(self, rid: int, item: int, now: float) -> None:
        u = self.units[item]
        d = self.dur[item]
        self.busy_units -= u
        self.running -= 1
        self.done_service += d * u
        recent = self.recent_service
        recent.append((now, d))
        self.recent_sum += d
        r = self.replicas[rid]
        r.busy -= u
        if r.draining:
            if r.busy == 0:
                self._end(r, now)
            return
        self._list(r)
        if self.queue:
            self._dispatch(now)

    def _list(self, r: Replica) -> None:
        if not r.listed:
            r.listed = True
            heapq.heappush(self.free, r.id)

    def _start(self, item: int, r: Replica, now: float) -> None:
        u = self.units[item]
        r.busy += u
        self.busy_units += u
        self.running += 1
        self.queued_units -= u
        self.start[item] = now
        heapq.heappush(self.completions, (now + self.dur[item], r.id, item))

    def _dispatch(self, now: float) -> None:
        """Start queued work on free units."""
        queue = self.queue
        if not queue:
            return
        if self.unit_one:
            free, replicas, per = self.free, self.replicas, self.per
            while queue and free:
                r = replicas.get(free[0])
                if r is None or r.draining or r.ready_at > now or r.busy >= per:
                    heapq.heappop(free)
                    if r is not None:
                        r.listed = False
                    continue
                self._start(queue.popleft(), r, now)
                if r.busy >= per:
                    heapq.heappop(free)
                    r.listed = False
            return
        self._dispatch_jobs(now)

    def _dispatch_jobs(self, now: float) -> None:
        nodes = sorted(
            (
                r
                for r in self.replicas.values()
                if not r.draining and r.ready_at <= now and r.busy < self.per
            ),
            key=lambda r: r.id,
        )
        if not nodes:
            return
        kept: deque[int] = deque()
        most_free = max(self.per - r.busy for r in nodes)
        while self.queue:
            item = self.queue.popleft()
            u = self.units[item]
            if u > most_free:
                kept.append(item)
                continue
            for r in nodes:
                if self.per - r.busy >= u:
                    self._start(item, r, now)
                    break
            most_free = max((self.per - r.busy for r in nodes), default=0)
            if most_free == 0:
                break
        kept.extend(self.queue)
        self.queue = kept

    # -- signals -------------------------------------------------------------------------
    def signals(self, t: float) -> dict[str, float | None]:
        """What a metrics system would show at `t` (after the configured delay)."""
        snap = self._measure(t)
        if self.delay <= 0:
            return snap
        self.snapshots.append((t, snap))
        while len(self.snapshots) > 1 and self.snapshots[1][0] <= t - self.delay:
            self.snapshots.popleft()
        first_t, first = self.snapshots[0]
        return first if first_t <= t - self.delay else dict.fromkeys(snap)

    def _measure(self, t: float) -> dict[str, float | None]:
        # After advance(t) (the clock is at t) exactly the arrivals up to t are processed.
        arrived = self.next_arrival if t == self.clock else bisect_right(self.arr, t)
        window = self.rate_window
        # Over the first window the rate is per second of what has been seen, as
        # Prometheus' rate() extrapolates a young series: dividing by the whole window
        # would show a ramp the trace does not have (and a forecast would chase it).
        span = min(window, t) if t > 0 else window
        start = t - window
        before = self._window_count  # == bisect_right(self.arr, start), by moving forward
        if start < self._window_from:
            before = bisect_right(self.arr, start)  # asked about an earlier time: search
        else:
            arr, n = self.arr, len(self.arr)
            while before < n and arr[before] <= start:
                before += 1
        self._window_count, self._window_from = before, start
        rate = (arrived - before) / span
        busy_da = self.busy_area - self._last_busy_area
        ready_da = self.ready_area - self._last_ready_area
        self._last_busy_area, self._last_ready_area = self.busy_area, self.ready_area
        recent = self.recent_service
        cutoff = t - self.service_window
        if recent and recent[0][0] <= cutoff:
            total = self.recent_sum  # a local in the loop; the same subtractions in order
            while recent and recent[0][0] <= cutoff:
                total -= recent.popleft()[1]
            self.recent_sum = total
        queue = float(len(self.queue))
        running = float(self.running)
        snap: dict[str, float | None] = {
            "queue": queue,
            "in_flight": running,
            "concurrency": queue + running,
            "demand": float(self.queued_units + self.busy_units),
            "arrival_rate": rate,
            "gpu_utilization": busy_da / ready_da if ready_da > 0 else None,
            "service_seconds": self.recent_sum / len(recent) if recent else None,
            "pending_gpus": float(self.queued_units),
            "running_gpus": float(self.busy_units),
        }
        if self.measure_busy:
            busy = 0  # a loop, not sum() over a generator: compiled, this is C
            for r in self.replicas.values():
                if r.busy > 0 and not r.draining:
                    busy += 1
            snap["busy_replicas"] = float(busy)
        return snap

    # -- accounting ----------------------------------------------------------------------
    def billed_replica_seconds(self, now: float) -> float:
        return self.billed_seconds + sum(now - r.created for r in self.replicas.values())

    def idle(self) -> bool:
        return not self.queue and self.running == 0 and self.next_arrival >= len(self.arr)
