"""Check the `nvml` signal source on a real GPU against nvidia-smi (a device check).

Run on a machine with an NVIDIA GPU and the `nvml` extra installed
(`pip install -e '.[nvml]'`):

    python scripts/check_nvml.py [--samples 5]

For every GPU (and all of them together) it reads `metric: memory` and `metric:
utilization` through `autoscaler.signals.nvml.NvmlReader`, and the same figures from
`nvidia-smi --query-gpu=index,utilization.gpu,memory.used,memory.total`, taken right after
each other. Memory use must agree within 2 % of the GPU's memory (both read the same
counter; other processes may allocate in between); utilization only has to be a share in
0..1 (it is a sampled, moving figure). Exits 1 on any disagreement or stale reading,
printing what differed; 2 when there is no GPU or no nvidia-smi.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from autoscaler.config.sources import NvmlReader as NvmlSpec
from autoscaler.signals.base import SignalRequest


def smi() -> list[tuple[int, float, float, float]]:
    """(index, utilization 0..1, memory used MiB, memory total MiB) per GPU."""
    out = subprocess.run(
        ["nvidia-smi", "--query-gpu=index,utilization.gpu,memory.used,memory.total",
         "--format=csv,noheader,nounits"],
        capture_output=True, text=True, check=True, timeout=30,
    ).stdout  # fmt: skip
    rows = []
    for line in out.strip().splitlines():
        index, util, used, total = (part.strip() for part in line.split(","))
        rows.append((int(index), float(util) / 100, float(used), float(total)))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=5)
    args = parser.parse_args()
    if shutil.which("nvidia-smi") is None:
        print("no nvidia-smi on PATH: this check needs a machine with an NVIDIA GPU")
        return 2
    from autoscaler.signals.nvml import NvmlReader

    gpus = smi()
    if not gpus:
        print("nvidia-smi lists no GPU")
        return 2
    selections: list[list[int] | None] = [[g[0]] for g in gpus]
    if len(gpus) > 1:
        selections.append(None)  # every GPU: the mean
    requests = []
    for sel in selections:
        for metric in ("memory", "utilization"):
            name = f"{metric}@{'all' if sel is None else sel[0]}"
            requests.append(SignalRequest("check", name, NvmlSpec(metric=metric, devices=sel)))
    source = NvmlReader()
    problems: list[str] = []
    print(f"{'sample':>6} {'signal':<16} {'nvml':>8} {'nvidia-smi':>11}")
    try:
        for sample in range(args.samples):
            readings = source.read(requests, time.time())
            truth = smi()
            by_index = {g[0]: g for g in truth}
            for req in requests:
                got = readings[req.key]
                metric, where = req.signal.split("@")
                chosen = list(by_index.values()) if where == "all" else [by_index[int(where)]]
                if metric == "memory":
                    want = sum(g[2] / g[3] for g in chosen) / len(chosen)
                else:
                    want = sum(g[1] for g in chosen) / len(chosen)
                shown = "stale" if got.value is None else f"{got.value:.4f}"
                print(f"{sample:>6} {req.signal:<16} {shown:>8} {want:>11.4f}")
                if got.value is None:
                    problems.append(f"{req.signal}: stale reading: {got.error}")
                elif not 0.0 <= got.value <= 1.0:
                    problems.append(f"{req.signal}: {got.value} is not a share in 0..1")
                elif metric == "memory" and abs(got.value - want) > 0.02:
                    problems.append(f"{req.signal}: nvml {got.value:.4f} vs nvidia-smi {want:.4f}")
            time.sleep(1.0)
    finally:
        source.close()
    for problem in problems:
        print(f"MISMATCH {problem}")
    print("ok" if not problems else f"{len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
