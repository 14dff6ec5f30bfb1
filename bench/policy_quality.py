"""Benchmark: policy quality against best-tuned baselines and the oracle.

For each case (an example pool and a full trace from ../shared/traces), every policy family
is tuned on its built-in grid (`autoscaler sweep --tune`): ours (the example's policy), hpa,
keda and kpa. For each family the cheapest setting meeting the SLO (>= 99 % of requests
within the pool's wait SLO) is kept. Targets (simulator issue): ours meets the SLO with
<= 0.8x the GPU-hours of best-tuned HPA and KEDA, and <= 1.25x the oracle.

    python bench/policy_quality.py [--workers 2] [--json bench/results/policy_quality.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from autoscaler.config import load_config
from autoscaler.sim.engine import workload
from autoscaler.sim.oracle import stepwise_need
from autoscaler.sim.run import oracle_metrics
from autoscaler.sim.sweep import TraceSpec, best_per_family, run_all, tuning_variants
from autoscaler.sim.traces import read_trace

ROOT = Path(__file__).resolve().parents[1]
TRACES = ROOT.parent / "shared" / "traces"
CASES = [
    ("llm-serving", "examples/llm-serving.yaml", TRACES / "AzureLLMInferenceTrace_conv.csv",
     "azure-llm"),
    ("llm-serving", "examples/llm-serving.yaml", TRACES / "AzureLLMInferenceTrace_code.csv",
     "azure-llm"),
    ("gpu-batch", "examples/gpu-batch.yaml",
     TRACES / "alibaba_gpu_v2023" / "openb_pod_list_default.csv", "alibaba-gpu"),
]


def run_case(example: str, trace_path: Path, fmt: str, workers: int) -> dict:
    config = load_config(ROOT / example)
    pool = next((p for p in config.pools if p.simulation is not None), None)
    if pool is None:
        return {"example": example, "trace": trace_path.name, "skipped":
                "the example has no simulation block"}
    trace = read_trace(str(trace_path), fmt)
    work = workload(pool, trace)
    variants = tuning_variants(pool, work.slots_per_replica, work.batch)
    spec = TraceSpec(str(trace_path), fmt, 1.0, 1, pool.name)
    started = time.perf_counter()
    results = run_all(variants, spec, config.controller.interval, workers)
    best = best_per_family(results, 0.99)
    oracle = oracle_metrics(work)
    # What knowing the future minute by minute is worth, capacity changed for free.
    hindsight = stepwise_need(work.arrivals, work.durations, work.slots_held,
                              work.slots_per_replica, 60.0) * work.gpus_per_replica / 3600
    ours = best[pool.policy.type]
    baselines = [best[f] for f in ("hpa", "keda") if best[f]["meets_slo"]]
    ratio_baseline = (ours["gpu_hours"] / min(b["gpu_hours"] for b in baselines)
                      if baselines and ours["meets_slo"] else None)
    return {
        "example": example, "trace": trace_path.name, "variants": len(variants),
        "tick_s": config.controller.interval, "wall_s": round(time.perf_counter() - started, 1),
        "best": best, "oracle": oracle, "hindsight_60s_gpu_hours": round(hindsight, 3),
        "work_bound_gpu_hours": oracle["useful_gpu_hours"],
        "ours_vs_best_hpa_keda": None if ratio_baseline is None else round(ratio_baseline, 3),
        "ours_vs_oracle": round(ours["gpu_hours"] / oracle["gpu_hours"], 3),
        "ours_meets_slo": ours["meets_slo"],
        "targets": {"vs_hpa_keda": 0.8, "vs_oracle": 1.25},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--json", default=str(ROOT / "bench" / "results" /
                                              "policy_quality.json"))
    parser.add_argument("--only", help="run only cases whose trace name contains this")
    args = parser.parse_args()
    cases = [run_case(e, t, f, args.workers) for name, e, t, f in CASES
             if not args.only or args.only in t.name]
    header = (f"{'trace':<34} {'family':<10} {'GPU-h':>8} {'SLO met':>8} {'p99 wait':>9} "
              f"{'setting'}")
    print(header)
    for case in cases:
        if "skipped" in case:
            print(f"{case['trace']:<34} skipped: {case['skipped']}")
            continue
        for family, r in case["best"].items():
            flag = "" if r["meets_slo"] else " (misses SLO)"
            print(f"{case['trace']:<34} {family:<10} {r['gpu_hours']:>8.2f} "
                  f"{r['slo_attainment']:>8.2%} {r['wait_p99_s']:>8.1f}s {r['variant']}{flag}")
        o = case["oracle"]
        print(f"{case['trace']:<34} {'oracle':<10} {o['gpu_hours']:>8.2f} {1:>8.2%} "
              f"{0:>8.1f}s clairvoyant, zero wait")
        print(f"{case['trace']:<34} {'hindsight':<10} {case['hindsight_60s_gpu_hours']:>8.2f} "
              f"{1:>8.2%} {0:>8.1f}s each minute's peak need, capacity changed for free")
        vs = case["ours_vs_best_hpa_keda"]
        print(f"{'':<34} ours / best(hpa, keda) = {'n/a' if vs is None else f'{vs:.2f}'} "
              f"(target <= 0.80); ours / oracle = {case['ours_vs_oracle']:.2f} "
              f"(target <= 1.25)")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(cases, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
