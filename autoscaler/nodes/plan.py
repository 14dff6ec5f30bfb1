"""`plan_nodes(observed) -> NodePlan`: every decision of a node provisioning tick, pure.

Given what one tick observed (inventory.Observed: our instances, every Node, the pods
that can matter, the memory of earlier ticks, the config and `now`), it returns the
commands to carry out (commands.py) and the memory for the next tick:

1. pending GPU pods (in `namespaces`) are packed (binpack.py) onto in-flight instances
   and free room on our Ready nodes first, then onto new instances of the cheapest type
   per GPU; types the provider found out of capacity are left out; a pod with no node
   planned is reported `Unplaced` with why;
2. `Launch` per type, with a request id stable for the same decision;
3. `Label` newly registered Nodes of ours with the configured labels and taints;
4. scale-down, per instance: a Ready node without workload and with no pending pod
   planned onto it starts a clock; past `empty_node_ttl` it is `Cordon`ed, unless a
   do-not-disrupt pod `Hold`s it. A cordoned node is `Drain`ed of its workload, or
   `Terminate`d once empty; a do-not-disrupt pod calls the drain off (`CallOffDrain`).
   An instance not a Ready GPU node `registration_timeout` after launch, never Ready
   before and running nothing is terminated;
5. leaving instances (EC2 said they go: `memory.leaving`, or our cordon taint carrying an
   interruption kind after a restart) are no capacity: their GPU pods are packed with the
   pending ones (step 1), so a replacement launches in the same tick; the Node is
   `Cordon`ed with the kind as reason and `Drain`ed of its workload at once (a
   do-not-disrupt pod is left alone and `Hold`s it: the drain is never called off); once
   no workload is left, or if it has no Node, the instance is `Terminate`d.

6. gang admission (admission.py): the pods-to-be of suspended Jobs labelled
   `<prefix>/gang-admission` are packed with the pending pods (step 1); the first such
   Job in order whose pods all fit on the free room of our Ready nodes gets `AdmitGang`
   (one per tick, none while an admitted one's pods are not all bound).

The empty-since times and the instances seen Ready are the memory: a restart loses them,
which only delays scale-down by one TTL, never hastens it.

This module must never import a Kubernetes or AWS client, read a clock, or do I/O; and it
must never command anything about a Node not matched to one of our instances.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence

from autoscaler.config.nodes import NodeProvisioning

from .admission import FreeNode, admit_gangs, order
from .binpack import Bin, Packing, Resources, pack
from .catalog import GIB, InstanceSpec, resolve
from .commands import (
    AdmitGang,
    CallOffDrain,
    Command,
    Cordon,
    Drain,
    Hold,
    Label,
    Launch,
    NodePlan,
    Terminate,
    Unplaced,
)
from .gangs import admit, gang_launches, timed_out_reasons
from .inventory import (
    INTERRUPTION_KINDS,
    Leaving,
    Memory,
    Observed,
    PodView,
    Tracked,
    classify,
    pool_name,
    room_of,
)
from .pending import INSTANCE_TYPE_LABEL, NodeShape, PendingPod, group

EPHEMERAL_TAINTS = frozenset(
    {
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
        "node.kubernetes.io/network-unavailable",
        "node.cloudprovider.kubernetes.io/uninitialized",
    }
)
"""Taints Kubernetes puts on a node while it starts; a pod need not tolerate them to count
on the node (Karpenter ignores the same), else a node just Ready would look full."""


def plan_nodes(observed: Observed) -> NodePlan:
    """The commands of one tick and the memory for the next (see the module docstring)."""
    config = observed.config
    specs = {s.name: s for s in (resolve(entry) for entry in config.instance_types)}
    leaving = leaving_of(observed)
    tracked = classify(observed.instances, observed.nodes, observed.pods, leaving)
    pending = pending_gpu_pods(observed.pods, config.namespaces)
    pending += suspended_gang_pods(observed)  # gang admission: pods-to-be of suspended Jobs
    displaced = displaced_pods(tracked, config.namespaces)
    admitted, held, late = admit(observed, pending + displaced)  # gangs: all or nothing
    packing, refused = _pack(observed, specs, tracked, admitted)
    unplaced = {**held, **refused, **packing.unplaced}
    timed_out_reasons(late, unplaced)
    commands: list[Command] = [*late]
    commands += [Unplaced(pod, why) for pod, why in unplaced.items()]
    commands += _launches(observed, packing)
    commands += gang_launches(observed, packing)
    commands += _labels(config, tracked)
    commands += admissions(observed, specs, tracked)  # after the labels its pods select
    memory = _scale_down(observed, tracked, packing, commands, leaving)
    return NodePlan(
        commands=tuple(commands),
        memory=memory,
        pending=len(pending),
        covered=sum(len(p) for p in packing.covered.values()),
        in_flight=tuple(t.name for t in tracked if t.state == "in-flight"),
        ready=tuple(t.name for t in tracked if t.state == "ready"),
        packing=packing,
        leaving={
            t.name: describe_leaving(leaving[t.instance.id], observed.now)
            for t in tracked
            if t.state == "leaving"
        },
    )


def pending_gpu_pods(pods: Iterable[PodView], namespaces: Sequence[str] = ()) -> list[PendingPod]:
    """The unschedulable pods asking for GPUs (in `namespaces`, or all when empty)."""
    wanted = set(namespaces)
    return [
        p.pending
        for p in pods
        if p.pending is not None
        and p.pending.demand.gpus > 0
        and (not wanted or p.namespace in wanted)
    ]


def suspended_gang_pods(observed: Observed) -> list[PendingPod]:
    """The pods-to-be of suspended Jobs labelled for gang admission (admission.py)."""
    wanted = set(observed.config.namespaces)
    return [
        pod
        for gang in observed.admission.suspended
        if not wanted or gang.namespace in wanted
        for pod in gang.pods
        if pod.demand.gpus > 0
    ]


def admissions(
    observed: Observed, specs: Mapping[str, InstanceSpec], tracked: Sequence[Tracked]
) -> list[AdmitGang]:
    """At most one suspended gang to unsuspend: the first in order, when all its pods fit
    on the free room of our Ready nodes and no admitted gang is still settling."""
    admission = observed.admission
    if not admission.suspended or admission.settling:
        return []
    free = []
    for item in tracked:
        spec = specs.get(item.instance.instance_type)
        if item.state != "ready" or item.node is None or spec is None:
            continue
        want_labels, want_taints = node_shape(observed.config, spec.name)
        taints = [t for t in item.node.taints if t["key"] not in EPHEMERAL_TAINTS]
        taints += [t for t in want_taints if t not in taints]
        labels = {**item.node.labels, **want_labels}
        free.append(FreeNode(item.name, room_of(item.node, item.pods), labels, tuple(taints)))
    free.sort(key=lambda n: n.name)
    wanted = set(observed.config.namespaces)
    gangs = order(
        [
            g
            for g in admission.suspended
            if (not wanted or g.namespace in wanted) and any(p.demand.gpus > 0 for p in g.pods)
        ]
    )
    return [AdmitGang(g.id, g.namespace, g.name, g.uid) for g in admit_gangs(free, gangs, limit=1)]


def leaving_of(observed: Observed) -> dict[str, Leaving]:
    """Our instances EC2 said go: the memory's, and those whose Node carries our cordon
    taint with an interruption kind (how a notice outlives a restart)."""
    ours = {i.id for i in observed.instances}
    out = {iid: why for iid, why in observed.memory.leaving.items() if iid in ours}
    for node in observed.nodes:
        iid = node.instance_id
        if iid in ours and iid not in out and node.cordon_reason in INTERRUPTION_KINDS:
            out[iid] = Leaving(node.cordon_reason, observed.now)
    return out


def displaced_pods(tracked: Iterable[Tracked], namespaces: Sequence[str] = ()) -> list[PendingPod]:
    """The GPU workload pods (in `namespaces`) on leaving nodes and not yet on their way
    out: they need room elsewhere, as pending pods do."""
    wanted = set(namespaces)
    return [
        pod.placement or PendingPod(pod.name, pod.requests)
        for item in tracked
        if item.state == "leaving"
        for pod in item.pods
        if pod.workload
        and not pod.terminating
        and pod.requests.gpus > 0
        and (not wanted or pod.namespace in wanted)
    ]


def describe_leaving(leaving: Leaving, now: float) -> str:
    """Why an instance goes and when, for the tick's report."""
    why = leaving.kind.replace("-", " ")
    if leaving.deadline is None:
        return why
    left = leaving.deadline - now
    return f"{why}: EC2 takes it in {left:.0f}s" if left > 0 else f"{why}: EC2 takes it now"


