"""The observe step: read EC2 and the cluster once, and turn what was read into plain values.

Reads our instances (the EC2 provider's `describe`, one pool per allowed type), every
Node, every live pod, and which types the provider has found out of capacity. API objects
become the values of inventory.py here and nowhere else, so planning never sees one:

- a pod's request is the scheduler's: the sum over containers (a limit stands in for a
  missing request), at least the largest init container, plus the pod overhead;
- a pod is pending when the scheduler has tried and failed (`PodScheduled=False`, reason
  `Unschedulable`), it is unbound and not being deleted;
- DaemonSet pods and mirror (static) pods are not workload: they belong to the node;
- `<prefix>/do-not-disrupt: "true"` on a live pod keeps its node.

A failed read raises (a ProviderError): the tick then does nothing. This module must never
write to Kubernetes or EC2, and never decide anything.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from kubernetes.utils.quantity import parse_quantity

from autoscaler.clients.kube import Labels, is_finished_pod, translated
from autoscaler.clock import Clock
from autoscaler.config.nodes import NodeProvisioning
from autoscaler.providers.aws_offerings import offerings

from .binpack import Resources
from .inventory import Memory, NodePool, NodeView, Observed, OurInstance, PodView, instance_id
from .observe_gangs import gang_admission, with_gangs
from .pending import PendingPod, Toleration

GPU = "nvidia.com/gpu"
MIRROR_ANNOTATION = "kubernetes.io/config.mirror"


def observe(
    core: Any,
    ec2: Any,
    pools: Mapping[str, NodePool],
    labels: Labels,
    *,
    config: NodeProvisioning,
    memory: Memory,
    clock: Clock,
) -> Observed:
    """One tick's reads as an `Observed`; raises ProviderError when any read fails."""
    instances = [
        OurInstance(member.id, pool.instance_type, member.ready, member.created_at)
        for pool in pools.values()
        for member in ec2.describe(pool).members
    ]
    with translated("node provisioning: list nodes and pods"):
        nodes = core.list_node().items
        pods = [
            p
            for p in core.list_pod_for_all_namespaces(
                field_selector="status.phase!=Succeeded,status.phase!=Failed"
            ).items
            if not is_finished_pod(p)
        ]
    node_list = [node_view(n, labels.key("disrupting")) for n in nodes]
    ours = {i.id for i in instances}
    our_nodes = {n.name for n in node_list if n.instance_id in ours}
    return Observed(
        config=config,
        now=clock.now(),
        instances=tuple(instances),
        nodes=tuple(node_list),
        pods=tuple(
            with_gangs(
                core,
                pods,
                pod_views(pods, our_nodes, labels),
                config,
                labels,
                lambda p: pod_view(p, labels),
            )
        ),
        memory=memory,
        exhausted=exhausted_types(ec2, pools),
        admission=gang_admission(core, pods, config, labels, template_pending),
    )


def exhausted_types(ec2: Any, pools: Mapping[str, NodePool]) -> frozenset[str]:
    """Allowed types whose every offering the provider has marked out of capacity."""
    return frozenset(
        name
        for name, pool in pools.items()
        if all(ec2.unavailable.get(o) is not None for o in offerings(pool.target))
    )


# -- nodes -------------------------------------------------------------------------------
def node_view(node: Any, cordon_key: str) -> NodeView:
    """A Node as a plain value; `cordon_key` is the taint that marks our own cordon."""
    status = node.status
    alloc: Mapping[str, Any] = (status and status.allocatable) or {}
    taints = tuple(
        {"key": t.key, "value": t.value or "", "effect": t.effect}
        for t in (node.spec.taints if node.spec else None) or ()
    )
    return NodeView(
        name=node.metadata.name,
        instance_id=instance_id(node.spec.provider_id if node.spec else None),
        ready=is_ready(node),
        allocatable=Resources(
            gpus=int(quantity(alloc.get(GPU))),
            cpu_millis=round(quantity(alloc.get("cpu")) * 1000),
            memory_bytes=round(quantity(alloc.get("memory"))),
        ),
        labels=dict(node.metadata.labels or {}),
        taints=taints,
        cordoned_by_us=any(t["key"] == cordon_key for t in taints),
        cordon_reason=next((t["value"] for t in taints if t["key"] == cordon_key), ""),
    )


def is_ready(node: Any) -> bool:
    for cond in (node.status and node.status.conditions) or ():
        if cond.type == "Ready":
            return bool(cond.status == "True")
    return False


# -- pods --------------------------------------------------------------------------------
def pod_views(pods: Iterable[Any], our_nodes: set[str], labels: Labels) -> list[PodView]:
    """The pods that can matter: unschedulable ones and those bound to one of `our_nodes`
    (reading the others' requests would cost time on a large cluster for nothing)."""
    out = []
    for pod in pods:
        bound = pod.spec.node_name if pod.spec else None
        if bound in our_nodes or (not bound and is_unschedulable(pod)):
            out.append(pod_view(pod, labels))
    return out


def pod_view(pod: Any, labels: Labels) -> PodView:
    meta, spec = pod.metadata, pod.spec
    name = f"{meta.namespace}/{meta.name}"
    demand = demand_of(pod)
    placement = template_pending(name, pod)
    pending = placement if is_unschedulable(pod) else None
    return PodView(
        name=name,
        requests=demand,
        node=spec.node_name if spec else None,
        workload=is_workload(pod),
        do_not_disrupt=forbids_disruption(pod, labels),
        terminating=meta.deletion_timestamp is not None,
        pending=pending,
        placement=placement,
    )


def template_pending(name: str, pod: Any) -> PendingPod:
    """A pod (or a pod template: anything with a pod `spec`) as packing sees it."""
    spec = pod.spec
    tolerations = tuple(
        Toleration(t.key or "", t.operator or "Equal", t.value or "", t.effect or "")
        for t in spec.tolerations or ()
    )
    selector = tuple(sorted((spec.node_selector or {}).items()))
    priority = getattr(spec, "priority", None) or 0  # PriorityClass: packed first
    return PendingPod(name, demand_of(pod), selector, tolerations, priority=priority)


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


def is_workload(pod: Any) -> bool:
    """A pod that keeps a node busy: not finished, not a DaemonSet's, not a mirror pod."""
    if is_finished_pod(pod):
        return False
    if MIRROR_ANNOTATION in (pod.metadata.annotations or {}):
        return False
    return not any(ref.kind == "DaemonSet" for ref in pod.metadata.owner_references or ())


def forbids_disruption(pod: Any, labels: Labels) -> bool:
    """True for a live pod annotated `<prefix>/do-not-disrupt: "true"`."""
    value = (pod.metadata.annotations or {}).get(labels.do_not_disrupt_key, "")
    return not is_finished_pod(pod) and value.strip().lower() == "true"


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
