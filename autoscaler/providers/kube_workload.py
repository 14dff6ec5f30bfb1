"""The `deployment` and `statefulset` providers: replicas through the scale subresource.

`describe` reads the scale subresource (desired replicas, the selector) and the workload's
status (ready replicas), and lists the pods the selector matches as members: ready from the
pod's Ready condition, busy from the pod annotations a workload may set on itself,
`<prefix>/busy` (share of time busy, 0..1, or true/false) and `<prefix>/in-flight` (requests
being served now). Scale-in of a Deployment prefers idle pods: when any live pod carries one
of those signals, every live pod gets `controller.kubernetes.io/pod-deletion-cost` from it
before the replica count is lowered (not-ready pods lowest, then the least busy; a pod
without a signal counts as fully busy), so the ReplicaSet controller deletes idle pods first
and in-flight work last. Without any signal the costs are left as they are (the ReplicaSet
controller's own order, or the user's costs, stand). StatefulSets always remove their highest
ordinals; no cost applies.

This provider must never change a workload it does not own: unless the target sets
`require_owner_label: false`, the workload must carry `<prefix>/owner = <installation id>`,
checked on every call. It never deletes or edits anything but the replica count and the
deletion-cost annotation (and, for `remove`, the named pods of a Deployment).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from autoscaler.clients.kube import (
    DELETION_COST,
    Labels,
    api_client,
    is_finished_pod,
    is_terminating,
    parse_count,
    pod_ready,
    timestamp,
    translated,
)
from autoscaler.clients.kube_snapshot import Snapshots
from autoscaler.clock import Clock
from autoscaler.config import Config, Pool
from autoscaler.config.targets import DeploymentTarget, StatefulSetTarget
from autoscaler.errors import NotFound, ProviderError
from autoscaler.types import Capacity, Member

from .base import CapacityProvider, parse_busy, target_of

log = logging.getLogger("autoscaler.kube.workload")

REMOVE_COST = -(2**31) + 1
"""Deletion cost of a pod named in `remove`: below every cost `scale` sets."""


@dataclass(frozen=True, slots=True)
class Workload:
    """A Deployment or StatefulSet as this provider reads it."""

    desired: int
    ready: int
    selector: str
    labels: dict[str, str]


MAX_IN_FLIGHT_COST = 1_000_000
"""Requests in flight beyond this add nothing more to a pod's cost (costs are int32)."""


@dataclass(frozen=True, slots=True)
class PodSignals:
    """What a pod says about its own work (None: it does not say)."""

    busy: float | None
    in_flight: int | None

    @property
    def known(self) -> bool:
        return self.busy is not None or self.in_flight is not None

    @property
    def share_busy(self) -> float | None:
        """Member.busy: the busy annotation, else 1 with requests in flight and 0 without."""
        if self.busy is not None:
            return self.busy
        if self.in_flight is not None:
            return 1.0 if self.in_flight > 0 else 0.0
        return None


def deletion_cost(ready: bool, signals: PodSignals) -> int:
    """A pod's deletion cost: not ready -1000; ready and idle 0; busy share x 1000; with
    requests in flight at least 1000 plus one per request; without any signal 1000 (as busy,
    so that a pod that cannot say is never chosen before one that says it is idle)."""
    if not ready:
        return -1000
    if not signals.known:
        return 1000
    cost = round((signals.busy or 0.0) * 1000)
    if signals.in_flight:
        cost = max(cost, 1000) + min(signals.in_flight, MAX_IN_FLIGHT_COST)
    return cost


