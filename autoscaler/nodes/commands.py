"""What `plan_nodes` decides, as plain values (Karpenter's Command, cluster-autoscaler's
planner output): one value per thing to do or to report, and the plan that holds them.

The actuator (actuator.py) carries the commands out in order; report-only commands
(`Hold`, `Unplaced`) say why nothing is done. Values only: this module must never call
anything, and a command must name only an instance we own or a Node matched to one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from .binpack import Packing
from .gangs import GangLaunch, GangTimedOut
from .inventory import Memory


@dataclass(frozen=True, slots=True)
class Launch:
    """Raise the pool of `instance_type` to `desired` instances (`count` new ones)."""

    instance_type: str
    count: int
    desired: int
    request_id: str
    """stable for the same decision, so a retry after a crash launches nothing twice."""
    pods: tuple[str, ...]
    """the pending pods the new instances are for."""


@dataclass(frozen=True, slots=True)
class Label:
    """Give a newly registered Node of ours the configured labels and missing taints."""

    node: str
    labels: Mapping[str, str]
    add_taints: tuple[Mapping[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Cordon:
    """Mark a node unschedulable, with our taint: its drain starts. `reason` is the
    taint's value: "" (written "true") for a node empty past its TTL, else the kind of
    EC2 notice its instance got (inventory.INTERRUPTION_KINDS)."""

    node: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class CallOffDrain:
    """Un-cordon a node we were draining; it is then held for `reason`."""

    node: str
    reason: str


@dataclass(frozen=True, slots=True)
class Drain:
    """Evict these pods of a cordoned node through the Eviction API; a PDB that refuses
    holds the node until a later tick."""

    node: str
    pods: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Terminate:
    """Terminate one of our instances and delete its Node, if it registered one."""

    instance_id: str
    instance_type: str
    node: str | None
    reason: str

    @property
    def name(self) -> str:
        return self.node or self.instance_id


@dataclass(frozen=True, slots=True)
class AdmitGang:
    """Unsuspend a Job labelled for gang admission: all its pods fit on Ready nodes."""

    gang: str
    namespace: str
    job: str
    uid: str
    """the Job's uid: the patch is refused when the Job was replaced meanwhile."""


@dataclass(frozen=True, slots=True)
class Hold:
    """A node of ours that would go but stays, and why."""

    node: str
    reason: str


@dataclass(frozen=True, slots=True)
class Unplaced:
    """A pending pod no node is planned for, and why."""

    pod: str
    reason: str


Command = (
    Launch
    | GangLaunch
    | GangTimedOut
    | AdmitGang
    | Label
    | Cordon
    | CallOffDrain
    | Drain
    | Terminate
    | Hold
    | Unplaced
)


@dataclass(frozen=True, slots=True)
class NodePlan:
    """The output of `plan_nodes`: commands in the order to carry them out, the memory for
    the next tick, and what was seen (for the tick's report)."""

    commands: tuple[Command, ...]
    memory: Memory
    pending: int = 0
    """unschedulable GPU pods considered."""
    covered: int = 0
    """of them, expected on in-flight or Ready capacity (no launch)."""
    in_flight: tuple[str, ...] = ()
    ready: tuple[str, ...] = ()
    packing: Packing | None = None
    leaving: Mapping[str, str] = field(default_factory=dict)
    """node (or instance) -> why it goes and when, for instances EC2 said go."""
