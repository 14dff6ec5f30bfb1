"""Pending pods that a new GPU node would help: which they are, what they ask, where they fit.

A pod counts when the scheduler has tried and failed (`PodScheduled=False`, reason
`Unschedulable`), it is not being deleted, and it requests `nvidia.com/gpu`. Its request
is what the scheduler uses: the sum over containers (a limit stands in for a missing
request), at least the largest init container, plus the pod overhead. Whether a node can
take it is judged by its `nodeSelector` and its tolerations of the node's NoSchedule and
NoExecute taints; required node affinity is not evaluated (documented in docs/nodes.md).

Pure functions of API objects; reading the pods is the caller's one list call.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kubernetes.utils.quantity import parse_quantity

from .binpack import PodGroup, Resources

GPU = "nvidia.com/gpu"


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
    """An unschedulable GPU pod as packing needs it."""

    name: str
    """namespace/name."""
    demand: Resources
    node_selector: tuple[tuple[str, str], ...]
    tolerations: tuple[Toleration, ...]

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


def is_unschedulable(pod: Any) -> bool:
    """Pending, unbound, not being deleted, and refused by the scheduler."""
    status = pod.status
    if status is None or status.phase != "Pending" or (pod.spec and pod.spec.node_name):
        return False
    if pod.metadata.deletion_timestamp is not None:
        return False
    return any(
        c.type == "PodScheduled" and c.status == "False" and c.reason == "Unschedulable"
        for c in status.conditions or ()
    )


def quantity(value: Any) -> float:
    """A Kubernetes quantity ('500m', '16Gi', 4) as a float; 0 when absent."""
    if value is None:
        return 0.0
    return float(parse_quantity(value))  # type: ignore[no-untyped-call]


def _container_request(container: Any, resource: str) -> float:
    res = container.resources
    if res is None:
        return 0.0
    requests = res.requests or {}
    if resource in requests:
        return quantity(requests[resource])
    return quantity((res.limits or {}).get(resource))  # a limit alone is also the request


def pod_request(pod: Any, resource: str) -> float:
    """The scheduler's view of one resource request of a pod (in the resource's unit)."""
    spec = pod.spec
    total = sum(_container_request(c, resource) for c in spec.containers or ())
    init = max((_container_request(c, resource) for c in spec.init_containers or ()), default=0)
    overhead = quantity((spec.overhead or {}).get(resource))
    return max(total, init) + overhead


def demand_of(pod: Any) -> Resources:
    return Resources(
        gpus=round(pod_request(pod, GPU)),
        cpu_millis=round(pod_request(pod, "cpu") * 1000),
        memory_bytes=round(pod_request(pod, "memory")),
    )


def pending_pod(pod: Any) -> PendingPod:
    spec = pod.spec
    tolerations = tuple(
        Toleration(t.key or "", t.operator or "Equal", t.value or "", t.effect or "")
        for t in spec.tolerations or ()
    )
    return PendingPod(
        name=f"{pod.metadata.namespace}/{pod.metadata.name}",
        demand=demand_of(pod),
        node_selector=tuple(sorted((spec.node_selector or {}).items())),
        tolerations=tolerations,
    )


def gpu_pending(pods: Iterable[Any], namespaces: Sequence[str] = ()) -> list[PendingPod]:
    """The unschedulable pods asking for GPUs (in `namespaces`, or all when empty)."""
    wanted = set(namespaces)
    out = []
    for pod in pods:
        if wanted and pod.metadata.namespace not in wanted:
            continue
        if is_unschedulable(pod):
            pending = pending_pod(pod)
            if pending.demand.gpus > 0:
                out.append(pending)
    return out


def group(
    pending: Iterable[PendingPod],
    node_shapes: Mapping[str, tuple[Mapping[str, str], Sequence[Mapping[str, str]]]],
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


def _why_not(
    pod: PendingPod,
    node_shapes: Mapping[str, tuple[Mapping[str, str], Sequence[Mapping[str, str]]]],
) -> str:
    wanted = dict(pod.node_selector).get(_TYPE)
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


_TYPE = "node.kubernetes.io/instance-type"
