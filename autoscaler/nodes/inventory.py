"""What the provisioner sees: our instances, their Nodes, and what state each pair is in.

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
- `draining`: a Node we cordoned (our taint on it).

Pure: classifies what the caller read.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from autoscaler.config.targets import Ec2Target

from .binpack import Resources
from .pending import GPU, pod_request, quantity

State = Literal["in-flight", "ready", "draining"]


@dataclass(frozen=True, slots=True)
class NodePool:
    """The pool the EC2 provider launches one instance type into (its protocol's shape)."""

    name: str
    target: Ec2Target
    max: int
    instance_type: str


@dataclass(frozen=True, slots=True)
class OurInstance:
    id: str
    pool: NodePool
    running: bool
    launched_at: float
    """seconds since the epoch."""


@dataclass(slots=True)
class Tracked:
    """One of our instances with its Node (if registered) and the pods bound there."""

    instance: OurInstance
    node: Any | None
    state: State
    pods: list[Any] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.node.metadata.name if self.node is not None else self.instance.id


def instance_id(provider_id: str | None) -> str | None:
    """The instance id of `aws:///<zone>/<instance-id>`; None for anything else."""
    if not provider_id or not provider_id.startswith("aws://"):
        return None
    last = provider_id.rstrip("/").rsplit("/", 1)[-1]
    return last if last.startswith("i-") else None


def gpus_allocatable(node: Any) -> int:
    return int(quantity(((node.status and node.status.allocatable) or {}).get(GPU)))


def is_ready(node: Any) -> bool:
    for cond in (node.status and node.status.conditions) or ():
        if cond.type == "Ready":
            return bool(cond.status == "True")
    return False


def classify(
    instances: Iterable[OurInstance],
    nodes: Iterable[Any],
    pods: Iterable[Any],
    draining: Any,
) -> list[Tracked]:
    """Pair our instances with their Nodes and pods; `draining(node)` spots our cordon."""
    by_instance = {}
    for node in nodes:
        iid = instance_id(node.spec.provider_id if node.spec else None)
        if iid is not None:
            by_instance[iid] = node
    tracked: list[Tracked] = []
    by_node: dict[str, Tracked] = {}
    for inst in instances:
        node = by_instance.get(inst.id)
        state: State = "in-flight"
        if node is not None and draining(node):
            state = "draining"
        elif node is not None and is_ready(node) and gpus_allocatable(node) > 0:
            state = "ready"
        item = Tracked(inst, node, state)
        tracked.append(item)
        if node is not None:
            by_node[node.metadata.name] = item
    for pod in pods:
        bound = pod.spec.node_name if pod.spec else None
        if bound and bound in by_node:
            by_node[bound].pods.append(pod)
    return tracked


def room_of(node: Any, pods: Sequence[Any]) -> Resources:
    """A Node's allocatable minus what its live pods request."""
    alloc: Mapping[str, Any] = (node.status and node.status.allocatable) or {}
    used_gpu = sum(pod_request(p, GPU) for p in pods)
    used_cpu = sum(pod_request(p, "cpu") for p in pods)
    used_mem = sum(pod_request(p, "memory") for p in pods)
    return Resources(
        gpus=int(quantity(alloc.get(GPU)) - used_gpu),
        cpu_millis=round((quantity(alloc.get("cpu")) - used_cpu) * 1000),
        memory_bytes=round(quantity(alloc.get("memory")) - used_mem),
    )
