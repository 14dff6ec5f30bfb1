"""Budgets and priorities: the allocator (pure), the spend it counts, the config, and the
controller capping a burst at a shared budget."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autoscaler.budgets import DAY, Claim, Limit, Spend, allocate, limits_for
from autoscaler.clock import FakeClock
from autoscaler.config import ConfigError
from autoscaler.config.budget import Budget, replica_gpus, replica_price
from autoscaler.controller import Controller
from autoscaler.explain import explain
from autoscaler.providers import SimulatedProvider
from autoscaler.record import ListRecorder
from autoscaler.state_schema import validate_state
from autoscaler.telemetry import REGISTRY, reason_class
from autoscaler.types import Reading

from .conftest import config_from

INSTALLATION = Limit("installation $40/h", "dollars", 40.0)


# --- the allocator -----------------------------------------------------------------------
def test_a_burst_stops_at_the_budget_higher_priority_first() -> None:
    claims = [
        Claim("batch", current=2, desired=10, priority=0, price=4.0),
        Claim("serving", current=2, desired=6, priority=10, price=4.0),
    ]
    grants = allocate(claims, [INSTALLATION])
    # in use: 4 x $4 = $16; $24 left: serving takes 4 more ($16), batch the last 2 ($8)
    assert grants["serving"].desired == 6 and grants["serving"].capped_by is None
    assert grants["batch"].desired == 4
    assert grants["batch"].why == "budget: installation $40/h reached"


def test_lower_priority_holds_once_a_higher_one_is_capped_even_if_cheaper_fits() -> None:
    claims = [
        Claim("big", current=0, desired=3, priority=5, price=15.0),
        Claim("small", current=0, desired=5, priority=0, price=1.0),
    ]
    grants = allocate(claims, [INSTALLATION])
    assert grants["big"].desired == 2  # $30; a third would be $45
    assert grants["small"].desired == 0
    assert "held for priority 5 pools" in grants["small"].why


def test_equal_priorities_share_one_replica_each_in_turn() -> None:
    claims = [Claim(n, 0, 10, 0, 4.0) for n in ("a", "b", "c")]
    grants = allocate(claims, [INSTALLATION])  # 10 replicas fit
    assert sorted(g.desired for g in grants.values()) == [3, 3, 4]
    assert grants["a"].desired == 4  # the name breaks the tie


def test_a_budget_never_scales_down_and_a_scale_down_frees_room() -> None:
    claims = [
        Claim("over", current=20, desired=25, price=4.0),  # $80 in use, over $40
        Claim("shrinking", current=5, desired=2, price=4.0),
    ]
    grants = allocate(claims, [INSTALLATION])
    assert grants["over"].desired == 20 and grants["over"].capped_by == INSTALLATION.label
    assert grants["shrinking"].desired == 2


def test_a_pools_own_budget_caps_only_it() -> None:
    own = Limit("pool a $8/h", "dollars", 8.0, frozenset({"a"}))
    claims = [Claim("a", 0, 5, 10, 4.0), Claim("b", 0, 5, 0, 4.0)]
    grants = allocate(claims, [INSTALLATION, own])
    assert grants["a"].desired == 2 and grants["a"].why == "budget: pool a $8/h reached"
    assert grants["b"].desired == 5  # $8 + $20 within $40: pool a's own cap closes nothing


def test_unknown_price_holds_under_a_dollar_budget_and_free_replicas_are_never_capped() -> None:
    claims = [Claim("unknown", 1, 3, 0, None), Claim("free", 0, 100, 0, 0.0)]
    grants = allocate(claims, [INSTALLATION])
    assert grants["unknown"].desired == 1
    assert "cost_per_hour is unknown" in grants["unknown"].why
    assert grants["free"].desired == 100


def test_a_pool_of_unknown_price_holds_without_holding_up_lower_priorities() -> None:
    claims = [Claim("unknown", 0, 3, 10, None), Claim("known", 0, 3, 0, 4.0)]
    grants = allocate(claims, [INSTALLATION])
    assert (grants["unknown"].desired, grants["known"].desired) == (0, 3)


def test_pools_not_decided_this_tick_count_at_what_they_have() -> None:
    grants = allocate([Claim("a", 0, 10, 0, 4.0)], [INSTALLATION], {INSTALLATION.label: 32.0})
    assert grants["a"].desired == 2


claim_lists = st.lists(
    st.builds(
        Claim,
        pool=st.sampled_from("abcdef"),
        current=st.integers(0, 30),
        desired=st.integers(0, 60),
        priority=st.integers(-2, 2),
        price=st.floats(0.1, 20.0),
        gpus=st.integers(1, 8),
    ),
    min_size=1,
    max_size=6,
    unique_by=lambda c: c.pool,
)


@settings(max_examples=200, deadline=None)
@given(claim_lists, st.floats(0.0, 400.0), st.floats(0.0, 200.0), st.floats(0.0, 100.0))
def test_allocation_properties(
    claims: list[Claim], dollars: float, gpus: float, own: float
) -> None:
    limits = [
        Limit("d", "dollars", dollars),
        Limit("g", "gpus", gpus),
        Limit("own", "dollars", own, frozenset({"a"})),
    ]
    grants = allocate(claims, limits)
    assert set(grants) == {c.pool for c in claims}
    for c in claims:  # never scales down for a budget, never grants more than planned
        assert min(c.current, c.desired) <= grants[c.pool].desired <= c.desired
        if grants[c.pool].desired < c.desired:
            assert grants[c.pool].capped_by in {lim.label for lim in limits}
    if any(g.capped_by for g in grants.values()):
        for lim in limits:  # what was granted above what ran fits in each limit's room
            cost = "price" if lim.resource == "dollars" else "gpus"
            mine = [c for c in claims if lim.covers(c.pool)]
            base = sum(min(c.current, c.desired) * getattr(c, cost) for c in mine)
            grown = sum(
                (grants[c.pool].desired - min(c.current, c.desired)) * getattr(c, cost)
                for c in mine
            )
            assert grown <= max(0.0, lim.amount - base) + 1e-6
    for capped in (c for c in claims if grants[c.pool].capped_by in ("d", "g")):
        for other in claims:  # a shared budget: no lower priority grew past a capped one
            if other.priority < capped.priority:
                grew = grants[other.pool].desired > other.current
                assert not grew, f"{other.pool} grew while higher-priority {capped.pool} was capped"


# --- spend --------------------------------------------------------------------------------
def test_gpu_hours_integrate_over_ticks_and_a_new_utc_day_starts_from_zero() -> None:
    s = Spend(day=0, gpu_hours=0.0, at=DAY - 1800.0, replicas=2)
    s = s.advance(DAY - 900.0, gpus=4)  # 2 x 4 GPUs for 15 minutes
    assert s.gpu_hours == pytest.approx(2.0)
    s = s.advance(DAY + 900.0, gpus=4)  # only the 15 minutes after midnight count today
    assert (s.day, s.gpu_hours) == (1, pytest.approx(2.0))
    assert Spend.from_dict(json.loads(json.dumps(s.to_dict()))) == s


def test_gpu_hours_left_today_become_a_rate_over_the_next_hour() -> None:
    budget = Budget(gpu_hours_per_day=100)
    (limit,) = limits_for(budget, None, "installation", 76.0, now=3600.0)
    assert limit.amount == pytest.approx(24.0)  # 24 GPU-hours left: 24 GPUs for an hour
    assert limit.label == "installation 100 GPU-hours/day (24.0 left today)"
    (late,) = limits_for(budget, None, "installation", 76.0, now=DAY - 1800.0)
    assert late.amount == pytest.approx(48.0)  # half an hour to midnight


# --- config --------------------------------------------------------------------------------
BUDGETED = """installation:
  id: test
  budget: {dollars_per_hour: 40}
