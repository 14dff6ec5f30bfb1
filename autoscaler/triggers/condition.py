"""Whether a trigger fires now: its condition's breach with hysteresis, how long the breach
has been held (`for`), whether a run is still going and the cooldown after the last one.

Pure: no clock (time arrives as `now`), no I/O; its memory is the plain `ConditionMemory`
value passed in and returned. A stale or missing reading never fires and never clears a
breach: an outage of the metric must not start (or cancel) a retraining.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

from autoscaler.config.triggers import TriggerCondition

State = Literal["ok", "stale", "pending", "running", "cooldown", "firing"]


@dataclass(frozen=True)
class ConditionMemory:
    """When the current breach began (seconds since the epoch); None while not breached."""

    breached_since: float | None = None


@dataclass(frozen=True)
class Verdict:
    """What a trigger's condition says now, with every number that explains it."""

    trigger: str
    state: State
    value: float | None
    direction: str
    threshold: float
    clear: float
    held_seconds: float
    for_seconds: float
    cooldown_left_seconds: float
    reason: str

    @property
    def fire(self) -> bool:
        return self.state == "firing"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "fire": self.fire}


def breached(condition: TriggerCondition, value: float, was_breached: bool) -> bool:
    """Whether `value` breaches: it enters past the threshold and leaves only past `clear`."""
    if condition.direction == "below":
        return value < condition.clear_at if was_breached else value < condition.threshold
    return value > condition.clear_at if was_breached else value > condition.threshold


def assess(
    name: str,
    condition: TriggerCondition,
    memory: ConditionMemory,
    value: float | None,
    now: float,
    *,
    cooldown: float,
    last_run_ended: float | None,
    running: bool,
    stale_why: str = "",
) -> tuple[Verdict, ConditionMemory]:
    """The verdict for one reading (`value` None: stale, with `stale_why`) and the memory
    for the next. `cooldown` seconds after `last_run_ended`; `running`: a run is going."""
    usable = value is not None and math.isfinite(value)
    since = memory.breached_since
    if usable:
        assert value is not None
        if breached(condition, value, since is not None):
            since = since if since is not None else now
        else:
            since = None
    held = now - since if since is not None else 0.0
    left = max(0.0, last_run_ended + cooldown - now) if last_run_ended is not None else 0.0
    state, reason = _state(condition, value if usable else None, held, since, left, running,
                           stale_why)  # fmt: skip
    verdict = Verdict(
        trigger=name,
        state=state,
        value=value if usable else None,
        direction=condition.direction,
        threshold=condition.threshold,
        clear=condition.clear_at,
        held_seconds=held,
        for_seconds=condition.hold,
        cooldown_left_seconds=left,
        reason=reason,
    )
    return verdict, ConditionMemory(since)


def _state(
    condition: TriggerCondition,
    value: float | None,
    held: float,
    since: float | None,
    cooldown_left: float,
    running: bool,
    stale_why: str,
) -> tuple[State, str]:
    sign = "<" if condition.direction == "below" else ">"
    if value is None:
        return "stale", f"no usable reading ({stale_why or 'missing'}): never fires on it"
    compared = f"value {value:g} {sign} {condition.threshold:g}"
    if since is None:
        back = "at or above" if condition.direction == "below" else "at or below"
        return "ok", f"value {value:g} not breaching ({back} {condition.threshold:g})"
    if held < condition.hold:
        return "pending", f"{compared} for {held:.0f}s of the {condition.hold:g}s `for`"
    if running:
        return "running", f"{compared} for {held:.0f}s; a run is in progress"
    if cooldown_left > 0:
        return "cooldown", f"{compared} for {held:.0f}s; cooldown {cooldown_left:.0f}s left"
    return "firing", f"{compared} for {held:.0f}s (>= {condition.hold:g}s `for`)"
