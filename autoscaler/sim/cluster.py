"""The simulated world: a fleet of replicas (or nodes) with slots, and work that queues.

One model serves both workloads the simulator knows:
- LLM serving: a replica has `slots_per_replica` slots; a request holds one for its service
  time;
- GPU batch: a node's slots are its GPUs; a job holds `num_gpu` of one node (first fit over
  nodes, oldest first; a job that does not fit does not block smaller ones behind it, as
  the Kubernetes scheduler behaves).

The replicas are a `Fleet` of the simulated cloud (autoscaler/providers/simulated.py):
billed from the moment they are requested, ready `startup` seconds later, scaled in
starting ones first, then idle ones (newest first), then busy ones (least busy first),
which drain: they take no new work, finish what they hold and are billed until then
(running work, a request or a batch job, is never killed).

Signals are what production would see: queue length, work in flight, arrival rate over a
window, GPU utilization (busy share of ready slots, averaged over the last interval),
measured service time, and optionally a delay before they are visible. `quiet` says
whether a later tick would see exactly what the last one saw, so the engine can skip it.

Requests that arrive while no replica is ready (`AtZero`): GPU batch jobs queue as pending
pods (`QUEUED`); an LLM request with nothing in front of the pool is lost (`LOST_AT_ZERO`:
the connection is refused); with an activator in front (ours, or Knative's under the KPA)
it is held (`AtZero.held`) until a replica is ready, then joins the queue in arrival order. A
held request is lost as timed out once held longer than `hold_timeout` (504) and rejected
when `max_queue` are already held (503). Held requests are waiting work: they count in the
`held` signal (the activator's count) and in `concurrency` and `demand` (as Knative's
activator reports them to the KPA), not in `queue`, which is the serving engine's own (what
vLLM reports). `arrival_rate` counts every arrival, lost ones too (as a gateway sees them).
A cold start is a replica requested while the pool had none (not counting draining ones);
its time is kept.

One event loop (`advance`) over plain lists and heaps: nothing here allocates per request
beyond a heap entry (and, at zero ready, a deque entry). It never reads a clock: time is
the `t` it is given.
"""

from __future__ import annotations

import heapq
import math
from bisect import bisect_right
from collections import deque
from collections.abc import Collection
from dataclasses import dataclass

import numpy as np

from autoscaler.providers.simulated import Fleet, Replica

INF = math.inf

# What became of a request that arrived while no replica was ready (`Cluster.fate`, one
# byte per request; 0 for every other request).
AT_ZERO = 1  # arrived at zero ready and waited: queued (batch) or held by an activator
LOST = 2  # no activator: the connection was refused
REJECTED = 3  # the activator's queue was full (503)
TIMED_OUT = 4  # held longer than the activator's hold_timeout (504)


@dataclass(frozen=True)
class AtZero:
    """What happens to a request that arrives while the pool has no ready replica."""

    mode: str  # "queued" (batch jobs: pending pods), "lost" (no activator), "held"
    max_queue: int = 0
    hold_timeout: float = INF

    @classmethod
    def held(cls, max_queue: int, hold_timeout: float) -> AtZero:
        return cls("held", max_queue, hold_timeout)


QUEUED = AtZero("queued")
LOST_AT_ZERO = AtZero("lost")


