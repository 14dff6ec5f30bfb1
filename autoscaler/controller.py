"""The controller: one tick is observe -> decide -> plan -> act -> record.

Observation and action are I/O through injected signal sources and capacity providers;
decide (the pool's policy) and plan (the planner) are pure. Every action is derived from
desired vs. actual capacity and carries a request id built from the pool's persisted action
count, so a controller restarted mid-action repeats the same id and converges instead of
doubling. A failure in one pool's source or provider never stops the others.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from autoscaler import telemetry
from autoscaler.errors import ProviderError

from .budgets import Budgets
from .clock import Clock, SystemClock
from .config import Config, Pool
from .experiments import with_experiment_reason
from .observe import Observer
from .planner import SUPERSEDED, PlanSpec, PoolMemory, after_action, after_superseded, plan
from .pool_signals import PoolSignals
from .providers.base import CapacityProvider
from .record import LogRecorder, Recorder
from .signals import SignalSource
from .types import ActionResult, Capacity, Decision, Reading, Recommendation

log = logging.getLogger("autoscaler")


@dataclass
class TickResult:
    """What one tick saw and did."""

    at: float
    decisions: list[Decision] = field(default_factory=list)
    actions: list[ActionResult] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    """Pools not decided this tick (capacity unknown), with why."""
    readings: dict[tuple[str, str], Reading] = field(default_factory=dict)


class Controller:
    """Scales every pool of a configuration, one tick at a time."""

    def __init__(
        self,
        config: Config,
        providers: Mapping[str, CapacityProvider],
        sources: Mapping[str, SignalSource] | None = None,
        clock: Clock | None = None,
        recorder: Recorder | None = None,
        dry_run: bool = False,
        memory: Mapping[str, PoolMemory] | None = None,
        inline: bool = False,
        request_epoch: int = 0,
        on_demand: Callable[[], None] | None = None,
    ) -> None:
        """`providers` and `sources` are keyed by target kind and source type; missing
        sources are built from the registry (an unavailable type raises at once).

        `inline` calls sources and providers directly in the tick's thread, without
        deadlines: for the simulator, whose in-memory sources cannot block. Pools of
        kind `simulated` read the signals their policy needs, unless declared, from the
        source keyed `simulated` (the simulator's).

        `request_epoch` starts the request-id sequence of pools without memory. A process
        that does not persist memory passes its start time, so ids never repeat across
        restarts (a provider would take a reused id for a retry and do nothing); with
        memory persisted the sequence continues from it, so a retry after a crash reuses
        the id of the action it repeats.

        `on_demand` is handed to every source that can push (one with a `watch` method,
        the activator's): it calls it when a pool at zero gets demand, so the process ticks
        at once instead of at the end of its interval."""
        self.config = config
        self.request_epoch = request_epoch
        self.clock = clock or SystemClock()
        self.recorder = recorder or LogRecorder()
        self.dry_run = dry_run
        self.providers = dict(providers)
        self.sources: dict[str, SignalSource] = dict(sources or {})
        self.memory: dict[str, PoolMemory] = dict(memory or {})
        self.policies = {p.name: p.policy.build() for p in config.pools}
        self.specs = {p.name: PlanSpec.from_pool(p) for p in config.pools}
        self.budgets = Budgets(config)
        self.inline = inline
        self.observer = Observer()
        self._actor = cf.ThreadPoolExecutor(max_workers=16, thread_name_prefix="act")
        self._acting: dict[str, cf.Future[ActionResult | None]] = {}
        for i, pool in enumerate(config.pools):
            if pool.target.kind not in self.providers:
                raise ValueError(
                    f"pools[{i}].target: no provider for kind {pool.target.kind!r} "
                    f"(have: {', '.join(sorted(self.providers)) or 'none'})"
                )
        self.signals = PoolSignals(config, self.sources)
        if on_demand is not None:
            for source in self.sources.values():
                watch = getattr(source, "watch", None)
                if watch is not None:
                    watch(on_demand)

    def close(self) -> None:
        """Stop the thread pools and release the sources' and providers' connections."""
        self.observer.close()
        self._actor.shutdown(wait=False, cancel_futures=True)
        closers = [getattr(s, "close", None) for s in self.sources.values()]
        closers += [p.close for p in self.providers.values()]
        for closer in closers:
            if closer is None:
                continue
            try:
                closer()
            except Exception:  # closing is best effort; never mask the real exit
                log.debug("closing %r failed", closer, exc_info=True)

    # -- memory, for persistence across restarts -------------------------------------
    def snapshot(self) -> dict[str, Any]:
        return {
            name: {**mem.to_dict(), **self.budgets.memory(name)}
            for name, mem in self.memory.items()
        }

    def restore(self, data: Mapping[str, Any]) -> None:
        self.memory = {name: PoolMemory.from_dict(d) for name, d in data.items()}
        self.budgets.restore(data)

    # -- one tick ---------------------------------------------------------------------
    def tick(self) -> TickResult:
        now = self.clock.now()
        settings = self.config.controller
        result = TickResult(at=now)
        if self.inline:
            result.readings, capacities = self._observe_inline(now)
        else:
            for provider in self.providers.values():  # per-tick caches (kube snapshots)
                provider.begin_tick()
            result.readings = self.observer.read_signals(
                self.sources,
                self.signals.requests,
                now,
                self.signals.timeouts,
                settings.observe_deadline,
            )
            capacities = self.observer.call_each(
                {p.name: self._describer(p) for p in self.config.pools},
                settings.observe_deadline,
            )
        planned: list[tuple[Pool, Decision, Capacity]] = []
        for pool in self.config.pools:
            capacity = capacities[pool.name]
            busy = self._acting.get(pool.name)
            if busy is not None and not busy.done():
                result.skipped[pool.name] = "previous action still running"
                continue
            if isinstance(capacity, BaseException):
                why = f"capacity unknown: {_describe_error(capacity)}"
                result.skipped[pool.name] = why
                log.warning("%s: hold: %s", pool.name, why)
                continue
            planned.append((pool, self._decide(pool, capacity, result.readings, now), capacity))
        planned = self._within_budgets(planned, now)
        actions = self._act_all(planned, now)
        self._tidy_all(planned, actions)
        for pool, decision, _ in planned:
            action = actions.get(pool.name)
            if action is not None:
                result.actions.append(action)
            result.decisions.append(decision)
            self._record(decision, action)
        return result

    def _within_budgets(
        self, planned: list[tuple[Pool, Decision, Capacity]], now: float
    ) -> list[tuple[Pool, Decision, Capacity]]:
        """Scale-ups capped at the pools' and the installation's budgets, by priority
        (autoscaler/budgets.py); the spend exported as metrics."""
        if self.inline and not self.budgets.active:
            return planned
        capped = self.budgets.cap([(p, d, c.desired) for p, d, c in planned], now)
        if not self.inline:
            telemetry.record_spend(self.budgets.report())
            telemetry.record_gpu_hours_total(self.budgets.gpu_hours_total())
        return [(p, d, c) for (p, _, c), d in zip(planned, capped, strict=True)]

    def _observe_inline(
        self, now: float
    ) -> tuple[dict[tuple[str, str], Reading], dict[str, Capacity | BaseException]]:
        readings: dict[tuple[str, str], Reading] = {}
        for kind, reqs in self.signals.requests.items():
            try:
                readings.update(self.sources[kind].read(reqs, now))
            except Exception as exc:  # same rule as threaded: stale, never fatal
                for r in reqs:
                    readings[r.key] = Reading(None, now, f"{type(exc).__name__}: {exc}")
        capacities: dict[str, Capacity | BaseException] = {}
        for pool in self.config.pools:
            try:
                capacities[pool.name] = self.providers[pool.target.kind].describe(pool)
            except Exception as exc:
                capacities[pool.name] = exc
        return readings, capacities

    def _act_all(
        self, planned: list[tuple[Pool, Decision, Capacity]], now: float
    ) -> dict[str, ActionResult]:
        """Act on every changed pool concurrently, so a throttled or slow cloud API for
        one pool does not delay the others. An action still running at the deadline is
        reported and its pool skipped until it returns."""
        todo = [(p, d, c) for p, d, c in planned if d.desired != c.desired]
        if not todo:
            return {}
        if self.inline:
            done_inline = {p.name: self._act(p, d, c, now) for p, d, c in todo}
            return {k: v for k, v in done_inline.items() if v is not None}
        futures = {
            pool.name: self._actor.submit(self._act, pool, decision, capacity, now)
            for pool, decision, capacity in todo
        }
        self._acting.update(futures)
        deadline = self.config.controller.act_deadline
        done, _ = cf.wait(futures.values(), timeout=deadline)
        out: dict[str, ActionResult] = {}
        for pool, decision, _ in todo:
            future = futures[pool.name]
            if future in done:
                action = future.result()
                if action is not None:
                    out[pool.name] = action
            else:
                out[pool.name] = ActionResult(
                    pool.name,
                    "",
                    decision.desired,
                    False,
                    f"still running after {deadline:g}s; the pool is skipped until it returns",
                    "Timeout",
                )
        return out

    def _tidy_all(
        self, planned: list[tuple[Pool, Decision, Capacity]], acted: Mapping[str, Any]
    ) -> None:
        """Housekeeping for pools not acted on this tick (`CapacityProvider.tidy`: e.g.
        deleting finished Jobs, which no scale action would otherwise trigger once a pool
        holds at zero). Never in a dry run; in the background, and the pool is skipped next
        tick while it runs, as after an action."""
        if self.dry_run or self.inline:
            return
        for pool, _, _ in planned:
            provider = self.providers[pool.target.kind]
            if not provider.has_housekeeping:
                continue
            if pool.name in acted or pool.name in self._acting_now():
                continue
            tidy = provider.tidy
            self._acting[pool.name] = self._actor.submit(_tidy, tidy, pool)

    def _acting_now(self) -> set[str]:
        return {name for name, f in self._acting.items() if not f.done()}

    def _describer(self, pool: Pool) -> Callable[[], Capacity]:
        provider = self.providers[pool.target.kind]
        return lambda: provider.describe(pool)

    def _decide(
        self,
        pool: Pool,
        capacity: Capacity,
        readings: Mapping[tuple[str, str], Reading],
        now: float,
    ) -> Decision:
        observation, stale = self.signals.observation(pool, capacity, readings, now)
        memory = self.memory.get(pool.name) or PoolMemory(actions=self.request_epoch)
        try:
            rec = self.policies[pool.name].recommend(observation, memory.policy)
        except Exception as exc:  # a policy bug must not stop the other pools
            log.exception("%s: policy %s failed", pool.name, pool.policy.type)
            rec = Recommendation(
                capacity.desired,
                f"policy {pool.policy.type} failed: {exc}",
                memory.policy,
                hold=True,
            )
        decision, memory = plan(
            pool.name, self.specs[pool.name], rec, capacity.desired, now, memory, stale
        )
        self.memory[pool.name] = memory
        return with_experiment_reason(pool, decision, readings)

    def _act(
        self, pool: Pool, decision: Decision, capacity: Capacity, now: float
    ) -> ActionResult | None:
        if decision.desired == capacity.desired:
            return None
        memory = self.memory[pool.name]
        request_id = _request_id(self.config.installation.id, pool.name, memory.actions + 1)
        if self.dry_run:
            return ActionResult(pool.name, request_id, decision.desired, applied=False)
        settings = self.config.controller
        try:
            self.providers[pool.target.kind].scale(pool, decision.desired, request_id)
        except ProviderError as exc:
            if exc.code in SUPERSEDED:
                # An earlier attempt under this request id landed (a process killed after
                # its call, before its state was saved) and the token now stands for other
                # parameters: the next tick sees what it did and acts under a new id.
                self.memory[pool.name] = after_superseded(memory, f"{exc.code}: {exc}")
                return ActionResult(
                    pool.name, request_id, decision.desired, False, str(exc), exc.code
                )
            self.memory[pool.name] = after_action(
                memory,
                now,
                capacity.desired,
                decision.desired,
                f"{exc.code}: {exc}",
                settings.provider_backoff,
                settings.provider_backoff_max,
            )
            return ActionResult(pool.name, request_id, decision.desired, False, str(exc), exc.code)
        except Exception as exc:
            log.exception("%s: provider failed", pool.name)
            self.memory[pool.name] = after_action(
                memory,
                now,
                capacity.desired,
                decision.desired,
                type(exc).__name__,
                settings.provider_backoff,
                settings.provider_backoff_max,
            )
            return ActionResult(
                pool.name, request_id, decision.desired, False, str(exc), type(exc).__name__
            )
        self.memory[pool.name] = after_action(memory, now, capacity.desired, decision.desired)
        return ActionResult(pool.name, request_id, decision.desired, applied=True)

    def _record(self, decision: Decision, action: ActionResult | None) -> None:
        try:
            self.recorder.record(decision, action)
        except Exception:  # recording must never stop scaling
            log.exception("recorder failed")


def _request_id(installation: str, pool: str, sequence: int) -> str:
    safe = re.sub(r"[^A-Za-z0-9-]", "-", f"{installation}-{pool}")
    return f"{safe}-{sequence:08d}"


def _tidy(tidy: Callable[[Pool], None], pool: Pool) -> None:
    try:
        tidy(pool)
    except Exception as exc:  # housekeeping must never fail a tick; it is retried next one
        log.warning("%s: housekeeping failed: %s", pool.name, exc)


def _describe_error(exc: BaseException) -> str:
    code = getattr(exc, "code", None)
    return f"{code}: {exc}" if code else f"{type(exc).__name__}: {exc}"