def node_shape(config: NodeProvisioning, instance_type: str) -> NodeShape:
    """The labels and taints a new Node of `instance_type` will have."""
    labels = {INSTANCE_TYPE_LABEL: instance_type, **config.labels}
    taints = [t.model_dump() for t in config.taints]
    return labels, taints


def reserved_of(config: NodeProvisioning) -> Resources:
    """What every new node keeps off pods (kubelet, system daemons)."""
    return Resources(0, round(config.reserved.cpu * 1000), round(config.reserved.memory_gib * GIB))


# -- scale-up ----------------------------------------------------------------------------
def _pack(
    observed: Observed,
    specs: Mapping[str, InstanceSpec],
    tracked: Sequence[Tracked],
    pending: Sequence[PendingPod],
) -> tuple[Packing, dict[str, str]]:
    config = observed.config
    reserved = reserved_of(config)
    shapes = {name: node_shape(config, name) for name in specs if name not in observed.exhausted}
    if shapes:
        groups, refused = group(pending, shapes)
    else:
        groups, refused = (
            [],
            {p.name: "every allowed instance type is out of capacity" for p in pending},
        )
    by_name = {p.name: p for p in pending}
    bins: list[Bin] = []
    for item in tracked:
        spec = specs.get(item.instance.instance_type)
        if spec is None:
            continue  # not an allowed type (any more): its room is not planned on
        if item.state == "in-flight":
            room = Resources(spec.gpus, spec.cpu_millis, spec.memory_bytes).minus(reserved)
            bins.append(Bin(item.name, room, None, spec.name))
        elif item.state == "ready" and item.node is not None:
            # As the node will be once this tick labels it: judging a new node by its
            # labels before we patched them would launch for the same pods again.
            want_labels, want_taints = node_shape(config, spec.name)
            labels = {**item.node.labels, **want_labels}
            taints = [t for t in item.node.taints if t["key"] not in EPHEMERAL_TAINTS]
            taints += [t for t in want_taints if t not in taints]
            accepts = frozenset(
                g.key for g in groups if by_name[g.pods[0]].can_run_on(labels, taints)
            )
            bins.append(Bin(item.name, room_of(item.node, item.pods), accepts))
    # Leaving instances do not count: their replacements may exceed max_nodes until EC2
    # (or the drain) has taken them.
    max_new = max(0, config.max_nodes - sum(1 for t in tracked if t.state != "leaving"))
    packing = pack(groups, [specs[n] for n in shapes], bins, max_new=max_new, reserved=reserved)
    return packing, refused