controller: {interval: 15s, observe_deadline: 1s, source_timeout: 0.5s}
pools:
  - name: serving
    priority: 10
    cost_per_hour: 4
    target: {kind: simulated}
    max: 20
    signals:
      queue: {source: {type: static, value: 0}}
    policy: {type: queue-depth, target_per_replica: 10}
    behavior: {scale_down: {stabilization_window: 0}, scale_to_zero_after: 0}
  - name: batch
    cost_per_hour: 4
    target: {kind: simulated}
    max: 20
    signals:
      queue: {source: {type: static, value: 0}}
    policy: {type: queue-depth, target_per_replica: 10}
    behavior: {scale_down: {stabilization_window: 0}, scale_to_zero_after: 0}
"""


def test_prices_and_gpus_come_from_the_pool_the_catalog_or_the_simulation() -> None:
    config = config_from(
        """installation: {id: t}
pools:
  - name: ec2
    target: {kind: ec2, image_id: ami-12345678, instance_types: [g5.xlarge, g5.12xlarge]}
    max: 2
    policy: {type: queue-depth, target_per_replica: 1, signal: q}
    signals: {q: {source: {type: static, value: 0}}}
    budget: {dollars_per_hour: 20, gpu_hours_per_day: 50}
"""
    )
    pool = config.pools[0]
    assert replica_price(pool) == pytest.approx(5.672) and replica_gpus(pool) == 4
    assert config.pools[0].priority == 0


@pytest.mark.parametrize(
    "lines, where",
    [
        (["budget: {}"], "budget"),
        (["budget: {dollars_per_hour: 10}"], "budget.dollars_per_hour"),
        (["budget: {gpu_hours_per_day: 10}"], "budget.gpu_hours_per_day"),
        (["cost_per_hour: 1", "budget: {dollars_per_hour: .inf}"], "budget.dollars_per_hour"),
        (["gpus_per_replica: 1", "budget: {gpu_hours_per_day: 1e9}"], "budget.gpu_hours_per_day"),
        (["priority: true"], "priority"),
        (["priority: 1e12"], "priority"),
        (["cost_per_hour: -1"], "cost_per_hour"),
        (["gpus_per_replica: 65"], "gpus_per_replica"),
    ],
)
def test_bad_budgets_are_refused_naming_the_field(lines: list[str], where: str) -> None:
    text = """installation: {id: t}
