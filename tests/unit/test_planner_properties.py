"""Properties of the planner over generated configurations and signal histories."""

from __future__ import annotations

import json
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
    from autoscaler.scaling import prune, stabilize

    now = 1000.0
    recs = tuple(sorted((t, n) for t, n in history))
    spec = PlanSpec(0, 100, ScalingRules(up), ScalingRules(down), 0.0, 0.0)
    memory = PoolMemory(recommendations=recs, started_at=-1e9, started_with=current)
    decision, after = plan("p", spec, Recommendation(proposal, "r"), current, now, memory)
    kept = prune(recs, now, spec.keep_recommendations_seconds) if recs else recs
    assert decision.desired == stabilize(current, proposal, kept, now, up, down)
    remembered = tuple(map(tuple, after.recommendations))
    if spec.keep_recommendations_seconds == 0:
        assert remembered == ()
    else:
        # A compacted subset of what prune() keeps plus this proposal, ending with it...
        assert remembered[-1] == (now, proposal)
        assert set(remembered) <= {*map(tuple, kept), (now, proposal)}
        # ...in which every entry is above every later one or below every later one.
        for i, (_, value) in enumerate(remembered[:-1]):
            later = [v for _, v in remembered[i + 1 :]]
            assert value > max(later) or value < min(later)


@settings(max_examples=200, deadline=None)
@given(
    proposals=st.lists(st.integers(0, 30), min_size=1, max_size=120),
    steps=st.lists(st.sampled_from([0.5, 1.0, 7.0, 29.0, 61.0]), min_size=1, max_size=120),
    up=st.sampled_from([0.0, 15.0, 30.0]),
    down=st.sampled_from([0.0, 20.0, 60.0, 300.0]),
    restart_at=st.integers(0, 120),
)
def test_the_compacted_history_decides_what_the_whole_history_would(
    proposals, steps, up, down, restart_at
):
    """Run a pool's recommendations through the planner and, beside it, through prune() and
    stabilize() on every recommendation ever made: every decision must be the same, also
    after the memory goes through JSON (a restart) part way."""
    from autoscaler.scaling import prune, stabilize

    spec = PlanSpec(0, 100, ScalingRules(up), ScalingRules(down), 0.0, 0.0)
    memory = PoolMemory(started_at=-1e9)
    whole: tuple[tuple[float, int], ...] = ()
    now, current = 0.0, 5
    for i, proposal in enumerate(proposals):
        now += steps[i % len(steps)]
        if i == restart_at:
            memory = PoolMemory.from_dict(json.loads(json.dumps(memory.to_dict())))
        decision, memory = plan("p", spec, Recommendation(proposal, "r"), current, now, memory)
        expected = stabilize(current, proposal, whole, now, up, down)
        assert decision.desired == expected, (i, whole, memory.recommendations)
        whole = prune((*whole, (now, proposal)), now, max(up, down))
        current = decision.desired
        assert len(memory.recommendations) <= len(whole) + 1
