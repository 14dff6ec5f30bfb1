"""`autoscaler simulate`: one pool, one trace, our policy against the baselines and oracle.

Produces the result document described in the simulator issue:
`{"trace", "pool", "results": [{"policy", "gpu_hours", "cost", "efficiency", "wait_p50_s",
"wait_p99_s", "slo_attainment", "scale_actions", ...}], "lower_bound_gpu_hours"}`, each
result also saying what happened at zero ready replicas (issue 15): `at_zero` (held, lost
or queued), `cold_starts`, `cold_start_requests` and their `cold_start_wait_{p50,p99,max}_s`,
`lost_at_zero`, `rejected` and `timed_out`.
Besides hpa, keda, kpa and the oracle it compares, when asked (issue 16), the pool's own
policy with a fixed keep-alive (`keepalive-keda`, `keepalive-knative`, `keepalive-faas-10m`,
`keepalive-faas-20m`, `keepalive` for all four, or `keepalive-<duration>`: baselines.py).
It composes the engine's runs; it never reaches into the controller or the cluster itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import TypeAdapter

from autoscaler.config import Config, Pool
from autoscaler.config.simulation import GpuBatchService, LlmService
from policies import AnyPolicyConfig

from .baselines import FAMILIES, KEEPALIVE, default_baseline, fixed_keepalive, keepalive_seconds
from .engine import (
    START_MODES,
    PolicyRun,
    SimulationError,
    Workload,
    initial_replicas,
    run_policy,
    start_note,
    workload,
)
from .oracle import oracle
from .oracle_timeline import OracleSchedule, oracle_schedule
from .traces import DAY, MAX_SPAN_DAYS, MAX_SPAN_SECONDS, Trace, TraceError, read_trace

POLICY = TypeAdapter(AnyPolicyConfig)
COMPARE_CHOICES = (*FAMILIES, "oracle")
"""What `simulate` compares by default."""
KEEPALIVE_CHOICES = (*KEEPALIVE, "keepalive")
"""Fixed keep-alive baselines, compared when named (`keepalive`: all four); also
`keepalive-<duration>`, e.g. keepalive-45s."""


@dataclass
class SimulationReport:
    trace: str
    pool: str
    tick_seconds: float
    wait_slo_seconds: float
    lower_bound_gpu_hours: float
    runs: list[PolicyRun] = field(default_factory=list)
    start: dict[str, Any] = field(default_factory=dict)
    """How the replays began: `mode` (warm or cold), `replicas` ready at t=0 (the pool's
    own policy) and `note`, the line the CLI prints."""
    oracle_timeline: dict[str, list[float]] = field(default_factory=dict)
    """The oracle's replicas (`t`, `desired`, `ready`) on the tick grid, for the report.
    Kept apart from its run's `timeline`, which holds decisions and the oracle makes none."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "trace": self.trace,
            "pool": self.pool,
            "tick_seconds": self.tick_seconds,
            "wait_slo_s": self.wait_slo_seconds,
            "results": [run.metrics for run in self.runs],
            "lower_bound_gpu_hours": self.lower_bound_gpu_hours,
            "start": self.start,
        }


def with_start(pool: Pool, start: str | None) -> Pool:
    """The pool with its `simulation.start` set to `start` (warm or cold), when given."""
    if start is None or pool.simulation is None:
        return pool
    if start not in START_MODES:
        raise SimulationError(f"--start {start!r}: use one of {', '.join(START_MODES)}")
    sim = pool.simulation.model_copy(update={"start": start})
    return pool.model_copy(update={"simulation": sim})


def pick_pool(config: Config, name: str | None) -> Pool:
    if name is not None:
        try:
            return config.pool(name)
        except KeyError as exc:
            raise SimulationError(exc.args[0]) from None
    candidates = [p for p in config.pools if p.simulation is not None]
    if len(candidates) != 1:
        names = ", ".join(p.name for p in candidates) or "none"
        raise SimulationError(f"choose a pool with --pool (pools with a simulation block: {names})")
    return candidates[0]


