"""`composite`: the largest recommendation of several child policies wins.

The reason names the winning child. A child that holds because its signal is missing
blocks a scale-down by the others (the HPA rule for several metrics: a failed metric never
lets the rest shrink the pool), but never blocks a scale-up.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from autoscaler.types import Observation, Recommendation

from .base import Policy, PolicyConfig

if TYPE_CHECKING:
    from . import AnyPolicyConfig


class CompositeConfig(PolicyConfig):
    """Run every child policy; take the largest answer."""

    type: Literal["composite"] = "composite"
    policies: list[AnyPolicyConfig] = Field(min_length=1, description="child policies")

    def signal_names(self) -> set[str]:
        names: set[str] = set()
        for child in self.policies:
            names |= child.signal_names()
        return names

    def optional_signals(self) -> set[str]:
        optional: set[str] = set()
        required: set[str] = set()
        for child in self.policies:
            optional |= child.optional_signals()
            required |= child.signal_names() - child.optional_signals()
        return optional - required

    def build(self) -> CompositePolicy:
        return CompositePolicy([child.build() for child in self.policies], self)


class CompositePolicy:
    def __init__(self, children: list[Policy], config: CompositeConfig) -> None:
        self.children = children
        self.names = [child.type for child in config.policies]

    def recommend(self, observation: Observation, memory: Mapping[str, Any]) -> Recommendation:
        past = memory.get("children") or [{} for _ in self.children]
        answers = [
            child.recommend(observation, past[i] if i < len(past) else {})
            for i, child in enumerate(self.children)
        ]
        best = max(range(len(answers)), key=lambda i: answers[i].desired)
        winner = answers[best]
        desired = winner.desired
        held = [self.names[i] for i, a in enumerate(answers) if a.hold]
        others = "; ".join(
            f"{self.names[i]} {a.desired}" for i, a in enumerate(answers) if i != best
        )
        reason = f"composite: {self.names[best]} wins ({winner.reason})"
        if others:
            reason += f"; others: {others}"
        new_memory = {"children": [a.memory for a in answers]}
        current = observation.current_replicas
        if held and desired < current:
            return Recommendation(
                current,
                f"{reason}; hold: {', '.join(held)} could not decide, so no scale-down",
                new_memory,
                hold=True,
            )
        return Recommendation(desired, reason, new_memory, hold=winner.hold)
