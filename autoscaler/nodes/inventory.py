"""What the provisioner sees, as plain values: our instances, the Nodes, the pods that can
matter, the memory a tick leaves to the next; and what state each instance is in.

The observe step (observe.py) reads these from EC2 and the cluster; `plan_nodes` takes
them all in one `Observed` (Ray autoscaler v2's reconciler gets what it observed as
arguments the same way), so planning needs no client and a test writes them by hand.

An instance is ours when the EC2 provider finds it by our ownership tags (one pool per
allowed instance type). A Node is ours only when its `spec.providerID`
(`aws:///<zone>/<instance-id>`) names one of those instances; every other Node, however
labelled, is never touched. Each of our instances is in one state:

- `in-flight`: launched, but no Node yet, or a Node that is not Ready or does not yet
  advertise its GPUs in `status.allocatable`. Its whole capacity is coming, so pending
  pods count on it; it is never counted as existing capacity (cluster-autoscaler's
  overshoot, where a GPU node without its GPUs yet looks like CPU capacity, is what this
  avoids);
- `ready`: a Ready Node advertising GPUs;
- `draining`: a Node we cordoned (our taint on it);
- `leaving`: EC2 told us it goes (a spot interruption, a scheduled change, ...; see
  interruptions.py): never capacity, its pods are placed elsewhere, and its Node is
  cordoned with the notice's kind as our taint's value, which keeps the state across a
  restart.

Pure values and functions: this module must never call Kubernetes or AWS nor read a clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from autoscaler.config.nodes import NodeProvisioning
from autoscaler.config.targets import Ec2Target

from .admission import GangAdmission
from .binpack import Resources
from .pending import PendingPod

State = Literal["in-flight", "ready", "draining", "leaving"]

INTERRUPTION_KINDS = frozenset(
    {"spot-interruption", "rebalance-recommendation", "scheduled-change", "state-change"}
)
"""What an EC2 notice can say about an instance; each is our cordon taint's value on the
Node of an instance leaving for that reason (an empty node past its TTL gets "true")."""


@dataclass(frozen=True, slots=True)
class NodePool:
    """The pool the EC2 provider launches one instance type into (its protocol's shape)."""

    name: str
    target: Ec2Target
    max: int
    instance_type: str


def node_pools(config: NodeProvisioning, types: Iterable[str]) -> dict[str, NodePool]:
    """One EC2 pool per allowed instance type, named `<pool>.<instance type>`."""
    return {
        name: NodePool(pool_name(config, name), config.ec2_target(name), config.max_nodes, name)
        for name in types
    }


def pool_name(config: NodeProvisioning, instance_type: str) -> str:
    return f"{config.pool}.{instance_type}"


@dataclass(frozen=True, slots=True)
class OurInstance:
    id: str
    instance_type: str
    running: bool
    launched_at: float
    """seconds since the epoch."""


@dataclass(frozen=True, slots=True)
class NodeView:
    """A Node as planning needs it."""

    name: str
    instance_id: str | None
    """from `spec.providerID`; None when it names no EC2 instance."""
    ready: bool
    allocatable: Resources
    labels: Mapping[str, str] = field(default_factory=dict)
    taints: tuple[Mapping[str, str], ...] = ()
    """`{"key", "value", "effect"}` each, value "" when unset."""
    cordoned_by_us: bool = False
    """carries our `<prefix>/disrupting` taint: a drain of ours is in progress."""
    cordon_reason: str = ""
    """that taint's value: "true" (empty past its TTL) or an interruption kind."""


@dataclass(frozen=True, slots=True)
class PodView:
    """A live pod as planning needs it: pending (unschedulable), or bound to a node."""

    name: str
    """namespace/name."""
    requests: Resources
    node: str | None = None
    workload: bool = True
    """keeps a node busy (not a DaemonSet's, not a mirror pod)."""
    do_not_disrupt: bool = False
    terminating: bool = False
    pending: PendingPod | None = None
    """set when the scheduler found no node for it (PodScheduled=False, Unschedulable)."""
    placement: PendingPod | None = None
    """its request, nodeSelector and tolerations, to place it anew when its node leaves
    (None: its request alone)."""

    @property
    def namespace(self) -> str:
        return self.name.split("/", 1)[0]


@dataclass(frozen=True, slots=True)
class Memory:
    """What one tick leaves to the next; lost on a restart, which only delays scale-down."""

    empty_since: Mapping[str, float] = field(default_factory=dict)
    """node -> when it was first seen without workload (seconds since the epoch)."""
    seen_ready: frozenset[str] = frozenset()
    """instances that were Ready GPU nodes once: a later NotReady is not a failed boot."""
    leaving: Mapping[str, Leaving] = field(default_factory=dict)
    """instance -> the EC2 notice that it goes (kept until the instance is gone)."""


@dataclass(frozen=True, slots=True)
class Leaving:
    """An instance EC2 said goes: why (one of INTERRUPTION_KINDS), since and until when."""

    kind: str
    since: float
    """seconds since the epoch: when the notice was taken in (or found on the Node)."""
    deadline: float | None = None
    """when EC2 takes it (a spot interruption: 2 minutes after the notice); None: unknown."""


@dataclass(frozen=True, slots=True)
class Observed:
    """Everything one tick observed: the whole input of `plan_nodes`."""

    config: NodeProvisioning
    now: float
    """seconds since the epoch, read once after the reads."""
    instances: Sequence[OurInstance] = ()
    nodes: Sequence[NodeView] = ()
    """every Node, ours or not."""
    pods: Sequence[PodView] = ()
    """live pods that can matter: unschedulable ones, and those bound to one of our Nodes."""
    memory: Memory = field(default_factory=Memory)
    exhausted: frozenset[str] = frozenset()
    """allowed types whose every offering is out of capacity for now (provider's cache)."""
    admission: GangAdmission = field(default_factory=GangAdmission)
    """suspended Jobs labelled for gang admission, and labelled Jobs not yet settled."""


@dataclass(slots=True)
class Tracked:
    """One of our instances with its Node (if registered) and the pods bound there."""

    instance: OurInstance
    node: NodeView | None
    state: State
    pods: list[PodView] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.node.name if self.node is not None else self.instance.id


def instance_id(provider_id: str | None) -> str | None:
    """The instance id of `aws:///<zone>/<instance-id>`; None for anything else."""
    if not provider_id or not provider_id.startswith("aws://"):
        return None
    last = provider_id.rstrip("/").rsplit("/", 1)[-1]
    return last if last.startswith("i-") else None


def classify(
    instances: Iterable[OurInstance],
    nodes: Iterable[NodeView],
    pods: Iterable[PodView],
    leaving: Iterable[str] = (),
) -> list[Tracked]:
    """Pair our instances with their Nodes (by providerID) and the pods bound there;
    instances in `leaving` (ids) are in state `leaving` whatever their Node says."""
    gone = set(leaving)
    by_instance = {n.instance_id: n for n in nodes if n.instance_id is not None}
    tracked: list[Tracked] = []
    by_node: dict[str, Tracked] = {}
    for inst in instances:
        node = by_instance.get(inst.id)
        state: State = "in-flight"
        if inst.id in gone:
            state = "leaving"
        elif node is not None and node.cordoned_by_us:
            state = "draining"
        elif node is not None and node.ready and node.allocatable.gpus > 0:
            state = "ready"
        item = Tracked(inst, node, state)
        tracked.append(item)
        if node is not None:
            by_node[node.name] = item
    for pod in pods:
        if pod.node and pod.node in by_node:
            by_node[pod.node].pods.append(pod)
    return tracked


def room_of(node: NodeView, pods: Sequence[PodView]) -> Resources:
    """A Node's allocatable minus what its live pods request."""
    room = node.allocatable
    for pod in pods:
        room = room.minus(pod.requests)
    return room