def load_trace(
    pool: Pool,
    path: str | None,
    fmt: str | None,
    speedup: float | None,
    repeat: int | None,
    config: Config | None = None,
) -> Trace:
    """The trace given on the command line, else the pool's (relative to its file), else
    the bundled sample."""
    configured = pool.simulation.trace if pool.simulation else None
    if path is None:
        if configured is None:
            path, fmt = "bundled:azure-llm-code-sample", "azure-llm"
        else:
            path = config.resolve_path(configured.path) if config else configured.path
            fmt = fmt or configured.format
    trace = read_trace(path, fmt, pool=pool.name)
    check_service(pool, trace, path)
    speed = speedup if speedup is not None else (configured.speedup if configured else 1.0)
    times = repeat if repeat is not None else (configured.repeat if configured else 1)
    return trace.transformed(speed, times)


def _check_jobs(pool: Pool, service: GpuBatchService, trace: Trace, path: str) -> None:
    """Refuse, naming the file and line, a trace a gpu-batch pool cannot replay: token
    counts instead of job durations, or a job needing more GPUs than a node has."""
    if trace.service_seconds is None:
        raise TraceError(
            f"{path}: has token counts, but pool {pool.name!r} is a gpu-batch pool, which "
            "replays jobs: give a trace with job durations (`service_seconds`, or the "
            "alibaba-gpu format)"
        )
    units = trace.unit_counts()
    over = np.flatnonzero(units > service.gpus_per_node)
    if len(over) == 0:
        return
    i = int(over[0])
    where = f"line {trace.lines[i]}" if trace.lines is not None else f"job {i + 1}"
    raise TraceError(
        f"{path}: {where}: a job needs {int(units[i])} GPUs, more than a node of pool "
        f"{pool.name!r} has ({service.gpus_per_node}, simulation.service.gpus_per_node); "
        "check num_gpu or gpus_per_node"
    )


def check_service(pool: Pool, trace: Trace, path: str) -> None:
    """Refuse a request that would hold a slot longer than the simulator replays
    (MAX_SPAN_SECONDS) at the pool's token rates: the replay would run on for as long."""
    sim = pool.simulation
    if sim is not None and isinstance(sim.service, GpuBatchService):
        _check_jobs(pool, sim.service, trace, path)
    if sim is None or not isinstance(sim.service, LlmService) or trace.service_seconds is not None:
        return  # job durations were checked as the trace was read
    service = sim.service
    durations = trace.durations(service.prefill_tokens_per_s, service.decode_tokens_per_s)
    over = np.flatnonzero(~(durations <= MAX_SPAN_SECONDS))
    if len(over) == 0:
        return
    i = int(over[0])
    assert trace.input_tokens is not None and trace.output_tokens is not None
    where = f"line {trace.lines[i]}" if trace.lines is not None else f"request {i + 1}"
    raise TraceError(
        f"{path}: {where}: {trace.input_tokens[i]:,.0f} prompt and {trace.output_tokens[i]:,.0f} "
        f"generated tokens hold a slot for {durations[i] / DAY:,.1f} days at pool "
        f"{pool.name!r}'s rates (simulation.service: prefill_tokens_per_s "
        f"{service.prefill_tokens_per_s:g}, decode_tokens_per_s {service.decode_tokens_per_s:g}); "
        f"the simulator replays at most {MAX_SPAN_DAYS} days: check the token counts or the rates"
    )


def baseline_policy(pool: Pool, family: str, work: Workload) -> Any:
    overrides = pool.simulation.baselines if pool.simulation else {}
    if family in overrides:
        return overrides[family]
    return POLICY.validate_python(default_baseline(family, work.slots_per_replica, work.batch))


def keepalive_pool(pool: Pool, seconds: float) -> Pool:
    """The pool run with its own policy (no learned keep-alive) and a fixed keep-alive."""
    try:
        return Pool.model_validate(fixed_keepalive(pool, seconds))
    except ValueError as exc:  # pydantic's ValidationError is one
        raise SimulationError(f"keep-alive baseline: {exc}") from None


def expand_compare(compare: Sequence[str]) -> list[str]:
    """The compared names, `keepalive` expanded to the four named keep-alives; an unknown
    name is an error that lists the choices."""
    names: list[str] = []
    for c in compare:
        names += list(KEEPALIVE) if c == "keepalive" else [c]
    unknown = [c for c in names if c not in COMPARE_CHOICES and keepalive_seconds(c) is None]
    if unknown:
        raise SimulationError(
            f"--compare: unknown {', '.join(unknown)}; use any of "
            f"{', '.join((*COMPARE_CHOICES, *KEEPALIVE_CHOICES))} or keepalive-<duration> "
            "(e.g. keepalive-45s)"
        )
    return list(dict.fromkeys(names))


