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
5. Gangs (groups with a `gang`: pods that run all together or not at all, gangs.py) go
   before everything else, by priority then oldest first, and only whole: either every
   pending member fits on existing or in-flight capacity, or the gang gets new nodes of
   one type for all of them (the type whose nodes cost least in all), or nothing is
   planned for any member.
   A gang's new nodes take no other pods, so its launch is for the gang alone.

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
    gang: str | None = None
    """the gang these pods belong to: placed only with every other group of the gang."""
    since: float = 0.0
    """when its oldest pod was created: older gangs are placed first."""
    priority: int = 0
    """its pods' `spec.priority`: higher priority groups are packed first (max_nodes)."""


@dataclass(slots=True)
class Bin:
    """Room that pods may fill: an existing node, an in-flight instance or a planned one."""

    name: str
    room: Resources
    accepts: frozenset[Hashable] | None = None
    """keys of the groups that may land here (None: any)."""
    instance_type: str | None = None
    pods: list[str] = field(default_factory=list)
    gang: str | None = None


@dataclass(frozen=True, slots=True)
class NewNode:
    instance_type: str
    pods: tuple[str, ...]
    gang: str | None = None
    """set for a node launched for a gang: the gang's nodes launch together (gangs.py)."""


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
        """How many new instances of each type, gangs' nodes left out (launched apart)."""
        return Counter(n.instance_type for n in self.new_nodes if n.gang is None)

    def gang_nodes(self) -> dict[str, list[NewNode]]:
        """The new nodes of each gang."""
        out: dict[str, list[NewNode]] = {}
        for node in self.new_nodes:
            if node.gang is not None:
                out.setdefault(node.gang, []).append(node)
        return out


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
        key=lambda g: (
            -g.priority,
            -g.demand.gpus,
            -g.demand.cpu_millis,
            -g.demand.memory_bytes,
            str(g.key),
        ),
    )
    rooms = {t.name: node_room(t, reserved) for t in types}
    bins = [Bin(b.name, b.room, b.accepts, b.instance_type, list(b.pods)) for b in existing]
    new: list[Bin] = []
    unplaced: dict[str, str] = {}
    gangs: dict[str, list[PodGroup]] = {}
    for group in order:
        if group.gang is not None:
            gangs.setdefault(group.gang, []).append(group)
    for gang in sorted(gangs, key=lambda g: _gang_rank(gangs[g], g)):
        bins = _place_gang(gang, gangs[gang], types, rooms, bins, new, max_new, unplaced)
    order = [g for g in order if g.gang is None]

    waiting = {id(g): list(g.pods) for g in order}
    for group in order:
        _fill(bins, group, waiting[id(group)])
    covered = {b.name: tuple(b.pods) for b in bins if b.pods}

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
    nodes = tuple(NewNode(b.instance_type or "", tuple(b.pods), b.gang) for b in new)
    return Packing(nodes, covered, unplaced, sum(price[n.instance_type] for n in nodes))


def _gang_rank(groups: Sequence[PodGroup], gang: str) -> tuple[int, float, str]:
    """Gangs go by priority (highest first), then oldest first."""
    return (-max(g.priority for g in groups), min(g.since for g in groups), gang)


def _place_gang(
    gang: str,
    groups: Sequence[PodGroup],
    types: Sequence[InstanceSpec],
    rooms: dict[str, Resources],
    bins: list[Bin],
    new: list[Bin],
    max_new: int,
    unplaced: dict[str, str],
) -> list[Bin]:
    """Place a whole gang (see the module docstring, 5.); returns the existing bins after."""
    trial = [Bin(b.name, b.room, b.accepts, b.instance_type, list(b.pods)) for b in bins]
    for group in groups:
        pods = list(group.pods)
        _fill(trial, group, pods)
        if pods:
            break
    else:
        return trial  # all of it on capacity that exists or is coming
    best: list[Bin] | None = None
    best_cost = 0.0
    for spec in types:
        if not all(
            spec.name in g.types and rooms[spec.name].room_for(g.demand) > 0 for g in groups
        ):
            continue
        opened: list[Bin] = []
        for group in groups:
            pods = list(group.pods)
            _fill(opened, group, pods)
            while pods:
                node = Bin(f"new-{len(new) + len(opened)}", rooms[spec.name], None, spec.name)
                node.gang = gang
                opened.append(node)
                _fill([node], group, pods)
        cost = spec.price * len(opened)
        if best is None or (cost, len(opened)) < (best_cost, len(best)):
            best, best_cost = opened, cost
    every = [p for g in groups for p in g.pods]
    if best is None:
        why = f"gang {gang}: no allowed instance type takes its pods " + _too_big(
            groups[0], types, rooms
        ).join("()")
        unplaced.update((p, why) for p in every)
    elif len(new) + len(best) > max_new:
        why = (
            f"gang {gang} needs {len(best)} new node(s) together; max_nodes leaves room for "
            f"{max(0, max_new - len(new))}: it waits whole"
        )
        unplaced.update((p, why) for p in every)
    else:
        for node in best:
            node.accepts = frozenset()  # the gang's alone
        new.extend(best)
    return bins


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
