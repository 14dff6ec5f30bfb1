"""The actuator: carry out `plan_nodes`' commands through the EC2 provider and the
Kubernetes API, in order, and report what was done in a `NodeTickResult`.

Every call is idempotent, so a command repeated by the next tick (or after a crash) does
no harm: launches carry the plan's request id (tags and ClientToken), terminations a
token per instance, cordons and labels converge on the node's state, an eviction of a
pod already gone is fine. A failed command is an error in the result, and the others
still run, except the drain and termination of a node whose cordon failed in the same
tick; a command left half done is decided again next tick from what is then seen.

This module must never decide: it does what the commands say, to the instances and
Nodes they name, and nothing else.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import Counter, Gauge

from autoscaler.errors import ProviderError
from autoscaler.telemetry import REGISTRY

from .binpack import Packing
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
from .drain import Drainer
from .gangs import GANG_TAG, GangLaunch, GangTimedOut, gang_tag_value
from .inventory import NodePool

log = logging.getLogger("autoscaler.nodes")

GANG_LAUNCHES = Counter(
    "autoscaler_gang_launches_total",
    "All-or-nothing launches for gangs of pods, by outcome (launched, short: no offering "
    "gave every instance; nothing was left running)",
    ["outcome"],
    registry=REGISTRY,
)
GANGS_TIMED_OUT = Gauge(
    "autoscaler_gangs_timed_out",
    "Gangs waiting longer than gang_timeout at the last tick (retried behind other gangs)",
    registry=REGISTRY,
)


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
    leaving: dict[str, str] = field(default_factory=dict)
    """node (or instance) -> why and when it goes: EC2 said so (interruptions.py)."""
    interruptions: dict[str, int] = field(default_factory=dict)
    """queue messages read this tick, by kind (an interruption kind, `ignored`, `malformed`)."""
    gangs_launched: dict[str, int] = field(default_factory=dict)
    """gang -> new instances launched for it, all in one zone."""
    gangs_timed_out: dict[str, str] = field(default_factory=dict)
    """gang -> why: not placed within gang_timeout (retried behind other gangs)."""
    gangs_admitted: list[str] = field(default_factory=list)
    """suspended Jobs labelled for gang admission unsuspended this tick (admission.py)."""
    errors: list[str] = field(default_factory=list)
    decide_seconds: float = 0.0
    """wall time of planning (`plan_nodes`: packing and every decision; no API calls)."""
    packing: Packing | None = None

    def seen(self, plan: NodePlan) -> None:
        """Copy what the plan saw into the report."""
        self.pending, self.covered, self.packing = plan.pending, plan.covered, plan.packing
        self.in_flight, self.ready = list(plan.in_flight), list(plan.ready)
        self.leaving = dict(plan.leaving)


class Actuator:
    """Carries commands out; `pools` are the EC2 provider's pools, by instance type."""

    def __init__(self, ec2: Any, drainer: Drainer, pools: Mapping[str, NodePool]) -> None:
        self.ec2 = ec2
        self.drainer = drainer
        self.pools = pools

    def carry_out(self, commands: Iterable[Command], result: NodeTickResult) -> None:
        not_cordoned: set[str] = set()
        commands = list(commands)
        GANGS_TIMED_OUT.set(sum(1 for c in commands if isinstance(c, GangTimedOut)))
        for command in commands:
            if isinstance(command, Drain | Terminate) and command.node in not_cordoned:
                continue  # its cordon just failed: evicting now could land pods back there
            try:
                self._do(command, result)
            except ProviderError as exc:
                _failed(command, exc, result)
                if isinstance(command, Cordon):
                    not_cordoned.add(command.node)

    def _do(self, command: Command, result: NodeTickResult) -> None:
        if isinstance(command, Unplaced):
            result.unplaced[command.pod] = command.reason
        elif isinstance(command, Hold):
            result.held[command.node] = command.reason
        elif isinstance(command, Launch):
            self._launch(command, result)
        elif isinstance(command, GangLaunch):
            self._launch_gang(command, result)
        elif isinstance(command, GangTimedOut):
            result.gangs_timed_out[command.gang] = command.reason
            if _first_report(command.gang):
                log.warning("node provisioning: %s", command.reason)
                self._gang_event(command)
        elif isinstance(command, AdmitGang):
            self._admit(command, result)
        elif isinstance(command, Label):
            self.drainer.label(command.node, command.labels, command.add_taints)
        elif isinstance(command, Cordon):
            if command.reason:
                self.drainer.cordon(command.node, command.reason)
            else:
                self.drainer.cordon(command.node)
            result.cordoned.append(command.node)
        elif isinstance(command, CallOffDrain):
            self.drainer.uncordon(command.node, command.reason)
            result.held[command.node] = command.reason
        elif isinstance(command, Drain):
            self._drain(command, result)
        elif isinstance(command, Terminate):
            self._terminate(command, result)

    def _launch(self, command: Launch, result: NodeTickResult) -> None:
        pool = self.pools[command.instance_type]
        self.ec2.scale(pool, command.desired, command.request_id)
        result.launched[command.instance_type] = command.count
        log.info(
            "node provisioning: launched %d x %s for %d pending pod(s) (request %s)",
            command.count,
            command.instance_type,
            len(command.pods),
            command.request_id,
        )

    def _launch_gang(self, command: GangLaunch, result: NodeTickResult) -> None:
        pool = self.pools[command.instance_type]
        key = f"{self.ec2.ownership.prefix.rstrip('/')}/{GANG_TAG}"
        try:
            self.ec2.launch_gang(
                pool,
                command.count,
                command.request_id,
                {key: gang_tag_value(command.gang)},
                command.placement_group,
            )
        except ProviderError:
            GANG_LAUNCHES.labels("short").inc()
            raise
        GANG_LAUNCHES.labels("launched").inc()
        result.gangs_launched[command.gang] = command.count
        result.launched[command.instance_type] = (
            result.launched.get(command.instance_type, 0) + command.count
        )
        log.info(
            "node provisioning: launched gang %s: %d x %s for %d pod(s) (request %s)",
            command.gang,
            command.count,
            command.instance_type,
            len(command.pods),
            command.request_id,
        )

    def _admit(self, command: AdmitGang, result: NodeTickResult) -> None:
        """Unsuspend the Job, only if it is still the same Job and still suspended (a JSON
        patch's `test`s: a replaced or already running Job is left alone)."""
        from kubernetes import client as k

        from autoscaler.clients.kube import translated

        batch = k.BatchV1Api(self.drainer.core.api_client)
        body: list[dict[str, Any]] = [
            {"op": "test", "path": "/metadata/uid", "value": command.uid},
            {"op": "test", "path": "/spec/suspend", "value": True},
            {"op": "replace", "path": "/spec/suspend", "value": False},
        ]
        with translated(f"gang {command.gang}: unsuspend Job {command.job}"):
            batch.patch_namespaced_job(command.job, command.namespace, body)
        result.gangs_admitted.append(command.gang)
        log.info("node provisioning: admitted gang %s (Job unsuspended)", command.gang)

    def _gang_event(self, command: GangTimedOut) -> None:
        """A Warning Event on the gang's first pending pod (once per gang and process)."""
        if not command.pods:
            return
        namespace, name = command.pods[0].split("/", 1)
        obj = {"apiVersion": "v1", "kind": "Pod", "name": name, "namespace": namespace}
        message = (
            f"gang {command.gang} ({len(command.pods)} pending pod(s)) not placed within "
            "gang_timeout; nothing is held for it, it is retried behind other gangs"
        )
        try:
            from autoscaler.kube.events import EventRecorder

            EventRecorder(self.drainer.core.api_client).emit(
                obj, "Warning", "GangTimedOut", message
            )
        except Exception as exc:  # an Event is a report: it never fails the tick
            log.info("node provisioning: no Event for gang %s: %s", command.gang, exc)

    def _drain(self, command: Drain, result: NodeTickResult) -> None:
        blocked = []
        for pod in command.pods:
            outcome = self.drainer.evict(pod)
            if outcome == "evicted":
                result.evicted.append(pod)
            elif outcome == "blocked":
                blocked.append(pod)
        if blocked:
            result.held[command.node] = (
                f"a PodDisruptionBudget allows no eviction of {', '.join(blocked)} now; "
                "retried next tick"
            )

    def _terminate(self, command: Terminate, result: NodeTickResult) -> None:
        pool = self.pools[command.instance_type]
        iid = command.instance_id
        self.ec2.remove(pool, [iid], f"{pool.name}-retire-{iid}")
        if command.node is not None:
            self.drainer.delete_node(command.node)
        result.terminated.append(iid)
        log.info("node provisioning: terminated %s (%s): %s", iid, command.name, command.reason)


_REPORTED: dict[str, None] = {}
"""Gangs whose timeout was already logged and sent as an Event by this process (bounded)."""


def _first_report(gang: str) -> bool:
    if gang in _REPORTED:
        return False
    if len(_REPORTED) >= 1024:
        _REPORTED.pop(next(iter(_REPORTED)))
    _REPORTED[gang] = None
    return True


def _failed(command: Command, exc: ProviderError, result: NodeTickResult) -> None:
    if isinstance(command, Label):
        result.errors.append(str(exc))  # names the node; labelling is retried next tick
        return
    if isinstance(command, Launch):
        error = f"launch {command.count} x {command.instance_type}: {exc}"
    elif isinstance(command, GangLaunch):
        error = (
            f"gang {command.gang}: launch {command.count} x {command.instance_type} "
            f"(all or nothing): {exc}; nothing left running, the gang waits whole"
        )
    elif isinstance(command, Terminate):
        error = f"node {command.name}: {exc}"
    elif isinstance(command, (Cordon, CallOffDrain, Drain)):
        error = f"node {command.node}: {exc}"
    else:
        error = str(exc)
    result.errors.append(error)
    log.warning("node provisioning: %s", error)
