"""`autoscaler explain`: what a pool's policy and planner would decide for given values.

Runs the real policy and planner on one observation built from the command line, with
fresh planner memory (so stabilization windows start empty, as on a controller's first
tick). A declared signal left off the command line counts as stale, which shows the hold.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .config import SIMULATED_SIGNALS, Pool
from .planner import PlanSpec, PoolMemory, plan
from .types import Decision, Observation, Recommendation


class ExplainError(ValueError):
    """Bad command-line input for explain; the message says what to fix."""


@dataclass(frozen=True)
class Explanation:
    pool: Pool
    observation: Observation
    recommendation: Recommendation
    decision: Decision
    stale: dict[str, str]

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
        }


def parse_signals(pairs: tuple[str, ...], pool: Pool) -> dict[str, float]:
    """`name=value` pairs, checked against the pool's declared signals."""
    known = set(pool.signals)
    if pool.target.kind == "simulated":
        known |= set(SIMULATED_SIGNALS)
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
        try:
            value = float(text)
        except ValueError:
            raise ExplainError(f"--signal {name}: {text!r} is not a number") from None
        if not math.isfinite(value) or value < 0:
            raise ExplainError(f"--signal {name}: {text!r} must be a finite number >= 0")
        values[name] = value
    return values


def explain(
    pool: Pool, values: Mapping[str, float], replicas: int, ready: int | None, now: float = 0.0
) -> Explanation:
    if replicas < 0:
        raise ExplainError(f"--replicas must be >= 0, got {replicas}")
    ready = replicas if ready is None else ready
    if not 0 <= ready <= replicas:
        raise ExplainError(f"--ready must be between 0 and --replicas ({replicas}), got {ready}")
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
    rec = pool.policy.build().recommend(observation, {})
    decision, _ = plan(pool.name, PlanSpec.from_pool(pool), rec, replicas, now, PoolMemory(), stale)
    return Explanation(pool, observation, rec, decision, stale)
