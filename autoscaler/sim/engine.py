"""Replay a trace through one policy with the production controller tick.

A FakeClock, the cluster's signals as the signal source and the simulated provider over the
cluster: the controller, policy and planner are the same code that runs in production.
Nothing in them knows it is simulated, and nothing here changes what they decide.

Event-driven where that is provably the same: after a tick whose policy is stateless (its
recommendation a function of the signals alone) and whose decision holds the pool where
the policy itself puts it, every tick until the cluster's next change (an arrival, a
completion, a replica start, a value leaving a signal's window: `Cluster.quiet`) would see
the same signals and capacity and make the same decision. Such ticks are not run: the
clocks move, the cluster integrates its busy and ready time as before, and the timeline
repeats the row. The last quiet tick before a change does run, so the planner's memory
(its windows' timestamps) is what ticking every time would have left; its decision is
checked against the skipped ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from autoscaler.clock import FakeClock, stopwatch
from autoscaler.config import SIMULATED_SIGNALS, Config, ControllerSettings, Installation, Pool
from autoscaler.config.simulation import GpuBatchService
from autoscaler.config.targets import SimulatedTarget
from autoscaler.controller import Controller, TickResult
from autoscaler.planner import holds_steady
from autoscaler.providers.base import CapacityProvider
from autoscaler.providers.simulated import SimulatedProvider
from autoscaler.signals.base import SignalSource
from autoscaler.types import Decision

from .baselines import holds_at_zero
from .cluster import AT_ZERO, LOST, LOST_AT_ZERO, QUEUED, AtZero, Cluster
from .oracle import peak_need
from .signal_source import ClusterSignals
from .traces import Trace

START_MODES = ("warm", "cold")
"""How a replay begins: `warm` at the first window's peak need, `cold` at the pool's `min`."""


class SimulationError(ValueError):
    """A pool or trace the simulator cannot run; the message says what to change."""


@dataclass(frozen=True)
class Workload:
    """A trace turned into work for one pool's service model."""

    arrivals: np.ndarray
    durations: np.ndarray
    slots_held: np.ndarray
    """Slots each request (job) holds while it runs: 1 for LLM requests, GPUs for jobs."""
    slots_per_replica: int
    gpus_per_replica: int
    cost_per_hour: float
    startup_seconds: float
    wait_slo_seconds: float
    signal_delay_seconds: float
    batch: bool
    trace_name: str
    start: str = "warm"
    """How each replay begins (`simulation.start`): `warm` or `cold` (see `initial_replicas`)."""
    min_replicas: int = 0
    """The pool's `min`: the replicas ready at t=0 of a cold start."""

    @property
    def work_replica_seconds(self) -> float:
        return float(np.sum(self.durations * self.slots_held)) / self.slots_per_replica


def workload(pool: Pool, trace: Trace) -> Workload:
    sim = pool.simulation
    if sim is None:
        raise SimulationError(
            f"pool {pool.name!r} has no `simulation` block (service model, cost and wait SLO)"
        )
    service = sim.service
    if isinstance(service, GpuBatchService):
        if trace.service_seconds is None:
            raise SimulationError(
                f"pool {pool.name!r} is a gpu-batch pool but trace "
                f"{trace.name!r} has token counts, not job durations"
            )
        durations, slots, gpus = trace.service_seconds, service.gpus_per_node, service.gpus_per_node
        held = trace.unit_counts()
        if int(held.max()) > slots:
            raise SimulationError(
                f"trace {trace.name!r} has a job needing {int(held.max())} "
                f"GPUs; nodes have {slots} (simulation.service.gpus_per_node)"
            )
    else:
        durations = trace.durations(service.prefill_tokens_per_s, service.decode_tokens_per_s)
        held, slots = np.ones(len(trace), dtype=np.int64), service.slots_per_replica
        gpus = sim.gpus_per_replica
    return Workload(
        trace.arrivals,
        np.asarray(durations, dtype=float),
        held,
        slots,
        gpus,
        sim.cost_per_hour,
        pool.startup,
        sim.wait_slo,
        sim.signal_delay,
        isinstance(service, GpuBatchService),
        trace.name,
        sim.start,
        pool.min,
    )


