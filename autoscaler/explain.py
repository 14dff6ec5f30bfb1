"""`autoscaler explain`: what a pool's policy and planner would decide for given values.

Runs the real policy and planner on one observation built from the command line, with
fresh planner memory (so stabilization windows start empty, as on a controller's first
tick). A declared signal left off the command line counts as stale, which shows the hold.

With a controller state file (`autoscaler run --state FILE`) it starts from the pool's
stored memory instead, at the time of its last tick: the policy's forecast and learned
idle gaps, the planner's windows. A pool whose policy has a `keep_alive` then also shows
what it learned: the gaps seen, their percentiles, whether they are trusted, the hours of
the day in which bursts recur.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from policies.composite import CompositeConfig
from policies.gpu_utilization import GpuUtilizationConfig
from policies.hpa import HpaConfig
from policies.idle_gaps import summary
from policies.queueing import QueueingConfig

from .budgets import Claim, allocate, apply, limits_for
from .config import SIMULATED_SIGNALS, Pool
from .config.budget import Budget, replica_gpus, replica_price
from .experiments import with_experiment_reason
from .planner import PlanSpec, PoolMemory, plan
from .state import load_state
from .types import Decision, Observation, Reading, Recommendation


class ExplainError(ValueError):
    """Bad command-line input for explain; the message says what to fix."""


MAX_REPLICAS = 100_000
"""The most `--replicas` explain takes (or the pool's `max`, where that is larger)."""
MAX_SIGNAL = 1e12
"""The largest signal value explain takes: far above any real queue, rate or count."""


def utilization_signals(pool: Pool) -> set[str]:
    """The pool's signals that are a utilization, a fraction 0..1: those a `gpu-utilization`
    policy or an HPA `target_utilization` metric reads, and any named `*utilization*`
    (the simulator's `gpu_utilization`)."""
    names = {n for n in (*pool.signals, *SIMULATED_SIGNALS) if "utilization" in n}
    stack: list[Any] = [pool.policy]
    while stack:
        policy = stack.pop()
        if isinstance(policy, GpuUtilizationConfig):
            names.add(policy.signal)
        elif isinstance(policy, HpaConfig):
            names |= {m.signal for m in policy.metrics if m.target_utilization is not None}
        elif isinstance(policy, CompositeConfig):
            stack.extend(policy.policies)
    return names


def _utilization(name: str, text: str) -> float:
    """A utilization as a fraction: 0.7, or a percentage '70%'."""
    shown = f"--signal {name}={text}"
    allowed = f"{name} is a utilization: write a fraction from 0 to 1, e.g. 0.7, or '70%'"
    value = text.strip()
    scale = 1.0
    if value.endswith("%"):
        value, scale = value[:-1], 0.01
    try:
        parsed = float(value) * scale
    except ValueError:
        raise ExplainError(f"{shown}: {text!r} is not a number; {allowed}") from None
    if not math.isfinite(parsed) or not 0 <= parsed <= 1:
        hint = f" ({parsed / 100:g} or '{parsed:g}%'?)" if scale == 1 and 1 < parsed <= 100 else ""
        raise ExplainError(f"{shown}: out of range{hint}; {allowed}")
    return parsed


@dataclass(frozen=True)
class Explanation:
    pool: Pool
    observation: Observation
    recommendation: Recommendation
    decision: Decision
    stale: dict[str, str]
    keep_alive: list[dict[str, Any]] = field(default_factory=list)
    """Per policy with a keep-alive (a composite may have several): `policy` (its path in
    the configuration) and `learned` (idle_gaps.summary of its memory, None without)."""
    from_state: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "pool": self.pool.name,
            "policy": self.pool.policy.type,
            "signals": dict(self.observation.signals),
            "stale": self.stale,
            "current": self.observation.current_replicas,
            "ready": self.observation.ready_replicas,
            "recommendation": {
                "desired": self.recommendation.desired,
                "reason": self.recommendation.reason,
                "hold": self.recommendation.hold,
            },
            "decision": self.decision.to_dict(),
            "keep_alive": self.keep_alive,
            "from_state": self.from_state,
        }


def parse_signals(pairs: tuple[str, ...], pool: Pool) -> dict[str, float]:
    """`name=value` pairs, checked against the pool's declared signals: each a finite
    number from 0 to MAX_SIGNAL; a utilization (`utilization_signals`) a fraction from 0
    to 1 (or a percentage, '70%')."""
    known = set(pool.signals)
    if pool.target.kind == "simulated":
        known |= set(SIMULATED_SIGNALS)
    fractions = utilization_signals(pool)
    values: dict[str, float] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ExplainError(f"--signal {pair!r}: write NAME=VALUE, e.g. queue=120")
        if name not in known:
            raise ExplainError(
                f"--signal {name}: pool {pool.name!r} has no signal {name!r} "
                f"(its signals: {', '.join(sorted(known)) or 'none'})"
            )
        if name in values:
            raise ExplainError(f"--signal {name}: given twice; give each signal once")
        if name in fractions:
            values[name] = _utilization(name, text)
            continue
        try:
            value = float(text)
        except ValueError:
            raise ExplainError(f"--signal {name}: {text!r} is not a number") from None
        if not math.isfinite(value) or not 0 <= value <= MAX_SIGNAL:
            raise ExplainError(
                f"--signal {name}: {text!r} must be a finite number >= 0 and at most {MAX_SIGNAL:g}"
            )
        values[name] = value
    return values


