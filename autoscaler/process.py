"""The one process loop: `autoscaler run`, with or without a cluster.

Each round a leader loads its pools, rebuilds the controller when the set of pools changed
(planner memory and providers carried over), ticks, reports, persists memory and runs its
chores; a standby is ready but never acts. SIGTERM finishes the round in progress, then the
loop ends. Time comes from the injected clock; the state file is written after every tick.

What a cluster adds plugs in through the small protocols below, built by the composition
root (autoscaler/cli_run.py) from autoscaler.kube and autoscaler.nodes:
- `PoolSource` (autoscaler/pool_sources.py): pools from the file, or also from
  AutoscalingPool objects;
- `Leadership`: leader election on a Lease;
- `Reporter`: status written back to the pools' objects, Events for invalid specs;
- `Recorder` (autoscaler/record.py): each decision as a log line, metric or Event;
- `Chore`: other work each round, such as GPU node provisioning.

This module must never decide or plan (the controller and the planner do), nor import a
cloud or cluster client.
"""

from __future__ import annotations

import logging
import re
import signal
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from autoscaler import telemetry
from autoscaler.clock import Clock, SystemClock, stopwatch
from autoscaler.config import Config, ConfigIssue
from autoscaler.config.file_settings import FileSettings
from autoscaler.controller import Controller, TickResult
from autoscaler.errors import ProviderUnavailable, SourceUnavailable
from autoscaler.gc_tuning import freeze_long_lived, tune_gc
from autoscaler.health import Endpoints, Health
from autoscaler.pool_sources import FilePools, LoadedPools, PoolProblem, PoolSource
from autoscaler.providers import CapacityProvider, build_providers
from autoscaler.record import LogRecorder, Recorder, Recorders
from autoscaler.state import load_state, save_state
from autoscaler.state_schema import StateInvalid, validate_pool_memory

log = logging.getLogger("autoscaler.process")

STANDBY_POLL_SECONDS = 0.2
"""How often a standby looks at its elector's flag."""


class Leadership(Protocol):
    """Whether this process may act now (leader election)."""

    known: threading.Event
    """Set once the elector knows who leads (a standby that knows it waits is ready)."""

    def start(self, stop: threading.Event) -> threading.Thread: ...

    def leads(self) -> bool: ...


class Reporter(Protocol):
    """Writes what the process found and did back to where the pools came from."""

    keeps_memory: bool
    """True when it stores planner memory (the pools' status), so it is snapshotted."""

    def report_problems(self, loaded: LoadedPools, now: float) -> None: ...

    def report_tick(
        self, loaded: LoadedPools, result: TickResult, now: float, memory: dict[str, Any] | None
    ) -> None: ...


class Chore(Protocol):
    """Other work a leader does once a round, after the tick; its errors are its own."""

    def run_round(self, first: bool) -> None: ...

    def close(self) -> None: ...


@dataclass
class ProcessSettings:
    """What the loop itself was asked to do (the cluster's part is in its plug-ins)."""

    file: FileSettings = field(default_factory=FileSettings)
    dry_run: bool = False
    json_logs: bool = False
    state: Path | None = None
    once: bool = False
    health_port: int | None = None
    metrics_port: int | None = None
    bind: str = "0.0.0.0"
    interval: float | None = None
    """Seconds between ticks; default: the file's `controller.interval`."""


ProviderFactory = Callable[[Config, Clock], dict[str, CapacityProvider]]


