"""Decision logs: every scale at INFO, repeated holds quiet between heartbeats."""

from __future__ import annotations

import logging

import pytest

from autoscaler.record import LogRecorder
from autoscaler.types import ActionResult, Decision


def decision(current: int, desired: int, reason: str, pool: str = "chat") -> Decision:
    return Decision(pool, 0.0, current, desired, desired, reason)


def test_repeated_holds_are_debug_until_the_reason_kind_changes_or_the_heartbeat(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    rec = LogRecorder(hold_every=300, clock=lambda: now[0])
    caplog.set_level(logging.INFO, logger="autoscaler")

    def infos() -> list[str]:
        lines = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
        caplog.clear()
        return lines

    rec.record(decision(2, 2, "queue-depth: backlog 20 -> 2"), None)
    rec.record(decision(2, 2, "queue-depth: backlog 21 -> 2"), None)
    rec.record(decision(2, 2, "queue-depth: backlog 19 -> 2", pool="other"), None)
    assert infos() == ["chat: hold 2 -> 2: queue-depth: backlog 20 -> 2",
                       "other: hold 2 -> 2: queue-depth: backlog 19 -> 2"]  # fmt: skip
    rec.record(decision(2, 2, "signal backlog stale: Timeout"), None)  # another kind: said
    rec.record(decision(2, 2, "signal backlog stale: Timeout"), None)
    assert infos() == ["chat: hold 2 -> 2: signal backlog stale: Timeout"]
    rec.record(decision(2, 3, "queue-depth: backlog 30 -> 3"),
               ActionResult("chat", "r1", 3, True))  # fmt: skip
    rec.record(decision(3, 3, "queue-depth: backlog 30 -> 3"), None)
    assert len(infos()) == 2, "a scale, then the first hold after it"
    rec.record(decision(3, 3, "queue-depth: backlog 30 -> 3"), None)
    assert infos() == []
    now[0] += 301
    rec.record(decision(3, 3, "queue-depth: backlog 30 -> 3"), None)
    assert infos() == ["chat: hold 3 -> 3: queue-depth: backlog 30 -> 3"], "heartbeat"


def test_quiet_holds_are_still_there_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    rec = LogRecorder()
    caplog.set_level(logging.DEBUG, logger="autoscaler")
    for _ in range(3):
        rec.record(decision(1, 1, "queue-depth: backlog 5 -> 1"), None)
    assert [r.levelno for r in caplog.records] == [logging.INFO, logging.DEBUG, logging.DEBUG]
