"""Kubernetes Events for scaling actions: a Recorder that puts one Event, with the decision's
reason, on the scaled object (the Deployment or StatefulSet) for every action, or on the
AutoscalingPool object when the target is not a Kubernetes workload; and Warning Events on
objects whose spec is invalid.

A Recorder must never raise into the controller: a failed Event is logged and dropped.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from kubernetes import client as k
from kubernetes.client.exceptions import ApiException

from autoscaler import telemetry
from autoscaler.clients.kube import error_code
from autoscaler.clock import Clock, SystemClock, wall_ns
from autoscaler.config import Config
from autoscaler.pool_sources import LoadedPools, PoolProblem, PoolRef
from autoscaler.types import ActionResult, Decision

from .crd import GROUP, KIND, VERSION

log = logging.getLogger("autoscaler.kube.events")
COMPONENT = "elastic-autoscaler"
_RECENT_MAX = 1000
_WORKLOADS = {"deployment": ("apps/v1", "Deployment"), "statefulset": ("apps/v1", "StatefulSet")}


def event_reason(decision: Decision, action: ActionResult) -> tuple[str, str]:
    """(type, reason) of the Event for one action."""
    if action.error:
        return "Warning", "ScaleFailed"
    verb = "ScaledUp" if decision.direction == "up" else "ScaledDown"
    return "Normal", verb if action.applied else f"DryRun{verb}"


def event_message(decision: Decision, action: ActionResult) -> str:
    text = f"pool {decision.pool}: {decision.current} -> {decision.desired}: {decision.reason}"
    if action.error:
        text += f" [failed {action.error_code}: {action.error}]"
    return text[:1024]


def pool_object(ref: PoolRef) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "name": ref.name,
        "namespace": ref.namespace,
        "uid": ref.uid or None,
    }


def involved_object(
    config: Config | None, refs: dict[str, PoolRef], pool: str
) -> dict[str, Any] | None:
    """The object an action's Event belongs to; None when there is none in Kubernetes."""
    if config is not None:
        try:
            target = config.pool(pool).target
        except KeyError:
            target = None
        if target is not None and target.kind in _WORKLOADS:
            api_version, kind = _WORKLOADS[target.kind]
            name, namespace = getattr(target, "name", ""), getattr(target, "namespace", "")
            return {"apiVersion": api_version, "kind": kind, "name": name, "namespace": namespace}
    ref = refs.get(pool)
    return pool_object(ref) if ref is not None else None


class EventRecorder:
    """Creates core/v1 Events; `where` says what the pools are now (they change with CRDs)."""

    def __init__(
        self,
        api_client: Any,
        where: Callable[[], tuple[Config | None, dict[str, PoolRef]]] | None = None,
        instance: str = "",
        clock: Clock | None = None,
    ) -> None:
        """`where` says what the pools are now; by default, what the process last
        reported (`report_problems` is called with every load)."""
        self.core = k.CoreV1Api(api_client)
        self.where = where or self._last_loaded
        self.clock = clock or SystemClock()
        self._loaded: LoadedPools | None = None
        self.instance = instance or COMPONENT
        self._reported: set[tuple[PoolRef, str]] = set()
        self._recent: dict[tuple[str, ...], tuple[str, int]] = {}
        """(object, type, reason, message) -> (Event name, count) of Events written."""

    def record(self, decision: Decision, action: ActionResult | None) -> None:
        if action is None:
            return
        try:
            config, refs = self.where()
            obj = involved_object(config, refs, decision.pool)
            if obj is None:
                return
            kind, reason = event_reason(decision, action)
            self.emit(obj, kind, reason, event_message(decision, action))
        except Exception as exc:  # never into the controller
            telemetry.record_error("kube_event", error_code(exc))
            log.warning("event for pool %s not written: %s", decision.pool, exc)

    # -- as a reporter of the process loop ----------------------------------------------
    keeps_memory = False

    def report_problems(self, loaded: LoadedPools, now: float) -> None:
        self._loaded = loaded
        self.invalid_spec(loaded.problems)

    def report_tick(
        self, loaded: LoadedPools, result: Any, now: float, memory: dict[str, Any] | None
    ) -> None:
        """Decisions become Events as they are recorded (`record`); nothing more here."""

    def _last_loaded(self) -> tuple[Config | None, dict[str, PoolRef]]:
        loaded = self._loaded
        return (loaded.config, loaded.refs) if loaded is not None else (None, {})

    def invalid_spec(self, problems: Sequence[PoolProblem]) -> None:
        """One Warning per object and message (not every tick)."""
        for problem in problems:
            key = (problem.ref, problem.message)
            if key in self._reported:
                continue
            try:
                self.emit(pool_object(problem.ref), "Warning", "InvalidSpec", problem.message)
                self._reported.add(key)
            except Exception as exc:
                telemetry.record_error("kube_event", error_code(exc))
                log.warning("event for %s not written: %s", problem.ref, exc)

    def emit(self, obj: dict[str, Any], kind: str, reason: str, message: str) -> None:
        """Create an Event, or count a repeat on the one already written (as kubectl's
        recorder does), so a dry run or a failing action does not flood the namespace."""
        now = datetime.fromtimestamp(self.clock.now(), UTC)
        namespace = obj["namespace"]
        key = (namespace, obj["kind"], obj["name"], kind, reason, message)
        seen = self._recent.get(key)
        if seen is not None:
            name, count = seen
            try:
                patch = {"count": count + 1, "lastTimestamp": now.isoformat()}
                self.core.patch_namespaced_event(name, namespace, patch)
                self._recent[key] = (name, count + 1)
                return
            except ApiException as exc:
                if exc.status != 404:  # gone (events expire): write a new one
                    raise
        body = k.CoreV1Event(
            metadata=k.V1ObjectMeta(
                name=f"{obj['name']}.{wall_ns():x}{uuid.uuid4().hex[:6]}",
                namespace=namespace,
            ),
            involved_object=k.V1ObjectReference(**{_snake(f): v for f, v in obj.items()}),
            reason=reason,
            message=message,
            type=kind,
            count=1,
            first_timestamp=now,
            last_timestamp=now,
            source=k.V1EventSource(component=COMPONENT),
            reporting_component=COMPONENT,
            reporting_instance=self.instance,
        )
        created = self.core.create_namespaced_event(namespace, body)
        if len(self._recent) >= _RECENT_MAX:
            self._recent.pop(next(iter(self._recent)))
        self._recent[key] = (str(created.metadata.name), 1)


def _snake(key: str) -> str:
    return "api_version" if key == "apiVersion" else key
