"""Record: where decisions and actions go after a tick (logs now; Events and metrics later).

Recorders must never raise into the controller: a broken log sink must not stop scaling.
"""

from __future__ import annotations

import json
import logging
from typing import Protocol

from .types import ActionResult, Decision

log = logging.getLogger("autoscaler")


class Recorder(Protocol):
    def record(self, decision: Decision, action: ActionResult | None) -> None: ...


class LogRecorder:
    """One log line per decision; JSON lines when `json_lines` is set."""

    def __init__(self, json_lines: bool = False) -> None:
        self.json_lines = json_lines

    def record(self, decision: Decision, action: ActionResult | None) -> None:
        if self.json_lines:
            entry = decision.to_dict()
            if action is not None:
                entry["action"] = {
                    "request_id": action.request_id,
                    "applied": action.applied,
                    "error": action.error,
                    "error_code": action.error_code,
                }
            log.info(json.dumps(entry))
            return
        verb = {"up": "scale up", "down": "scale down", "hold": "hold"}[decision.direction]
        line = (
            f"{decision.pool}: {verb} {decision.current} -> {decision.desired}: {decision.reason}"
        )
        if action is not None and action.error:
            line += f" [FAILED {action.error_code}: {action.error}]"
        elif action is not None and not action.applied:
            line += " [dry-run: not applied]"
        log.info(line)


class ListRecorder:
    """Keeps everything in memory: for tests and the simulator."""

    def __init__(self) -> None:
        self.entries: list[tuple[Decision, ActionResult | None]] = []

    def record(self, decision: Decision, action: ActionResult | None) -> None:
        self.entries.append((decision, action))
