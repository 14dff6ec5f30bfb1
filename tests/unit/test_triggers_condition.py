"""The trigger condition with a fake clock: `for`, hysteresis, cooldown, runs in progress
and stale readings (autoscaler/triggers/condition.py)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from autoscaler.clock import FakeClock
from autoscaler.config.triggers import TriggerCondition
from autoscaler.triggers.condition import ConditionMemory, Verdict, assess

STATIC = {"type": "static", "value": 0}


def quality(**kw: object) -> TriggerCondition:
    return TriggerCondition.model_validate({"source": STATIC, "below": 0.9, "for": "10m", **kw})


class Trigger:
    """A condition driven through time: feed it values, read its verdicts."""

    def __init__(self, condition: TriggerCondition, cooldown: float = 3600.0) -> None:
        self.condition = condition
        self.cooldown = cooldown
        self.clock = FakeClock(1_000_000.0)
        self.memory = ConditionMemory()
        self.last_end: float | None = None
        self.running = False

    def see(self, value: float | None, after: float = 60.0) -> Verdict:
        self.clock.advance(after)
        verdict, self.memory = assess(
            "quality",
            self.condition,
            self.memory,
            value,
            self.clock.now(),
            cooldown=self.cooldown,
            last_run_ended=self.last_end,
            running=self.running,
            stale_why="timeout",
        )
        return verdict


def test_fires_only_after_the_breach_is_held_for_the_whole_for():
    t = Trigger(quality())
    first = t.see(0.8)
    assert first.state == "pending" and first.held_seconds == 0
    states = [t.see(0.8).state for _ in range(9)]  # 9 more minutes: held 540 s
    assert set(states) == {"pending"}
    fired = t.see(0.8)
    assert fired.fire and fired.held_seconds == 600
    assert "0.8 < 0.9" in fired.reason


def test_a_recovery_before_for_resets_the_timer():
    t = Trigger(quality())
    for _ in range(5):
        t.see(0.8)
    assert t.see(0.95).state == "ok"
    assert t.see(0.8).held_seconds == 0


def test_hysteresis_keeps_the_breach_until_the_value_crosses_clear():
    t = Trigger(quality(clear=0.93))
    t.see(0.8)
    between = t.see(0.91)  # above the threshold, below clear: still breached
    assert between.state == "pending" and between.held_seconds == 60
    t.see(0.92)
    assert t.see(0.93).state == "ok"  # at clear: the breach ends
    assert t.memory.breached_since is None
    # and it starts again only below the threshold, not below clear
    assert t.see(0.92).state == "ok"


def test_above_conditions_breach_upwards_with_their_own_clear():
    t = Trigger(
        TriggerCondition.model_validate({"source": STATIC, "above": 1000, "clear": 100, "for": 0})
    )
    assert t.see(999).state == "ok"
    assert t.see(1001).fire
    assert t.see(500).state != "ok"  # still above clear
    assert t.see(100).state == "ok"


def test_a_run_in_progress_and_the_cooldown_hold_a_held_breach():
    t = Trigger(quality(**{"for": 0}), cooldown=1800)
    assert t.see(0.5).fire
    t.running = True
    running = t.see(0.5)
    assert running.state == "running" and not running.fire
    t.running, t.last_end = False, t.clock.now()
    cooling = t.see(0.5, after=600)
    assert cooling.state == "cooldown" and cooling.cooldown_left_seconds == 1200
    assert "cooldown 1200s left" in cooling.reason
    assert t.see(0.5, after=1200).fire  # a breach that lasts through the cooldown fires again


def test_a_stale_reading_neither_fires_nor_clears():
    t = Trigger(quality())
    t.see(0.8)
    for _ in range(12):
        stale = t.see(None)
        assert stale.state == "stale" and not stale.fire
        assert "timeout" in stale.reason
    assert t.memory.breached_since is not None  # an outage does not end the breach
    assert t.see(0.8).fire  # the first fresh breaching reading after `for` fires


def test_non_finite_values_are_stale():
    t = Trigger(quality(**{"for": 0}))
    assert t.see(float("nan")).state == "stale"


@pytest.mark.parametrize(
    ("fields", "where"),
    [
        ({"below": 0.9, "above": 0.1}, "exactly one of `below` and `above`"),
        ({}, "exactly one of `below` and `above`"),
        ({"below": 0.9, "clear": 0.8}, "must be >= below"),
        ({"above": 5, "clear": 6}, "must be <= above"),
        ({"below": 0.9, "for": "forever"}, "for"),
    ],
)
def test_bad_conditions_say_what_to_fix(fields, where):
    with pytest.raises(ValidationError) as err:
        TriggerCondition.model_validate({"source": STATIC, **fields})
    assert where in str(err.value)


def test_for_accepts_durations():
    assert quality().hold == 600.0
