"""Record: where decisions and actions go after a tick (log lines here; metrics in
telemetry.py; Kubernetes Events in kube/events.py).

Recorders must never raise into the controller: a broken log sink must not stop scaling.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Protocol

from .clock import SystemClock
from .telemetry import reason_class
from .types import ActionResult, Decision

log = logging.getLogger("autoscaler")

_SYSTEM_CLOCK = SystemClock()


class Recorder(Protocol):
    def record(self, decision: Decision, action: ActionResult | None) -> None: ...


class LogRecorder:
    """One log line per decision; JSON lines when `json_lines` is set.

    Every scale and every action is logged at INFO. A hold is logged at INFO when the pool's
    previous decision was something else (another direction, or a hold for another kind of
    reason: stale signal, cooldown, window...) and again every `hold_every` seconds; in
    between at DEBUG. A thousand pools at a 1 s tick would otherwise write a thousand
    identical "hold" lines a second."""

    def __init__(
        self,
        json_lines: bool = False,
        hold_every: float = 300.0,
        clock: Callable[[], float] = _SYSTEM_CLOCK.monotonic,
    ) -> None:
        self.json_lines = json_lines
        self.hold_every = hold_every
        self._clock = clock
        self._last: dict[str, tuple[str, float]] = {}

    def _level(self, decision: Decision, action: ActionResult | None) -> int:
        kind = f"{decision.direction}:{reason_class(decision.reason)}"
        now = self._clock()
        last = self._last.get(decision.pool)
        quiet = (
            decision.direction == "hold" and action is None and last is not None
            and last[0] == kind and now - last[1] < self.hold_every
        )  # fmt: skip
        if quiet:
            return logging.DEBUG
        self._last[decision.pool] = (kind, now)
        return logging.INFO

    def record(self, decision: Decision, action: ActionResult | None) -> None:
        level = self._level(decision, action)
        if not log.isEnabledFor(level):
            return
        if self.json_lines:
            entry = decision.to_dict()
            if action is not None:
                entry["action"] = {
                    "request_id": action.request_id,
                    "applied": action.applied,
                    "error": action.error,
                    "error_code": action.error_code,
                }
            log.log(level, json.dumps(entry))
            return
        verb = {"up": "scale up", "down": "scale down", "hold": "hold"}[decision.direction]
        line = (
            f"{decision.pool}: {verb} {decision.current} -> {decision.desired}: {decision.reason}"
        )
        if action is not None and action.error:
            line += f" [FAILED {action.error_code}: {action.error}]"
        elif action is not None and not action.applied:
            line += " [dry-run: not applied]"
        log.log(level, line)


class ListRecorder:
    """Keeps everything in memory: for tests and the simulator."""

    def __init__(self) -> None:
        self.entries: list[tuple[Decision, ActionResult | None]] = []

    def record(self, decision: Decision, action: ActionResult | None) -> None:
        self.entries.append((decision, action))


class Recorders:
    """Several recorders as one; one failing never stops the others."""

    def __init__(self, *recorders: Recorder) -> None:
        self.recorders = recorders

    def record(self, decision: Decision, action: ActionResult | None) -> None:
        for recorder in self.recorders:
            try:
                recorder.record(decision, action)
            except Exception as exc:
                log.warning("recorder %s failed: %s", type(recorder).__name__, exc)
