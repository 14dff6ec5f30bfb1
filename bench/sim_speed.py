"""Benchmark: simulator speed.

1. 24 h of one pool at a 1 s tick with request-level queueing (the Azure LLM conv trace
   repeated 24 times, ~465,000 requests) through the `queueing` policy of
   examples/simulated.yaml. Target: <= 5 s wall. Beside it, the same number of production
   ticks on constant signals with no simulator: the floor a faster simulator cannot lower.
   (A dense trace: every tick sees new requests, so the simulator skips none.)
2. A sparse trace: the Alibaba GPU batch month (jobs minutes apart, running for hours)
   through the `packing` policy of examples/gpu-batch.yaml at its 30 s tick, event-driven
   (ticks where nothing can change are skipped) and ticking every time, side by side; the
   two give identical results.
3. A sweep of 32 variants on 2 workers vs 1 worker, measured side by side in this run.
   Target: >= 1.6x.

    python bench/sim_speed.py [--hours 24] [--day-runs 1] [--variants 32]
                              [--json bench/results/sim_speed.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
from machine import reference_loop_seconds  # bench/machine.py, beside this script

from autoscaler.clock import FakeClock
from autoscaler.config import load_config
from autoscaler.providers.simulated import SimulatedProvider
from autoscaler.sim.cluster import Cluster
from autoscaler.sim.engine import run_policy, sim_controller, workload
from autoscaler.sim.sweep import TraceSpec, grid, run_all
from autoscaler.sim.traces import read_trace
from autoscaler.types import Reading

ROOT = Path(__file__).resolve().parents[1]
CONV = ROOT.parent / "shared" / "traces" / "AzureLLMInferenceTrace_conv.csv"
BATCH = ROOT.parent / "shared" / "traces" / "alibaba_gpu_v2023" / "openb_pod_list_default.csv"


class _Constant:
    """The day's mean signals, unchanging: no simulator behind them."""

    def __init__(self, values: dict[str, float]) -> None:
        self.values = values

    def read(self, requests, now):
        return {r.key: Reading(self.values.get(r.signal), now) for r in requests}


def tick_only(pool, work, ticks: int) -> float:
    """Seconds for `ticks` production ticks (controller, policy, planner) of the same pool on
    constant signals at the day's mean load: the part of the day no simulator speed-up can
    remove."""
    span = float(work.arrivals[-1] - work.arrivals[0])
    rate = len(work.arrivals) / span
    service = float(work.durations.mean())
    values = {"arrival_rate": rate, "queue": 0.0, "in_flight": rate * service,
              "service_seconds": service}
    # The day's provider, over a cluster with no work: capacity reads cost what they do there.
    empty = np.zeros(0)
    cluster = Cluster(empty, empty, empty.astype(np.int64), work.slots_per_replica,
                      work.startup_seconds, name=pool.name)
    cluster.add(max(1, round(rate * service / work.slots_per_replica)), 0.0, ready=True)
    clock = FakeClock(0.0)
    provider = SimulatedProvider(clock, {pool.name: cluster})
    controller = sim_controller(pool, pool.policy, 1.0, provider, _Constant(values), clock)
    started = time.perf_counter()
    for _ in range(ticks):
        controller.tick()
        clock.advance(1.0)
    return time.perf_counter() - started


def day_run(hours: int, runs: int = 1) -> dict:
    """`runs` replays of the day; the median wall counts (the machine may be shared)."""
    pool = load_config(ROOT / "examples" / "simulated.yaml").pools[0]
    trace = read_trace(str(CONV)).transformed(1.0, hours)
    work = workload(pool, trace)
    walls = []
    for _ in range(max(1, runs)):
        started = time.perf_counter()
        run = run_policy(pool, work, pool.policy, "queueing", 1.0, timeline=False)
        walls.append(time.perf_counter() - started)
    wall = statistics.median(walls)
    ticks = int(trace.span_seconds)
    tick_s = statistics.median(tick_only(pool, work, ticks) for _ in range(max(1, runs)))
    return {"hours": hours, "requests": len(trace), "ticks": ticks,
            "wall_s": round(wall, 2), "wall_runs_s": [round(w, 2) for w in walls],
            "production_tick_only_s": round(tick_s, 2),
            "target_s": 5.0, "meets_target": wall <= 5.0,
            "slo_attainment": run.metrics["slo_attainment"]}