class Process:
    """The loop; `stop` ends it after the round in progress."""

    def __init__(
        self,
        settings: ProcessSettings,
        *,
        pools: PoolSource | None = None,
        leadership: Leadership | None = None,
        reporters: Sequence[Reporter] = (),
        recorders: Sequence[Recorder] = (),
        chores: Sequence[Chore] = (),
        clock: Clock | None = None,
        providers: ProviderFactory = build_providers,
    ) -> None:
        """Raises ValueError (one line, what to fix) for a state file it cannot read."""
        self.settings = settings
        self.clock = clock or SystemClock()
        self.pools = pools or FilePools(settings.file)
        self.leadership = leadership
        self.reporters = list(reporters)
        self.recorders = list(recorders)
        self.chores = list(chores)
        self._provider_factory = providers
        self.memory = (
            load_state(
                settings.state,
                now=self.clock.now(),
                backoff_max=settings.file.controller.provider_backoff_max,
            )
            if settings.state
            else {}
        )
        self._nudged = threading.Event()
        """Set to end the wait before the next round early: by `stop`, or by a source that
        saw a pool at zero get demand (`wake`)."""
        self.stop: threading.Event = _Stop(self._nudged)
        self.wakes = 0
        self.health = Health()
        self.loaded = LoadedPools(None)
        self.controller: Controller | None = None
        self.providers: dict[str, CapacityProvider] = {}
        self._key: tuple[Any, ...] | None = None
        self._unbuildable: dict[str, PoolProblem] = {}
        """Plugged-in pools valid in themselves that cannot run here (an unavailable
        source)."""
        self.endpoints: Endpoints | None = None
        self.ticks = 0
        self.epoch = int(self.clock.now())
        """Without a state file, request ids start from the process's start time, so they
        never repeat across restarts (a provider takes a reused id for a retry)."""

    # -- the pieces of one round ---------------------------------------------------------
    def load(self) -> None:
        """Load the pools; report the ones left out; rebuild the controller if the pools
        changed."""
        loaded = self.pools.load()
        if loaded is None:  # could not look this round: keep the pools we have
            return
        self.loaded = loaded
        key = loaded.key()
        if key != self._key:
            self._rebuild()
            self._key = key
        for name, problem in self._unbuildable.items():
            loaded.refs.pop(name, None)
            loaded.problems.append(problem)
        telemetry.POOL_CONFIG_ERRORS.set(len(loaded.problems))
        for reporter in self.reporters:
            reporter.report_problems(loaded, self.clock.now())

    def _recorder(self) -> Recorder:
        return Recorders(
            LogRecorder(self.settings.json_logs), telemetry.MetricsRecorder(), *self.recorders
        )

    def _providers(self, config: Config) -> dict[str, CapacityProvider]:
        """Providers by kind, kept across rebuilds (their clients and in-memory state)."""
        new = [p for p in config.pools if p.target.kind not in self.providers]
        if new:
            partial = config.model_copy(update={"pools": new})
            self.providers.update(self._provider_factory(partial, self.clock))
        return self.providers

    def _rebuild(self) -> None:
        before: set[str] = set()
        if self.controller is not None:
            self.memory = {**self.memory, **self.controller.snapshot()}
            before = {p.name for p in self.controller.config.pools}
            self.controller.close()
            self.controller = None
        self._unbuildable = {}
        config = self.loaded.config
        names = {p.name for p in config.pools} if config is not None else set()
        telemetry.forget_pools(before - names)
        if config is None:
            log.info("no pools to scale (no file pools, no valid AutoscalingPool objects)")
            return
        if self.settings.interval is not None:
            controller = config.controller.model_copy(update={"interval": self.interval()})
            config = config.model_copy(update={"controller": controller})
        self.controller = self._build(config)
        if self.controller is None:
            return
        names = {p.name for p in self.controller.config.pools}
        # What this process remembers comes first (it is at least as new); a pool it has
        # no memory of, after a restart or on taking over from another leader, carries on
        # from the memory the last controller left in the pool's status.
        # Its request ids go on from this process's epoch: the last controller may have
        # acted after it last wrote status, and a reused id reads as a retry of that act.
        epoch = self._request_epoch()
        remembered = {
            n: {**m, "actions": max(int(m.get("actions") or 0), epoch)}
            for n, m in self._status_memory(config).items()
        }
        remembered.update(self.memory)
        self.controller.restore({n: m for n, m in remembered.items() if n in names})
        freeze_long_lived()
        log.info("scaling %d pool(s): %s", len(names), ", ".join(sorted(names)))

    def _status_memory(self, config: Config) -> dict[str, dict[str, Any]]:
        """The planner memory in the pools' status that passes the state file's schema;
        any other is dropped with a warning (the pool starts afresh, which is safe)."""
        now, backoff_max = self.clock.now(), config.controller.provider_backoff_max
        kept = {}
        for name, memory in self.loaded.memory.items():
            try:
                validate_pool_memory(memory, now, backoff_max, "status.plannerMemory")
            except StateInvalid as exc:
                log.warning("AutoscalingPool %s: %s; starting afresh", name, exc)
                continue
            kept[name] = memory
        return kept

    def _request_epoch(self) -> int:
        """Where new request-id sequences start: 0 with a state file (the sequence goes on
        from it), else the start time."""
        return 0 if self.settings.state is not None else self.epoch

    def _build(self, config: Config) -> Controller | None:
        """A controller for `config`; a plugged-in pool whose source or provider cannot be
        built here is left out and reported on its object, a file pool's error is raised."""
        while config.pools:
            try:
                return Controller(
                    config,
                    self._providers(config),
                    clock=self.clock,
                    recorder=self._recorder(),
                    dry_run=self.settings.dry_run,
                    request_epoch=self._request_epoch(),
                    on_demand=self.wake,
                )
            except (ProviderUnavailable, SourceUnavailable, ValueError) as exc:
                index = _pool_index(str(exc))
                if index is None or config.pools[index].name not in self.loaded.refs:
                    raise
                pool = config.pools[index]
                ref = self.loaded.refs[pool.name]
                where = str(exc).split(":", 1)[0].removeprefix(f"pools[{index}].")
                issue = ConfigIssue(where, str(exc).split(": ", 1)[-1])
                self._unbuildable[pool.name] = PoolProblem(ref, (issue,))
                log.warning("AutoscalingPool %s left out: %s", ref, exc)
                rest = [p for p in config.pools if p.name != pool.name]
                config = config.model_copy(update={"pools": rest})
        log.info("no pools to scale (every AutoscalingPool was left out)")
        return None

    def tick(self) -> TickResult | None:
        """One controller tick, reported and its memory persisted; None without pools."""
        if self.controller is None:
            return None
        elapsed = stopwatch()
        result = self.controller.tick()
        telemetry.record_tick(elapsed(), result.skipped)
        keeping = [r for r in self.reporters if r.keeps_memory and not self.settings.dry_run]
        state = self.settings.state
        memory = self.controller.snapshot() if keeping or state is not None else None
        now = self.clock.now()
        for reporter in self.reporters:
            reporter.report_tick(self.loaded, result, now, memory if reporter in keeping else None)
        if state is not None and memory is not None:
            save_state(state, {**self.memory, **memory})
        self.ticks += 1
        return result

    def leading(self) -> bool:
        """True when this process may act now; a standby that knows it waits is ready."""
        if self.leadership is None:
            telemetry.LEADER.set(1)
            return True
        leads = self.leadership.leads()
        telemetry.LEADER.set(1 if leads else 0)
        if not leads and self.leadership.known.is_set():
            self.health.set_ready()
        return leads

    def interval(self) -> float:
        if self.settings.interval is not None:
            return self.settings.interval
        config = self.loaded.config
        return config.controller.interval if config else self.settings.file.controller.interval

    def round(self) -> TickResult | None:
        """What a leader does once per interval: load the pools, tick, then the chores."""
        self.load()
        result = self.tick()
        for chore in self.chores:
            chore.run_round(first=self.ticks <= 1)
        self.health.set_ready()
        return result

    # -- the loop ------------------------------------------------------------------------
    def run(self) -> TickResult | None:
        """Serve, campaign and tick until `stop` (or once); always clean up."""
        s = self.settings
        tune_gc()
        if s.health_port is not None or s.metrics_port is not None:
            self.endpoints = Endpoints(self.health, s.bind, s.health_port, s.metrics_port).start()
            log.info("serving probes/metrics on %s port(s) %s", s.bind, self.endpoints.ports())
        campaign = threading.Event()
        thread = self.leadership.start(campaign) if self.leadership is not None else None
        try:
            return self._loop()
        finally:
            campaign.set()  # only now: the round in progress has finished
            if thread is not None:
                thread.join(timeout=10)
            self.close()
            log.info("stopped after %d tick(s)", self.ticks)

    def close(self) -> None:
        if self.controller is not None:
            self.controller.close()
        for chore in self.chores:
            chore.close()
        if self.endpoints is not None:
            self.endpoints.close()

    def wake(self) -> None:
        """Run the next round now instead of at the end of the interval: a source calls this
        when a pool at zero gets its first request (the activator), so waking a pool does
        not wait for the next tick. Safe from any thread; wakes during a round coalesce
        into one more round."""
        self.wakes += 1
        self._nudged.set()

    def _loop(self) -> TickResult | None:
        last: TickResult | None = None
        while not self.stop.is_set():
            started = self.clock.monotonic()
            self._nudged.clear()  # a wake from here on is seen after this round
            if self.leading():
                last = self.round() or last
                if self.settings.once:
                    break
                wait = self.interval()
            else:
                wait = STANDBY_POLL_SECONDS
            self.clock.wait(self._nudged, wait - (self.clock.monotonic() - started))
        return last

    def stop_on_signals(self) -> None:
        """SIGTERM and SIGINT end the loop after the round in progress (main thread only)."""

        def handler(signum: int, _frame: Any) -> None:
            log.info("%s: stopping after the tick in progress", signal.Signals(signum).name)
            self.stop.set()

        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, handler)


class _Stop(threading.Event):
    """The loop's stop event: setting it also ends the wait for the next round."""

    def __init__(self, nudged: threading.Event) -> None:
        super().__init__()
        self._nudged = nudged

    def set(self) -> None:
        super().set()
        self._nudged.set()


def _pool_index(message: str) -> int | None:
    """The pool an error names as `pools[i]...` (how config errors say where)."""
    found = re.match(r"pools\[(\d+)\]", message)
    return int(found.group(1)) if found else None


__all__ = [
    "Chore",
    "Leadership",
    "Process",
    "ProcessSettings",
    "Reporter",
]
