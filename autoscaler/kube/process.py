"""The controller process in (or against) a cluster: pools from a file and/or AutoscalingPool
objects, leader election, status and Events written back, probes and metrics served.

One loop: wait to lead (a standby is ready but never acts), list the pools, rebuild the
controller when the set of pools changed (planner memory and providers carried over), tick,
write status, persist memory. SIGTERM finishes the tick in progress, then releases the
Lease. Without a cluster option it is the plain file-driven loop, probes included.

This module must never decide or plan; it wires the pure core to the cluster.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autoscaler import telemetry
from autoscaler.clients.kube import connect, error_code, own_namespace
from autoscaler.clock import SystemClock
from autoscaler.config import Config, ConfigIssue
from autoscaler.controller import Controller, TickResult
from autoscaler.errors import ProviderUnavailable, SourceUnavailable
from autoscaler.gc_tuning import freeze_long_lived, tune_gc
from autoscaler.providers import CapacityProvider, build_providers
from autoscaler.record import LogRecorder, Recorder
from autoscaler.state import load_state, save_state

from .events import EventRecorder, Recorders
from .health import Endpoints, Health
from .leader import LeaderElector
from .pools import LoadedPools, PoolLister, PoolProblem, combine
from .settings import FileSettings
from .status import StatusWriter

log = logging.getLogger("autoscaler.kube")
_KUBE_KINDS = {"deployment", "statefulset", "job"}


@dataclass
class ProcessOptions:
    """What `autoscaler run` was asked to do."""

    file: FileSettings = field(default_factory=FileSettings)
    dry_run: bool = False
    json_logs: bool = False
    state: Path | None = None
    once: bool = False
    crd_pools: bool = False
    namespaces: list[str] = field(default_factory=list)
    kubeconfig: str | None = None
    leader_elect: bool = False
    lease_name: str = "elastic-autoscaler"
    lease_namespace: str | None = None
    identity: str = ""
    lease_duration: float = 15.0
    """Seconds; renewal gives up after 2/3 of it and retries every 2/15 of it."""
    health_port: int | None = None
    metrics_port: int | None = None
    bind: str = "0.0.0.0"
    interval: float | None = None
    """Seconds between ticks; default: the file's `controller.interval`."""

    @property
    def needs_cluster(self) -> bool:
        """Connect to a cluster: asked for, or the file's pools live in one (their Events)."""
        kube_pools = any(p.target.kind in _KUBE_KINDS for p in self.file.pools)
        nodes = self.file.nodes is not None and self.file.nodes.enabled
        return bool(self.crd_pools or self.leader_elect or self.kubeconfig or kube_pools or nodes)


