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

Fixed keep-alive baselines (issue 16, `KEEPALIVE`): the pool's own serving policy, without
any learned `keep_alive` section, scaled to zero a fixed time after it last saw work, as the
platforms people use do it (each value's source is at `KEEPALIVE`). Only the keep-alive
differs from the pool's own run, so a comparison with it is about the keep-alive alone.

Settings only: it builds config dicts and never runs a simulation.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from autoscaler.units import parse_duration

if TYPE_CHECKING:
    from autoscaler.config import Pool

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


KEEPALIVE: dict[str, float] = {
    # Knative Serving's KPA: a revision is scaled to zero once its 60 s stable window
    # (`stable-window: 60s`) has seen no traffic, after the 30 s grace period
    # (`scale-to-zero-grace-period: 30s`); config-autoscaler defaults,
    # https://knative.dev/docs/serving/autoscaling/scale-to-zero/.
    "keepalive-knative": 90.0,
    # KEDA: `cooldownPeriod`, the time after the last trigger reported active before the
    # resource is scaled back to 0, default 300 s,
    # https://keda.sh/docs/latest/reference/scaledobject-spec/#cooldownperiod.
    "keepalive-keda": 300.0,
    # FaaS platforms' fixed idle windows: AWS Lambda and Azure Functions keep an idle
    # instance for a fixed 10 and 20 minutes, as Shahrad et al. describe them ("Serverless
    # in the Wild", USENIX ATC 2020, the fixed keep-alive their policy is measured against)
    # and as measured by M. Shilkov,
    # https://mikhail.io/2019/08/aws-lambda-cold-starts-after-10-minutes/.
    "keepalive-faas-10m": 600.0,
    "keepalive-faas-20m": 1200.0,
}
"""The named fixed keep-alive baselines: seconds from the last work to zero replicas."""

KEEPALIVE_GRID = (30.0, 60.0, 90.0, 120.0, 180.0, 300.0, 600.0, 900.0, 1200.0, 1800.0)
"""What tuning a fixed keep-alive tries: 30 s to 30 min, every named value included."""

_CUSTOM = re.compile(r"^keepalive-(\d+(?:\.\d+)?(?:ms|s|m|h)?)$")


def keepalive_seconds(name: str) -> float | None:
    """The keep-alive of a baseline name: one of `KEEPALIVE`, or `keepalive-<duration>`
    (e.g. `keepalive-45s`, `keepalive-2m`); None for any other name."""
    if name in KEEPALIVE:
        return KEEPALIVE[name]
    m = _CUSTOM.match(name)
    return parse_duration(m.group(1)) if m else None


def without_learned_keep_alive(policy: Any) -> Any:
    """A policy's configuration (a dict, as dumped) with every `keep_alive` section removed,
    its children's (a composite's `policies`) included."""
    if isinstance(policy, dict):
        return {k: without_learned_keep_alive(v) for k, v in policy.items() if k != "keep_alive"}
    if isinstance(policy, list):
        return [without_learned_keep_alive(v) for v in policy]
    return policy


def fixed_keepalive(pool: Pool, seconds: float) -> dict[str, Any]:
    """The pool's configuration (a dict to validate) with a fixed keep-alive of `seconds`:
    its own policy without a learned `keep_alive`, and `behavior.scale_to_zero_after` =
    `seconds`. The planner goes 1 -> 0 only once the scale-down stabilization window has
    passed too, so the window is capped at `seconds` (Knative's 60 s stable window is part
    of its 90 s); everything else is the pool's own."""
    if pool.policy.owns_behavior:
        raise ValueError(
            f"pool {pool.name!r}: its {pool.policy.type} policy brings its own behavior; a "
            "fixed keep-alive baseline runs the pool's policy with `behavior."
            "scale_to_zero_after`, so it needs a policy that uses the planner's behavior"
        )
    data = pool.model_dump(mode="json", exclude_none=True)
    data["policy"] = without_learned_keep_alive(data["policy"])
    behavior = pool.effective_behavior.model_dump(mode="json", exclude_none=True)
    down = behavior.setdefault("scale_down", {})
    down["stabilization_window"] = min(float(down.get("stabilization_window", 0.0)), seconds)
    behavior["scale_to_zero_after"] = seconds
    data["behavior"] = behavior
    return data
