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

from autoscaler.errors import ProviderError

from .binpack import Packing
from .commands import (
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
from .inventory import NodePool

log = logging.getLogger("autoscaler.nodes")


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


def _failed(command: Command, exc: ProviderError, result: NodeTickResult) -> None:
    if isinstance(command, Label):
        result.errors.append(str(exc))  # names the node; labelling is retried next tick
        return
    if isinstance(command, Launch):
        error = f"launch {command.count} x {command.instance_type}: {exc}"
    elif isinstance(command, Terminate):
        error = f"node {command.name}: {exc}"
    elif isinstance(command, (Cordon, CallOffDrain, Drain)):
        error = f"node {command.node}: {exc}"
    else:
        error = str(exc)
    result.errors.append(error)
    log.warning("node provisioning: %s", error)
