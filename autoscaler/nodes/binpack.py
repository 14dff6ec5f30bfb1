"""Bin packing of pending GPU pods onto capacity that is coming, then onto new instances.

The heuristic (first-fit decreasing, cheapest per GPU):
1. Identical pods form a group (same requests, same allowed instance types); groups are
   taken largest first (GPUs, then vCPUs, then memory).
2. Each group first fills capacity that already exists or is on its way: free room on our
   Ready GPU nodes and whole in-flight instances (launched, not yet Ready with GPUs). Only
   what is left asks for new instances; that is what stops a second launch per tick.
3. Leftover pods fill the new nodes opened earlier in this plan (first fit), then open a
   new node. Its type is the one with the lowest price per GPU actually used: for every
   allowed type that fits the pod, a fresh node is filled (greedily, largest first) with
   the pods still waiting, and price / GPUs placed decides; ties go to the cheaper node.
   So four 1-GPU pods get four 1-GPU nodes when those are cheaper per GPU than one 4-GPU
   node, and a single 1-GPU pod never gets an 8-GPU node.
4. A pod bigger than every allowed type, or beyond `max_new` nodes, is left with a reason.

Pure: no I/O, no clock; it must never call Kubernetes or AWS.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field

from .catalog import GIB, InstanceSpec


@dataclass(frozen=True, slots=True)
class Resources:
    """GPUs, CPU in millicores and memory in bytes: a request or a node's room."""

    gpus: int = 0
    cpu_millis: int = 0
    memory_bytes: int = 0

    def times(self, count: int) -> Resources:
        return Resources(self.gpus * count, self.cpu_millis * count, self.memory_bytes * count)

    def minus(self, other: Resources) -> Resources:
        return Resources(
            self.gpus - other.gpus,
            self.cpu_millis - other.cpu_millis,
            self.memory_bytes - other.memory_bytes,
        )

    def room_for(self, demand: Resources) -> int:
        """How many pods of `demand` fit in this room (a large number when nothing is asked)."""
        counts = [
            have // need
            for have, need in (
                (self.gpus, demand.gpus),
                (self.cpu_millis, demand.cpu_millis),
                (self.memory_bytes, demand.memory_bytes),
            )
            if need > 0
        ]
        return max(0, min(counts)) if counts else 1 << 30

    def __str__(self) -> str:
        return (
            f"{self.gpus} GPU, {self.cpu_millis / 1000:g} vCPU, {self.memory_bytes / GIB:.3g} GiB"
        )


def node_room(spec: InstanceSpec, reserved: Resources) -> Resources:
    """What pods can use on an empty node of `spec`."""
    return Resources(spec.gpus, spec.cpu_millis, spec.memory_bytes).minus(reserved)


@dataclass(frozen=True, slots=True)
class PodGroup:
    """Pending pods with the same requests and the same allowed instance types."""

    key: Hashable
    demand: Resources
    pods: tuple[str, ...]
    """namespace/name of each pod."""
    types: frozenset[str]
    """instance types a new node for these pods may have (selectors, taints)."""


@dataclass(slots=True)
class Bin:
    """Room that pods may fill: an existing node, an in-flight instance or a planned one."""

    name: str
    room: Resources
    accepts: frozenset[Hashable] | None = None
    """keys of the groups that may land here (None: any)."""
    instance_type: str | None = None
    pods: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class NewNode:
    instance_type: str
    pods: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Packing:
    """Where every pending pod goes: coming capacity, a new node, or nowhere (why)."""

    new_nodes: tuple[NewNode, ...]
    covered: dict[str, tuple[str, ...]]
    """pods expected on existing or in-flight capacity, by bin name."""
    unplaced: dict[str, str]
    """pod -> why no node is planned for it."""
    price_per_hour: float

    def launches(self) -> Counter[str]:
        """How many new instances of each type."""
        return Counter(n.instance_type for n in self.new_nodes)


