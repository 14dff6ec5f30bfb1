"""One step of every evaluation trigger per process round (a `Chore` of the process loop,
run by the leader only, after the tick).

For each trigger: read its signal, recover its runs from the cluster, assess its condition,
then either advance the run in progress by one step, start a run when the condition fires,
or nothing; finally prune old runs and report (status, Events, metrics, log). A run that
ends is reported once by the process that sees it end; runs already over when a process
first looks are not reported again. In a dry run it only reads, assesses and logs what
would fire and why. An error in one trigger is logged and counted and never stops the
others or the loop.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

from autoscaler import telemetry
from autoscaler.clients.kube import Labels, error_code
from autoscaler.clock import Clock
from autoscaler.config import ControllerSettings, Installation
from autoscaler.config.triggers import Trigger
from autoscaler.signals import SignalRequest, SignalSource, build_source
from autoscaler.types import Reading

from .condition import ConditionMemory, Verdict, assess
from .objects import TriggerObjects, TriggerRef, problem_status, trigger_status
from .pipeline import RollOut, Run, StartJob, next_step
from .rollout import RolloutRefused, roll_out
from .store import RunStore

log = logging.getLogger("autoscaler.triggers")
_GOOD = {"passed", "retrained", "rolled-out"}


class TriggerChore:
    """Evaluation triggers from the file and, optionally, AutoscalingTrigger objects."""

    def __init__(
        self,
        triggers: Sequence[Trigger],
        installation: Installation,
        controller: ControllerSettings,
        api_client: Any,
        clock: Clock,
        *,
        dry_run: bool = False,
        objects: TriggerObjects | None = None,
        events: Any = None,
        resolve: Callable[[str], str] | None = None,
        sources: dict[str, SignalSource] | None = None,
    ) -> None:
        """`events` has `emit(object, type, reason, message)` (kube.events.EventRecorder);
        `sources` by type (default: built from the registry when first needed)."""
        self.file_triggers = list(triggers)
        self.controller = controller
        self.api = api_client
        self.clock = clock
        self.dry_run = dry_run
        self.objects = objects
        self.events = events
        self.labels = Labels(installation.id, installation.tag_prefix)
        self.store = RunStore(api_client, self.labels, resolve)
        self.sources: dict[str, SignalSource] = dict(sources or {})
        self.memory: dict[str, ConditionMemory] = {}
        self.verdicts: dict[str, Verdict] = {}
        """The last verdict of each trigger (by name; `namespace/name` for objects)."""
        self._ended: dict[str, set[str]] = {}
        """Per trigger, the runs known to have ended (reported, or over at first sight)."""

    # -- the chore protocol ----------------------------------------------------------------
    def run_round(self, first: bool) -> None:
        now = self.clock.now()
        listed = self._load()
        readings = self._read(listed, now)
        for key, (trigger, ref, since) in listed.items():
            if key not in self.memory and since is not None:
                self.memory[key] = ConditionMemory(since)  # carried on from the status
            try:
                self.step(key, trigger, ref, readings[key], now)
            except Exception as exc:  # one trigger's failure never stops the others
                telemetry.record_error("trigger", error_code(exc))
                log.warning("trigger %s: %s", key, exc)

    def close(self) -> None:
        for source in self.sources.values():
            closer = getattr(source, "close", None)
            if closer is not None:
                try:
                    closer()
                except Exception:  # best effort on the way out
                    log.debug("closing %r failed", source, exc_info=True)

    # -- loading and reading ---------------------------------------------------------------
    def _load(self) -> dict[str, tuple[Trigger, TriggerRef | None, float | None]]:
        out: dict[str, tuple[Trigger, TriggerRef | None, float | None]] = {
            t.name: (t, None, None) for t in self.file_triggers
        }
        if self.objects is None:
            return out
        try:
            good, bad = self.objects.load()
        except Exception as exc:  # listing failed: the file's triggers still run
            telemetry.record_error("kube_list", error_code(exc))
            log.warning("listing AutoscalingTrigger objects failed: %s", exc)
            return out
        taken = {(t.namespace, t.name) for t in self.file_triggers}
        for item in good:
            if (item.trigger.namespace, item.trigger.name) in taken:
                why = (f"metadata.name: trigger {item.trigger.name!r} in namespace "
                       f"{item.trigger.namespace} is already the configuration file's; rename "
                       "this object")  # fmt: skip
                bad.append((item.ref, why))
                continue
            taken.add((item.trigger.namespace, item.trigger.name))
            out[str(item.ref)] = (item.trigger, item.ref, item.breached_since)
        for ref, message in bad:
            self._invalid(ref, message)
        return out

    def _invalid(self, ref: TriggerRef, message: str) -> None:
        log.warning("AutoscalingTrigger %s left out: %s", ref, message)
        if self.dry_run or self.objects is None:
            return
        self.objects.write_status(ref, problem_status(ref, message))
        self._event(ref.involved(), "Warning", "InvalidSpec", message)

    def _read(
        self, listed: dict[str, tuple[Trigger, TriggerRef | None, float | None]], now: float
    ) -> dict[str, Reading]:
        """Each trigger's reading; a failed or old one is stale, never a value."""
        by_type: dict[str, list[SignalRequest]] = defaultdict(list)
        for key, (trigger, _, _) in listed.items():
            source = trigger.condition.source
            by_type[source.type].append(SignalRequest(f"trigger:{key}", "condition", source))
        out: dict[str, Reading] = {}
        for kind, requests in by_type.items():
            try:
                if kind not in self.sources:
                    self.sources[kind] = build_source(kind, "triggers.condition.source",
                                                      self.controller)  # fmt: skip
                got = self.sources[kind].read(requests, now)
            except Exception as exc:
                got = {r.key: Reading(None, now, f"{type(exc).__name__}: {exc}")
                       for r in requests}  # fmt: skip
            for request in requests:
                key = request.pool.removeprefix("trigger:")
                out[key] = got.get(request.key) or Reading(None, now, "not read")
        for key, (trigger, _, _) in listed.items():
            reading = out[key]
            max_age = trigger.condition.max_age or 3 * self.controller.interval
            if reading.value is not None and now - reading.observed_at > max_age:
                age = now - reading.observed_at
                out[key] = Reading(None, reading.observed_at,
                                   f"{age:.0f}s old (max_age {max_age:g}s)")  # fmt: skip
        return out

    # -- one trigger -----------------------------------------------------------------------
    def step(
        self, key: str, trigger: Trigger, ref: TriggerRef | None, reading: Reading, now: float
    ) -> Verdict:
        """Assess one trigger and take at most one pipeline step; returns the verdict."""
        runs = self.store.runs(trigger)
        if key not in self._ended:
            self._ended[key] = {r.run_id for r in runs if r.finished}
        active = next((r for r in runs if not r.finished), None)
        ends = [r.ended_at for r in runs if r.finished and r.ended_at is not None]
        value = reading.value if reading.error is None else None
        if value is not None and (not math.isfinite(value)):
            value = None
        verdict, memory = assess(
            trigger.name,
            trigger.condition,
            self.memory.get(key, ConditionMemory()),
            value,
            now,
            cooldown=trigger.cooldown,
            last_run_ended=max(ends) if ends else None,
            running=active is not None,
            stale_why=reading.why_stale() or reading.error or "",
        )
        self.memory[key] = memory
        self.verdicts[key] = verdict
        telemetry.record_trigger_breach(key, verdict.held_seconds)
        if self.dry_run:
            head = "would FIRE" if verdict.fire else verdict.state
            log.info("trigger %s (dry run): %s: %s", key, head, verdict.reason)
            return verdict
        changed = False
        if active is not None:
            changed = self._advance(trigger, ref, active, now)
        elif verdict.fire:
            changed = self._start(trigger, ref, runs, verdict, now)
        if changed or active is not None:
            runs = self.store.runs(trigger)
        for run in runs:
            if run.finished and run.run_id not in self._ended[key]:
                self._ended[key].add(run.run_id)
                self._report_end(trigger, ref, run)
        self.store.prune(trigger, runs)
        if ref is not None and self.objects is not None:
            status = trigger_status(trigger, ref, verdict, runs, memory.breached_since)
            self.objects.write_status(ref, status)
        return verdict

    def _start(
        self, trigger: Trigger, ref: TriggerRef | None, runs: list[Run], verdict: Verdict,
        now: float,
    ) -> bool:  # fmt: skip
        sequence = max((r.sequence for r in runs), default=0) + 1
        notes = {self.store.key("fired-at"): repr(now),
                 self.store.key("fired-value"): repr(verdict.value)}  # fmt: skip
        if not self.store.create(trigger, sequence, "evaluate", notes):
            log.info("trigger %s: run %04d exists already (another replica?)",
                     trigger.name, sequence)  # fmt: skip
            return True
        telemetry.record_trigger_run(trigger.name, "started")
        message = f"run {sequence:04d} started: {verdict.reason}"
        log.info("trigger %s: %s", trigger.name, message)
        self._event(self._involved(trigger, ref, sequence), "Normal", "Fired", message)
        return True

    def _advance(self, trigger: Trigger, ref: TriggerRef | None, run: Run, now: float) -> bool:
        step = next_step(trigger.pipeline, run)
        involved = self._involved(trigger, ref, run.sequence)
        if isinstance(step, StartJob):
            if self.store.create(trigger, run.sequence, step.step, {}):
                message = f"run {run.sequence:04d}: {step.step} started ({step.why})"
                log.info("trigger %s: %s", trigger.name, message)
                self._event(involved, "Normal", "RetrainStarted", message)
            return True
        if isinstance(step, RollOut):
            return self._roll_out(trigger, ref, run, step.version)
        return False  # Wait; a Finish is not an active run

    def _roll_out(self, trigger: Trigger, ref: TriggerRef | None, run: Run, version: str) -> bool:
        spec = trigger.pipeline.rollout
        assert spec is not None
        try:
            roll_out(self.api, self.labels, trigger.namespace, spec, version, run.run_id)
        except RolloutRefused as exc:  # the run waits here until someone fixes it
            message = f"run {run.sequence:04d}: rollout refused: {exc}"
            log.warning("trigger %s: %s", trigger.name, message)
            self._event(self._involved(trigger, ref, run.sequence), "Warning",
                        "RolloutRefused", message)  # fmt: skip
            return False
        return True

    def _report_end(self, trigger: Trigger, ref: TriggerRef | None, run: Run) -> None:
        outcome = run.outcome or "unknown"
        telemetry.record_trigger_run(trigger.name, outcome)
        message = f"run {run.sequence:04d} ended {outcome}: {run.detail}"
        log.info("trigger %s: %s", trigger.name, message)
        kind = "Normal" if outcome in _GOOD else "Warning"
        self._event(self._involved(trigger, ref, run.sequence), kind, "RunEnded", message)

    # -- reports ---------------------------------------------------------------------------
    def _involved(self, trigger: Trigger, ref: TriggerRef | None, sequence: int) -> dict[str, Any]:
        """Events go on the AutoscalingTrigger, or (a file trigger) on the run's
        evaluation Job."""
        if ref is not None:
            return ref.involved()
        from .store import job_name

        return {"apiVersion": "batch/v1", "kind": "Job", "namespace": trigger.namespace,
                "name": job_name(trigger.name, sequence, "evaluate")}  # fmt: skip

    def _event(self, obj: dict[str, Any], kind: str, reason: str, message: str) -> None:
        if self.events is None:
            return
        try:
            self.events.emit(obj, kind, reason, message[:1024])
        except Exception as exc:  # a report: never stops a run
            telemetry.record_error("kube_event", error_code(exc))
            log.warning("event %s not written: %s", reason, exc)


__all__ = ["TriggerChore"]
