"""Gangs of GPU workers on launched nodes: launch-what-fits against all-or-nothing (issue 17).

A small discrete-event model, separate from the serving/batch cluster (cluster.py), of GPU
nodes launched for waiting gang workers. A *gang* is a job whose workers must all run
before any of them does useful work (distributed training: every rank waits at the first
collective). Nodes have `gpus_per_node` GPUs, take `startup` seconds from launch to ready,
and are paid for from launch until they are terminated, `idle_timeout` seconds after the
last worker left (unless waiting workers could still use them).

Gang rule for the Alibaba GPU trace (`gangs_from_trace`; the trace has no job or group id,
so tasks are not grouped): each task is one job; a task asking for more GPUs than one node
has (num_gpu > gpus_per_node) is a gang of ceil(num_gpu / gpus_per_node) workers of
gpus_per_node GPUs each (the last one takes the remainder), one worker per node; any other
task is a one-worker job of num_gpu GPUs. Fractional tasks (gpu_milli < 1000) take a whole
GPU, as the simulator's trace reader counts them. The trace asks for at most 8 GPUs, so on
8-GPU nodes there are no gangs; on 1-GPU nodes (g6.xlarge) every multi-GPU task is one.

Two modes, same FIFO order (best effort: a job that cannot be placed does not block later
ones) and the same node lifecycle:
- `launch-what-fits` (today, as kube-scheduler and a node provisioner without gangs do):
  each worker is bound to free GPUs of a ready node as soon as there are some (oldest pod
  first; a gang's pods are created `pod_interval` seconds apart, so the pods of gangs that
  arrive together interleave, as a job controller creates them), and nodes
  are launched for the unbound workers up to what the cap and the cloud allow, even when
  that is fewer than a gang needs. Workers bound while their gang is incomplete hold GPUs
  doing nothing: that is the *wasted GPU time from partial allocations*. Two gangs can hold
  parts of a capped pool each and wait on each other forever: a *deadlock*, detected when
  nothing runs, nothing boots, the pool is at `max_nodes` and an incomplete gang holds
  GPUs. After `requeue_after` seconds the newest incomplete gang releases its workers and
  waits again behind the others (Kueue's waitForPodsReady requeue does this); None leaves
  it stuck.
- `all-or-nothing` (ours): a gang's workers are bound together when all fit on ready
  nodes, never some of them; nodes are launched for a whole gang at once or not at all
  (the launch is all-or-nothing when the cap or a shortage leaves too little).

Capacity: `max_nodes` caps the nodes up or booting; a shortage `(start, end, spare)` is an
offering short for a while (as the ICE cache records): in [start, end) at most `spare`
more nodes can be launched. Time is split exactly into GPU time booting, idle (up, nothing
bound), held by incomplete gangs (wasted) and useful (running jobs), which add up to the
GPU time provisioned. Under all-or-nothing, ready nodes kept for a gang whose other nodes
still boot count as idle, so compare provisioned GPU-hours too, not only the waste.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .traces import Trace

MODES = ("launch-what-fits", "all-or-nothing")
# Event kinds, in the order they are handled at one instant: ends free GPUs first.
_END, _READY, _EDGE, _ARRIVE, _IDLE, _REQUEUE = range(6)


@dataclass(frozen=True)
class Job:
    """One job: `workers` lists the GPUs each worker needs (one node each, or a share of
    one); more than one worker makes it a gang."""

    arrival: float
    duration: float
    workers: tuple[int, ...]

    @property
    def gpus(self) -> int:
        return sum(self.workers)


def gangs_from_trace(trace: Trace, gpus_per_node: int) -> list[Job]:
    """The trace's tasks as jobs, by the gang rule in the module docstring."""
    if trace.units is None or trace.service_seconds is None:
        raise ValueError(f"{trace.name}: not a job trace (no num_gpu and durations)")
    jobs = []
    for t, d, k in zip(trace.arrivals, trace.service_seconds, trace.units, strict=True):
        k = int(k)
        workers = (k,) if k <= gpus_per_node else split_gpus(k, gpus_per_node)
        jobs.append(Job(float(t), float(d), workers))
    return jobs


