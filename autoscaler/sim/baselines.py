"""Default settings of the incumbents (hpa, keda, kpa) for a simulated pool.

Each is configured the way teams commonly run it for this workload, from the pool's own
model, and can be overridden under `simulation.baselines`. `autoscaler sweep --tune`
tunes them, so comparisons can be between best-tuned policies rather than defaults.
- hpa: GPU utilization, target 70 % (the usual DCGM-based HPA);
- keda: demand (waiting + running requests, or GPUs for jobs) per replica, target 70 % of
  a replica's slots (GPUs: 100 %), scale to zero allowed;
- kpa: demand with containerConcurrency = the replica's slots_per_replica (target 70 % of
  it).

Requests that find an LLM pool with no ready replica (autoscaler/sim/cluster.py, `AtZero`):
Knative always runs its activator in front of a revision scaled to zero, so a KPA pool
holds them, with the pool's own `activator` settings if it has an activator section, else
Knative's (`KNATIVE_ACTIVATOR`). The HPA never goes below 1 replica. KEDA without its HTTP
add-on has nothing in front of the pool, so they are lost; but a pool with an `activator`
section runs our activator in front of whatever scales it, so every compared policy (our
own, hpa, keda, kpa) then holds them with its settings: the comparison stays between
scaling policies, not between proxies.
Settings only: it builds config dicts and never runs a simulation.
"""

from __future__ import annotations

from typing import Any

FAMILIES = ("hpa", "keda", "kpa")

KNATIVE_ACTIVATOR = (10_000, 300.0)
"""(max_queue, hold_timeout) of Knative's activator, Knative Serving's defaults: it queues
up to `breakerQueueDepth = 10000` requests per revision before answering 503
(pkg/activator/net/throttler.go), and a held request ends with the revision's request
timeout, `revision-timeout-seconds: "300"` in config-defaults
(https://knative.dev/docs/serving/configuration/config-defaults/)."""


def holds_at_zero(
    policy_type: str, activator: tuple[int, float] | None
) -> tuple[int, float] | None:
    """(max_queue, hold_timeout) of what holds an LLM pool's requests at zero ready replicas
    under this policy, or None when nothing does (they are lost): the pool's activator if it
    has one, else Knative's for the KPA."""
    if activator is not None:
        return activator
    return KNATIVE_ACTIVATOR if policy_type == "kpa" else None


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