def _launches(observed: Observed, packing: Packing) -> list[Launch]:
    out = []
    for instance_type, count in sorted(packing.launches().items()):
        have = sum(1 for i in observed.instances if i.instance_type == instance_type)
        pods = tuple(
            sorted(
                p
                for n in packing.new_nodes
                if n.instance_type == instance_type and n.gang is None
                for p in n.pods
            )
        )
        pool = pool_name(observed.config, instance_type)
        request_id = _request_id(pool, have + count, pods)
        out.append(Launch(instance_type, count, have + count, request_id, pods))
    return out


def _labels(config: NodeProvisioning, tracked: Sequence[Tracked]) -> list[Label]:
    out = []
    for item in tracked:
        node = item.node
        if node is None or item.state in ("draining", "leaving"):
            continue
        labels, taints = node_shape(config, item.instance.instance_type)
        missing = tuple(t for t in taints if t not in node.taints)
        if all(node.labels.get(k) == v for k, v in labels.items()) and not missing:
            continue
        out.append(Label(node.name, labels, missing))
    return out


# -- scale-down --------------------------------------------------------------------------
def _scale_down(
    observed: Observed,
    tracked: Sequence[Tracked],
    packing: Packing,
    commands: list[Command],
    leaving: Mapping[str, Leaving],
) -> Memory:
    """Append the scale-down commands, in instance order; return the new memory."""
    config, now = observed.config, observed.now
    empty_since = dict(observed.memory.empty_since)
    seen_ready = set(observed.memory.seen_ready)
    for item in tracked:
        name = item.name
        if item.state == "leaving":
            empty_since.pop(name, None)
            commands += _leave(item, leaving[item.instance.id])
        elif item.state == "draining":
            commands += _drain(item, empty_since)
        elif item.state == "ready":
            seen_ready.add(item.instance.id)
            if any(p.workload for p in item.pods) or packing.covered.get(name):
                empty_since.pop(name, None)
                continue
            since = empty_since.setdefault(name, now)
            if now - since < config.empty_node_ttl:
                continue
            blockers = [p for p in item.pods if p.do_not_disrupt]
            if blockers:
                commands.append(Hold(name, _do_not_disrupt(blockers[0].name)))
            else:
                commands.append(Cordon(name))
        elif _never_registered(item, observed):
            empty_since.pop(name, None)
            commands.append(_terminate(item, "never became a Ready GPU node"))
    names = {t.name for t in tracked}
    return Memory(
        empty_since={n: t for n, t in empty_since.items() if n in names},
        seen_ready=frozenset(seen_ready & {t.instance.id for t in tracked}),
        leaving=dict(leaving),  # leaving_of kept only instances still ours
    )


