"""The composition root of `autoscaler run`: the process loop with the plug-ins the options
ask for (AutoscalingPool objects, leader election, status and Events, GPU nodes).

Here, and only here, the process loop, the Kubernetes plug-ins and the node provisioner
meet; each of them stays ignorant of the others. This module must never decide, plan or
act itself.
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass, field
from typing import Any

from autoscaler import telemetry
from autoscaler.clock import Clock, SystemClock
from autoscaler.config.file_settings import FileSettings
from autoscaler.config.nodes import NodeProvisioning
from autoscaler.process import Chore, Leadership, Process, ProcessSettings, Reporter
from autoscaler.record import Recorder

log = logging.getLogger("autoscaler.run")
_KUBE_KINDS = {"deployment", "statefulset", "job"}


@dataclass
class ClusterOptions:
    """What `autoscaler run` was asked to do with a cluster."""

    crd_pools: bool = False
    namespaces: list[str] = field(default_factory=list)
    kubeconfig: str | None = None
    leader_elect: bool = False
    lease_name: str = "elastic-autoscaler"
    lease_namespace: str | None = None
    identity: str = ""
    lease_duration: float = 15.0
    """Seconds; renewal gives up after 2/3 of it and retries every 2/15 of it."""

    def needed(self, file: FileSettings) -> bool:
        """Connect to a cluster: asked for, or the file's pools live in one (their Events)."""
        kube_pools = any(p.target.kind in _KUBE_KINDS for p in file.pools)
        nodes = file.nodes is not None and file.nodes.enabled
        triggers = bool(file.triggers)  # their pipelines are Jobs
        return bool(
            self.crd_pools or self.leader_elect or self.kubeconfig or kube_pools or nodes
            or triggers
        )  # fmt: skip


def build_process(
    settings: ProcessSettings,
    cluster: ClusterOptions | None = None,
    api_client: Any | None = None,
    clock: Clock | None = None,
) -> Process:
    """The loop for these options. Raises ValueError (one line, what to fix) for a bad
    state file or missing Kubernetes credentials."""
    cluster = cluster or ClusterOptions()
    clock = clock or SystemClock()
    if api_client is None and cluster.needed(settings.file):
        from autoscaler.clients.kube import connect

        api_client = connect(cluster.kubeconfig)
    if api_client is None:
        return Process(settings, clock=clock, chores=_chores(settings, None, clock))

    from autoscaler.clients.kube import own_namespace
    from autoscaler.kube.events import EventRecorder
    from autoscaler.kube.pools import CrdPools, PoolLister
    from autoscaler.kube.status import StatusWriter

    identity = cluster.identity or f"{socket.gethostname()}-{os.getpid()}"
    reporters: list[Reporter] = []
    pools = None
    if cluster.crd_pools:
        lister = PoolLister(api_client, cluster.namespaces or [own_namespace()])
        pools = CrdPools(lister, settings.file)
        reporters.append(StatusWriter(api_client))
    events = EventRecorder(api_client, instance=identity, clock=clock)
    reporters.append(events)
    recorders: list[Recorder] = [events]
    return Process(
        settings,
        pools=pools,
        leadership=_leadership(cluster, api_client, identity, clock),
        reporters=reporters,
        recorders=recorders,
        chores=[
            *_chores(settings, api_client, clock),
            *_trigger_chores(settings, cluster, api_client, clock, events),
        ],
        clock=clock,
    )


def _leadership(
    cluster: ClusterOptions, api_client: Any, identity: str, clock: Clock
) -> Leadership | None:
    if not cluster.leader_elect:
        return None
    from autoscaler.clients.kube import own_namespace
    from autoscaler.kube.leader import LeaderElector

    duration = cluster.lease_duration
    return LeaderElector(
        api_client,
        cluster.lease_name,
        cluster.lease_namespace or own_namespace(),
        identity,
        lease_duration=duration,
        renew_deadline=duration * 2 / 3,
        retry_period=max(0.2, duration * 2 / 15),
        clock=clock,
    )


def _trigger_chores(
    settings: ProcessSettings, cluster: ClusterOptions, api_client: Any, clock: Clock, events: Any
) -> list[Chore]:
    """Evaluation triggers (docs/triggers.md): the file's, and with --crd-pools the
    AutoscalingTrigger objects in the watched namespaces."""
    file = settings.file
    if not file.triggers and not cluster.crd_pools:
        return []
    from autoscaler.clients.kube import own_namespace
    from autoscaler.triggers.chore import TriggerChore
    from autoscaler.triggers.objects import TriggerObjects

    objects = None
    if cluster.crd_pools:
        objects = TriggerObjects(api_client, cluster.namespaces or [own_namespace()])
    base = file.base_dir

    def resolve(path: str) -> str:
        return str(base / path) if base is not None and not path.startswith("/") else path

    chore = TriggerChore(
        file.triggers, file.installation, file.controller, api_client, clock,
        dry_run=settings.dry_run, objects=objects, events=events, resolve=resolve,
    )  # fmt: skip
    return [chore]


def _chores(settings: ProcessSettings, api_client: Any, clock: Clock) -> list[Chore]:
    nodes = settings.file.nodes
    if nodes is None or not nodes.enabled:
        return []
    return [NodeProvisioningChore(nodes, settings, api_client, clock)]


class NodeProvisioningChore:
    """One node-provisioning tick a round when the file configures `nodes` (never in a dry
    run: it would launch and terminate instances); its errors never stop the loop."""

    def __init__(
        self, nodes: NodeProvisioning, settings: ProcessSettings, api_client: Any, clock: Clock
    ) -> None:
        self.nodes = nodes
        self.settings = settings
        self.api = api_client
        self.clock = clock
        self.provisioner: Any = None
        """Built on first use: it needs EC2 credentials only when it runs."""

    def run_round(self, first: bool) -> None:
        if self.settings.dry_run:
            if first:
                log.info("node provisioning: off in a dry run (it launches instances)")
            return
        from autoscaler.clients.kube import error_code

        try:
            if self.provisioner is None:
                self.provisioner = self._build()
            result = self.provisioner.tick()
        except Exception as exc:  # a failed round holds every node as it is
            telemetry.record_error("nodes", error_code(exc))
            log.warning("node provisioning: %s", exc)
            return
        for error in result.errors:
            log.warning("node provisioning: %s", error)
        if result.launched or result.cordoned or result.terminated or result.unplaced:
            log.info(
                "node provisioning: %d pending GPU pod(s); launched %s; cordoned %s; "
                "terminated %s; unplaced %d", result.pending, result.launched or "none",
                result.cordoned or "none", result.terminated or "none", len(result.unplaced),
            )  # fmt: skip

    def _build(self) -> Any:
        from autoscaler.clients.aws import Ownership
        from autoscaler.nodes import NodeProvisioner
        from autoscaler.providers.aws_ec2 import Ec2Provider

        installation = self.settings.file.installation
        ec2 = Ec2Provider(Ownership(installation.id, installation.tag_prefix), self.clock)
        return NodeProvisioner(self.nodes, self.api, ec2, self.clock)

    def close(self) -> None:
        return None