def at_zero(pool: Pool, work: Workload, policy: Any) -> AtZero:
    """What becomes of a request that finds no replica ready: batch jobs queue as pending
    pods; LLM requests are held by an activator (the pool's `activator` section, or
    Knative's under the KPA: autoscaler/sim/baselines.py) or else lost."""
    if work.batch:
        return QUEUED
    spec = pool.activator
    own = (spec.max_queue, spec.hold_timeout) if spec is not None else None
    hold = holds_at_zero(getattr(policy, "type", ""), own)
    return AtZero.held(*hold) if hold is not None else LOST_AT_ZERO


@dataclass
class PolicyRun:
    """One policy's replay: its metrics and its timeline of decisions."""

    policy: str
    metrics: dict[str, Any]
    timeline: dict[str, list[Any]] = field(default_factory=dict)
    cold_start_times: list[float] = field(default_factory=list)
    """When each cold start began: a replica requested while the pool had none."""
    worst_wait_at: float | None = None
    """Arrival time (seconds) of the request that waited longest (the report marks it);
    None when no request was served or the run has no replay (the oracle)."""


def _sim_pool(pool: Pool, policy: Any) -> Pool:
    unknown = sorted(policy.signal_names() - set(SIMULATED_SIGNALS))
    if unknown:
        raise SimulationError(
            f"pool {pool.name!r}: the {policy.type} policy reads {', '.join(unknown)}, which "
            f"the simulator does not produce (it produces: {', '.join(SIMULATED_SIGNALS)})"
        )
    behavior = None if policy.owns_behavior else pool.behavior
    return pool.model_copy(
        update={"target": SimulatedTarget(), "signals": {}, "policy": policy, "behavior": behavior}
    )


def warm_window(work: Workload) -> float:
    """Seconds from t=0 whose peak need a warm start covers: a startup and a minute, the
    time before replicas the policy asks for at t=0 are ready, with a tick to spare."""
    return work.startup_seconds + 60.0


def initial_replicas(pool: Pool, policy: Any, work: Workload) -> int:
    """The replicas ready at t=0. Warm (the default), as a pool that has been running: the
    peak the work needs (without waiting) during the first startup window, and at least the
    bounds' and the policy's own floor (the HPA never runs below 1); so a `min: 0` pool may
    start at 11, and `min` changes nothing while the first window needs more. Cold: the
    floor alone, the pool's `min` (or the policy's own, which a pool under it never goes
    below); the rest are requested by the policy and are ready `startup` seconds later (a
    cold start at t=0 when the floor is 0). Every compared policy starts the same way."""
    floor = getattr(policy, "min_replicas", 0) or getattr(policy, "min_replica_count", 0)
    if work.start == "cold":
        return int(min(pool.max, max(pool.min, floor)))
    need = peak_need(
        work.arrivals, work.durations, work.slots_held, work.slots_per_replica, warm_window(work)
    )
    return int(min(pool.max, max(pool.min, floor, need)))


def start_note(pool: Pool, policy: Any, work: Workload) -> str:
    """One line saying how the replay begins (the pool's own policy), for the output."""
    ready = initial_replicas(pool, policy, work)
    if work.start == "cold":
        return (
            f"start: cold, {ready} replica(s) ready at t=0 (the pool's min {pool.min}, or "
            f"the policy's own floor); the rest start with the {work.startup_seconds:g}s "
            "startup delay"
        )
    return (
        f"start: warm at {ready} replica(s) (the first window's peak need, at least min "
        f"{pool.min}); --start cold (or simulation.start: cold) for a cold start"
    )


def sim_controller(
    pool: Pool,
    policy: Any,
    tick_seconds: float,
    provider: CapacityProvider,
    source: SignalSource,
    clock: FakeClock,
) -> Controller:
    """The production controller over `pool` run by `policy` as a simulated pool, ticking
    inline (no threads) with no recorder output."""
    config = Config(
        installation=Installation(id="simulation"),
        controller=ControllerSettings(interval=tick_seconds),
        pools=[_sim_pool(pool, policy)],
    )
    return Controller(
        config,
        {"simulated": provider},
        {"simulated": source},
        clock,
        recorder=_Quiet(),
        inline=True,
    )