pools:
  - name: p
    target: {kind: deployment, name: d}
    max: 2
    policy: {type: queue-depth, target_per_replica: 1, signal: q}
    signals: {q: {source: {type: static, value: 0}}}
"""
    text += "".join(f"    {line}\n" for line in lines)
    with pytest.raises(ConfigError) as err:
        config_from(text)
    assert any(where in issue.path for issue in err.value.issues), err.value.issues


def test_an_installation_budget_is_checked_too() -> None:
    with pytest.raises(ConfigError) as err:
        config_from(BUDGETED.replace("dollars_per_hour: 40", "dollars_per_hour: -40"))
    assert any("installation.budget" in issue.path for issue in err.value.issues)


# --- the controller -------------------------------------------------------------------------
class Static:
    def __init__(self) -> None:
        self.values: dict[tuple[str, str], float] = {}

    def read(self, requests, now):
        return {r.key: Reading(self.values.get(r.key, 0.0), now) for r in requests}


def _controller(text: str = BUDGETED) -> tuple[Controller, SimulatedProvider, Static, ListRecorder]:
    clock = FakeClock(DAY * 100 + 3600.0)
    provider, source, recorder = SimulatedProvider(clock), Static(), ListRecorder()
    config = config_from(text)
    ctl = Controller(config, {"simulated": provider}, {"static": source}, clock, recorder)
    return ctl, provider, source, recorder


def test_a_burst_on_two_pools_gets_the_budget_high_priority_first() -> None:
    ctl, provider, source, recorder = _controller()
    source.values = {("serving", "queue"): 60, ("batch", "queue"): 200}  # 6 + 20 replicas
    result = ctl.tick()
    by_pool = {d.pool: d for d in result.decisions}
    assert by_pool["serving"].desired == 6  # $24
    assert by_pool["batch"].desired == 4  # the $16 left
    assert by_pool["batch"].reason.endswith("; budget: installation $40/h reached -> 4")
    assert "budget" not in by_pool["serving"].reason
    assert reason_class(by_pool["batch"].reason) == "budget"
    scaled = {a.pool: a.desired for a in result.actions}
    assert scaled == {"serving": 6, "batch": 4}
    assert REGISTRY.get_sample_value(
        "autoscaler_pool_spend_dollars_per_hour", {"pool": "batch"}
    ) == pytest.approx(16.0)
    assert REGISTRY.get_sample_value("autoscaler_spend_dollars_per_hour") == pytest.approx(40.0)


def test_serving_grows_again_and_batch_holds_when_the_budget_is_spent() -> None:
    ctl, provider, source, recorder = _controller()
    source.values = {("serving", "queue"): 20, ("batch", "queue"): 200}
    first = {d.pool: d.desired for d in ctl.tick().decisions}
    assert first == {"serving": 2, "batch": 8}
    ctl.clock.advance(15)  # type: ignore[attr-defined]
    source.values[("serving", "queue")] = 60  # serving wants 6; batch keeps its 8
    second = {d.pool: d for d in ctl.tick().decisions}
    assert second["batch"].desired == 8  # never scaled down for the budget
    assert second["serving"].desired == 2
    assert "budget: installation $40/h reached -> 2" in second["serving"].reason
    third = {d.pool: d for d in ctl.tick().decisions}  # batch wants more still
    assert third["batch"].desired == 8


def test_gpu_hours_today_survive_a_restart() -> None:
    text = BUDGETED.replace("budget: {dollars_per_hour: 40}", "budget: {gpu_hours_per_day: 10}")
    text = text.replace("cost_per_hour: 4", "gpus_per_replica: 1")
    ctl, provider, source, _ = _controller(text)
    source.values = {("serving", "queue"): 40, ("batch", "queue"): 0}
    ctl.tick()
    ctl.clock.advance(3600)  # type: ignore[attr-defined]
    ctl.tick()  # 4 GPUs for an hour
    memory = json.loads(json.dumps(ctl.snapshot()))
    validate_state(memory, ctl.clock.now())
    assert memory["serving"]["budget"]["gpu_hours"] == pytest.approx(4.0)
    again, *_ = _controller(text)
    again.restore(memory)
    assert again.budgets.spend["serving"].gpu_hours == pytest.approx(4.0)


def test_explain_shows_the_pools_own_budget() -> None:
    config = config_from(
        BUDGETED.replace("priority: 10\n", "priority: 10\n    budget: {dollars_per_hour: 12}\n")
    )
    result = explain(config.pools[0], {"queue": 100.0}, 1, None, budget=config.installation.budget)
    assert result.decision.desired == 3
    assert "budget: pool serving $12/h reached -> 3" in result.decision.reason


# --- max_nodes: higher priority pods are packed first ------------------------------------------
def test_when_max_nodes_binds_higher_priority_pods_get_the_nodes() -> None:
    from autoscaler.nodes.binpack import PodGroup, Resources, pack
    from autoscaler.nodes.catalog import GIB, resolve
    from autoscaler.nodes.pending import PendingPod, group

    g6 = resolve("g6.xlarge")
    demand = Resources(1, 1000, 4 * GIB)
    batch = PodGroup(
        "batch", Resources(4, 1000, 4 * GIB), ("ns/batch-0",), frozenset({"g6.12xlarge"})
    )
    serving = PodGroup("serving", demand, ("ns/serving-0",), frozenset({g6.name}), priority=1000)
    plan = pack([batch, serving], [g6, resolve("g6.12xlarge")], max_new=1)
    assert plan.launches() == {"g6.xlarge": 1}
    assert "max_nodes reached" in plan.unplaced["ns/batch-0"]
    # a pod's spec.priority reaches its group
    shapes = {g6.name: ({}, ())}
    groups, _ = group([PendingPod("ns/a", demand, priority=7), PendingPod("ns/b", demand)], shapes)
    assert sorted(g.priority for g in groups) == [0, 7]