def sparse_run(runs: int = 1) -> dict:
    """The batch month event-driven and ticking every time (median walls of `runs`)."""
    config = load_config(ROOT / "examples" / "gpu-batch.yaml")
    pool = config.pools[0]
    work = workload(pool, read_trace(str(BATCH), "alibaba-gpu"))
    tick = config.controller.interval
    walls: dict[bool, list[float]] = {True: [], False: []}
    metrics = {}
    for _ in range(max(1, runs)):
        for skip in (True, False):
            started = time.perf_counter()
            run = run_policy(pool, work, pool.policy, "packing", tick, timeline=False,
                             skip_quiet_ticks=skip)
            walls[skip].append(time.perf_counter() - started)
            metrics[skip] = {k: v for k, v in run.metrics.items() if k != "wall_seconds"}
    if metrics[True] != metrics[False]:
        raise SystemExit("skipping quiet ticks changed the batch month's results")
    skipped, every = statistics.median(walls[True]), statistics.median(walls[False])
    return {"trace": BATCH.name, "jobs": len(work.arrivals), "tick_s": tick,
            "ticks": int((work.arrivals[-1] - work.arrivals[0]) // tick),
            "wall_s": round(skipped, 2), "wall_every_tick_s": round(every, 2),
            "speedup": round(every / skipped, 2)}


def sweep_run(count: int) -> dict:
    pool = load_config(ROOT / "examples" / "simulated.yaml").pools[0]
    utilizations = [round(0.6 + 0.35 * i / 7, 3) for i in range(8)]
    windows = [60, 120, 180, 300][: max(1, count // 8)]
    variants = grid(pool, [("policy.max_utilization", utilizations),
                           ("behavior.scale_down.stabilization_window", windows)])[:count]
    spec = TraceSpec(str(CONV), "azure-llm", 1.0, 1, pool.name)
    walls = {}
    for workers in (1, 2):
        started = time.perf_counter()
        run_all(variants, spec, 1.0, workers)
        walls[workers] = time.perf_counter() - started
    speedup = walls[1] / walls[2]
    return {"variants": len(variants), "wall_1_worker_s": round(walls[1], 2),
            "wall_2_workers_s": round(walls[2], 2), "speedup": round(speedup, 2),
            "target_speedup": 1.6, "meets_target": speedup >= 1.6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hours", type=int, default=24)
    parser.add_argument("--variants", type=int, default=32)
    parser.add_argument("--day-runs", type=int, default=1,
                        help="replay the day (and the sparse month) this many times and "
                             "report the median wall")
    parser.add_argument("--json", default=str(ROOT / "bench" / "results" / "sim_speed.json"))
    args = parser.parse_args()
    if not CONV.exists():
        sys.exit(f"needs the shared traces beside the checkout: {CONV}")
    day = day_run(args.hours, args.day_runs)
    sparse = sparse_run(args.day_runs) if BATCH.exists() else None
    sweep = sweep_run(args.variants)
    rows = [
        (f"{args.hours} h at 1 s tick, {day['requests']} requests", f"{day['wall_s']:.2f} s",
         "<= 5 s", day["meets_target"]),
        (f"sweep of {sweep['variants']} variants, 2 vs 1 worker", f"{sweep['speedup']:.2f}x",
         ">= 1.6x", sweep["meets_target"]),
    ]
    print(f"{'benchmark':<44} {'measured':>10} {'target':>8} {'ok':>4}")
    for name, measured, target, ok in rows:
        print(f"{name:<44} {measured:>10} {target:>8} {'yes' if ok else 'NO':>4}")
    print(f"  of the day, the production tick alone (constant signals, {day['ticks']} ticks): "
          f"{day['production_tick_only_s']:.2f} s")
    if sparse:
        print(f"  sparse trace ({sparse['trace']}, {sparse['jobs']} jobs at a "
              f"{sparse['tick_s']:g} s tick): {sparse['wall_s']:.2f} s event-driven, "
              f"{sparse['wall_every_tick_s']:.2f} s ticking every time "
              f"({sparse['speedup']:.2f}x), same results")
    print(f"  sweep: 1 worker {sweep['wall_1_worker_s']} s, 2 workers "
          f"{sweep['wall_2_workers_s']} s; load average {os.getloadavg()[0]:.2f}")
    result = {"day": day, **({"sparse": sparse} if sparse else {}), "sweep": sweep,
              "python": platform.python_version(), "cpus": os.cpu_count(),
              "load_average": os.getloadavg(), "reference_loop_s": reference_loop_seconds()}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