def run_policy(
    pool: Pool,
    work: Workload,
    policy: Any,
    label: str,
    tick_seconds: float,
    max_tail_seconds: float = 3600.0,
    timeline: bool = True,
    skip_quiet_ticks: bool = True,
) -> PolicyRun:
    """Replay `work` through `policy` on `pool`; returns metrics and the timeline.
    `skip_quiet_ticks=False` runs every tick (the reference the skipping is tested against)."""
    elapsed = stopwatch()
    cluster = Cluster(
        work.arrivals,
        work.durations,
        work.slots_held,
        work.slots_per_replica,
        work.startup_seconds,
        signal_delay_seconds=work.signal_delay_seconds,
        name=pool.name,
        at_zero=at_zero(pool, work, policy),
    )
    ready = initial_replicas(pool, policy, work)
    if ready:
        cluster.add(ready, 0.0, ready=True)
    clock = FakeClock(0.0)
    source = ClusterSignals(cluster)
    provider = SimulatedProvider(clock, {pool.name: cluster})
    controller = sim_controller(pool, policy, tick_seconds, provider, source, clock)
    line: dict[str, list[Any]] = {k: [] for k in TIMELINE}
    # Plain floats (not numpy scalars) for the per-tick comparisons; the same values.
    last = float(work.arrivals[-1]) if len(work.arrivals) else -math.inf
    end_cap = last + max_tail_seconds if len(work.arrivals) else 0.0
    skipping = skip_quiet_ticks and policy.stateless
    actions = 0
    t = 0.0
    skipped_for: Decision | None = None  # the decision of the ticks skipped before this one
    while True:
        cluster.advance(t)
        result = controller.tick()
        if skipped_for is not None:
            _confirm(skipped_for, result)
        actions += len(result.actions)
        if timeline:
            _record(line, cluster, result, t)
        if (t >= last and cluster.idle()) or t >= end_cap:
            break
        steady = _steady(controller, result) if skipping else None
        t += tick_seconds
        clock.advance(tick_seconds)
        skipped_for = None
        if steady is None:
            continue
        read = source.read_names
        while (
            cluster.quiet(t + tick_seconds, read)  # not the last quiet tick: that one runs
            and cluster.quiet(t, read)
            and not ((t >= last and cluster.idle()) or t >= end_cap)
        ):
            cluster.advance(t)  # busy and ready time integrated tick by tick, as before
            if timeline:
                _repeat(line, t)
            t += tick_seconds
            clock.advance(tick_seconds)
            skipped_for = steady
    controller.close()
    metrics = measure(cluster, work, t, actions)
    metrics["policy"] = label
    metrics["wall_seconds"] = round(elapsed(), 3)
    return PolicyRun(
        label,
        metrics,
        line if timeline else {},
        list(cluster.cold_start_times),
        worst_wait_at(cluster, work, t),
    )


TIMELINE = ("t", "arrivals", "queue", "in_flight", "gpu_utilization", "current", "desired",
            "ready", "reason")  # fmt: skip


def _steady(controller: Controller, result: TickResult) -> Decision | None:
    """The tick's decision if the planner would make it again at any later time, given the
    same recommendation and capacity (`planner.holds_steady`), and nothing was acted on."""
    if len(result.decisions) != 1 or result.actions:
        return None
    decision = result.decisions[0]
    pool = decision.pool
    steady = holds_steady(controller.specs[pool], controller.memory[pool], decision)
    return decision if steady else None


def _confirm(skipped: Decision, result: TickResult) -> None:
    """The last quiet tick runs; it must decide what the skipped ones were taken to."""
    now = result.decisions[0] if len(result.decisions) == 1 else None
    if now is None or (now.current, now.recommended, now.desired, now.reason, now.stale) != (
        skipped.current, skipped.recommended, skipped.desired, skipped.reason, skipped.stale
    ):  # fmt: skip
        raise RuntimeError(
            f"skipped quiet ticks after t={skipped.at:g} assumed {skipped.reason!r}; "
            f"the next tick decided {now.reason if now else result.skipped!r}"
        )


def _repeat(line: dict[str, list[Any]], t: float) -> None:
    """The timeline row of a skipped tick: the last row, at `t`."""
    for key, column in line.items():
        column.append(t if key == "t" else column[-1])


class _Quiet:
    def record(self, decision: Any, action: Any) -> None:
        return None


