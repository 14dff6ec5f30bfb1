"""What every policy is: a pydantic config model selected by `type`, and a pure decider.

A policy turns an Observation into a Recommendation. It never does I/O, never reads a clock
(time arrives as `observation.now`) and keeps no hidden state: whatever it must remember
between calls (window averages, a forecast) goes out in `Recommendation.memory` and comes
back as the `memory` argument next time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Protocol

from pydantic import BaseModel, ConfigDict

from autoscaler.types import Observation, Recommendation


class PolicyConfig(BaseModel):
    """Base of every policy's configuration model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    owns_behavior: ClassVar[bool] = False
    """True for baselines that apply their own stabilization and rate limits (hpa, keda,
    kpa): the pool's generic `behavior` is then not applied on top of them."""

    stateless: ClassVar[bool] = False
    """True when the recommendation depends only on the observation's signals and
    capacity (no memory, no `now`): the simulator may then skip ticks on which they do not
    change (autoscaler/sim/engine.py)."""

    @property
    def owns_keep_alive(self) -> bool:
        """True when the policy itself decides when the pool's last replica goes (a learned
        keep-alive): the planner's default scale-to-zero delay and scale-down window are
        then not stacked on top of it (autoscaler/planner.py, PlanSpec.from_pool)."""
        return False

    def signal_names(self) -> set[str]:
        """The signals this policy reads; the config checks that the pool declares them."""
        raise NotImplementedError

    def optional_signals(self) -> set[str]:
        """Signals the policy can do without (a stale one then does not hold the pool)."""
        return set()

    def build(self) -> Policy:
        """The decider for this configuration."""
        raise NotImplementedError


# FAST_FIELDS: deciders copy the configuration fields they read at every call into plain
# attributes when they are built. A pydantic model defines __getattr__, which takes every
# attribute read off CPython's fast path (~60 ns more per read); at 10,000 pools a tick and
# a dozen reads per call, that was ~5% of bench/decide.py. The config stays the source.


class Policy(Protocol):
    def recommend(self, observation: Observation, memory: Mapping[str, Any]) -> Recommendation:
        """Replicas the pool needs now, with the reason and the memory for the next call."""
        ...


def missing(observation: Observation, names: list[str]) -> list[str]:
    """Which of `names` have no usable value in this observation."""
    return [n for n in names if n not in observation.signals]


def hold_for_missing(observation: Observation, policy: str, names: list[str]) -> Recommendation:
    """Keep the current capacity because a signal this policy needs is missing."""
    listed = ", ".join(names)
    return Recommendation(
        desired=observation.current_replicas,
        reason=f"{policy}: signal {listed} missing; keeping {observation.current_replicas}",
        hold=True,
    )
