"""Benchmark: decide + plan for 10,000 pools in one process, on one core.

Target (issue 2): <= 250 ms per tick. The garbage collector is set up as `autoscaler run`
sets it (autoscaler/gc_tuning.py; `--gc-defaults` for CPython's defaults, to compare). Pools
mix every policy (queue-depth, gpu-utilization,
composite, queueing, hpa, keda, kpa) with randomised signals that change every tick, so
windows, forecasts and histories are exercised. Observe and act (I/O) are not included:
this measures the pure part of the tick that must scale with the number of pools.

    python bench/decide.py [--pools 10000] [--ticks 20] [--json bench/results/decide.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from machine import reference_loop_seconds  # bench/machine.py, beside this script

from autoscaler.config import Pool
from autoscaler.gc_tuning import freeze_long_lived, tune_gc
from autoscaler.planner import PlanSpec, PoolMemory, plan
from autoscaler.types import Observation

POLICIES = [
    {"type": "queue-depth", "target_per_replica": 10, "activation": 2},
    {"type": "gpu-utilization", "target": 0.7},
    {"type": "composite", "policies": [
        {"type": "queue-depth", "target_per_replica": 10},
        {"type": "gpu-utilization", "target": 0.8}]},
    {"type": "queueing", "service_seconds": 2.0, "slots_per_replica": 16, "wait_slo": 1.0},
    {"type": "hpa", "metrics": [{"signal": "gpu_utilization", "target_utilization": 0.6}]},
    {"type": "keda", "triggers": [{"signal": "queue", "target": 5}]},
    {"type": "kpa", "signal": "concurrency", "container_concurrency": 8},
]


def make_pools(n: int) -> list[Pool]:
    pools = []
    for i in range(n):
        pools.append(Pool.model_validate({
            "name": f"pool-{i}", "target": {"kind": "simulated"}, "max": 64, "startup": 60,
            "policy": POLICIES[i % len(POLICIES)],
        }))
    return pools


def run(n_pools: int, ticks: int, interval: float, seed: int,
        gc_as_controller: bool = True) -> dict:
    rng = random.Random(seed)
    pools = make_pools(n_pools)
    deciders = [p.policy.build() for p in pools]
    specs = [PlanSpec.from_pool(p) for p in pools]
    memories = [PoolMemory() for _ in pools]
    current = [rng.randint(0, 8) for _ in pools]
    if gc_as_controller:  # what `autoscaler run` does once its pools are built
        freeze_long_lived()
    times = []
    for t in range(ticks):
        now = t * interval
        # Signals are drawn before timing: the benchmark measures decide + plan only.
        signals = [{
            "queue": rng.uniform(0, 200), "in_flight": rng.uniform(0, 60),
            "arrival_rate": rng.uniform(0, 20), "gpu_utilization": rng.random(),
            "service_seconds": rng.uniform(1, 3), "concurrency": rng.uniform(0, 80),
        } for _ in pools]
        started = time.perf_counter()
        for i, pool in enumerate(pools):
            obs = Observation(pool.name, now, current[i], current[i], signals[i],
                              startup_seconds=pool.startup, min_replicas=pool.min,
                              max_replicas=pool.max)
            rec = deciders[i].recommend(obs, memories[i].policy)
            decision, memories[i] = plan(pool.name, specs[i], rec, current[i], now,
                                         memories[i])
            current[i] = decision.desired
        times.append(time.perf_counter() - started)
    ms = sorted(x * 1000 for x in times)
    return {
        "pools": n_pools,
        "ticks": ticks,
        "tick_ms_p50": statistics.median(ms),
        "tick_ms_p99": ms[min(len(ms) - 1, round(0.99 * (len(ms) - 1)))],
        "tick_ms_max": ms[-1],
        "us_per_pool_p50": statistics.median(ms) * 1000 / n_pools,
        "target_ms": 250.0,
        "gc": "as the controller (autoscaler.gc_tuning)" if gc_as_controller else "defaults",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pools", type=int, default=10_000)
    parser.add_argument("--ticks", type=int, default=20)
    parser.add_argument("--interval", type=float, default=15.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", default=str(Path(__file__).parent / "results" / "decide.json"))
    parser.add_argument("--gc-defaults", action="store_true",
                        help="CPython's default collector settings instead of the controller's")
    args = parser.parse_args()
    if not args.gc_defaults:
        tune_gc()  # as `autoscaler run` does at start
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core, as the target says
    result = run(args.pools, args.ticks, args.interval, args.seed, not args.gc_defaults)
    result["python"] = platform.python_version()
    result["machine"] = f"{platform.machine()}, {os.cpu_count()} cpus (pinned to 1)"
    result["meets_target"] = result["tick_ms_p50"] <= result["target_ms"]
    result["reference_loop_s"] = reference_loop_seconds()
    print(f"{'pools':>8} {'ticks':>6} {'p50 ms':>9} {'p99 ms':>9} {'max ms':>9} "
          f"{'us/pool':>8} {'target':>8} {'ok':>4}")
    print(f"{result['pools']:>8} {result['ticks']:>6} {result['tick_ms_p50']:>9.1f} "
          f"{result['tick_ms_p99']:>9.1f} {result['tick_ms_max']:>9.1f} "
          f"{result['us_per_pool_p50']:>8.1f} {result['target_ms']:>8.0f} "
          f"{'yes' if result['meets_target'] else 'NO':>4}")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
