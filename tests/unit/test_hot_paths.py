"""The shortcuts taken for bench/decide.py (10,000 pools a tick) keep the old behaviour.

Each test pins one place where the fast code differs in form from the plain one: histories
kept as the JSON lists they are stored as, reasons formatted in parts, ties broken without
max(); and the values that cross the tick's seams stay frozen and compare by value.
"""

from __future__ import annotations

import dataclasses
import json

import pytest
from pydantic import TypeAdapter

from autoscaler.planner import PlanSpec, PoolMemory, plan
from autoscaler.scaling import HPA_SCALE_DOWN, HPA_SCALE_UP, ScalingRules, prune, stabilize
from autoscaler.types import Decision, Observation, Reading, Recommendation
from policies import AnyPolicyConfig
from policies.hpa_behavior import HpaBehavior, _recent

build = TypeAdapter(AnyPolicyConfig).validate_python


def obs(now: float = 0.0, current: int = 4, **signals: float) -> Observation:
    return Observation("p", now, current, current, signals, max_replicas=100)


# --- hpa/keda histories, read from memory as stored --------------------------------------
def test_history_entries_not_written_as_float_int_lists_are_converted_as_before():
    # An int time (a caller's `now`), a tuple, strings from a hand-edited state file.
    got = _recent([[0, 3], (15.0, 4), ["30", "5"], [45.0, 6.0]], cutoff=-1.0)
    assert got == [[0.0, 3], [15.0, 4], [30.0, 5], [45.0, 6]]
    assert [(type(t), type(n)) for t, n in got] == [(float, int)] * 4
    assert all(type(entry) is list for entry in got)


def test_history_entries_already_float_int_lists_are_kept_as_they_are():
    stored = [[10.0, 3], [20.0, 4]]
    got = _recent(stored, cutoff=0.0)
    assert got == stored and got is not stored
    assert got[0] is stored[0]  # shared with the old memory, never changed in place


@pytest.mark.parametrize(
    "history",
    [
        [],
        [[5.0, 1], [10.0, 2], [20.0, 3]],  # oldest expired: pruned
        [[20.0, 1], [5.0, 2], [30.0, 3]],  # oldest recent: prune keeps everything
        [[5.0, 1], [30.0, 2], [6.0, 3]],  # not in time order
        [[10.0, 1]],  # exactly at the cutoff: dropped
    ],
)
def test_history_pruning_matches_scaling_prune(history):
    as_tuples = tuple((float(t), int(n)) for t, n in history)
    expected = [list(e) for e in prune(as_tuples, now=15.0, keep_seconds=5.0)]
    assert _recent(history, cutoff=10.0) == expected


def test_stabilize_reads_json_lists_as_it_reads_tuples():
    pairs = [[0.0, 9], [100.0, 2], [250.0, 7]]
    as_tuples = tuple((t, n) for t, n in pairs)
    for window in (0.0, 60.0, 200.0, 300.0):
        assert stabilize(5, 4, pairs, 260.0, window, 300.0) == stabilize(
            5, 4, as_tuples, 260.0, window, 300.0
        )


def test_hpa_memory_survives_a_json_round_trip_unchanged():
    behavior = HpaBehavior(HPA_SCALE_UP, HPA_SCALE_DOWN)
    memory: dict = {}
    current = 4
    for step, proposal in enumerate([9, 3, 3, 12, 2, 5]):
        now = step * 15  # int times, as tests and simple callers pass them
        desired, _, recs, events = behavior.normalize(memory, current, proposal, 1, 50, now)
        memory = {"recs": recs, "events": events}
        reloaded = json.loads(json.dumps(memory))
        again = behavior.normalize(reloaded, current, proposal, 1, 50, now + 15)
        same = behavior.normalize(memory, current, proposal, 1, 50, now + 15)
        assert json.dumps(again[2:]) == json.dumps(same[2:]) and again[:2] == same[:2]
        current = desired


def test_a_new_hpa_seeds_its_window_with_the_current_count_unconverted():
    behavior = HpaBehavior(HPA_SCALE_UP, HPA_SCALE_DOWN)
    *_, recs, _ = behavior.normalize({}, 6, 2, 1, 50, 100)
    assert recs == [[100, 6], [100, 2]] and type(recs[0][0]) is int
    no_window = HpaBehavior(ScalingRules(), ScalingRules())
    *_, recs, _ = no_window.normalize({}, 6, 2, 1, 50, 100)
    assert recs == [[100, 2]]


# --- ties and reasons --------------------------------------------------------------------
def test_composite_ties_go_to_the_first_child():
    config = {
        "type": "composite",
        "policies": [
            {"type": "queue-depth", "target_per_replica": 10},
            {"type": "queue-depth", "target_per_replica": 10, "signal": "other"},
        ],
    }
    rec = build(config).build().recommend(obs(queue=35, other=35), {})
    assert rec.reason.startswith("composite: queue-depth wins (queue-depth: backlog 35 ")
    assert rec.reason.endswith("; others: queue-depth 4")


def test_queueing_names_the_first_of_equal_needs():
    # No load: the wait and utilization needs are both 0 slots; in-flight work sets 3.
    config = {"type": "queueing", "service_seconds": 1.0, "slots_per_replica": 4, "wait_slo": 1.0}
    policy = build(config).build()
    rec = policy.recommend(obs(queue=0.0, in_flight=3.0, arrival_rate=0.0), {})
    assert rec.reason.endswith("-> 3 slots for 3 in flight / 4 per replica -> 1")
    rec = policy.recommend(obs(queue=0.0, in_flight=0.0, arrival_rate=0.0, now=1), {})
    assert rec.desired == 0
    rec = policy.recommend(obs(queue=0.5, in_flight=0.0, arrival_rate=0.0), {})
    assert "1 slots for draining backlog 0.5 in 1s" in rec.reason


# --- values that cross the seams -------------------------------------------------------------
def test_values_compare_and_hash_by_value():
    a = Decision("p", 1.0, 2, 3, 3, "why")
    b = Decision("p", 1.0, 2, 3, 3, "why")
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    assert Recommendation(3, "r") == Recommendation(3, "r", {})
    assert obs(queue=1.0) == obs(queue=1.0)
    assert Reading(1.0, 2.0) == Reading(1.0, 2.0, None)


@pytest.mark.parametrize(
    "value",
    [Reading(1.0, 2.0), obs(queue=1.0), Recommendation(3, "r"), Decision("p", 1.0, 2, 3, 3, "")],
    ids=["Reading", "Observation", "Recommendation", "Decision"],
)
def test_values_that_cross_a_seam_cannot_be_changed_after_they_are_made(value):
    name = dataclasses.fields(value)[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(value, name, None)


def test_planner_without_history_decides_as_stabilize_would():
    spec = PlanSpec(0, 10, ScalingRules(), ScalingRules(), scale_to_zero_after_seconds=0)
    for current in range(0, 6):
        for desired in range(0, 6):
            decision, memory = plan(
                "p", spec, Recommendation(desired, "r"), current, 0.0, PoolMemory()
            )
            assert decision.desired == stabilize(current, desired, (), 0.0, 0.0, 0.0)
            assert memory.recommendations == ()
