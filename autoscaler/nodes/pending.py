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
        return (self.demand, self.node_selector, self.tolerations)


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
        groups.append(PodGroup(key, first.demand, tuple(p.name for p in pods), types))
    return groups, refused


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