def load_pool_memory(path: str | Path, pool: Pool, backoff_max: float | None = None) -> PoolMemory:
    """The pool's memory in a controller state file (empty when the pool is not in it).
    The whole file is checked as `run --state` checks it (autoscaler/state_schema.py);
    `backoff_max`: the controller's `provider_backoff_max` (at least its default)."""
    try:
        data = load_state(Path(path), backoff_max=backoff_max)
    except ValueError as exc:
        raise ExplainError(f"--state: {exc}") from None
    entry = data.get(pool.name)
    if entry is None:
        return PoolMemory()
    return PoolMemory.from_dict(entry)


def last_tick(memory: PoolMemory) -> float:
    """When the pool was last planned, from its memory (0 when never)."""
    times = [t for t, _ in memory.recommendations]
    at = memory.policy.get("at")
    if isinstance(at, int | float):
        times.append(float(at))
    return max(times, default=0.0)


def keep_alives(
    policy: Any, memory: Mapping[str, Any], where: str = "policy"
) -> Iterator[tuple[str, QueueingConfig, Mapping[str, Any]]]:
    """Each policy with a keep-alive in `policy` (children of a composite too), with its
    path in the configuration and its memory."""
    if isinstance(policy, QueueingConfig) and policy.keep_alive is not None:
        yield where, policy, memory
    elif isinstance(policy, CompositeConfig):
        children = memory.get("children") or ()
        for i, child in enumerate(policy.policies):
            mem = children[i] if i < len(children) and isinstance(children[i], Mapping) else {}
            yield from keep_alives(child, mem, f"{where}.policies[{i}]")


def learned_gaps(pool: Pool, memory: Mapping[str, Any]) -> list[dict[str, Any]]:
    out = []
    for where, config, mem in keep_alives(pool.policy, memory):
        assert config.keep_alive is not None
        idle = mem.get("idle")
        learned = None
        if isinstance(idle, Mapping) and idle.get("bins"):
            try:
                learned = summary(idle, config.keep_alive.min_gaps)
            except (KeyError, TypeError, ValueError, ZeroDivisionError):
                learned = None  # not this model's memory: shown as nothing learned
        out.append({"policy": where, "learned": learned})
    return out


def explain(
    pool: Pool,
    values: Mapping[str, float],
    replicas: int,
    ready: int | None,
    now: float | None = None,
    memory: PoolMemory | None = None,
    budget: Budget | None = None,
) -> Explanation:
    """`memory`: the pool's stored memory (from a state file); then `now` defaults to its
    last tick. Without it the planner starts empty at `now` (default 0). `budget`: the
    installation's; it and the pool's own cap the decision as if this pool were alone and
    no GPU-hours were used today (autoscaler/budgets.py)."""
    limit = max(MAX_REPLICAS, pool.max)
    if not 0 <= replicas <= limit:
        raise ExplainError(
            f"--replicas must be between 0 and {limit:,} (pool {pool.name!r} has max "
            f"{pool.max}), got {replicas}"
        )
    ready = replicas if ready is None else ready
    if not 0 <= ready <= replicas:
        raise ExplainError(f"--ready must be between 0 and --replicas ({replicas}), got {ready}")
    from_state = memory is not None
    memory = memory if memory is not None else PoolMemory()
    if now is None:
        now = last_tick(memory) if from_state else 0.0
    required = pool.policy.signal_names() - pool.policy.optional_signals()
    stale = {name: "not given on the command line" for name in sorted(required - set(values))}
    observation = Observation(
        pool=pool.name,
        now=now,
        current_replicas=replicas,
        ready_replicas=ready,
        signals=dict(values),
        stale=frozenset(stale),
        startup_seconds=pool.startup,
        min_replicas=pool.min,
        max_replicas=pool.max,
    )
    rec = pool.policy.build().recommend(observation, memory.policy)
    spec = PlanSpec.from_pool(pool)
    decision, _ = plan(pool.name, spec, rec, replicas, now, memory, stale)
    given = {(pool.name, name): Reading(value, now) for name, value in values.items()}
    decision = with_experiment_reason(pool, decision, given)
    limits = limits_for(budget, None, "installation", 0.0, now)
    limits += limits_for(pool.budget, frozenset((pool.name,)), f"pool {pool.name}", 0.0, now)
    if limits:
        price, gpus = replica_price(pool), replica_gpus(pool)
        claim = Claim(pool.name, replicas, decision.desired, pool.priority, price, gpus)
        decision = apply(decision, allocate([claim], limits)[pool.name])
    learned = learned_gaps(pool, memory.policy)
    return Explanation(pool, observation, rec, decision, stale, learned, from_state)