class WorkloadProvider(CapacityProvider):
    """Deployments and StatefulSets of every pool of those kinds; thread-safe."""

    def __init__(self, labels: Labels, api: Any = None) -> None:
        """`api` is a kubernetes ApiClient (default: in-cluster, else KUBECONFIG)."""
        self.labels = labels
        self._api = api
        self._apis: tuple[Any, Any] | None = None
        self._lock = threading.Lock()
        self._applied: dict[tuple[str, str], object] = {}
        # A watched object is the same Raw until it changes: parse it once, not every tick.
        self._parsed: dict[str, tuple[Any, Workload]] = {}
        self.snapshots = Snapshots(self._clients)

    @classmethod
    def from_config(cls, config: Config, clock: Clock) -> WorkloadProvider:
        installation = config.installation
        return cls(Labels(installation.id, installation.tag_prefix))

    # -- the provider protocol -----------------------------------------------------------
    def begin_tick(self) -> None:
        """The controller starts a tick: one copy of each watched namespace for the tick."""
        self.snapshots.begin_tick()

    def close(self) -> None:
        """Stop watching (the controller is closing)."""
        self.snapshots.close()
        self._parsed.clear()

    def describe(self, pool: Pool) -> Capacity:
        t = _target(pool)
        with translated(f"pool {pool.name}: {_what(pool)} (listing its namespace)"):
            snap = self.snapshots.get(t.namespace, t.kind)
        obj = snap.workload(t.name)
        if obj is None:  # not there when listed: read it (NotFound, or created since)
            workload = self._owned(pool)
            pods = self._pods(pool, workload.selector)
        else:
            workload = self._check_owner(pool, self._workload(pool, obj))
            pods = [
                p for p in snap.pods_of(obj.spec.selector)
                if not is_finished_pod(p) and not is_terminating(p)
            ]  # fmt: skip
        members = [self._member(p) for p in pods]
        pending = max(0, workload.desired - workload.ready)
        return Capacity(workload.desired, workload.ready, pending, tuple(members))

    def scale(self, pool: Pool, desired: int, request_id: str) -> None:
        if self._done(pool.name, request_id) == desired:
            return
        listed = self._listed(pool)
        if listed is not None and desired > listed.desired:
            # Scale-up, seen owned in this tick's list: the absolute PATCH is all it takes
            # (no pods to price), one call instead of three when a hundred pools scale at once.
            self._set_replicas(pool, desired)
            log.info("%s: %s replicas %d -> %d", pool.name, _what(pool), listed.desired, desired)
            self._remember(pool.name, request_id, desired)
            return
        workload = self._owned(pool)
        if desired < workload.desired and _target(pool).kind == "deployment":
            self._price_pods(pool, self._pods(pool, workload.selector))
        if desired != workload.desired:
            self._set_replicas(pool, desired)
            log.info("%s: %s replicas %d -> %d", pool.name, _what(pool), workload.desired, desired)
        self._remember(pool.name, request_id, desired)

    def _listed(self, pool: Pool) -> Workload | None:
        """The pool's workload from this tick's snapshot (owner checked), if there is one."""
        t = _target(pool)
        snap = self.snapshots.peek(t.namespace, t.kind)
        obj = snap.workload(t.name) if snap is not None else None
        return self._check_owner(pool, self._workload(pool, obj)) if obj is not None else None

    def _workload(self, pool: Pool, obj: Any) -> Workload:
        parsed = self._parsed.get(pool.name)
        if parsed is not None and parsed[0] is obj:
            return parsed[1]
        workload = _workload(obj)
        self._parsed[pool.name] = (obj, workload)
        return workload

    def remove(self, pool: Pool, members: Sequence[str], request_id: str) -> None:
        if not members or self._done(pool.name, request_id) == tuple(members):
            return
        workload = self._owned(pool)
        pods = {p.metadata.name: p for p in self._pods(pool, workload.selector, terminating=True)}
        unknown = [m for m in members if m not in pods]
        if unknown:
            raise NotFound(
                f"pool {pool.name}: {', '.join(unknown)} not live pods of {_what(pool)}; "
                "nothing was removed"
            )
        # A pod already terminating was removed before (a retry after a crash, or the
        # ReplicaSet controller was first): it does not lower the count a second time.
        live = [m for m in members if not is_terminating(pods[m])]
        if _target(pool).kind == "statefulset":
            running = [n for n, p in pods.items() if not is_terminating(p)]
            self._check_highest_ordinals(pool, running, live)
        else:
            for name in live:
                self._annotate_cost(pool, name, REMOVE_COST)
        if live:
            self._set_replicas(pool, max(0, workload.desired - len(live)))
        if _target(pool).kind == "deployment":
            # The ReplicaSet controller picks these (lowest cost) anyway, unless a pod that
            # is not ready ranks before them; deleting them here makes the choice exact.
            for name in live:
                self._delete_pod(pool, name)
        self._remember(pool.name, request_id, tuple(members))

    # -- reading -------------------------------------------------------------------------
    def _clients(self) -> tuple[Any, Any]:
        with self._lock:
            if self._apis is None:
                from kubernetes import client

                api = self._api or api_client()
                self._apis = (client.AppsV1Api(api), client.CoreV1Api(api))
            return self._apis

    def _owned(self, pool: Pool) -> Workload:
        return self._check_owner(pool, self._read(pool))

    def _check_owner(self, pool: Pool, workload: Workload) -> Workload:
        if _target(pool).require_owner_label and not self.labels.owns(workload.labels):
            found = workload.labels.get(self.labels.owner_key)
            has = f"it has {self.labels.owner_key}={found}" if found else "it has no owner label"
            raise ProviderError(
                f"pool {pool.name}: {_what(pool)} is not labelled "
                f"{self.labels.owner_key}={self.labels.owner} ({has}); nothing was changed. "
                "Label it to let this installation scale it, or set "
                "`require_owner_label: false` in the pool's target",
                "NotOwned",
            )
        return workload

    def _read(self, pool: Pool) -> Workload:
        apps, _ = self._clients()
        t = _target(pool)
        with translated(f"pool {pool.name}: {_what(pool)}"):
            if t.kind == "deployment":
                scale = apps.read_namespaced_deployment_scale(t.name, t.namespace)
                obj = apps.read_namespaced_deployment_status(t.name, t.namespace)
            else:
                scale = apps.read_namespaced_stateful_set_scale(t.name, t.namespace)
                obj = apps.read_namespaced_stateful_set_status(t.name, t.namespace)
        return Workload(
            desired=int(scale.spec.replicas or 0),
            ready=int((obj.status.ready_replicas if obj.status else 0) or 0),
            selector=str(scale.status.selector or ""),
            labels=dict(obj.metadata.labels or {}),
        )

    def _pods(self, pool: Pool, selector: str, terminating: bool = False) -> list[Any]:
        """Pods the workload's selector matches: not finished, and not being deleted unless
        `terminating`."""
        _, core = self._clients()
        if not selector:
            return []
        with translated(f"pool {pool.name}: pods of {_what(pool)}"):
            pods = core.list_namespaced_pod(_target(pool).namespace, label_selector=selector).items
        return [
            p for p in pods if not is_finished_pod(p) and (terminating or not is_terminating(p))
        ]

    def _signals(self, pod: Any) -> PodSignals:
        annotations = pod.metadata.annotations or {}
        return PodSignals(
            busy=parse_busy(annotations.get(self.labels.busy_key)),
            in_flight=parse_count(annotations.get(self.labels.in_flight_key)),
        )

    def _member(self, pod: Any) -> Member:
        return Member(
            id=str(pod.metadata.name),
            ready=pod_ready(pod),
            created_at=timestamp(pod.metadata.creation_timestamp),
            busy=self._signals(pod).share_busy,
        )

    # -- changing ------------------------------------------------------------------------
    def _set_replicas(self, pool: Pool, replicas: int) -> None:
        apps, _ = self._clients()
        t = _target(pool)
        self.snapshots.invalidate(t.namespace, t.kind)
        body = {"spec": {"replicas": replicas}}
        with translated(f"pool {pool.name}: scale {_what(pool)}"):
            if t.kind == "deployment":
                apps.patch_namespaced_deployment_scale(t.name, t.namespace, body)
            else:
                apps.patch_namespaced_stateful_set_scale(t.name, t.namespace, body)

    def _price_pods(self, pool: Pool, pods: Sequence[Any]) -> None:
        """Set each live pod's deletion cost from its busyness, where any pod has a signal
        (and only where the cost changes)."""
        signals = {p.metadata.name: self._signals(p) for p in pods}
        if not any(s.known for s in signals.values()):
            return
        for pod in pods:
            name = pod.metadata.name
            cost = str(deletion_cost(pod_ready(pod), signals[name]))
            if (pod.metadata.annotations or {}).get(DELETION_COST) != cost:
                self._annotate_cost(pool, name, int(cost))

    def _annotate_cost(self, pool: Pool, pod: str, cost: int) -> None:
        _, core = self._clients()
        self.snapshots.invalidate(_target(pool).namespace, _target(pool).kind)
        body = {"metadata": {"annotations": {DELETION_COST: str(cost)}}}
        try:
            with translated(f"pool {pool.name}: pod {_target(pool).namespace}/{pod}"):
                core.patch_namespaced_pod(pod, _target(pool).namespace, body)
        except NotFound:
            log.info("%s: pod %s went away before its deletion cost was set", pool.name, pod)

    def _delete_pod(self, pool: Pool, pod: str) -> None:
        _, core = self._clients()
        self.snapshots.invalidate(_target(pool).namespace, _target(pool).kind)
        try:
            with translated(f"pool {pool.name}: pod {_target(pool).namespace}/{pod}"):
                core.delete_namespaced_pod(pod, _target(pool).namespace)
        except NotFound:
            pass  # the ReplicaSet controller was first: the same pod is gone

    def _check_highest_ordinals(
        self, pool: Pool, running: Sequence[str], members: Sequence[str]
    ) -> None:
        if not members:
            return
        highest = sorted(running, key=_ordinal)[-len(members) :]
        if sorted(members) != sorted(highest):
            raise ProviderError(
                f"pool {pool.name}: a StatefulSet removes only its highest ordinals "
                f"({', '.join(highest)}); asked for {', '.join(members)}. Nothing was removed",
                "Unsupported",
            )

    def _done(self, pool: str, request_id: str) -> object:
        with self._lock:
            return self._applied.get((pool, request_id))

    def _remember(self, pool: str, request_id: str, what: object) -> None:
        with self._lock:
            self._applied[(pool, request_id)] = what
            while len(self._applied) > 4096:
                self._applied.pop(next(iter(self._applied)))


def _workload(obj: Any) -> Workload:
    """A listed Deployment or StatefulSet (its spec.replicas is the scale subresource's)."""
    return Workload(
        desired=int(obj.spec.replicas or 0),
        ready=int((obj.status.ready_replicas if obj.status else 0) or 0),
        selector="",
        labels=dict(obj.metadata.labels or {}),
    )


def _ordinal(name: str) -> int:
    tail = name.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else -1


def _what(pool: Pool) -> str:
    t = _target(pool)
    kind = "Deployment" if t.kind == "deployment" else "StatefulSet"
    return f"{kind} {t.namespace}/{t.name}"


def _target(pool: Pool) -> DeploymentTarget | StatefulSetTarget:
    target = pool.target
    if isinstance(target, DeploymentTarget | StatefulSetTarget):
        return target
    return target_of(pool, DeploymentTarget)  # raises, naming the pool and its kind