def _record(line: dict[str, list[Any]], cluster: Cluster, result: TickResult, t: float) -> None:
    readings = result.readings
    pool = result.decisions[0].pool if result.decisions else ""
    util = readings.get((pool, "gpu_utilization"))
    line["t"].append(t)
    line["arrivals"].append(cluster.next_arrival)
    line["queue"].append(cluster.waiting)
    line["in_flight"].append(cluster.running)
    line["gpu_utilization"].append(util.value if util is not None else None)
    capacity = cluster.capacity(t)
    line["ready"].append(capacity.ready)
    if result.decisions:
        d = result.decisions[0]
        line["current"].append(d.current)
        line["desired"].append(d.desired)
        line["reason"].append(d.reason)
    else:
        line["current"].append(capacity.desired)
        line["desired"].append(capacity.desired)
        line["reason"].append(result.skipped.get(pool, "skipped"))


AT_ZERO_KEYS = ("at_zero", "cold_starts", "cold_start_requests", "cold_start_wait_p50_s",
                "cold_start_wait_p99_s", "cold_start_wait_max_s", "lost_at_zero", "rejected",
                "timed_out")  # fmt: skip
"""The metrics of what happened at zero ready replicas (issue 15), in every result."""


def worst_wait_at(cluster: Cluster, work: Workload, end: float) -> float | None:
    """Arrival time of the request with `measure`'s longest wait (`wait_max_s`)."""
    starts = np.asarray(cluster.start, dtype=float)
    served = np.frombuffer(cluster.fate, dtype=np.uint8) < LOST
    if not served.any():
        return None
    waits = np.where(np.isnan(starts), end - work.arrivals, starts - work.arrivals)
    return float(work.arrivals[int(np.argmax(np.where(served, waits, -np.inf)))])


def measure(cluster: Cluster, work: Workload, end: float, actions: int) -> dict[str, Any]:
    """GPU-hours, cost, efficiency, waits and SLO attainment of one replay, and what
    happened at zero ready replicas.

    Waits are of the requests served (or still waiting at the end); a request lost at zero
    (refused, rejected or timed out) has none, and counts as missing the SLO."""
    starts = np.asarray(cluster.start, dtype=float)
    fate = np.frombuffer(cluster.fate, dtype=np.uint8)
    failed = fate >= LOST
    not_started = np.isnan(starts)
    unfinished = not_started & ~failed
    all_waits = np.where(not_started, end - work.arrivals, starts - work.arrivals)
    waits = all_waits[~failed]
    replica_seconds = cluster.billed_replica_seconds(end)
    gpu_hours = replica_seconds * work.gpus_per_replica / 3600.0
    done = work.work_replica_seconds  # a lost request's work was not done: not useful
    if failed.any():
        done = float(np.sum((work.durations * work.slots_held)[~failed])) / work.slots_per_replica
    useful = done * work.gpus_per_replica / 3600.0
    within = (all_waits <= work.wait_slo_seconds + 1e-9) & ~not_started
    pct = np.percentile(waits, [50, 95, 99]) if len(waits) else [0.0, 0.0, 0.0]
    waited = (fate == AT_ZERO) & ~not_started
    cold_waits = starts[waited] - work.arrivals[waited]
    cold = np.percentile(cold_waits, [50, 99]) if len(cold_waits) else [0.0, 0.0]
    return {
        "gpu_hours": round(gpu_hours, 3),
        "cost": round(replica_seconds / 3600.0 * work.cost_per_hour, 2),
        "useful_gpu_hours": round(useful, 3),
        "efficiency": round(useful / gpu_hours, 4) if gpu_hours else 0.0,
        "wait_p50_s": round(float(pct[0]), 3),
        "wait_p95_s": round(float(pct[1]), 3),
        "wait_p99_s": round(float(pct[2]), 3),
        "wait_max_s": round(float(waits.max()), 3) if len(waits) else 0.0,
        "slo_attainment": round(float(np.mean(within)), 5) if len(within) else 1.0,
        "scale_actions": actions,
        "requests": len(all_waits),
        "unfinished": int(unfinished.sum()),
        "at_zero": cluster.at_zero.mode,
        "cold_starts": len(cluster.cold_start_times),
        "cold_start_requests": int(waited.sum()),
        "cold_start_wait_p50_s": round(float(cold[0]), 3),
        "cold_start_wait_p99_s": round(float(cold[1]), 3),
        "cold_start_wait_max_s": round(float(cold_waits.max()), 3) if len(cold_waits) else 0.0,
        "lost_at_zero": cluster.lost,
        "rejected": cluster.rejected,
        "timed_out": cluster.timed_out,
    }
