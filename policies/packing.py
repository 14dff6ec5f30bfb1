"""`packing`: nodes for work that holds whole units of a node and cannot move (GPU batch).

Cluster-autoscaler's rule, on two signals: a node that holds work stays (a running job is
never killed or moved), and work that waits gets new nodes, as many as its units fill.
Idle nodes are not counted, so they go once the scale-down window has passed.

    desired = busy + ceil(pending / (units_per_replica x fill)) + spare

Why not a target per replica (KEDA on GPUs requested): jobs that run for hours spread over
nodes, and a node with one small job left is as billed as a full one. A target low enough
to leave room for that fragmentation keeps idle headroom on every other node, all day. Here
the headroom is where the waiting work is. `fill` < 1 plans for pending work that packs
badly (five 5-GPU jobs need five 8-GPU nodes, not four); `spare` keeps warm nodes for
arrivals when a cold start is longer than the wait the work can afford.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field

from autoscaler.types import Observation, Recommendation

from .base import PolicyConfig, hold_for_missing, missing


class PackingConfig(PolicyConfig):
    """Nodes holding work, plus new nodes for the units waiting work requests."""

    type: Literal["packing"] = "packing"
    busy_signal: str = Field(
        "busy_replicas", description="signal: replicas (nodes) holding any running work"
    )
    pending_signal: str = Field(
        "pending_gpus", description="signal: units (GPUs) requested by work that waits"
    )
    units_per_replica: int = Field(gt=0, description="units (GPUs) one replica (node) has")
    fill: float = Field(
        1.0, gt=0, le=1, description="share of a new node's units waiting work is planned to use"
    )
    spare: int = Field(0, ge=0, description="idle replicas kept beyond the need")

    def signal_names(self) -> set[str]:
        return {self.busy_signal, self.pending_signal}

    def build(self) -> PackingPolicy:
        return PackingPolicy(self)


class PackingPolicy:
    def __init__(self, config: PackingConfig) -> None:
        self.config = config
        self.names = [config.busy_signal, config.pending_signal]
        # Fields read at every call, as plain attributes (see FAST_FIELDS in base.py).
        self.busy_signal = config.busy_signal
        self.pending_signal = config.pending_signal
        self.per_new = config.units_per_replica * config.fill
        self.spare = config.spare
        self.plan_note = (
            f" / ({config.units_per_replica} x fill {config.fill:g})"
            + (f" + {config.spare} spare" if config.spare else "")
            + " -> "
        )

    def recommend(self, observation: Observation, memory: Mapping[str, Any]) -> Recommendation:
        signals = observation.signals
        for name in self.names:
            if name not in signals:
                return hold_for_missing(observation, "packing", missing(observation, self.names))
        busy = math.ceil(signals[self.busy_signal])
        pending = signals[self.pending_signal]
        new = math.ceil(pending / self.per_new) if pending > 0 else 0
        desired = busy + new + self.spare
        return Recommendation(
            desired,
            f"packing: {busy} busy + pending {pending:g}{self.plan_note}{desired}",
        )
