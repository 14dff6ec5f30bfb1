"""The learned keep-alive (policies/idle_gaps.py) and its use in the `queueing` policy.

Scripted pools with explicit times: the model learns the gaps it is shown (exact bin
counts), stays bounded, survives a restart through its JSON memory, and decides keep-alive,
let-go, pre-warm and fallback for the reasons it names.
"""

from __future__ import annotations

import itertools
import json
import math
import random
from collections.abc import Callable

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from autoscaler.cli import cli
from autoscaler.config import Pool
from autoscaler.explain import explain
from autoscaler.planner import PlanSpec, PoolMemory, after_action, plan
from autoscaler.types import Observation
from policies import AnyPolicyConfig, idle_gaps, keep_alive
from policies.idle_gaps import BINS, EDGES, MAX_WEIGHT, bin_of, observe
from policies.keep_alive import KeepAlive

build = TypeAdapter(AnyPolicyConfig).validate_python
DAY = 86_400.0
STARTUP = 120.0
KEEP = {"replica_cost_per_hour": 4.0}
Q = {
    "type": "queueing",
    "service_seconds": 2.0,
    "slots_per_replica": 8,
    "wait_slo": 1.0,
    "keep_alive": KEEP,
}
PREFIXES = ("keep-alive: ", "pre-warm: ", "let go: ", "fallback keep-alive ")


class Served:
    """A pool whose replicas follow its policy's answer at once (no planner)."""

    def __init__(self, policy: dict | None = None, startup: float = STARTUP) -> None:
        self.policy = build(policy or Q).build()
        self.startup = startup
        self.memory: dict = {}
        self.current = 1
        self.log: list[tuple[float, float, int, int, str]] = []

    def at(self, now: float, rate: float) -> tuple[int, str]:
        signals = {"queue": 0.0, "in_flight": 0.0, "arrival_rate": rate}
        o = Observation("p", now, self.current, self.current, signals, startup_seconds=self.startup)
        rec = self.policy.recommend(o, self.memory)
        self.memory = rec.memory
        self.log.append((now, rate, self.current, rec.desired, rec.reason))
        self.current = rec.desired
        return rec.desired, rec.reason

    def run(self, rate: Callable[[float], float], times) -> None:
        for t in times:
            self.at(float(t), rate(t))

    def keep_alive_part(self, reason: str) -> str:
        return reason.split("; ", 1)[1] if "; " in reason else reason


