"""Properties of the planner over generated configurations and signal histories."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from autoscaler.planner import PlanSpec, PoolMemory, after_action, plan
from autoscaler.scaling import RatePolicy, ScalingRules
from autoscaler.types import Recommendation

durations = st.sampled_from([0.0, 1.0, 15.0, 60.0, 300.0])


@st.composite
def rules(draw):
    policies = draw(st.lists(
        st.builds(RatePolicy, st.sampled_from(["pods", "percent"]),
                  st.floats(1, 200), st.sampled_from([1.0, 15.0, 60.0])),
        max_size=2))
    return ScalingRules(draw(durations), tuple(policies),
                        draw(st.sampled_from(["max", "min", "disabled"])))


@st.composite
def specs(draw):
    lo = draw(st.integers(0, 5))
    hi = draw(st.integers(max(lo, 1), 50))
    fallback = draw(st.one_of(st.none(), st.integers(lo, hi)))
    return PlanSpec(
        lo, hi, draw(rules()), draw(rules()), draw(durations), draw(durations),
        None if fallback is None else draw(durations), fallback,
    )


step = st.tuples(
    st.floats(0.1, 120),                          # time since the previous tick
    st.integers(-5, 10_000),                      # recommendation (even nonsense)
    st.booleans(),                                # stale?
    st.booleans(),                                # policy hold?
    st.one_of(st.none(), st.sampled_from(["Throttled", "InsufficientInstanceCapacity"])),
)


@settings(max_examples=300, deadline=None)
@given(specs(), st.integers(0, 60), st.lists(step, min_size=1, max_size=40))
def test_the_planner_stays_in_bounds_never_scales_down_on_stale_and_never_raises(
    spec, start, steps
):
    current, now, memory = start, 0.0, PoolMemory()
    for dt, recommended, stale, hold, failure in steps:
        now += dt
        stale_map = {"queue": "timeout"} if stale else None
        decision, memory = plan("p", spec, Recommendation(recommended, "r", hold=hold),
                                current, now, memory, stale_map)
        assert spec.min <= decision.desired <= spec.max
        if stale or hold:
            assert decision.desired >= min(current, spec.max)
        assert decision.reason
        if decision.desired != current:
            memory = after_action(memory, now, current, decision.desired, failure)
            if failure is None:
                current = decision.desired


@settings(max_examples=200, deadline=None)
@given(specs(), st.integers(0, 60),
       st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=1, max_size=20))
def test_any_sequence_of_readings_gives_an_in_bounds_decision(spec, start, values):
    """Non-finite or negative values never reach a policy: the controller marks them
    stale; here the planner sees them as stale and must hold."""
    memory, current = PoolMemory(), start
    for i, value in enumerate(values):
        usable = math.isfinite(value) and value >= 0
        rec = Recommendation(int(min(value, 1e6)) if usable else current, "r")
        decision, memory = plan("p", spec, rec, current, float(i), memory,
                                None if usable else {"queue": "non-finite"})
        assert spec.min <= decision.desired <= spec.max
        if not usable:
            assert decision.desired >= min(current, spec.max)
        current = decision.desired


@settings(max_examples=300, deadline=None)
@given(
    history=st.lists(
        # often exactly on a window's edge (now - 30, 60 or 300 s) or a second either side
        st.tuples(
            st.one_of(
                st.sampled_from([1000.0 - w + d for w in (30, 60, 300) for d in (-1, 0, 1)]),
                st.integers(0, 1000).map(float),
            ),
            st.integers(0, 50),
        ),
        max_size=30,
    ),
    current=st.integers(0, 50),
    proposal=st.integers(0, 50),
    up=st.sampled_from([0.0, 30.0, 60.0]),
    down=st.sampled_from([0.0, 60.0, 300.0]),
)
def test_the_planners_one_pass_window_is_prune_then_stabilize(
    history, current, proposal, up, down
):
    """The planner folds scaling.prune and scaling.stabilize into one loop for speed; it
    must decide and remember exactly what the two functions would."""
    from autoscaler.planner import _remember
    from autoscaler.scaling import prune, stabilize

    now = 1000.0
    recs = tuple(sorted((t, n) for t, n in history))
    spec = PlanSpec(0, 100, ScalingRules(up), ScalingRules(down), 0.0, 0.0)
    memory = PoolMemory(recommendations=recs, started_at=-1e9, started_with=current)
    decision, after = plan("p", spec, Recommendation(proposal, "r"), current, now, memory)
    kept = prune(recs, now, spec.keep_recommendations_seconds) if recs else recs
    assert decision.desired == stabilize(current, proposal, kept, now, up, down)
    expected = _remember(kept, now, proposal) if spec.keep_recommendations_seconds > 0 else ()
    assert tuple(map(tuple, after.recommendations)) == tuple(map(tuple, expected))
