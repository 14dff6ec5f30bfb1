"""`packing`: nodes for work that holds whole units of a node and cannot move (GPU batch).

Cluster-autoscaler's rule, on two signals: a node that holds work stays (a running job is
never killed or moved), and work that waits gets new nodes, as many as its units fill.
Idle nodes are not counted, so they go once the scale-down window has passed.

    desired = busy + ceil(pending / (slots_per_replica x fill)) + spare

Why not a target per replica (KEDA on GPUs requested): jobs that run for hours spread over
nodes, and a node with one small job left is as billed as a full one. A target low enough
to leave room for that fragmentation keeps idle headroom on every other node, all day. Here
the headroom is where the waiting work is. `fill` < 1 plans for pending work that packs
badly (five 5-GPU jobs need five 8-GPU nodes, not four); `spare` keeps warm nodes for
arrivals when a cold start is longer than the wait the work can afford.

A replica's units (a node's GPUs) are its slots: `slots_per_replica`, the name every policy
and the simulator use (`units_per_replica`, the old name, still loads). Pure: no I/O, no
clock, no memory.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from pydantic import AliasChoices, ConfigDict, Field

from autoscaler.types import Observation, Recommendation

from .base import PolicyConfig, hold_for_missing, missing


def _old_name_too(schema: dict[str, Any]) -> None:
    """The JSON Schema accepts the old field name as pydantic does (editors, `validate`)."""
    props = schema["properties"]
    props["units_per_replica"] = {**props["slots_per_replica"], "deprecated": True}
    schema["required"].remove("slots_per_replica")
    schema["anyOf"] = [{"required": ["slots_per_replica"]}, {"required": ["units_per_replica"]}]


class PackingConfig(PolicyConfig):
    """Nodes holding work, plus new nodes for the units waiting work requests."""

    model_config = ConfigDict(json_schema_extra=_old_name_too)
    stateless: ClassVar[bool] = True
    """The recommendation depends only on the observation's signals (no memory, no `now`):
    the simulator skips ticks on which they do not change (autoscaler/sim/engine.py)."""

    type: Literal["packing"] = Field("packing", description="selects this policy")
    busy_signal: str = Field(
        "busy_replicas", description="signal: replicas (nodes) holding any running work"
    )
    pending_signal: str = Field(
        "pending_gpus", description="signal: units (GPUs) requested by work that waits"
    )
    slots_per_replica: int = Field(
        gt=0,
        le=1_000_000,
        validation_alias=AliasChoices("slots_per_replica", "units_per_replica"),
        description="units (GPUs) one replica (node) has; `units_per_replica` also loads",
    )
    fill: float = Field(
        1.0, gt=0, le=1, description="share of a new node's units waiting work is planned to use"
    )
    spare: int = Field(0, ge=0, le=10_000, description="idle replicas kept beyond the need")

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
        self.slots_planned_per_new_replica = config.slots_per_replica * config.fill
        self.spare = config.spare
        self.plan_note = (
            f" / ({config.slots_per_replica} x fill {config.fill:g})"
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
        new = math.ceil(pending / self.slots_planned_per_new_replica) if pending > 0 else 0
        desired = busy + new + self.spare
        return Recommendation(
            desired,
            f"packing: {busy} busy + pending {pending:g}{self.plan_note}{desired}",
        )