def split_gpus(gpus: int, gpus_per_node: int) -> tuple[int, ...]:
    """`gpus` as ceil(gpus / gpus_per_node) workers of gpus_per_node (the last: the rest)."""
    whole, rest = divmod(gpus, gpus_per_node)
    return (gpus_per_node,) * whole + ((rest,) if rest else ())


@dataclass
class _Node:
    id: int
    launched: float
    ready: bool = False
    free: int = 0
    workers: int = 0  # bound workers
    idle_since: float | None = None


@dataclass
class _Gang:
    id: int
    job: Job
    bound: list[tuple[int, int]] = field(default_factory=list)  # (node id, GPUs)
    start: float | None = None
    end: float | None = None
    queued: float = 0.0  # when its pods were created: arrival, or the last requeue

    @property
    def unbound(self) -> tuple[int, ...]:
        return self.job.workers[len(self.bound) :]

    @property
    def held(self) -> int:
        return sum(g for _, g in self.bound)


@dataclass(frozen=True)
class Deadlock:
    """Gangs holding GPUs and waiting on each other with the pool at its cap."""

    at: float
    gangs: tuple[int, ...]  # job indices
    held_gpus: int


@dataclass
class GangResult:
    mode: str
    jobs: int
    gangs: int
    finished: int
    finished_gangs: int
    unrunnable: int  # gangs larger than max_nodes can ever hold
    gpu_hours: float  # provisioned: booting + idle + wasted + useful
    useful_gpu_hours: float
    wasted_gpu_hours: float  # held by workers of incomplete gangs
    idle_gpu_hours: float
    booting_gpu_hours: float
    nodes_launched: int
    peak_nodes: int
    gang_wait_p50_s: float | None
    gang_wait_p99_s: float | None
    job_wait_p50_s: float | None
    job_wait_p99_s: float | None
    deadlocks: list[Deadlock]
    requeues: int
    end_s: float

    def summary(self) -> dict[str, Any]:
        """Plain values for JSON and tables."""
        out = {k: v for k, v in self.__dict__.items() if k != "deadlocks"}
        out["deadlocks"] = len(self.deadlocks)
        for k, v in out.items():
            if isinstance(v, float):
                out[k] = round(v, 3)
        return out


def _quantile(values: list[float], q: float) -> float | None:
    return float(np.quantile(values, q)) if values else None


