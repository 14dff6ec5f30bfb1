"""Our own policies: queue-depth, gpu-utilization, composite, queueing (table-driven)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter

from autoscaler.types import Observation
from policies import AnyPolicyConfig
from policies.erlang import servers_for_wait, wait_exceeds_probability

from .conftest import obs

build = TypeAdapter(AnyPolicyConfig).validate_python


def recommend(config: dict, observation: Observation, memory: dict | None = None):
    return build(config).build().recommend(observation, memory or {})


QD = {"type": "queue-depth", "target_per_replica": 10, "activation": 5}


@pytest.mark.parametrize(
    ("queue", "current", "desired"),
    [(0, 0, 0), (5, 0, 0), (6, 0, 1), (120, 4, 12), (121, 4, 13), (3, 4, 0), (10, 1, 1)],
)
def test_queue_depth_sizes_by_backlog_and_activation(queue, current, desired):
    assert recommend(QD, obs(current=current, queue=queue)).desired == desired


def test_queue_depth_counts_work_in_flight_so_running_jobs_keep_a_replica():
    config = {**QD, "in_flight_signal": "running", "activation": 0}
    assert recommend(config, obs(current=2, queue=0, running=3)).desired == 1


def test_queue_depth_holds_when_its_signal_is_missing():
    rec = recommend(QD, obs(current=3))
    assert rec.hold and rec.desired == 3 and "queue missing" in rec.reason


GU = {"type": "gpu-utilization", "target": 0.7}


@pytest.mark.parametrize(
    ("util", "current", "ready", "desired"),
    [
        (0.70, 4, 4, 4),   # on target
        (0.75, 4, 4, 4),   # within the 10 % band
        (0.84, 4, 4, 5),   # 1.2 x -> ceil(4.8)
        (0.35, 4, 4, 2),   # half -> half
        (0.93, 6, 4, 6),   # two starting: 0.93 * 4 / 0.7 = 5.3 -> 6
        (0.0, 4, 4, 0),
    ],
)
def test_gpu_utilization_tracks_its_target_over_ready_replicas(util, current, ready, desired):
    rec = recommend(GU, obs(current=current, ready=ready, gpu_utilization=util))
    assert rec.desired == desired


def test_gpu_utilization_cannot_wake_a_pool_at_zero():
    assert recommend(GU, obs(current=0, gpu_utilization=0.9)).desired == 0


def test_gpu_utilization_holds_while_no_replica_is_ready():
    rec = recommend(GU, obs(current=3, ready=0, gpu_utilization=0.0))
    assert rec.hold and rec.desired == 3


COMPOSITE = {"type": "composite", "policies": [QD, GU]}


def test_composite_takes_the_largest_and_names_the_winner():
    rec = recommend(COMPOSITE, obs(current=4, queue=120, gpu_utilization=0.7))
    assert rec.desired == 12
    assert rec.reason.startswith("composite: queue-depth wins")
    assert "gpu-utilization 4" in rec.reason


def test_composite_does_not_scale_down_when_a_child_cannot_decide():
    rec = recommend(COMPOSITE, obs(current=4, ready=4, queue=0))
    assert rec.hold and rec.desired == 4


def test_composite_still_scales_up_when_a_child_cannot_decide():
    rec = recommend(COMPOSITE, obs(current=4, queue=200))
    assert rec.desired == 20


def test_composite_keeps_each_childs_memory_separately():
    config = {"type": "composite", "policies": [
        {"type": "queueing", "service_seconds": 1, "slots_per_replica": 4, "wait_slo": 1},
        QD,
    ]}
    rec = recommend(config, obs(now=10, current=1, queue=0, arrival_rate=2, in_flight=1))
    assert rec.memory["children"][0]["level"] == 2
    assert rec.memory["children"][1] == {}


# --- Erlang C ------------------------------------------------------------------------
def erlang_c_direct(c: int, a: float) -> float:
    """The textbook formula, with factorials (fine for small c)."""
    top = a**c / math.factorial(c) * c / (c - a)
    return top / (sum(a**k / math.factorial(k) for k in range(c)) + top)


@pytest.mark.parametrize(("c", "a"), [(2, 1.0), (11, 10.0), (20, 15.5), (5, 0.3)])
def test_erlang_c_matches_the_textbook_formula(c, a):
    assert wait_exceeds_probability(c, a, 0.0) == pytest.approx(erlang_c_direct(c, a), rel=1e-9)


def test_erlang_c_is_certain_wait_when_unstable():
    assert wait_exceeds_probability(10, 10.0, 1.0) == 1.0


def test_servers_for_wait_is_the_smallest_count_meeting_the_bound():
    a, t, eps = 40.0, 0.5, 0.01
    c = servers_for_wait(a, t, eps, 10_000)
    assert wait_exceeds_probability(c, a, t) <= eps
    assert wait_exceeds_probability(c - 1, a, t) > eps


@settings(max_examples=300, deadline=None)
@given(
    a=st.floats(1e-6, 2000.0),
    t=st.floats(1e-4, 20.0),
    eps=st.sampled_from([1e-6, 1e-3, 0.01, 0.05, 0.5]),
)
def test_servers_for_wait_is_minimal_against_the_direct_recursion(a, t, eps):
    # the sizing loop's quick rejection and float iteration must not change the answer
    # (the direct recursion rounds differently: a hair of tolerance at the boundary)
    c = servers_for_wait(a, t, eps, 1_000_000)
    assert c > a
    assert wait_exceeds_probability(c, a, t) <= eps * (1 + 1e-9)
    if c - 1 > a:
        assert wait_exceeds_probability(c - 1, a, t) > eps * (1 - 1e-9)


def test_servers_for_wait_returns_the_cap_when_the_load_exceeds_it():
    assert servers_for_wait(2_000.0, 0.5, 0.01, 1_000) == 1_000
    assert servers_for_wait(1e12, 100.0, 0.01, 1_000_000) == 1_000_000


def test_servers_for_wait_handles_thousands_of_servers():
    c = servers_for_wait(5000.0, 0.2, 0.01, 100_000)
    assert 5000 < c < 5300


# --- queueing ------------------------------------------------------------------------
Q = {"type": "queueing", "service_seconds": 2.0, "slots_per_replica": 8, "wait_slo": 1.0}


def queueing_obs(now=0.0, current=2, startup=0.0, **signals):
    base = {"queue": 0.0, "in_flight": 0.0, "arrival_rate": 0.0}
    base.update(signals)
    return Observation("p", now, current, current, base, startup_seconds=startup)


def test_queueing_goes_to_zero_only_when_nothing_waits_runs_or_arrives():
    assert recommend(Q, queueing_obs()).desired == 0
    assert recommend(Q, queueing_obs(in_flight=1)).desired == 1
    assert recommend(Q, queueing_obs(queue=1)).desired == 1
    assert recommend(Q, queueing_obs(arrival_rate=0.01)).desired == 1


def test_queueing_sizes_slots_with_erlang_c_for_the_slo():
    rec = recommend(Q, queueing_obs(arrival_rate=20.0))
    slots = servers_for_wait(40.0, 0.5, 0.01, 10_000)
    assert rec.desired == math.ceil(slots / 8)
    assert "P(wait>1s)" in rec.reason


def test_queueing_drains_a_backlog_within_the_drain_time():
    rec = recommend({**Q, "drain": 10}, queueing_obs(queue=400, arrival_rate=1.0))
    # 2 s x (1/s + 400 / 10 s) = 82 slots -> 11 replicas of 8
    assert rec.desired == 11
    assert "draining backlog 400" in rec.reason


def test_queueing_never_plans_fewer_slots_than_requests_in_flight():
    assert recommend(Q, queueing_obs(in_flight=64, arrival_rate=0.1)).desired == 8


def test_queueing_prefers_the_measured_service_time():
    config = {**Q, "service_time_signal": "service_seconds"}
    slow = recommend(config, queueing_obs(arrival_rate=10.0, service_seconds=8.0))
    prior = recommend(config, queueing_obs(arrival_rate=10.0))
    assert slow.desired > prior.desired


def test_queueing_looks_ahead_by_the_startup_latency_on_a_rising_rate():
    memory: dict = {}
    with_lookahead = without = None
    for step in range(30):  # the rate climbs 0.5/s every 10 s
        now, rate = step * 10.0, 1.0 + 0.05 * step * 10.0
        o = queueing_obs(now=now, arrival_rate=rate, startup=180.0)
        rec = recommend(Q, o, memory)
        memory = rec.memory
        with_lookahead = rec.desired
        without = recommend({**Q, "lookahead": 0}, o, memory).desired
    assert memory["trend"] > 0
    assert with_lookahead > without


def test_queueing_forecast_does_not_go_below_the_current_rate_when_falling():
    memory = {"level": 50.0, "trend": -1.0, "at": 0.0}
    rec = recommend(Q, queueing_obs(now=10, arrival_rate=30.0, startup=600), memory)
    assert rec.desired >= recommend(Q, queueing_obs(arrival_rate=30.0)).desired


def test_queueing_sizes_an_absurd_load_without_overflow():
    """A query that reads bytes as requests: the count is huge, the planner clamps it. The
    sizing must not overflow (a float too large for an int) on the way."""
    rec = recommend(Q, queueing_obs(arrival_rate=1e20, queue=1e19, in_flight=1e19))
    assert rec.desired >= 10**18 and not rec.hold


def test_queueing_holds_when_a_required_signal_is_missing():
    o = Observation("p", 0, 3, 3, {"queue": 1.0, "in_flight": 0.0})
    rec = recommend(Q, o)
    assert rec.hold and rec.desired == 3 and "arrival_rate" in rec.reason


PACK = {"type": "packing", "units_per_replica": 8}


@pytest.mark.parametrize(
    ("busy", "pending", "config", "desired"),
    [
        (0, 0, {}, 0),  # nothing runs or waits: zero
        (3, 0, {}, 3),  # busy nodes stay; idle ones are not counted
        (3, 1, {}, 4),  # one GPU waiting gets a node
        (3, 8, {}, 4),
        (3, 9, {}, 5),
        (2, 9, {"fill": 0.5}, 5),  # planned half full: 9 GPUs -> 3 nodes
        (2, 0, {"spare": 1}, 3),
        (0, 0, {"spare": 2}, 2),
    ],
)
def test_packing_keeps_busy_nodes_and_adds_nodes_for_waiting_gpus(busy, pending, config, desired):
    rec = recommend({**PACK, **config}, obs(current=6, busy_replicas=busy, pending_gpus=pending))
    assert rec.desired == desired and not rec.hold
    assert f"{busy} busy" in rec.reason and rec.reason.endswith(f"-> {desired}")


def test_packing_holds_when_a_signal_is_missing():
    rec = recommend(PACK, obs(current=4, pending_gpus=3))
    assert rec.hold and rec.desired == 4 and "busy_replicas missing" in rec.reason


@pytest.mark.parametrize("fields", [{"units_per_replica": 0}, {"fill": 0}, {"fill": 1.5},
                                    {"spare": -1}])
def test_packing_rejects_impossible_settings(fields):
    with pytest.raises(ValueError):
        build({**PACK, **fields})


# --- queueing with a learned keep-alive (more in test_idle_gaps.py) -----------------------
def test_queueing_without_keep_alive_remembers_only_its_forecast():
    rec = recommend(Q, queueing_obs())
    assert rec.memory == {"level": 0.0, "trend": 0.0, "at": 0.0}
    assert rec.reason == "queueing: nothing waiting, running or arriving -> 0"
    assert not build(Q).owns_keep_alive


def test_queueing_with_keep_alive_owns_it_and_keeps_its_model_next_to_the_forecast():
    config = {**Q, "keep_alive": {"replica_cost_per_hour": 0.805}}
    assert build(config).owns_keep_alive
    assert build({"type": "composite", "policies": [QD, config]}).owns_keep_alive
    assert not build({"type": "composite", "policies": [QD, Q]}).owns_keep_alive
    assert not build(QD).owns_keep_alive
    rec = recommend(config, queueing_obs(arrival_rate=20.0))
    assert set(rec.memory) == {"level", "trend", "at", "idle"}
    assert rec.desired == recommend(Q, queueing_obs(arrival_rate=20.0)).desired  # sizing as is
    # nothing to do on a first call: the fixed fallback keeps the replica
    rec = recommend(config, queueing_obs(current=1))
    assert rec.desired == 1
    assert rec.reason == (
        "queueing: nothing waiting, running or arriving; "
        "fallback keep-alive 300s (0 gaps, not representative): idle 0s -> 1"
    )
