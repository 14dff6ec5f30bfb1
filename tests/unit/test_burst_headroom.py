"""Burst headroom (policies/burst_headroom.py) and its use in the `queueing` policy.

Scripted rates at explicit times: the record learns the growth over one startup it is
shown, ignores growth from no traffic, stays bounded, and the policy plans for the learned
quantile only when it is more than the forecast, saying so in its reason.
"""

from __future__ import annotations

import json
import math

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter

from autoscaler.types import Observation
from policies import AnyPolicyConfig
from policies import burst_headroom as bh

build = TypeAdapter(AnyPolicyConfig).validate_python
H = 120.0
Q = {
    "type": "queueing",
    "service_seconds": 2.0,
    "slots_per_replica": 8,
    "wait_slo": 1.0,
    "level_smoothing": 1.0,
    "trend_smoothing": 86_400,  # (almost) no trend: only the headroom looks ahead
}


def feed(levels: list[float], step: float = 15.0, state=None, t0: float = 0.0):
    for i, level in enumerate(levels):
        state = bh.observe(state, t0 + i * step, level, H)
    return state


def test_samples_follow_the_pools_time_not_the_tick():
    every_second = feed([1.0] * 600, step=1.0)
    every_15s = feed([1.0] * 40, step=15.0)
    # one sample per H/8 = 15 s either way; the ring holds one and a half horizons
    assert len(every_second["ring"]) == len(every_15s["ring"]) == bh.RING
    assert every_second["weight"] == every_15s["weight"]


def test_a_doubling_within_each_startup_is_learned_as_a_doubling():
    # the level doubles every H (a sawtooth from 1 to 2 and back, period 2H): half of the
    # horizons grow x2, the other half fall
    period = 16
    levels = [1.0 * 2 ** (min(i % period, period - i % period) / 8) for i in range(400)]
    state = feed(levels)
    assert state["weight"] > bh.MIN_WEIGHT
    assert 1.8 <= bh.growth(state, 0.95) <= 2.2
    assert bh.growth(state, 0.3) == 1.0  # the falling half


def test_too_few_horizons_give_no_headroom():
    state = feed([1.0, 2.0, 4.0, 8.0] * 3)
    assert state["weight"] < bh.MIN_WEIGHT
    assert bh.growth(state, 0.9) == 1.0


def test_growth_from_no_traffic_is_left_to_the_keep_alive():
    levels = ([0.0] * 16 + [5.0] * 16) * 10
    state = feed(levels)
    # only horizons starting at 5/s count (steady, no growth)
    assert bh.growth(state, 0.99) == 1.0
    assert state["bins"][0] == state["weight"]


def test_the_record_stays_bounded_and_halves():
    state = feed([1.0 + (i % 9) for i in range(20_000)])
    assert state["weight"] <= bh.MAX_WEIGHT
    assert len(state["ring"]) <= bh.RING
    assert len(json.dumps(state)) < 4_000


def test_a_state_given_in_is_never_changed_in_place():
    state = feed([1.0, 2.0] * 40)
    frozen = json.dumps(state)
    feed([3.0] * 40, state=state, t0=40 * 15.0)
    assert json.dumps(state) == frozen


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(min_value=0, max_value=1e4, allow_nan=False), min_size=1, max_size=300),
    st.floats(min_value=0.01, max_value=0.999),
)
def test_any_history_gives_a_finite_growth_within_the_bins(levels, q):
    state = feed(levels)
    g = bh.growth(state, q)
    assert math.isfinite(g) and 1.0 <= g <= bh.HIGH * 1.0001
    json.dumps(state)  # plain JSON values only


def run(policy: dict, rates: list[float], step: float = 15.0):
    decider = build(policy).build()
    memory: dict = {}
    out = []
    for i, rate in enumerate(rates):
        signals = {"queue": 0.0, "in_flight": 0.0, "arrival_rate": rate}
        o = Observation("p", i * step, 1, 1, signals, startup_seconds=H)
        rec = decider.recommend(o, memory)
        memory = rec.memory
        out.append(rec)
    return out, memory


BURSTY = [2.0 if (i // 8) % 2 == 0 else 8.0 for i in range(200)]


def test_the_policy_plans_for_the_learned_growth_and_says_so():
    plain, _ = run(Q, BURSTY)
    headroom, memory = run({**Q, "burst_quantile": 0.9}, BURSTY)
    # at the low phase the forecast sees 2/s; the headroom plans for the x4 seen before
    low = [i for i in range(150, 200) if BURSTY[i] == 2.0 and BURSTY[i - 1] == 2.0]
    assert low
    for i in low:
        assert headroom[i].desired > plain[i].desired
        assert "burst headroom x" in headroom[i].reason
        assert "q0.9 of growth over 120s" in headroom[i].reason
        assert "burst headroom" not in plain[i].reason
    assert "growth" in memory and "growth" not in run(Q, BURSTY)[1]


def test_steady_traffic_gets_no_headroom():
    steady, _ = run({**Q, "burst_quantile": 0.9}, [4.0] * 200)
    plain, _ = run(Q, [4.0] * 200)
    assert [r.desired for r in steady] == [r.desired for r in plain]
    assert not any("burst headroom" in r.reason for r in steady)


def test_a_missing_signal_keeps_the_learned_growth():
    _, memory = run({**Q, "burst_quantile": 0.9}, BURSTY)
    decider = build({**Q, "burst_quantile": 0.9}).build()
    o = Observation("p", 10_000.0, 3, 3, {"queue": 0.0}, startup_seconds=H)
    rec = decider.recommend(o, memory)
    assert rec.hold and rec.memory["growth"] == memory["growth"]


def test_burst_quantile_is_bounded():
    import pytest
    from pydantic import ValidationError

    for bad in (0, 1, 1.5, -0.1):
        with pytest.raises(ValidationError):
            build({**Q, "burst_quantile": bad})
