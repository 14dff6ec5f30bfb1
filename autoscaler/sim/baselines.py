"""Default settings of the incumbents (hpa, keda, kpa) for a simulated pool.

Each is configured the way teams commonly run it for this workload, from the pool's own
model, and can be overridden under `simulation.baselines`. `autoscaler sweep --tune`
tunes them, so comparisons can be between best-tuned policies rather than defaults.
- hpa: GPU utilization, target 70 % (the usual DCGM-based HPA);
- keda: demand (waiting + running requests, or GPUs for jobs) per replica, target 70 % of
  a replica's slots (GPUs: 100 %), scale to zero allowed;
- kpa: demand with containerConcurrency = the replica's slots_per_replica (target 70 % of
  it).
Settings only: it builds config dicts and never runs a simulation.
"""

from __future__ import annotations

from typing import Any

FAMILIES = ("hpa", "keda", "kpa")


def default_baseline(family: str, slots_per_replica: int, batch: bool) -> dict[str, Any]:
    if family == "hpa":
        return {
            "type": "hpa",
            "metrics": [{"signal": "gpu_utilization", "target_utilization": 0.7}],
        }
    if family == "keda":
        share = 1.0 if batch else 0.7
        return {
            "type": "keda",
            "triggers": [{"signal": "demand", "target": share * slots_per_replica}],
        }
    if family == "kpa":
        return {"type": "kpa", "signal": "demand", "container_concurrency": slots_per_replica}
    raise ValueError(f"unknown baseline {family!r}; use one of: {', '.join(FAMILIES)}")


def tuning_grid(family: str, slots_per_replica: int, batch: bool) -> list[dict[str, Any]]:
    """The settings `--tune` tries for a baseline family: its main knob across its range."""
    base = default_baseline(family, slots_per_replica, batch)
    shares = [0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    grid = []
    for share in shares:
        config = {**base}
        if family == "hpa":
            config["metrics"] = [
                {"signal": "gpu_utilization", "target_utilization": min(share, 0.95)}
            ]
        elif family == "keda":
            config["triggers"] = [{"signal": "demand", "target": share * slots_per_replica}]
        else:
            config["target_utilization"] = share
        grid.append(config)
    return grid