def _leave(item: Tracked, leaving: Leaving) -> list[Command]:
    """A leaving instance: cordon (marked with why), drain at once, terminate once empty.

    PDBs hold evictions (retried each tick) and do-not-disrupt pods are not evicted, but
    neither un-cordons the node: it goes anyway.
    """
    why = leaving.kind.replace("-", " ")
    if item.node is None:
        return [_terminate(item, f"{why} before it registered a Node")]
    out: list[Command] = []
    if item.node.cordon_reason not in INTERRUPTION_KINDS:
        out.append(Cordon(item.name, leaving.kind))
    workload = [p for p in item.pods if p.workload]
    blockers = [p for p in item.pods if p.do_not_disrupt]
    evict = tuple(p.name for p in workload if not p.terminating and not p.do_not_disrupt)
    if evict:
        out.append(Drain(item.name, evict))
    if blockers:
        out.append(Hold(item.name, f"{_do_not_disrupt(blockers[0].name)}; {why}: kept cordoned"))
    elif not workload:
        out.append(_terminate(item, f"drained ({why})"))
    return out


def _drain(item: Tracked, empty_since: dict[str, float]) -> list[Command]:
    blockers = [p for p in item.pods if p.do_not_disrupt]
    if blockers:
        empty_since.pop(item.name, None)
        return [CallOffDrain(item.name, _do_not_disrupt(blockers[0].name))]
    workload = [p for p in item.pods if p.workload]
    if not workload:
        empty_since.pop(item.name, None)
        return [_terminate(item, "drained")]
    # A pod already on its way out is waited for, not evicted again.
    evict = tuple(p.name for p in workload if not p.terminating)
    return [Drain(item.name, evict)] if evict else []


def _never_registered(item: Tracked, observed: Observed) -> bool:
    """In flight past `registration_timeout`, never Ready before, and running nothing.

    A node that was Ready once and went NotReady (a kubelet restart) is not a failed
    boot; after a restart of ours that memory is gone, so pods on it also protect it.
    """
    if item.instance.id in observed.memory.seen_ready or any(p.workload for p in item.pods):
        return False
    return observed.now - item.instance.launched_at > observed.config.registration_timeout


def _terminate(item: Tracked, why: str) -> Terminate:
    node = item.node.name if item.node is not None else None
    return Terminate(item.instance.id, item.instance.instance_type, node, why)


def _do_not_disrupt(pod: str) -> str:
    return f"pod {pod} is annotated do-not-disrupt"


def _request_id(pool: str, desired: int, pods: Sequence[str]) -> str:
    """Stable for the same decision (a retry after a crash reuses it), new for a new one."""
    digest = hashlib.sha256("\n".join([pool, str(desired), *pods]).encode()).hexdigest()
    return f"nodes-{digest[:16]}"