def ticks(start: float, end: float, step: float = 15.0):
    n = int((end - start) // step)
    return [start + i * step for i in range(n + 1)]


# --- the histogram --------------------------------------------------------------------
def test_bins_are_geometric_from_15s_to_a_day():
    assert len(EDGES) == BINS + 1 == 41
    assert EDGES[0] == 15.0 and EDGES[-1] == 86_400.0
    assert all(1.24 < b / a < 1.25 for a, b in itertools.pairwise(EDGES))
    assert [bin_of(g) for g in (0, 10, 15, 20, 30, 45, 100, 600, 85_800)] == [
        0, 0, 0, 1, 3, 5, 8, 17, 39,
    ]  # fmt: skip
    assert bin_of(86_400) == bin_of(10**9) == BINS  # the overflow


def script(events: list[tuple[float, bool]], rate: float = 1.0) -> dict:
    state: dict | None = None
    last = None
    for now, work in events:
        dt = 0.0 if last is None else now - last
        state = dict(observe(state, now, work, rate if work else 0.0, dt, STARTUP))
        last = now
    assert state is not None
    return state


def test_the_model_learns_the_gaps_it_is_shown_exactly():
    state = script([
        (0, False),  # an idle period seen from its middle: not a gap
        (100, True),
        (115, False), (145, True),  # 30 s
        (160, False), (760, True),  # 600 s
        (775, False), (1375, True),  # 600 s
        (1390, False), (1390 + 90_000, True),  # over a day
        (1390 + 90_015, True),
    ])  # fmt: skip
    expected = [0] * BINS
    expected[3], expected[17] = 1, 2
    assert state["bins"] == expected
    assert state["overflow"] == 1 and state["gaps"] == 4
    assert state["sums"][17] == 1200.0 and state["squares"][17] == 2 * 600.0**2
    assert state["sums"][3] == 30.0
    assert state["since"] is None  # busy now
    json.dumps(state)  # plain JSON values


def test_work_stopping_starts_an_idle_period_and_its_return_ends_it():
    state = script([(0, True), (15, True), (30, False), (45, False)])
    assert state["since"] == 30 and state["whole"] and state["gaps"] == 0
    state = script([(0, True), (30, False), (45, False), (90, True)])
    assert state["since"] is None and state["gaps"] == 1 and state["bins"][bin_of(60)] == 1


def test_the_model_stays_bounded_after_100000_gaps():
    state: dict | None = None
    rng = random.Random(3)
    now = 0.0
    for _ in range(100_000):
        state = dict(observe(state, now, True, 1.0, 15.0, STARTUP))
        now += 15.0
        state = dict(observe(state, now, False, 0.0, 15.0, STARTUP))
        now += math.exp(rng.uniform(math.log(15), math.log(200_000)))
    state = dict(observe(state, now, True, 1.0, 15.0, STARTUP))
    assert state["gaps"] == 100_000
    assert sum(state["bins"]) + state["overflow"] <= MAX_WEIGHT
    assert len(state["bins"]) == BINS and len(state["hours"]) == 24
    assert len(json.dumps(state)) < 4_000


def test_a_memory_given_in_is_never_changed_in_place():
    state = script([(0, True), (15, False), (600, True), (615, False)])
    frozen = json.dumps(state)
    for now, work in ((700, True), (715, False), (2000, True), (DAY * 3, False)):
        observe(state, now, work, 1.0, 15.0, STARTUP)
    assert json.dumps(state) == frozen


def test_burst_requests_are_learned_from_the_first_startup_of_each_burst():
    pool = Served()
    pool.run(lambda t: 2.0 if t % 1200 < 300 else 0.0, ticks(0, 1200 * 10))
    learned = idle_gaps.burst_requests(pool.memory["idle"])
    assert learned == pytest.approx(2.0 * (STARTUP + 15), rel=0.01)  # 2/s over a startup
    assert idle_gaps.burst_requests({"requests": None}) == 1.0  # at least one


# --- decisions ------------------------------------------------------------------------
def regular(t: float) -> float:
    """Every 10 minutes: a minute of work, a 45 s pause, another minute, then idle."""
    p = t % 600
    return 1.0 if p < 60 or 105 <= p < 165 else 0.0


def test_regular_gaps_keep_warm_through_short_ones_and_prewarm_before_the_next_burst():
    pool = Served()
    pool.run(regular, ticks(0, 600 * 30 - 15))
    pool.log.clear()
    pool.run(regular, ticks(600 * 30, 600 * 31))
    by_time = {t - 600 * 30: (cur, desired, reason) for t, _, cur, desired, reason in pool.log}
    # the 45 s pause inside a burst: kept warm
    for t in (60, 75, 90):
        assert by_time[t][1] == 1 and "keep-alive: idle" in by_time[t][2]
    # past the pause, the next work is minutes away: let go at once
    assert by_time[225][1] == 0 and "let go: idle 60s" in by_time[225][2]
    # pre-warmed one startup (and a tick) ahead of the burst at 600 s, not earlier
    first = min(t for t in by_time if t > 225 and by_time[t][1] == 1)
    assert "pre-warm: idle" in by_time[first][2] and "startup 120s" in by_time[first][2]
    assert 600 - STARTUP - 60 <= first <= 600 - STARTUP
    assert all(by_time[t][1] == 1 for t in by_time if first <= t < 600)
    assert by_time[600][0] == 1  # the burst finds a replica up
    assert idle_gaps.representative(pool.memory["idle"], 8)


def long_random_gaps(seed: int = 7, n: int = 30) -> tuple[list[tuple[float, float]], Served]:
    rng = random.Random(seed)
    bursts, t = [], 0.0
    for _ in range(n):
        bursts.append((t, t + 60))
        t += 60 + math.exp(rng.uniform(math.log(3600), math.log(14_400)))
    pool = Served()
    for a, b in bursts:  # only the calls that matter: the burst, then idle for a while
        pool.run(lambda _: 0.2, ticks(a, b - 15))
        pool.run(lambda _: 0.0, ticks(b, b + 600))
    return bursts, pool


def test_long_random_gaps_let_go_at_once():
    _, pool = long_random_gaps()
    assert idle_gaps.representative(pool.memory["idle"], 8)
    last_burst = [row for row in pool.log[-41:]]
    idle = [row for row in last_burst if row[1] == 0.0]
    assert idle[0][3] == 0 and "let go: idle 0s, P(work within 135s) 0%" in idle[0][4]
    assert all(row[3] == 0 for row in idle)  # long before the 300 s fallback


def test_not_representative_falls_back_to_the_fixed_keep_alive():
    pool = Served()
    for a in (0, 700, 1400):  # three gaps only
        pool.run(lambda _: 1.0, ticks(a, a + 45))
        pool.run(lambda _: 0.0, ticks(a + 60, a + 60 + 600))
    pool.log.clear()
    pool.run(lambda _: 1.0, ticks(2100, 2145))
    pool.run(lambda _: 0.0, ticks(2160, 2160 + 600))
    idle = [row for row in pool.log if row[1] == 0.0]
    kept = [row for row in idle if row[3] == 1]
    assert len(kept) == 300 / 15  # idle 0 .. 285 s
    assert all("fallback keep-alive 300s (3 gaps, not representative)" in r[4] for r in kept)
    gone = idle[len(kept)]
    assert gone[3] == 0 and gone[4].endswith(
        "let go: fallback keep-alive 300s (3 gaps, not representative): idle 300s -> 0"
    )
    assert all(row[3] == 0 for row in idle[len(kept) :])


def test_spread_gaps_are_not_representative_however_many():
    rng = random.Random(1)
    state: dict | None = None
    now = 0.0
    for _ in range(200):
        state = dict(observe(state, now, True, 1.0, 15.0, STARTUP))
        now += 15
        state = dict(observe(state, now, False, 0.0, 15.0, STARTUP))
        now += math.exp(rng.uniform(math.log(15), math.log(80_000)))  # over the whole range
    assert state is not None and idle_gaps.coefficient_of_variation(state["bins"]) < 2
    assert not idle_gaps.representative(state, 8)
    decider = KeepAlive(**KEEP).build()
    since = state["since"]  # idle since the last gap began
    desired, reason = keep_alive.decide(decider, state, since + 10, 1, STARTUP, 15.0)
    assert (desired, reason) == (
        1, "fallback keep-alive 300s (199 gaps, not representative): idle 10s -> 1"
    )  # fmt: skip


def test_a_fallback_can_be_configured():
    pool = Served({**Q, "keep_alive": {**KEEP, "fallback": "1m"}})
    pool.run(lambda _: 1.0, ticks(0, 30))
    pool.run(lambda _: 0.0, ticks(45, 300))
    kept = [row for row in pool.log if row[1] == 0.0 and row[3] == 1]
    assert len(kept) == 4 and "fallback keep-alive 60s (0 gaps" in kept[0][4]


def daily(extra: dict[float, float]) -> Callable[[float], float]:
    def rate(t: float) -> float:
        p = t % DAY
        if 9 * 3600 <= p < 9 * 3600 + 600:
            return 1.0
        for start, length in extra.items():
            if start <= t < start + length:
                return 0.5
        return 0.0

    return rate


def daily_run(extra: dict[float, float], config: dict | None = None) -> Served:
    pool = Served(config)
    rate = daily(extra)
    pool.run(rate, ticks(0, 11 * DAY - 60, 60.0))  # ten days a minute apart
    pool.log.clear()
    pool.run(rate, ticks(11 * DAY, 11 * DAY + 9.5 * 3600))  # the eleventh, 15 s apart
    return pool


def first_up(pool: Served, after: float) -> tuple[float, str]:
    return next((t % DAY, r) for t, _, cur, d, r in pool.log if t >= after and cur == 0 and d == 1)


def test_a_daily_0900_burst_is_prewarmed_at_0858():
    # Other work at random times of the day: the gaps alone are not representative.
    rng = random.Random(1)
    extra = {}
    for d in range(12):
        for _ in range(rng.randint(0, 3)):
            extra[d * DAY + rng.uniform(11 * 3600, 20 * 3600)] = rng.uniform(60, 900)
    pool = daily_run(extra)
    assert not idle_gaps.representative(pool.memory["idle"], 8)
    at, reason = first_up(pool, 11 * DAY + 6 * 3600)
    assert 8 * 3600 + 57 * 60 + 45 <= at <= 8 * 3600 + 58 * 60  # 08:57:45 .. 08:58
    assert "pre-warm: daily burst at 09:00 UTC" in reason and "startup 120s" in reason
    hours = idle_gaps.summary(pool.memory["idle"], 8)["top_hours"]
    assert hours[0]["hour"] == 9 and hours[0]["share"] == 1.0


def test_a_daily_burst_alone_is_prewarmed_from_its_gaps_too():
    pool = daily_run({})
    assert idle_gaps.representative(pool.memory["idle"], 8)
    at, reason = first_up(pool, 11 * DAY + 6 * 3600)
    assert 9 * 3600 - STARTUP - 60 <= at <= 9 * 3600 - STARTUP
    assert reason.split("; ", 1)[1].startswith("pre-warm: idle")


def test_prewarm_and_daily_can_be_turned_off():
    pool = daily_run({}, {**Q, "keep_alive": {**KEEP, "prewarm": False}})
    assert all(d == 0 for t, rate, cur, d, r in pool.log if rate == 0 and cur == 0)
    rng = random.Random(1)
    extra = {d * DAY + rng.uniform(11 * 3600, 20 * 3600): 300.0 for d in range(12)}
    pool = daily_run(extra, {**Q, "keep_alive": {**KEEP, "daily": False}})
    assert not any("daily" in r for *_, r in pool.log)


def test_a_prewarm_is_not_worth_a_cheap_miss():
    # A replica costs more over one startup than the miss it would avoid: never warm.
    cheap = {**Q, "keep_alive": {**KEEP, "replica_cost_per_hour": 100.0, "slo_miss_cost": 0.001}}
    pool = Served(cheap)
    pool.run(regular, ticks(0, 600 * 20))
    idle = [row for row in pool.log[-40:] if row[1] == 0.0]
    assert all(row[3] == 0 and "let go: idle" in row[4] for row in idle)


def test_every_idle_answer_names_what_drove_it():
    for pool in (daily_run({}), long_random_gaps()[1]):
        for _, rate, _, _, reason in pool.log:
            if rate == 0:
                assert reason.startswith("queueing: nothing waiting, running or arriving; ")
                assert pool.keep_alive_part(reason).startswith(PREFIXES), reason


# --- memory: JSON, restarts, holds ----------------------------------------------------
def test_memory_round_trips_through_json_and_a_restarted_policy_decides_the_same():
    pool = Served()
    pool.run(regular, ticks(0, 600 * 20 - 15))
    stored = json.loads(json.dumps(pool.memory))
    assert stored == pool.memory
    restarted = Served()
    restarted.memory, restarted.current = stored, pool.current
    pool.run(regular, ticks(600 * 20, 600 * 22))
    restarted.run(regular, ticks(600 * 20, 600 * 22))
    after_restart = pool.log[-len(restarted.log) :]
    assert [row[2:] for row in restarted.log] == [row[2:] for row in after_restart]


def test_a_missing_signal_holds_and_keeps_the_learned_gaps():
    pool = Served()
    pool.run(regular, ticks(0, 600 * 10))
    idle = pool.memory["idle"]
    o = Observation("p", 6015.0, 1, 1, {"queue": 0.0, "in_flight": 0.0}, startup_seconds=STARTUP)
    rec = pool.policy.recommend(o, pool.memory)
    assert rec.hold and rec.memory == {"idle": idle}
    plain = build({k: v for k, v in Q.items() if k != "keep_alive"}).build()
    assert plain.recommend(o, pool.memory).memory == {}  # as before, without a keep-alive


def test_a_memory_from_elsewhere_starts_a_fresh_model():
    pool = Served()
    pool.memory = {"idle": {"bins": [1, 2, 3]}}
    desired, reason = pool.at(0.0, 0.0)
    assert desired == 1 and "fallback keep-alive 300s (0 gaps" in reason


# --- properties -----------------------------------------------------------------------
steps = st.lists(
    st.tuples(st.floats(1.0, 200_000.0), st.booleans(), st.floats(0.0, 50.0)), max_size=60
)


@settings(max_examples=60, deadline=None)
@given(steps, st.integers(0, 3), st.floats(0.0, 600.0))
def test_any_history_gives_a_bounded_json_model_and_a_0_or_1_answer(history, current, startup):
    state = None
    now = 1_000.0
    recorded = 0
    decider = KeepAlive(**KEEP).build()
    for dt, work, rate in history:
        now += dt
        was_idle = state is not None and state["since"] is not None and state["whole"]
        state = observe(state, now, work, rate, dt, startup)
        recorded += bool(was_idle and work)
        assert len(state["bins"]) == BINS and len(state["hours"]) == 24
        if not work:
            desired, reason = keep_alive.decide(decider, state, now, current, startup, dt)
            assert desired in (0, 1) and reason.startswith(PREFIXES)
    if state is not None:
        assert state["gaps"] == recorded
        assert sum(state["bins"]) + state["overflow"] == recorded  # under MAX_WEIGHT
        assert json.loads(json.dumps(state)) == state


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(1.0, 100_000.0), min_size=1, max_size=30), st.floats(0, 90_000))
def test_the_conditional_gap_distribution_is_a_distribution(gaps, tau):
    state: dict | None = None
    now = 0.0
    for gap in gaps:
        state = dict(observe(state, now, True, 1.0, 15.0, STARTUP))
        now += 15.0
        state = dict(observe(state, now, False, 0.0, 15.0, STARTUP))
        now += gap
    assert state is not None
    window = 135.0
    alive, p, held = idle_gaps.conditional(state, tau, window, 15.0)
    assert alive >= 0 and 0.0 <= p <= 1.0 + 1e-9 and 0.0 <= held <= window + 1e-9
    # the fast path (only bins near tau worked out) against the plain sums over supports
    parts = idle_gaps.supports(state, 15.0, window)
    ref_alive = idle_gaps._survival(parts, state["overflow"], tau)
    ref_left = idle_gaps._survival(parts, state["overflow"], tau + window)
    ref_area = state["overflow"] * window + sum(
        c * (idle_gaps._area(a, b, tau + window) - idle_gaps._area(a, b, tau)) for c, a, b in parts
        if b > tau
    )  # fmt: skip
    assert alive == pytest.approx(ref_alive, abs=1e-9)
    if ref_alive > 0:
        assert p == pytest.approx(1 - ref_left / ref_alive, abs=1e-9)
        assert held == pytest.approx(ref_area / ref_alive, rel=1e-9, abs=1e-9)
    q10, q90 = idle_gaps.quantile(state, 0.1), idle_gaps.quantile(state, 0.9)
    assert q10 <= q90


