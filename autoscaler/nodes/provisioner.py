"""The node provisioner's tick: observe EC2 and the cluster, decide, act, report.

Observe: our instances (one EC2 pool per allowed type), every Node, every live pod. A
failed read ends the tick with an error and no action: a tick that cannot see never
launches and never drains. Decide: pack the unschedulable GPU pods onto in-flight and
Ready capacity, then onto new instances (packing.py); start the empty-node clock of
Ready nodes without workload; pick nodes to cordon, drain, release or terminate. Act:
launch through the EC2 provider (idempotent by request id: tags and ClientToken), then
the Kubernetes calls. Time comes from the injected clock; the empty-since times live in
memory, so a restart only delays scale-down by one TTL, never hastens it.

This module must never touch an instance without our ownership tags (the provider checks
them again) nor a Node not matched to one of our instances by its providerID.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from autoscaler.clients.kube import Labels, is_finished_pod, translated
from autoscaler.clock import Clock
from autoscaler.config.nodes import NodeProvisioning
from autoscaler.errors import ProviderError
from autoscaler.providers.aws_offerings import offerings

from .binpack import Bin, Packing, Resources, pack
from .catalog import GIB, InstanceSpec, resolve
from .drain import Drainer, forbids_disruption, is_workload
from .inventory import NodePool, OurInstance, Tracked, classify, room_of
from .pending import gpu_pending, group

log = logging.getLogger("autoscaler.nodes")

INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type"
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


@dataclass
class NodeTickResult:
    """What one tick saw, decided and did; every node left alone has its reason."""

    pending: int = 0
    """unschedulable GPU pods seen."""
    covered: int = 0
    """of them, expected on in-flight or Ready capacity (no launch)."""
    launched: dict[str, int] = field(default_factory=dict)
    """new instances requested, by type."""
    in_flight: list[str] = field(default_factory=list)
    ready: list[str] = field(default_factory=list)
    cordoned: list[str] = field(default_factory=list)
    evicted: list[str] = field(default_factory=list)
    terminated: list[str] = field(default_factory=list)
    held: dict[str, str] = field(default_factory=dict)
    """node -> why it is not being removed now (PDB, do-not-disrupt, ...)."""
    unplaced: dict[str, str] = field(default_factory=dict)
    """pod -> why no node is planned for it."""
    errors: list[str] = field(default_factory=list)
    decide_seconds: float = 0.0
    """wall time of packing and planning (no API calls)."""
    packing: Packing | None = None


class NodeProvisioner:
    """GPU nodes on EC2 for unschedulable pods; empty ones drained and terminated."""

    def __init__(
        self, config: NodeProvisioning, api_client: Any, ec2_provider: Any, clock: Clock
    ) -> None:
        from kubernetes import client as k

        self.config = config
        self.ec2 = ec2_provider
        self.clock = clock
        self.core = k.CoreV1Api(api_client)
        ownership = ec2_provider.ownership
        self.labels = Labels(ownership.owner, ownership.prefix)
        self.drainer = Drainer(self.core, self.labels)
        self.specs: dict[str, InstanceSpec] = {}
        self.pools: dict[str, NodePool] = {}
        for entry in config.instance_types:
            spec = resolve(entry)
            self.specs[spec.name] = spec
            self.pools[spec.name] = NodePool(
                f"{config.pool}.{spec.name}",
                config.ec2_target(spec.name),
                config.max_nodes,
                spec.name,
            )
        self.reserved = Resources(
            0, round(config.reserved.cpu * 1000), round(config.reserved.memory_gib * GIB)
        )
        self.empty_since: dict[str, float] = {}
        self.seen_ready: set[str] = set()
        """instances that were Ready GPU nodes once: a later NotReady is not a failed boot."""

    # -- the tick ------------------------------------------------------------------------
    def tick(self) -> NodeTickResult:
        result = NodeTickResult()
        if not self.config.enabled:
            return result
        try:
            instances = self._instances()
            with translated("node provisioning: list nodes and pods"):
                nodes = self.core.list_node().items
                pods = [
                    p
                    for p in self.core.list_pod_for_all_namespaces(
                        field_selector="status.phase!=Succeeded,status.phase!=Failed"
                    ).items
                    if not is_finished_pod(p)
                ]
        except ProviderError as exc:
            result.errors.append(f"observe: {exc}; nothing launched or drained this tick")
            log.warning("node provisioning: %s", result.errors[-1])
            return result
        now = self.clock.now()
        tracked = classify(instances, nodes, pods, self.drainer.is_ours_cordoned)
        started = time.perf_counter()
        packing = self.plan(tracked, pods, result)
        result.decide_seconds = time.perf_counter() - started
        self._launch(packing, instances, result)
        self._label(tracked, result)
        self._scale_down(tracked, packing, now, result)
        return result

    # -- observe -------------------------------------------------------------------------
    def _instances(self) -> list[OurInstance]:
        out = []
        for pool in self.pools.values():
            for member in self.ec2.describe(pool).members:
                out.append(OurInstance(member.id, pool, member.ready, member.created_at))
        return out

    # -- decide --------------------------------------------------------------------------
    def node_shape(self, instance_type: str) -> tuple[dict[str, str], list[dict[str, str]]]:
        """The labels and taints a new Node of `instance_type` will have."""
        labels = {INSTANCE_TYPE_LABEL: instance_type, **self.config.labels}
        taints = [t.model_dump() for t in self.config.taints]
        return labels, taints

    def plan(
        self, tracked: Sequence[Tracked], pods: Sequence[Any], result: NodeTickResult
    ) -> Packing:
        """Pack the unschedulable GPU pods (pure but for the result it fills in)."""
        pending = gpu_pending(pods, self.config.namespaces)
        shapes = {name: self.node_shape(name) for name in self.usable_types()}
        groups, refused = group(pending, shapes) if shapes else ([], {})
        if not shapes:
            refused = {p.name: "every allowed instance type is out of capacity" for p in pending}
        by_name = {p.name: p for p in pending}
        bins: list[Bin] = []
        for item in tracked:
            if item.state == "in-flight":
                spec = self.specs[item.instance.pool.instance_type]
                room = Resources(spec.gpus, spec.cpu_millis, spec.memory_bytes).minus(self.reserved)
                bins.append(Bin(item.name, room, None, spec.name))
            elif item.state == "ready":
                node: Any = item.node
                # As the node will be once this tick labels it: judging a new node by its
                # labels before we patched them would launch for the same pods again.
                want_labels, want_taints = self.node_shape(item.instance.pool.instance_type)
                labels = {**(node.metadata.labels or {}), **want_labels}
                taints = [t for t in _taints(node) if t["key"] not in EPHEMERAL_TAINTS]
                taints += [t for t in want_taints if t not in taints]
                accepts = frozenset(
                    g.key for g in groups if by_name[g.pods[0]].can_run_on(labels, taints)
                )
                bins.append(Bin(item.name, room_of(node, item.pods), accepts))
        max_new = max(0, self.config.max_nodes - len(tracked))
        specs = [self.specs[name] for name in shapes]
        packing = pack(groups, specs, bins, max_new=max_new, reserved=self.reserved)
        result.pending = len(pending)
        result.covered = sum(len(p) for p in packing.covered.values())
        result.unplaced = {**refused, **packing.unplaced}
        result.packing = packing
        result.in_flight = [t.name for t in tracked if t.state == "in-flight"]
        result.ready = [t.name for t in tracked if t.state == "ready"]
        return packing

    def usable_types(self) -> list[str]:
        """Allowed types with at least one offering not hidden after a capacity error."""
        return [
            name
            for name, pool in self.pools.items()
            if any(self.ec2.unavailable.get(o) is None for o in offerings(pool.target))
        ]

    # -- act: launch ---------------------------------------------------------------------
    def _launch(
        self, packing: Packing, instances: Sequence[OurInstance], result: NodeTickResult
    ) -> None:
        for instance_type, count in sorted(packing.launches().items()):
            pool = self.pools[instance_type]
            have = sum(1 for i in instances if i.pool is pool)
            pods = sorted(
                p for n in packing.new_nodes if n.instance_type == instance_type for p in n.pods
            )
            request_id = _request_id(pool.name, have + count, pods)
            try:
                self.ec2.scale(pool, have + count, request_id)
            except ProviderError as exc:
                result.errors.append(f"launch {count} x {instance_type}: {exc}")
                log.warning("node provisioning: %s", result.errors[-1])
                continue
            result.launched[instance_type] = count
            log.info(
                "node provisioning: launched %d x %s for %d pending pod(s) (request %s)",
                count,
                instance_type,
                len(pods),
                request_id,
            )

    def _label(self, tracked: Sequence[Tracked], result: NodeTickResult) -> None:
        """Give each newly registered Node of ours the configured labels and taints."""
        for item in tracked:
            node = item.node
            if node is None or item.state == "draining":
                continue
            labels, taints = self.node_shape(item.instance.pool.instance_type)
            have = node.metadata.labels or {}
            current = _taints(node)
            missing = [t for t in taints if t not in current]
            if all(have.get(k) == v for k, v in labels.items()) and not missing:
                continue
            try:
                if missing:
                    self.drainer.update_taints(
                        node.metadata.name, "label", add=missing, labels=labels
                    )
                else:  # labels merge key by key: no read-modify-write needed
                    with translated(f"node {node.metadata.name}: label"):
                        self.core.patch_node(node.metadata.name, {"metadata": {"labels": labels}})
            except ProviderError as exc:
                result.errors.append(str(exc))

    # -- act: scale down -----------------------------------------------------------------
    def _scale_down(
        self, tracked: Sequence[Tracked], packing: Packing, now: float, result: NodeTickResult
    ) -> None:
        seen: set[str] = set()
        for item in tracked:
            seen.add(item.name)
            try:
                if item.state == "draining":
                    self._drain(item, result)
                elif item.state == "ready":
                    self.seen_ready.add(item.instance.id)
                    self._maybe_cordon(item, packing, now, result)
                elif self._never_registered(item, now):
                    self._terminate(item, "never became a Ready GPU node", result)
            except ProviderError as exc:
                result.errors.append(f"node {item.name}: {exc}")
                log.warning("node provisioning: %s", result.errors[-1])
        for name in list(self.empty_since):
            if name not in seen:
                del self.empty_since[name]
        self.seen_ready &= {t.instance.id for t in tracked}

    def _never_registered(self, item: Tracked, now: float) -> bool:
        """In flight past `registration_timeout`, never Ready before, and running nothing.

        A node that was Ready once and went NotReady (a kubelet restart) is not a failed
        boot; after a restart of ours that memory is gone, so pods on it also protect it.
        """
        if item.instance.id in self.seen_ready or any(is_workload(p) for p in item.pods):
            return False
        return now - item.instance.launched_at > self.config.registration_timeout

    def _maybe_cordon(
        self, item: Tracked, packing: Packing, now: float, result: NodeTickResult
    ) -> None:
        name = item.name
        if any(is_workload(p) for p in item.pods) or packing.covered.get(name):
            self.empty_since.pop(name, None)
            return
        since = self.empty_since.setdefault(name, now)
        if now - since < self.config.empty_node_ttl:
            return
        blockers = [p for p in item.pods if forbids_disruption(p, self.labels)]
        if blockers:
            result.held[name] = f"pod {_pod_name(blockers[0])} is annotated do-not-disrupt"
            return
        self.drainer.cordon(item.node)
        result.cordoned.append(name)

    def _drain(self, item: Tracked, result: NodeTickResult) -> None:
        name = item.name
        blockers = [p for p in item.pods if forbids_disruption(p, self.labels)]
        if blockers:
            why = f"pod {_pod_name(blockers[0])} is annotated do-not-disrupt"
            self.drainer.uncordon(item.node, why)
            self.empty_since.pop(name, None)
            result.held[name] = why
            return
        workload = [p for p in item.pods if is_workload(p)]
        if not workload:
            self._terminate(item, "drained", result)
            return
        blocked = []
        for pod in workload:
            if pod.metadata.deletion_timestamp is not None:
                continue  # on its way out; wait for it
            outcome = self.drainer.evict(pod)
            if outcome == "evicted":
                result.evicted.append(_pod_name(pod))
            elif outcome == "blocked":
                blocked.append(_pod_name(pod))
        if blocked:
            result.held[name] = (
                f"a PodDisruptionBudget allows no eviction of {', '.join(blocked)} now; "
                "retried next tick"
            )

    def _terminate(self, item: Tracked, why: str, result: NodeTickResult) -> None:
        pool = item.instance.pool
        self.ec2.remove(pool, [item.instance.id], f"{pool.name}-retire-{item.instance.id}")
        if item.node is not None:
            self.drainer.delete_node(item.node.metadata.name)
        self.empty_since.pop(item.name, None)
        result.terminated.append(item.instance.id)
        log.info("node provisioning: terminated %s (%s): %s", item.instance.id, item.name, why)


def _taints(node: Any) -> list[dict[str, str]]:
    return [
        {"key": t.key, "value": t.value or "", "effect": t.effect} for t in node.spec.taints or ()
    ]


def _pod_name(pod: Any) -> str:
    return f"{pod.metadata.namespace}/{pod.metadata.name}"


def _request_id(pool: str, desired: int, pods: Sequence[str]) -> str:
    """Stable for the same decision (a retry after a crash reuses it), new for a new one."""
    digest = hashlib.sha256("\n".join([pool, str(desired), *pods]).encode()).hexdigest()
    return f"nodes-{digest[:16]}"