def oracle_start(work: Workload) -> dict[str, Any]:
    """How the oracle begins, for `oracle()` and `oracle_schedule()` alike. A cold start
    begins as the policies do, with the pool's `min` (initial_replicas without a policy's
    own floor). Warm, it keeps what the goldens hold: warm only what the first arrival
    needs, not the whole first window's peak the policies start with."""
    return {"warm_replicas": work.min_replicas if work.start == "cold" else None}


def oracle_replicas(work: Workload) -> OracleSchedule:
    """The schedule `oracle_metrics` bills, laid out in time (started the same way; a test
    holds the two together)."""
    return oracle_schedule(
        work.arrivals,
        work.durations,
        work.slots_held,
        work.slots_per_replica,
        work.startup_seconds,
        **oracle_start(work),
    )


def oracle_metrics(work: Workload) -> dict[str, Any]:
    bound = oracle(
        work.arrivals,
        work.durations,
        work.slots_held,
        work.slots_per_replica,
        work.startup_seconds,
        **oracle_start(work),
    )
    gpu_hours = bound.replica_seconds * work.gpus_per_replica / 3600.0
    useful = bound.work_replica_seconds * work.gpus_per_replica / 3600.0
    return {
        "policy": "oracle",
        "gpu_hours": round(gpu_hours, 3),
        "cost": round(bound.replica_seconds / 3600.0 * work.cost_per_hour, 2),
        "useful_gpu_hours": round(useful, 3),
        "efficiency": round(useful / gpu_hours, 4) if gpu_hours else 0.0,
        "wait_p50_s": 0.0,
        "wait_p95_s": 0.0,
        "wait_p99_s": 0.0,
        "wait_max_s": 0.0,
        "slo_attainment": 1.0,
        "scale_actions": bound.scale_actions,
        "requests": len(work.arrivals),
        "unfinished": 0,
        "at_zero": "n/a",  # it never lets a request find no replica ready
        "cold_starts": bound.cold_starts,
        "cold_start_requests": 0,
        "cold_start_wait_p50_s": 0.0,
        "cold_start_wait_p99_s": 0.0,
        "cold_start_wait_max_s": 0.0,
        "lost_at_zero": 0,
        "rejected": 0,
        "timed_out": 0,
        "wall_seconds": 0.0,
    }


def simulate(
    config: Config,
    pool_name: str | None = None,
    trace_path: str | None = None,
    trace_format: str | None = None,
    compare: Sequence[str] = COMPARE_CHOICES,
    tick_seconds: float | None = None,
    speedup: float | None = None,
    repeat: int | None = None,
    timeline: bool = True,
    progress: Callable[[str], None] | None = None,
    start: str | None = None,
) -> SimulationReport:
    """Replay the pool's trace through its own policy and each compared one. `start`
    (warm or cold) overrides the pool's `simulation.start`."""
    compare = expand_compare(compare)
    pool = with_start(pick_pool(config, pool_name), start)
    work = workload(pool, load_trace(pool, trace_path, trace_format, speedup, repeat, config))
    tick = tick_seconds or config.controller.interval
    report = SimulationReport(
        work.trace_name,
        pool.name,
        tick,
        work.wait_slo_seconds,
        round(work.work_replica_seconds * work.gpus_per_replica / 3600.0, 3),
    )
    report.start = {
        "mode": work.start,
        "replicas": initial_replicas(pool, pool.policy, work),
        "note": start_note(pool, pool.policy, work),
    }
    plan: list[tuple[str, Pool, Any]] = [(pool.policy.type, pool, pool.policy)]
    for name in compare:
        if name in FAMILIES:
            plan.append((name, pool, baseline_policy(pool, name, work)))
        elif (seconds := keepalive_seconds(name)) is not None:
            fixed = keepalive_pool(pool, seconds)
            plan.append((name, fixed, fixed.policy))
    for label, run_pool, policy in plan:
        if progress:
            progress(label)
        report.runs.append(run_policy(run_pool, work, policy, label, tick, timeline=timeline))
    if "oracle" in compare:
        schedule = oracle_replicas(work)
        run = PolicyRun("oracle", oracle_metrics(work), cold_start_times=schedule.cold_start_times)
        report.runs.append(run)
        if timeline:
            report.oracle_timeline = schedule.timeline(tick)
    return report