def pack(
    groups: Sequence[PodGroup],
    types: Sequence[InstanceSpec],
    existing: Sequence[Bin] = (),
    *,
    max_new: int,
    reserved: Resources = Resources(),
) -> Packing:
    """Plan new nodes for `groups` after filling `existing` (see the module docstring)."""
    order = sorted(
        groups,
        key=lambda g: (-g.demand.gpus, -g.demand.cpu_millis, -g.demand.memory_bytes, str(g.key)),
    )
    waiting = {id(g): list(g.pods) for g in order}
    bins = [Bin(b.name, b.room, b.accepts, b.instance_type, list(b.pods)) for b in existing]
    for group in order:
        _fill(bins, group, waiting[id(group)])
    covered = {b.name: tuple(b.pods) for b in bins if b.pods}

    rooms = {t.name: node_room(t, reserved) for t in types}
    new: list[Bin] = []
    unplaced: dict[str, str] = {}
    for index, group in enumerate(order):
        pods = waiting[id(group)]
        fitting = [
            t for t in types if t.name in group.types and rooms[t.name].room_for(group.demand) > 0
        ]
        if pods and not fitting:
            why = _too_big(group, types, rooms)
            unplaced.update((p, why) for p in pods)
            continue
        _fill(new, group, pods)
        while pods:
            if len(new) >= max_new:
                why = f"max_nodes reached: {max_new} new node(s) planned, no room for more"
                unplaced.update((p, why) for p in pods)
                pods.clear()
                break
            rest = [(g, len(waiting[id(g)])) for g in order[index:] if waiting[id(g)]]
            spec = _cheapest(fitting, rest, rooms)
            opened = Bin(f"new-{len(new)}", rooms[spec.name], None, spec.name)
            new.append(opened)
            _fill([opened], group, pods)
    price = {t.name: t.price for t in types}
    nodes = tuple(NewNode(b.instance_type or "", tuple(b.pods)) for b in new)
    return Packing(nodes, covered, unplaced, sum(price[n.instance_type] for n in nodes))


def _fill(bins: Sequence[Bin], group: PodGroup, pods: list[str]) -> None:
    """First fit: move as many of `pods` as fit into `bins`, in order."""
    for b in bins:
        if not pods:
            return
        if b.accepts is not None and group.key not in b.accepts:
            continue
        if b.instance_type is not None and b.accepts is None and b.instance_type not in group.types:
            continue
        count = min(len(pods), b.room.room_for(group.demand))
        if count <= 0:
            continue
        b.pods.extend(pods[:count])
        del pods[:count]
        b.room = b.room.minus(group.demand.times(count))


def _cheapest(
    fitting: Sequence[InstanceSpec],
    rest: Sequence[tuple[PodGroup, int]],
    rooms: dict[str, Resources],
) -> InstanceSpec:
    """The type whose fresh node, filled greedily with `rest`, costs least per GPU used."""

    def score(spec: InstanceSpec) -> tuple[float, float, str]:
        room = rooms[spec.name]
        used_gpus = 0
        for group, count in rest:
            if spec.name not in group.types:
                continue
            placed = min(count, room.room_for(group.demand))
            if placed:
                room = room.minus(group.demand.times(placed))
                used_gpus += placed * group.demand.gpus
        return (spec.price / max(used_gpus, 1), spec.price, spec.name)

    return min(fitting, key=score)


def _too_big(group: PodGroup, types: Sequence[InstanceSpec], rooms: dict[str, Resources]) -> str:
    allowed = [t for t in types if t.name in group.types]
    if not allowed:
        return "no allowed instance type matches its node selector and tolerations"
    largest = max(allowed, key=lambda t: (t.gpus, t.cpu_millis, t.memory_bytes))
    return (
        f"requests {group.demand}; no allowed instance type is that big (largest: "
        f"{largest.name}, {rooms[largest.name]} for pods)"
    )