class Cluster(Fleet):
    """Replicas, queued and running work, and the signals they produce."""

    def __init__(
        self,
        arrivals: np.ndarray,
        durations: np.ndarray,
        slots_held: np.ndarray,
        slots_per_replica: int,
        startup_seconds: float,
        rate_window_seconds: float = 60.0,
        service_window_seconds: float = 300.0,
        signal_delay_seconds: float = 0.0,
        name: str = "r",
        at_zero: AtZero = QUEUED,
    ) -> None:
        if len(slots_held) and int(slots_held.max()) > slots_per_replica:
            raise ValueError(
                f"a job needs {int(slots_held.max())} slots but a replica has "
                f"{slots_per_replica}; raise gpus_per_node (or slots_per_replica)"
            )
        super().__init__(startup_seconds, slots_per_replica, name)
        self.arr = arrivals.tolist()
        self.dur = durations.tolist()
        self.held = slots_held.tolist()  # slots each request (job) holds while it runs
        # Every request holds at most one slot (LLM serving): any free slot fits the next
        # one, so replicas with a free slot are kept in a heap instead of searched.
        self.one_slot = bool(len(slots_held) == 0 or int(slots_held.max()) == 1)
        self.rate_window = rate_window_seconds
        self.service_window = service_window_seconds
        self.delay = signal_delay_seconds
        self.start = [math.nan] * len(self.arr)
        self.next_arrival = 0
        self.queue: deque[int] = deque()
        self.queued_slots = 0
        self.completions: list[tuple[float, int, int]] = []  # (end, replica id, item), a heap
        self.free: list[int] = []  # ids of replicas with a free slot (lazy; one-slot work)
        self.busy_slots = 0
        self.running = 0
        self.ready_slots = 0
        self.busy_area = 0.0
        self.ready_area = 0.0
        self.done_service = 0.0  # slot-seconds of completed work
        self.recent_service: deque[tuple[float, float]] = deque()
        self.recent_sum = 0.0
        self.snapshots: deque[tuple[float, dict[str, float | None]]] = deque()
        self._last_busy_area = 0.0
        self._last_ready_area = 0.0
        self._last_utilization: float | None = None
        # Arrivals at or before the rate window's start, and that start: it only moves
        # forward as the clock does, so the count is kept, not searched for (see _measure).
        self._window_count = 0
        self._window_from = -INF
        # `busy_replicas` walks the replicas: measured only when a policy asks for it.
        self.measure_busy = False
        # Requests at zero ready (see AT_ZERO): only those arrivals do any of this work.
        self.at_zero = at_zero
        self._lose = at_zero.mode == "lost"
        self._hold = at_zero.mode == "held"
        self.hold_timeout = at_zero.hold_timeout
        self.max_queue = at_zero.max_queue
        self.fate = bytearray(len(self.arr))
        self.holding: deque[int] = deque()  # held by the activator, in arrival order
        self.lost = self.rejected = self.timed_out = 0
        self.cold_start_times: list[float] = []

    # -- scale-out and scale-in --------------------------------------------------------
    def add(self, count: int, now: float, ready: bool = False) -> None:
        if count > 0 and self.live_count == 0 and not ready:
            self.cold_start_times.append(now)  # requested while the pool had none
        super().add(count, now, ready)

    def retire(self, replicas: Collection[Replica], now: float) -> None:
        for r in replicas:
            if r.ready_at <= now:
                self.ready_slots -= self.slots_per_replica
        super().retire(replicas, now)
        self._dispatch(now)

    # -- events ------------------------------------------------------------------------
    def advance(self, t: float) -> None:
        """Process every arrival, completion and replica start up to time `t`, in time order
        (at equal times: starts, then completions, then arrivals)."""
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
            dt = tmin - self.clock  # _integrate(tmin), written out: this runs per event
            if dt > 0:
                self.busy_area += self.busy_slots * dt
                self.ready_area += self.ready_slots * dt
                self.clock = tmin
            if tr == tmin:
                _, rid = heapq.heappop(pending)
                r = self.replicas.get(rid)
                if r is not None and not r.draining:
                    self.ready_slots += self.slots_per_replica
                    self._mark_ready(r)
                    self._list(r)
                    if self.holding:
                        self._release(tmin)
                    self._dispatch(tmin)
            elif tc == tmin:
                _, rid, item = heapq.heappop(completions)
                self._complete(rid, item, tmin)
            else:
                item = self.next_arrival
                self.next_arrival += 1
                if self.up_count == 0 and not self._arrive_at_zero(item, tmin):
                    continue
                self.queue.append(item)
                self.queued_slots += self.held[item]
                self._dispatch(tmin)
        if self.holding:
            self._expire(t)
        self._integrate(t)

    # -- requests at zero ready ----------------------------------------------------------
    def _arrive_at_zero(self, item: int, now: float) -> bool:
        """A request arriving while no replica is ready; whether it joins the queue."""
        if self._lose:
            self.fate[item] = LOST
            self.lost += 1
            return False
        if self._hold:
            holding = self.holding
            if holding:
                self._expire(now)
            if len(holding) >= self.max_queue:
                self.fate[item] = REJECTED
                self.rejected += 1
                return False
            self.fate[item] = AT_ZERO
            holding.append(item)
            self.queued_slots += self.held[item]
            return False
        self.fate[item] = AT_ZERO
        return True

    def _expire(self, now: float) -> None:
        """Held requests held longer than the hold timeout by `now` are lost (504)."""
        holding, arr, timeout = self.holding, self.arr, self.hold_timeout
        while holding and arr[holding[0]] + timeout < now:
            item = holding.popleft()
            self.fate[item] = TIMED_OUT
            self.timed_out += 1
            self.queued_slots -= self.held[item]

    def _release(self, now: float) -> None:
        """A replica is ready: what the activator holds goes on, in arrival order."""
        self._expire(now)
        self.queue.extend(self.holding)
        self.holding.clear()

    def _integrate(self, t: float) -> None:
        """Busy and ready slot-seconds up to `t` (GPU utilization is their ratio)."""
        dt = t - self.clock
        if dt > 0:
            self.busy_area += self.busy_slots * dt
            self.ready_area += self.ready_slots * dt
            self.clock = t

    def _complete(self, rid: int, item: int, now: float) -> None:
        held = self.held[item]
        duration = self.dur[item]
        self.busy_slots -= held
        self.running -= 1
        self.done_service += duration * held
        self.recent_service.append((now, duration))
        self.recent_sum += duration
        r = self.replicas[rid]
        r.busy -= held
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
        held = self.held[item]
        r.busy += held
        self.busy_slots += held
        self.running += 1
        self.queued_slots -= held
        self.start[item] = now
        heapq.heappush(self.completions, (now + self.dur[item], r.id, item))

    def _dispatch(self, now: float) -> None:
        """Start queued work on free slots (lowest replica id first)."""
        queue = self.queue
        if not queue:
            return
        if not self.one_slot:
            self._dispatch_jobs(now)
            return
        free, replicas, slots = self.free, self.replicas, self.slots_per_replica
        while queue and free:
            r = replicas.get(free[0])
            if r is None or r.draining or r.ready_at > now or r.busy >= slots:
                heapq.heappop(free)  # gone, draining or full since it was listed
                if r is not None:
                    r.listed = False
                continue
            self._start(queue.popleft(), r, now)
            if r.busy >= slots:
                heapq.heappop(free)
                r.listed = False

    def _dispatch_jobs(self, now: float) -> None:
        slots = self.slots_per_replica
        nodes = sorted(
            (
                r
                for r in self.replicas.values()
                if not r.draining and r.ready_at <= now and r.busy < slots
            ),
            key=lambda r: r.id,
        )
        if not nodes:
            return
        kept: deque[int] = deque()
        most_free = max(slots - r.busy for r in nodes)
        while self.queue:
            item = self.queue.popleft()
            held = self.held[item]
            if held > most_free:
                kept.append(item)
                continue
            for r in nodes:
                if slots - r.busy >= held:
                    self._start(item, r, now)
                    break
            most_free = max((slots - r.busy for r in nodes), default=0)
            if most_free == 0:
                break
        kept.extend(self.queue)
        self.queue = kept

    # -- signals -----------------------------------------------------------------------
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
        utilization = busy_da / ready_da if ready_da > 0 else None
        self._last_utilization = utilization
        recent = self.recent_service
        cutoff = t - self.service_window
        while recent and recent[0][0] <= cutoff:
            self.recent_sum -= recent.popleft()[1]
        queue = float(len(self.queue))
        held = float(len(self.holding))
        running = float(self.running)
        snap: dict[str, float | None] = {
            "queue": queue,
            "held": held,
            "in_flight": running,
            "concurrency": queue + held + running,
            "demand": float(self.queued_slots + self.busy_slots),
            "arrival_rate": rate,
            "gpu_utilization": utilization,
            "service_seconds": self.recent_sum / len(recent) if recent else None,
            "pending_gpus": float(self.queued_slots),
            "running_gpus": float(self.busy_slots),
        }
        if self.measure_busy:
            snap["busy_replicas"] = float(
                sum(1 for r in self.replicas.values() if r.busy > 0 and not r.draining)
            )
        return snap

    def quiet(self, t: float, read: Collection[str]) -> bool:
        """Whether a tick at `t` would see the same capacity and the same values of the
        signals in `read` as the last one, measured at `self.clock`: no arrival, completion
        or replica start by `t`, no arrival or completion leaving its signal's window, no
        GPU-utilization ratio that could move, and no delayed view."""
        if self.delay > 0:
            return False
        arrival = self.arr[self.next_arrival] if self.next_arrival < len(self.arr) else INF
        completion = self.completions[0][0] if self.completions else INF
        start = self.pending_ready[0][0] if self.pending_ready else INF
        if t >= arrival or t >= completion or t >= start:
            return False
        if self.holding and self.arr[self.holding[0]] + self.hold_timeout < t:
            return False  # a held request times out
        if "arrival_rate" in read and self.next_arrival > self._window_count:
            if t < self.rate_window:
                return False  # a young window: the rate's divisor grows with time
            if t - self.rate_window >= self.arr[self._window_count]:
                return False  # an arrival leaves the window
        recent = self.recent_service
        if "service_seconds" in read and recent and t - self.service_window >= recent[0][0]:
            return False  # a completion leaves the window
        if "gpu_utilization" in read:
            # Busy slots make the ratio wobble in its last bits; with none it is exactly 0
            # (None with no ready slot), the same as last time only if it was that then.
            if self.busy_slots > 0:
                return False
            return self._last_utilization == (0.0 if self.ready_slots > 0 else None)
        return True

    # -- accounting --------------------------------------------------------------------
    @property
    def waiting(self) -> int:
        """Requests waiting for a slot: queued, and held by an activator."""
        return len(self.queue) + len(self.holding)

    def idle(self) -> bool:
        return (
            not self.queue
            and not self.holding
            and self.running == 0
            and self.next_arrival >= len(self.arr)
        )