class KubeProcess:
    """The loop; `stop` ends it after the tick in progress."""

    def __init__(self, options: ProcessOptions, api_client: Any | None = None) -> None:
        """Raises ValueError (one line, what to fix) for a bad state file or no credentials."""
        self.options = options
        self.api = api_client
        if self.api is None and options.needs_cluster:
            self.api = connect(options.kubeconfig)
        self.memory = load_state(options.state) if options.state else {}
        self.stop = threading.Event()
        self.health = Health()
        self.loaded = LoadedPools(None)
        self.controller: Controller | None = None
        self.providers: dict[str, CapacityProvider] = {}
        self._key: tuple[Any, ...] | None = None
        self._unbuildable: dict[str, PoolProblem] = {}
        """AutoscalingPools valid in themselves that cannot run here (an unavailable source)."""
        self.identity = options.identity or f"{socket.gethostname()}-{os.getpid()}"
        self.lister = (
            PoolLister(self.api, options.namespaces or [own_namespace()])
            if options.crd_pools
            else None
        )
        self.status = StatusWriter(self.api) if options.crd_pools else None
        self.events = EventRecorder(self.api, self._where, self.identity) if self.api else None
        self.elector = self._elector()
        self.endpoints: Endpoints | None = None
        self.ticks = 0
        self._epoch = int(time.time())
        self.nodes: Any = None
        """The GPU node provisioner, built on first use when the file configures `nodes`."""

    def _elector(self) -> LeaderElector | None:
        o = self.options
        if not o.leader_elect:
            return None
        duration = o.lease_duration
        return LeaderElector(
            self.api,
            o.lease_name,
            o.lease_namespace or own_namespace(),
            self.identity,
            lease_duration=duration,
            renew_deadline=duration * 2 / 3,
            retry_period=max(0.2, duration * 2 / 15),
        )

    def _where(self) -> tuple[Config | None, dict[str, Any]]:
        return self.loaded.config, self.loaded.refs

    # -- the pieces of one round ---------------------------------------------------------
    def load(self) -> None:
        """List the pools; report invalid objects on themselves; rebuild the controller if
        the pools changed."""
        objects: list[dict[str, Any]] = []
        if self.lister is not None:
            try:
                objects = self.lister.list()
            except Exception as exc:  # keep the pools we had: never drop them on a blip
                telemetry.record_error("kube_list", error_code(exc))
                log.warning("listing AutoscalingPool objects failed: %s", _why_list(exc))
                if self.controller is not None or self._key is not None:
                    return
        loaded = combine(self.options.file, objects)
        self.loaded = loaded
        key = loaded.key()
        if key != self._key:
            self._rebuild()
            self._key = key
        for name, problem in self._unbuildable.items():
            loaded.refs.pop(name, None)
            loaded.problems.append(problem)
        telemetry.POOL_CONFIG_ERRORS.set(len(loaded.problems))
        if self.status is not None:
            self.status.write_problems(loaded, time.time())
        if self.events is not None:
            self.events.invalid_spec(loaded.problems)

    def _recorder(self) -> Recorder:
        parts: list[Recorder] = [LogRecorder(self.options.json_logs), telemetry.MetricsRecorder()]
        if self.events is not None:
            parts.append(self.events)
        return Recorders(*parts)

    def _providers(self, config: Config) -> dict[str, CapacityProvider]:
        """Providers by kind, kept across rebuilds (their clients and in-memory state)."""
        new = [p for p in config.pools if p.target.kind not in self.providers]
        if new:
            partial = config.model_copy(update={"pools": new})
            self.providers.update(build_providers(partial, SystemClock()))
        return self.providers

    def _rebuild(self) -> None:
        self._unbuildable = {}
        before: set[str] = set()
        if self.controller is not None:
            self.memory = {**self.memory, **self.controller.snapshot()}
            before = {p.name for p in self.controller.config.pools}
            self.controller.close()
            self.controller = None
        config = self.loaded.config
        names = {p.name for p in config.pools} if config is not None else set()
        telemetry.forget_pools(before - names)
        if config is None:
            log.info("no pools to scale (no file pools, no valid AutoscalingPool objects)")
            return
        if self.options.interval is not None:
            settings = config.controller.model_copy(update={"interval": self.options.interval})
            config = config.model_copy(update={"controller": settings})
        self.controller = self._build(config)
        if self.controller is None:
            return
        names = {p.name for p in self.controller.config.pools}
        # What this process remembers comes first (it is at least as new); a pool it has
        # no memory of, after a restart or on taking over from another leader, carries on
        # from the memory the last controller left in the pool's status.
        # Its request ids go on from this process's epoch: the last controller may have
        # acted after it last wrote status, and a reused id reads as a retry of that act.
        epoch = 0 if self.options.state is not None else self._epoch
        remembered = {
            n: {**m, "actions": max(int(m.get("actions") or 0), epoch)}
            for n, m in self.loaded.memory.items()
        }
        remembered.update(self.memory)
        self.controller.restore({n: m for n, m in remembered.items() if n in names})
        freeze_long_lived()
        log.info("scaling %d pool(s): %s", len(names), ", ".join(sorted(names)))

    def _build(self, config: Config) -> Controller | None:
        """A controller for `config`; an AutoscalingPool whose source or provider cannot be
        built here is left out and reported on its object, a file pool's error is raised."""
        self._unbuildable = {}
        while config.pools:
            try:
                return Controller(
                    config,
                    self._providers(config),
                    clock=SystemClock(),
                    recorder=self._recorder(),
                    dry_run=self.options.dry_run,
                    # Without --state, ids must not repeat after a restart.
                    request_epoch=0 if self.options.state is not None else self._epoch,
                )
            except (ProviderUnavailable, SourceUnavailable, ValueError) as exc:
                index = _pool_index(str(exc))
                if index is None or config.pools[index].name not in self.loaded.refs:
                    raise
                pool = config.pools[index]
                where = str(exc).split(":", 1)[0].removeprefix(f"pools[{index}].")
                issue = ConfigIssue(where, str(exc).split(": ", 1)[-1])
                self._unbuildable[pool.name] = PoolProblem(self.loaded.refs[pool.name], (issue,))
                log.warning("AutoscalingPool %s left out: %s", self.loaded.refs[pool.name], exc)
                rest = [p for p in config.pools if p.name != pool.name]
                config = config.model_copy(update={"pools": rest})
        log.info("no pools to scale (every AutoscalingPool was left out)")
        return None

    def tick(self) -> TickResult | None:
        """One controller tick, its status written and memory persisted; None without pools."""
        if self.controller is None:
            return None
        started = time.monotonic()
        result = self.controller.tick()
        telemetry.record_tick(time.monotonic() - started, result.skipped)
        keep_in_status = self.status is not None and not self.options.dry_run
        memory = (
            self.controller.snapshot() if keep_in_status or self.options.state is not None else None
        )
        if self.status is not None:
            self.status.write_tick(
                self.loaded, result, time.time(), memory if keep_in_status else None
            )
        if self.options.state is not None and memory is not None:
            save_state(self.options.state, {**self.memory, **memory})
        self.ticks += 1
        return result

    def leading(self) -> bool:
        """True when this process may act now; a standby that knows it waits is ready."""
        if self.elector is None:
            telemetry.LEADER.set(1)
            return True
        leads = self.elector.leads()
        telemetry.LEADER.set(1 if leads else 0)
        if not leads and self.elector.known.is_set():
            self.health.set_ready()
        return leads

    def interval(self) -> float:
        if self.options.interval is not None:
            return self.options.interval
        config = self.loaded.config
        return (config or self.options.file).controller.interval

    def round(self) -> TickResult | None:
        """What a leader does once per interval: load the pools, then tick.

        One place for work per tick (the node provisioner's call goes after `tick`)."""
        self.load()
        result = self.tick()
        self.provision_nodes()
        self.health.set_ready()
        return result

    def provision_nodes(self) -> Any:
        """One node-provisioning tick when the file configures `nodes` (never in a dry run:
        it would launch and terminate instances); its errors never stop the loop."""
        settings = self.options.file.nodes
        if settings is None or not settings.enabled:
            return None
        if self.options.dry_run:
            if self.ticks <= 1:
                log.info("node provisioning: off in a dry run (it launches instances)")
            return None
        try:
            if self.nodes is None:
                self.nodes = self._node_provisioner(settings)
            result = self.nodes.tick()
        except Exception as exc:  # a failed round holds every node as it is
            telemetry.record_error("nodes", error_code(exc))
            log.warning("node provisioning: %s", exc)
            return None
        for error in result.errors:
            log.warning("node provisioning: %s", error)
        if result.launched or result.cordoned or result.terminated or result.unplaced:
            log.info(
                "node provisioning: %d pending GPU pod(s); launched %s; cordoned %s; "
                "terminated %s; unplaced %d", result.pending, result.launched or "none",
                result.cordoned or "none", result.terminated or "none", len(result.unplaced),
            )  # fmt: skip
        return result

    def _node_provisioner(self, settings: Any) -> Any:
        from autoscaler.clients.aws import Ownership
        from autoscaler.nodes import NodeProvisioner
        from autoscaler.providers.aws_ec2 import Ec2Provider

        installation = self.options.file.installation
        clock = SystemClock()
        ec2 = Ec2Provider(Ownership(installation.id, installation.tag_prefix), clock)
        return NodeProvisioner(settings, self.api, ec2, clock)

    # -- the loop ------------------------------------------------------------------------
    def run(self) -> TickResult | None:
        """Serve, campaign and tick until `stop` (or once); always clean up."""
        o = self.options
        tune_gc()
        if o.health_port is not None or o.metrics_port is not None:
            self.endpoints = Endpoints(self.health, o.bind, o.health_port, o.metrics_port).start()
            log.info("serving probes/metrics on %s port(s) %s", o.bind, self.endpoints.ports())
        elector_stop = threading.Event()
        thread = self.elector.start(elector_stop) if self.elector is not None else None
        try:
            return self._loop()
        finally:
            elector_stop.set()  # only now: the tick in progress has finished
            if thread is not None:
                thread.join(timeout=10)
            if self.controller is not None:
                self.controller.close()
            if self.endpoints is not None:
                self.endpoints.close()
            log.info("stopped after %d tick(s)", self.ticks)

    def _loop(self) -> TickResult | None:
        last: TickResult | None = None
        while not self.stop.is_set():
            started = time.monotonic()
            if self.leading():
                last = self.round() or last
                if self.options.once:
                    break
                wait = self.interval()
            else:
                wait = 0.2  # a standby polls its elector's flag
            self.stop.wait(max(0.0, wait - (time.monotonic() - started)))
        return last

    def stop_on_signals(self) -> None:
        """SIGTERM and SIGINT end the loop after the tick in progress (main thread only)."""

        def handler(signum: int, _frame: Any) -> None:
            log.info("%s: stopping after the tick in progress", signal.Signals(signum).name)
            self.stop.set()

        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, handler)


def _pool_index(message: str) -> int | None:
    """The pool an error names as `pools[i]...` (how config errors say where)."""
    found = re.match(r"pools\[(\d+)\]", message)
    return int(found.group(1)) if found else None


def _why_list(exc: BaseException) -> str:
    status = getattr(exc, "status", None)
    if status == 404:
        return (
            "404: the AutoscalingPool CRD is not installed; install it with "
            "`autoscaler crd | kubectl apply -f -`"
        )
    if status == 403:
        return "403: forbidden; grant the service account list on autoscalingpools"
    reason = getattr(exc, "reason", None)
    return f"{status} {reason}" if status else f"{type(exc).__name__}: {exc}"