class GangSim:
    """One run; `run()` returns its GangResult."""

    def __init__(
        self,
        jobs: Sequence[Job],
        mode: str,
        *,
        gpus_per_node: int,
        max_nodes: int,
        startup: float = 240.0,
        idle_timeout: float = 60.0,
        shortages: Sequence[tuple[float, float, int]] = (),
        requeue_after: float | None = 300.0,
        pod_interval: float = 1.0,
        until: float | None = None,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        if gpus_per_node < 1 or max_nodes < 1:
            raise ValueError("gpus_per_node and max_nodes must be >= 1")
        for job in jobs:
            if any(w < 1 or w > gpus_per_node for w in job.workers):
                raise ValueError(f"a worker needs 1..{gpus_per_node} GPUs: {job}")
        self.mode, self.g, self.max_nodes = mode, gpus_per_node, max_nodes
        self.startup, self.idle_timeout = startup, idle_timeout
        self.shortages = sorted(shortages)
        self.requeue_after, self.until = requeue_after, until
        self.pod_interval = pod_interval
        self.gangs = [_Gang(i, j, queued=j.arrival) for i, j in enumerate(jobs)]
        self.t = 0.0
        self.nodes: dict[int, _Node] = {}
        self.next_node = 0
        self.waiting: list[_Gang] = []  # FIFO by arrival
        self.events: list[tuple[float, int, int, int]] = []
        self.seq = 0
        self.spare: int | None = None  # launches left in the current shortage
        # GPU-second integrals and the rates they grow at.
        self.booting = self.idle = self.wasted = self.useful = 0.0
        self.launched = self.peak = self.requeues = self.unrunnable = 0
        self.deadlocks: list[Deadlock] = []
        self.stuck = False  # inside a detected deadlock
        self.stuck_gangs: tuple[int, ...] = ()  # the incomplete gangs of the last one
        self.requeue_pending = False
        self.running_gpus = self.running_jobs = 0

    # -- events -------------------------------------------------------------------------

    def _push(self, t: float, kind: int, ref: int) -> None:
        self.seq += 1
        heapq.heappush(self.events, (t, kind, self.seq, ref))

    def _advance(self, t: float) -> None:
        dt = t - self.t
        if dt > 0:
            booting = sum(self.g for n in self.nodes.values() if not n.ready)
            held = sum(x.held for x in self.waiting)
            running = self.running_gpus
            up = sum(self.g for n in self.nodes.values() if n.ready)
            self.booting += booting * dt
            self.wasted += held * dt
            self.useful += running * dt
            self.idle += (up - held - running) * dt
        self.t = t

    def run(self) -> GangResult:
        cap = self.max_nodes * self.g
        for gang in self.gangs:
            if len(gang.job.workers) > self.max_nodes or gang.job.gpus > cap:
                self.unrunnable += 1
            else:
                self._push(gang.job.arrival, _ARRIVE, gang.id)
        for i, (start, end, _) in enumerate(self.shortages):
            self._push(start, _EDGE, i)
            self._push(end, _EDGE, -1 - i)
        while self.events:
            t, kind, _, ref = heapq.heappop(self.events)
            if self.until is not None and t > self.until:
                break
            self._advance(t)
            self._handle(kind, ref)
            # Handle every event of this instant before placing anything.
            while self.events and self.events[0][0] == t:
                _, kind, _, ref = heapq.heappop(self.events)
                self._handle(kind, ref)
            self._schedule()
        if self.until is not None:
            self._advance(max(self.until, self.t))
        return self._result()

    def _handle(self, kind: int, ref: int) -> None:
        if kind == _ARRIVE:
            self.waiting.append(self.gangs[ref])
        elif kind == _END:
            gang = self.gangs[ref]
            gang.end = self.t
            self.running_gpus -= gang.job.gpus
            self.running_jobs -= 1
            for node_id, gpus in gang.bound:
                self._unbind(node_id, gpus)
        elif kind == _READY:
            node = self.nodes[ref]
            node.ready, node.free, node.idle_since = True, self.g, self.t
            self._push(self.t + self.idle_timeout, _IDLE, ref)
        elif kind == _EDGE:
            self.spare = self.shortages[ref][2] if ref >= 0 else None
        elif kind == _IDLE:
            self._maybe_terminate(ref)
        elif kind == _REQUEUE:
            self.requeue_pending = False
            if self.stuck:
                self._requeue()

    def _unbind(self, node_id: int, gpus: int) -> None:
        node = self.nodes[node_id]
        node.free += gpus
        node.workers -= 1
        if node.workers == 0:
            node.idle_since = self.t
            self._push(self.t + self.idle_timeout, _IDLE, node_id)

    def _maybe_terminate(self, node_id: int) -> None:
        node = self.nodes.get(node_id)
        if node is None or node.workers or node.idle_since is None:
            return
        if self.t < node.idle_since + self.idle_timeout:
            return  # idle again since; a later check decides
        # Keep it while waiting workers need more than the other free and booting GPUs.
        wanted = sum(sum(x.unbound) for x in self.waiting)
        others = sum(
            (n.free if n.ready else self.g) for n in self.nodes.values() if n.id != node_id
        )
        if wanted > others:
            node.idle_since = self.t  # kept for them; looked at again later
            self._push(self.t + self.idle_timeout, _IDLE, node_id)
            return
        del self.nodes[node_id]

    # -- placement ----------------------------------------------------------------------

    def _fit(self, free: dict[int, int], gpus: int) -> int | None:
        """Best fit: the node with the fewest free GPUs that are enough."""
        best = None
        for node_id, f in free.items():
            if f >= gpus and (best is None or f < free[best]):
                best = node_id
        return best

    def _pods(self) -> list[tuple[_Gang, int]]:
        """Unbound workers in the order kube-scheduler takes them under launch-what-fits:
        oldest pod first, a gang's pods created `pod_interval` apart, so the pods of gangs
        that arrive together interleave."""
        pods = [
            (gang.queued + (len(gang.bound) + i) * self.pod_interval, gang.id, gang, gpus)
            for gang in self.waiting
            for i, gpus in enumerate(gang.unbound)
        ]
        pods.sort(key=lambda p: (p[0], p[1]))
        return [(gang, gpus) for _, _, gang, gpus in pods]

    def _bind(self) -> None:
        free = {n.id: n.free for n in self.nodes.values() if n.ready and n.free}
        if not free or not self.waiting:
            return
        if self.mode == "launch-what-fits":
            for gang, gpus in self._pods():
                node_id = self._fit(free, gpus)
                if node_id is not None:
                    free[node_id] -= gpus
                    self._bind_worker(gang, node_id, gpus)
        else:
            for gang in self.waiting:
                trial = dict(free)
                plan: list[tuple[int, int]] = []
                for gpus in gang.unbound:
                    node_id = self._fit(trial, gpus)
                    if node_id is None:
                        break
                    trial[node_id] -= gpus
                    plan.append((node_id, gpus))
                if len(plan) == len(gang.unbound):
                    free = trial
                    for node_id, gpus in plan:
                        self._bind_worker(gang, node_id, gpus)
        for gang in [x for x in self.waiting if not x.unbound]:
            self.waiting.remove(gang)
            gang.start = self.t
            self.running_gpus += gang.job.gpus
            self.running_jobs += 1
            self._push(self.t + gang.job.duration, _END, gang.id)

    def _bind_worker(self, gang: _Gang, node_id: int, gpus: int) -> None:
        node = self.nodes[node_id]
        node.free -= gpus
        node.workers += 1
        node.idle_since = None
        gang.bound.append((node_id, gpus))

    def _room(self) -> int:
        room = self.max_nodes - len(self.nodes)
        return room if self.spare is None else min(room, self.spare)

    def _launch(self, count: int) -> None:
        for _ in range(count):
            node = _Node(self.next_node, self.t)
            self.next_node += 1
            self.nodes[node.id] = node
            self._push(self.t + self.startup, _READY, node.id)
        self.launched += count
        if self.spare is not None:
            self.spare -= count
        self.peak = max(self.peak, len(self.nodes))

    def _new_nodes(self, workers: Sequence[int], capacity: list[int]) -> int:
        """Nodes to add for `workers` after first-fitting them into `capacity` (free GPUs of
        nodes already there; updated in place, new nodes appended)."""
        added = 0
        for gpus in workers:
            for i, f in enumerate(capacity):
                if f >= gpus:
                    capacity[i] -= gpus
                    break
            else:
                capacity.append(self.g - gpus)
                added += 1
        return added

    def _provision(self) -> None:
        room = self._room()
        if room <= 0 or not self.waiting:
            return
        booting = [self.g for n in self.nodes.values() if not n.ready]
        if self.mode == "launch-what-fits":
            # Every unbound worker, oldest first; launch what the cap and the cloud allow.
            workers = [gpus for _, gpus in self._pods()]
            self._launch(min(room, self._new_nodes(workers, booting)))
            return
        ready = [n.free for n in self.nodes.values() if n.ready and n.free]
        capacity = ready + booting
        for gang in self.waiting:
            trial = list(capacity)
            need = self._new_nodes(gang.unbound, trial)
            if need > room:
                continue  # all or nothing: this gang gets no node now
            capacity = trial
            room -= need
            self._launch(need)

    def _schedule(self) -> None:
        self._bind()
        self._provision()
        self._detect()

    # -- deadlocks ----------------------------------------------------------------------

    def _detect(self) -> None:
        partial = [x for x in self.waiting if x.bound]
        stuck = (
            bool(partial)
            and len(self.nodes) >= self.max_nodes
            and all(n.ready for n in self.nodes.values())
            and not self.running_jobs
        )
        if stuck and not self.stuck:
            ids = tuple(x.id for x in partial)
            if ids != self.stuck_gangs:  # not the same one seen again after a short job
                self.deadlocks.append(Deadlock(self.t, ids, sum(x.held for x in partial)))
                self.stuck_gangs = ids
            if self.requeue_after is not None and not self.requeue_pending:
                self.requeue_pending = True
                self._push(self.t + self.requeue_after, _REQUEUE, 0)
        self.stuck = stuck

    def _requeue(self) -> None:
        partial = [x for x in self.waiting if x.bound]
        gang = max(partial, key=lambda x: (x.job.arrival, x.id))
        for node_id, gpus in gang.bound:
            self._unbind(node_id, gpus)
        gang.bound = []
        gang.queued = self.t  # its pods are created again, behind those already waiting
        self.waiting.remove(gang)
        self.waiting.append(gang)
        self.requeues += 1
        self.stuck = False

    # -- result -------------------------------------------------------------------------

    def _result(self) -> GangResult:
        waits = [x.start - x.job.arrival for x in self.gangs if x.start is not None]
        gangs = [x for x in self.gangs if len(x.job.workers) > 1]
        gang_waits = [x.start - x.job.arrival for x in gangs if x.start is not None]
        hours = 1 / 3600
        return GangResult(
            mode=self.mode,
            jobs=len(self.gangs),
            gangs=len(gangs),
            finished=sum(x.end is not None for x in self.gangs),
            finished_gangs=sum(x.end is not None for x in gangs),
            unrunnable=self.unrunnable,
            gpu_hours=(self.booting + self.idle + self.wasted + self.useful) * hours,
            useful_gpu_hours=self.useful * hours,
            wasted_gpu_hours=self.wasted * hours,
            idle_gpu_hours=self.idle * hours,
            booting_gpu_hours=self.booting * hours,
            nodes_launched=self.launched,
            peak_nodes=self.peak,
            gang_wait_p50_s=_quantile(gang_waits, 0.5),
            gang_wait_p99_s=_quantile(gang_waits, 0.99),
            job_wait_p50_s=_quantile(waits, 0.5),
            job_wait_p99_s=_quantile(waits, 0.99),
            deadlocks=self.deadlocks,
            requeues=self.requeues,
            end_s=self.t,
        )


def simulate_gangs(jobs: Sequence[Job], mode: str, **options: Any) -> GangResult:
    """Run `jobs` through the gang model in `mode`; options as GangSim takes them."""
    return GangSim(jobs, mode, **options).run()


def compare(jobs: Sequence[Job], **options: Any) -> dict[str, GangResult]:
    """Both modes on the same jobs and capacity."""
    return {mode: simulate_gangs(jobs, mode, **options) for mode in MODES}


def shortage_windows(
    span: float,
    seed: int,
    *,
    every: float = 12 * 3600.0,
    lasting: float = 3600.0,
    spare: tuple[int, int] = (0, 4),
) -> list[tuple[float, float, int]]:
    """Random shortages over `span` seconds: starts `every` seconds apart on average
    (exponential gaps), each `lasting` seconds on average (exponential), with a spare
    capacity drawn uniformly from `spare` (inclusive) nodes. Reproducible from `seed`."""
    rng = np.random.default_rng(seed)
    out: list[tuple[float, float, int]] = []
    t = float(rng.exponential(every))
    while t < span:
        length = max(60.0, float(rng.exponential(lasting)))
        out.append((t, t + length, int(rng.integers(spare[0], spare[1] + 1))))
        t += length + float(rng.exponential(every))
    return out