# --- configuration, planner and explain -----------------------------------------------
def test_keep_alive_needs_a_positive_replica_cost():
    with pytest.raises(ValidationError):
        build({**Q, "keep_alive": {}})
    with pytest.raises(ValidationError):
        build({**Q, "keep_alive": {"replica_cost_per_hour": 0}})
    config = build({**Q, "keep_alive": {"replica_cost_per_hour": 0.805}})
    assert config.keep_alive == KeepAlive(
        replica_cost_per_hour=0.805, slo_miss_cost=0.05, fallback=300.0, prewarm=True,
        daily=True, min_gaps=8,
    )  # fmt: skip


def sim_pool(**extra) -> Pool:
    return Pool.model_validate(
        {"name": "p", "target": {"kind": "simulated"}, "max": 8, "policy": Q, **extra}
    )


def test_with_the_planner_a_let_go_goes_to_zero_at_once_and_a_prewarm_comes_up():
    pool = sim_pool(startup=STARTUP)
    spec = PlanSpec.from_pool(pool)
    assert spec.scale_to_zero_after_seconds == 0 and spec.policy_keep_alive
    assert spec.down.stabilization_seconds == 300  # still smooths the other steps
    policy = pool.policy.build()
    memory, current, seen = PoolMemory(), 1, []
    for t in ticks(0, 600 * 25):
        signals = {"queue": 0.0, "in_flight": 0.0, "arrival_rate": regular(t) * 8}
        o = Observation("p", t, current, current, signals, startup_seconds=STARTUP)
        rec = policy.recommend(o, memory.policy)
        decision, memory = plan("p", spec, rec, current, t, memory)
        if decision.desired != current:
            memory = after_action(memory, t, current, decision.desired)
        if t >= 600 * 24:
            seen.append((t - 600 * 24, current, decision.desired, decision.reason))
        current = decision.desired
    down = next(row for row in seen if row[0] > 165 and row[2] == 0)
    assert down[0] == 225 and "let go" in down[3]  # not 300 s later
    up = next(row for row in seen if row[0] > 225 and row[2] == 1)
    assert 600 - STARTUP - 60 <= up[0] <= 600 - STARTUP and "pre-warm" in up[3]


