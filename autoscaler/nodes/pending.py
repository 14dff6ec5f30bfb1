"""Pending GPU pods as packing sees them, and which new nodes could take them.

A `PendingPod` is a plain value read from the API object by the observe step
(observe.py): its request, `nodeSelector` and tolerations. Whether a node can take it is
judged by its `nodeSelector` and its tolerations of the node's NoSchedule and NoExecute
taints; required node affinity is not evaluated (documented in docs/nodes.md).

Pure: this module must never import a Kubernetes or AWS client nor read API objects.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .binpack import PodGroup, Resources

INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type"

NodeShape = tuple[Mapping[str, str], Sequence[Mapping[str, str]]]
"""The labels and taints (`{"key", "value", "effect"}`) a node has or will have."""


@dataclass(frozen=True, slots=True)
class Toleration:
    key: str
    operator: str
    value: str
    effect: str

    def tolerates(self, taint: Mapping[str, str]) -> bool:
        if self.effect and self.effect != taint.get("effect"):
            return False
        if not self.key:
            return self.operator == "Exists"
        if self.key != taint.get("key"):
            return False
        return self.operator == "Exists" or self.value == (taint.get("value") or "")


@dataclass(frozen=True, slots=True)
class PendingPod:
    """An unschedulable pod as packing needs it."""

    name: str
    """namespace/name."""
    demand: Resources
    node_selector: tuple[tuple[str, str], ...] = ()
    tolerations: tuple[Toleration, ...] = ()
    gang: str | None = None
    """the gang it belongs to (gangs.py: pods that run all together or not at all)."""
    gang_size: int = 0
    """how many pods the gang has in all (an Indexed Job's parallelism, ...)."""
    since: float = 0.0
    """when the pod was created (seconds since the epoch): a gang waits from its first."""
    priority: int = 0
    """its `spec.priority` (PriorityClass): higher is packed first when max_nodes binds."""

    def can_run_on(self, labels: Mapping[str, str], taints: Iterable[Mapping[str, str]]) -> bool:
        """True when a node with these labels and taints would accept the pod."""
        if any(labels.get(k) != v for k, v in self.node_selector):
            return False
        for taint in taints:
            if taint.get("effect") == "PreferNoSchedule":
                continue
            if not any(t.tolerates(taint) for t in self.tolerations):
                return False
        return True

    @property
    def group_key(self) -> tuple[Any, ...]:
        return (self.demand, self.node_selector, self.tolerations, self.gang, self.priority)


def group(
    pending: Iterable[PendingPod], node_shapes: Mapping[str, NodeShape]
) -> tuple[list[PodGroup], dict[str, str]]:
    """Pending pods as packing groups, and the pods no new node could take (with why).

    `node_shapes` maps each allowed instance type to the labels and taints its new Node gets.
    """
    members: dict[tuple[Any, ...], list[PendingPod]] = {}
    for pod in pending:
        members.setdefault(pod.group_key, []).append(pod)
    groups: list[PodGroup] = []
    refused: dict[str, str] = {}
    for key, pods in members.items():
        first = pods[0]
        types = frozenset(
            name
            for name, (labels, taints) in node_shapes.items()
            if first.can_run_on(labels, taints)
        )
        if not types:
            why = _why_not(first, node_shapes)
            refused.update((p.name, why) for p in pods)
            continue
        since = min(p.since for p in pods)
        groups.append(
            PodGroup(
                key,
                first.demand,
                tuple(p.name for p in pods),
                types,
                first.gang,
                since,
                first.priority,
            )
        )
    # A gang is placed whole or not at all: one member no new node takes holds them all.
    stuck = {
        p.gang: refused[p.name]
        for p in members_of(members)
        if p.name in refused and p.gang is not None
    }
    if stuck:
        for g in list(groups):
            if g.gang is None or g.gang not in stuck:
                continue
            groups.remove(g)
            why = f"gang {g.gang}: a member cannot run on new nodes: {stuck[g.gang]}"
            refused.update((p, why) for p in g.pods)
    return groups, refused


def members_of(members: Mapping[tuple[Any, ...], list[PendingPod]]) -> list[PendingPod]:
    return [p for pods in members.values() for p in pods]


def _why_not(pod: PendingPod, node_shapes: Mapping[str, NodeShape]) -> str:
    wanted = dict(pod.node_selector).get(INSTANCE_TYPE_LABEL)
    if wanted is not None and wanted not in node_shapes:
        return (
            f"its nodeSelector asks for instance type {wanted}, not an allowed one "
            f"({', '.join(node_shapes)})"
        )
    labels, taints = node_shapes[wanted] if wanted else next(iter(node_shapes.values()))
    missing = [f"{k}={v}" for k, v in pod.node_selector if labels.get(k) != v]
    if missing:
        return (
            f"its nodeSelector {', '.join(missing)} is not among the labels new nodes get "
            "(add it to nodes.labels, or it is meant for other nodes)"
        )
    untolerated = [
        f"{t.get('key')}={t.get('value', '')}:{t.get('effect')}"
        for t in taints
        if t.get("effect") != "PreferNoSchedule"
        and not any(tol.tolerates(t) for tol in pod.tolerations)
    ]
    return f"it does not tolerate the new nodes' taint(s) {', '.join(untolerated)}"
