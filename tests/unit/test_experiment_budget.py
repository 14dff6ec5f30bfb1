"""An experiment's lifetime GPU-hour budget (`budget.gpu_hours_total`): counted across days,
kept through a restart, and, once spent, no new capacity starts while nothing is scaled
down (a `job` pool then drains as its Jobs finish)."""

from __future__ import annotations

import json

import pytest

from autoscaler.budgets import DAY, Spend, limits_for
from autoscaler.clock import FakeClock
from autoscaler.config.budget import Budget
from autoscaler.controller import Controller
from autoscaler.providers import SimulatedProvider
from autoscaler.state_schema import validate_state
from autoscaler.types import Reading

from .conftest import config_from

EXPERIMENT = """installation: {id: test}
controller: {interval: 15s, observe_deadline: 1s, source_timeout: 0.5s}
pools:
  - name: sweep
    gpus_per_replica: 2
    budget: {gpu_hours_total: 10}
    target: {kind: simulated}
    max: 8
    signals:
      queue: {source: {type: static, value: 0}}
    policy: {type: queue-depth, target_per_replica: 1}
    behavior: {scale_down: {stabilization_window: 0}, scale_to_zero_after: 0}
"""


class Trials:
    def __init__(self, value: float) -> None:
        self.value = value

    def read(self, requests, now):  # type: ignore[no-untyped-def]
        return {r.key: Reading(self.value, now) for r in requests}


def controller(clock: FakeClock, trials: Trials) -> tuple[Controller, SimulatedProvider]:
    provider = SimulatedProvider(clock)
    ctl = Controller(config_from(EXPERIMENT), {"simulated": provider}, {"static": trials}, clock)
    return ctl, provider


def test_the_lifetime_count_carries_over_midnight_where_the_daily_one_restarts() -> None:
    spend = Spend(day=0, gpu_hours=0.0, at=DAY - 1800.0, replicas=2)
    after = spend.advance(DAY + 1800.0, gpus=1)  # one hour, half of it on the next day
    assert after.gpu_hours == pytest.approx(1.0)  # today's half: 2 replicas x 0.5 h
    assert after.gpu_hours_total == pytest.approx(2.0)
    assert Spend.from_dict(json.loads(json.dumps(after.to_dict()))) == after


def test_a_spent_lifetime_budget_allows_no_growth_and_names_itself() -> None:
    budget = Budget(gpu_hours_total=10)
    (limit,) = limits_for(budget, frozenset({"sweep"}), "pool sweep", 0.0, 0.0, 10.0)
    assert limit.amount == 0
    assert limit.label == "pool sweep 10 GPU-hours total (0.0 left)"
    (half,) = limits_for(budget, frozenset({"sweep"}), "pool sweep", 0.0, 0.0, 4.0)
    assert half.amount == pytest.approx(6.0)  # 6 GPU-hours left: 6 GPUs for the next hour


def test_a_budget_needs_something_to_cap() -> None:
    with pytest.raises(ValueError, match="gpu_hours_total"):
        Budget()


def test_an_experiment_stops_growing_when_its_budget_is_spent_even_after_a_restart() -> None:
    clock, trials = FakeClock(DAY * 100), Trials(8.0)
    ctl, provider = controller(clock, trials)
    first = ctl.tick().decisions[0]
    assert first.desired == 5  # 5 x 2 GPUs for the next hour spend the 10 GPU-hours
    clock.advance(3600)  # ... which they did
    second = ctl.tick().decisions[0]
    assert second.desired == 5  # spent: no growth, and nothing is scaled down for it
    assert "10 GPU-hours total (0.0 left) reached -> 5" in second.reason
    memory = json.loads(json.dumps(ctl.snapshot()))
    validate_state(memory, clock.now())
    assert memory["sweep"]["budget"]["gpu_hours_total"] == pytest.approx(10.0)

    clock.advance(DAY)  # a new day: a daily budget would start over; this one does not
    fresh, _ = controller(clock, trials)
    assert fresh.tick().decisions[0].desired == 5  # what forgetting the count would do
    again, provider = controller(clock, trials)
    again.restore(memory)
    provider.preset(again.config.pool("sweep"), 0)  # the experiment's Jobs have finished
    later = again.tick().decisions[0]
    assert later.desired == 0
    assert "budget: pool sweep 10 GPU-hours total (0.0 left) reached -> 0" in later.reason