def write_state(tmp_path, pool: Pool, policy_memory: dict, at: float) -> str:
    path = tmp_path / "state.json"
    memory = PoolMemory(policy=policy_memory, recommendations=((at, 1),))
    path.write_text(json.dumps({pool.name: memory.to_dict()}))
    return str(path)


def test_explain_shows_the_learned_gaps_from_a_state_file(tmp_path):
    served = Served()
    served.run(regular, ticks(0, 600 * 20 - 15))
    config = tmp_path / "pools.yaml"
    config.write_text(
        "installation: {id: test}\n"
        "pools:\n  - name: llm\n    target: {kind: simulated}\n    max: 4\n    startup: 2m\n"
        "    policy:\n      type: queueing\n      service_seconds: 2\n      slots_per_replica: 8\n"
        "      wait_slo: 1s\n      keep_alive: {replica_cost_per_hour: 4}\n"
    )
    pool = Pool.model_validate(
        {"name": "llm", "target": {"kind": "simulated"}, "max": 4, "startup": 120, "policy": Q}
    )
    state = write_state(tmp_path, pool, served.memory, 600 * 20 - 15)
    args = ["explain", str(config), "--replicas", "1", "--signal", "queue=0",
            "--signal", "in_flight=0", "--signal", "arrival_rate=0", "--state", state]  # fmt: skip
    result = CliRunner().invoke(cli, [*args, "-o", "json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    (learned,) = data["keep_alive"]
    assert learned["policy"] == "policy" and data["from_state"]
    gaps = learned["learned"]
    assert gaps["gaps"] == 39 and gaps["representative"]
    assert 40 <= gaps["p10"] <= 50 and gaps["p90"] >= 400
    assert data["decision"]["at"] == 600 * 20 - 15
    text = CliRunner().invoke(cli, args, catch_exceptions=False).output
    assert "keep-alive (policy): 39 gaps seen, p10" in text and "representative" in text
    plain = CliRunner().invoke(cli, args[:-2], catch_exceptions=False).output
    assert "nothing learned yet (give --state FILE)" in plain


def test_explain_without_a_keep_alive_shows_no_gaps():
    pool = Pool.model_validate(
        {"name": "p", "target": {"kind": "simulated"}, "max": 4,
         "policy": {k: v for k, v in Q.items() if k != "keep_alive"}}
    )  # fmt: skip
    result = explain(pool, {"queue": 0, "in_flight": 0, "arrival_rate": 0}, 1, None)
    assert result.keep_alive == [] and not result.from_state


def test_explain_finds_a_keep_alive_inside_a_composite():
    depth = {"type": "queue-depth", "target_per_replica": 4}
    composite = {"type": "composite", "policies": [depth, Q]}
    pool = Pool.model_validate(
        {"name": "p", "target": {"kind": "simulated"}, "max": 4, "policy": composite}
    )
    served = Served()
    served.run(regular, ticks(0, 600 * 3))
    memory = PoolMemory(policy={"children": [{}, served.memory]})
    signals = {"queue": 0, "in_flight": 0, "arrival_rate": 0}
    result = explain(pool, signals, 1, None, memory=memory)
    (entry,) = result.keep_alive
    assert entry["policy"] == "policy.policies[1]" and entry["learned"]["gaps"] == 6


def test_a_replica_is_kept_when_a_prewarm_would_be_due_within_a_startup():
    # Gaps of 45 s and of 240 s alternate: past the short pause, the long gap's end is two
    # minutes off. Letting go and pre-warming a few ticks later would pay a startup twice.
    events: list[tuple[float, bool]] = []
    t = 0.0
    for _ in range(20):
        events += [(t, True), (t + 15, False), (t + 60, True), (t + 75, False)]
        t += 75 + 240
    state = script(events)
    decider = KeepAlive(**KEEP).build()
    since = state["since"]
    desired, reason = keep_alive.decide(decider, state, since + 90, 1, STARTUP, 15.0)
    assert desired == 1 and "but a pre-warm is due in" in reason and reason.startswith("keep-alive")
    # at zero, the same moment is a plain wait: nothing is up to keep
    desired, reason = keep_alive.decide(decider, state, since + 75, 0, STARTUP, 15.0)
    assert desired == 0 and reason.startswith("let go: idle 75s, P(work within 135s) 0%")


# --- burst-sized warm capacity ----------------------------------------------------------
class Demanding(Served):
    """A Served pool whose bursts also queue: `demand(t)` slots wanted at time t."""

    def __init__(self, demand: Callable[[float], float], **kw) -> None:
        super().__init__(**kw)
        self.demand = demand

    def at(self, now: float, rate: float) -> tuple[int, str]:
        wanted = self.demand(now) if rate > 0 else 0.0
        signals = {"queue": max(0.0, wanted - 8), "in_flight": min(wanted, 8.0),
                   "arrival_rate": rate}  # fmt: skip
        o = Observation("p", now, self.current, self.current, signals, startup_seconds=self.startup)
        rec = self.policy.recommend(o, self.memory)
        self.memory = rec.memory
        self.log.append((now, rate, self.current, rec.desired, rec.reason))
        self.current = rec.desired
        return rec.desired, rec.reason


def test_a_burst_that_needs_five_replicas_is_prewarmed_with_five():
    # every 10 minutes a burst wanting 40 slots at once (8 a replica): 5 replicas
    pool = Demanding(lambda t: 40.0, policy={**Q, "keep_alive": {**KEEP, "slo_miss_cost": 5}})
    pool.run(regular, ticks(0, 600 * 30 - 15))
    assert idle_gaps.burst_replicas(pool.memory["idle"], 8) == 5
    assert idle_gaps.summary(pool.memory["idle"], 8)["burst_peak_slots"] == 40.0
    pool.log.clear()
    pool.run(regular, ticks(600 * 30, 600 * 31))
    prewarms = [(t, d, r) for t, _, _, d, r in pool.log if r and "pre-warm: idle" in r]
    assert prewarms and all(d == 5 and "burst peak 40 slots" in r for _, d, r in prewarms)


def test_a_burst_peak_not_worth_its_replicas_prewarms_one():
    # the same bursts, but a miss priced so that five warm replicas cost more than it saves
    pool = Demanding(lambda t: 40.0, policy={**Q, "keep_alive": {**KEEP, "slo_miss_cost": 0.012}})
    pool.run(regular, ticks(0, 600 * 31))
    prewarms = [(d, r) for _, _, _, d, r in pool.log if r and "pre-warm: idle" in r]
    assert prewarms and all(d == 1 and "burst peak" not in r for d, r in prewarms)


def test_a_model_stored_before_burst_peaks_still_loads_and_decides():
    pool = Served()
    pool.run(regular, ticks(0, 600 * 10))
    old = {k: v for k, v in pool.memory["idle"].items() if k not in ("burst_peak", "peak")}
    idle_gaps.StoredModel.model_validate(old)
    assert idle_gaps.burst_replicas(old, 8) == 1
    pool.memory = {**pool.memory, "idle": old}
    pool.run(regular, ticks(600 * 10 + 15, 600 * 12))  # no KeyError, decides as before
