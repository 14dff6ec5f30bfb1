"""The planner, with explicit times: bounds, windows, zero, cooldown, rate limits, stale."""

from __future__ import annotations

import json

from autoscaler.planner import PlanSpec, PoolMemory, after_action, plan
from autoscaler.scaling import RatePolicy, ScalingRules
from autoscaler.types import Recommendation

NO_WINDOWS = PlanSpec(0, 100, ScalingRules(), ScalingRules(), scale_to_zero_after_seconds=0)


class Pool:
    """Applies each decision, as a provider would, and keeps the planner's memory."""

    def __init__(self, spec: PlanSpec, current: int) -> None:
        self.spec, self.current, self.memory = spec, current, PoolMemory()
        self.reason = ""

    def at(self, now: float, desired: int, stale: dict | None = None, hold: bool = False) -> int:
        rec = Recommendation(desired, f"policy says {desired}", hold=hold)
        decision, self.memory = plan("p", self.spec, rec, self.current, now, self.memory, stale)
        self.reason = decision.reason
        if decision.desired != self.current:
            self.memory = after_action(self.memory, now, self.current, decision.desired)
            self.current = decision.desired
        return self.current


def test_bounds_clamp_the_recommendation_and_say_so():
    pool = Pool(PlanSpec(2, 8, ScalingRules(), ScalingRules()), 4)
    assert pool.at(0, 50) == 8
    assert "bounds [2, 8]" in pool.reason
    assert pool.at(1, 0) == 2


def test_a_pool_above_a_lowered_max_comes_down_to_it():
    assert Pool(PlanSpec(0, 4, ScalingRules(), ScalingRules(300)), 10).at(0, 10) == 4


def test_scale_down_follows_the_highest_recommendation_in_its_window():
    pool = Pool(PlanSpec(0, 100, ScalingRules(), ScalingRules(300)), 10)
    assert pool.at(0, 10) == 10
    assert pool.at(60, 4) == 10
    assert "stabilization window 300s keeps 10" in pool.reason
    assert pool.at(120, 6) == 10
    assert pool.at(301, 3) == 6     # t=0's 10 expired; 6 (t=120) is now the highest
    assert pool.at(421, 3) == 3


def test_scale_up_window_follows_the_lowest_recommendation():
    pool = Pool(PlanSpec(0, 100, ScalingRules(60), ScalingRules()), 2)
    assert pool.at(0, 2) == 2
    assert pool.at(10, 9) == 2
    assert pool.at(70, 9) == 9


def test_scale_to_zero_waits_for_its_delay_but_scale_down_to_one_does_not():
    pool = Pool(PlanSpec(0, 10, ScalingRules(), ScalingRules(), scale_to_zero_after_seconds=300),
                5)
    assert pool.at(0, 0) == 1
    assert "scale to zero in 300s" in pool.reason
    assert pool.at(200, 0) == 1
    assert pool.at(300, 0) == 0


def test_any_demand_resets_the_zero_delay():
    pool = Pool(PlanSpec(0, 10, ScalingRules(), ScalingRules(), scale_to_zero_after_seconds=300),
                1)
    pool.at(0, 0)
    pool.at(200, 1)
    assert pool.at(450, 0) == 1
    assert pool.at(750, 0) == 0


def test_demand_seen_while_a_signal_is_stale_resets_the_zero_delay_too():
    # at zero a pod metric has no pods to read: every tick is a stale hold, and a request
    # arriving scales up through "other signals scale up"; the replica it launched must get
    # the full delay once ready, not go at once because the countdown began before
    pool = Pool(PlanSpec(0, 10, ScalingRules(), ScalingRules(), scale_to_zero_after_seconds=300),
                1)
    pool.at(0, 0)
    assert pool.at(300, 0) == 0
    stale = {"gpu_utilization": "no value"}
    assert pool.at(400, 0, stale) == 0
    assert pool.at(1000, 1, stale) == 1
    assert "other signals scale up" in pool.reason
    assert pool.at(1120, 0) == 1  # ready, idle: the countdown starts now
    assert "scale to zero in 300s" in pool.reason
    assert pool.at(1419, 0) == 1
    assert pool.at(1420, 0) == 0


def test_a_stale_hold_without_demand_keeps_the_countdown():
    pool = Pool(PlanSpec(0, 10, ScalingRules(), ScalingRules(), scale_to_zero_after_seconds=300),
                1)
    pool.at(0, 0)
    assert pool.at(100, 0, {"gpu_utilization": "no value"}) == 1
    assert pool.at(300, 0) == 0


def test_scale_from_zero_is_immediate():
    pool = Pool(PlanSpec(0, 10, ScalingRules(60), ScalingRules(300)), 0)
    assert pool.at(0, 3) == 3


def test_cooldown_blocks_scale_down_after_an_action_but_not_scale_up():
    pool = Pool(PlanSpec(0, 100, ScalingRules(), ScalingRules(), cooldown_seconds=120), 2)
    assert pool.at(0, 6) == 6
    assert pool.at(60, 3) == 6
    assert "cooldown 60s more" in pool.reason
    assert pool.at(90, 9) == 9
    assert pool.at(211, 3) == 3


def test_rate_limits_apply_per_period_from_the_period_start():
    up = ScalingRules(0, (RatePolicy("pods", 4, 60),))
    pool = Pool(PlanSpec(0, 100, up, ScalingRules()), 2)
    assert pool.at(0, 20) == 6
    assert "rate limit -> 6" in pool.reason
    assert pool.at(30, 20) == 6   # the 4 added at t=0 still count
    assert pool.at(61, 20) == 10


def test_percent_rate_limits_round_up_when_scaling_up_and_down_when_scaling_down():
    up = ScalingRules(0, (RatePolicy("percent", 50, 15),))
    down = ScalingRules(0, (RatePolicy("percent", 50, 15),))
    pool = Pool(PlanSpec(0, 100, up, down), 3)
    assert pool.at(0, 100) == 5       # ceil(3 x 1.5)
    assert pool.at(20, 0) == 2        # floor(5 x 0.5)


def test_disabled_direction_never_moves():
    pool = Pool(PlanSpec(0, 100, ScalingRules(), ScalingRules(0, (), "disabled")), 5)
    assert pool.at(0, 1) == 5


def test_a_stale_signal_holds_capacity_and_says_which():
    pool = Pool(NO_WINDOWS, 6)
    assert pool.at(0, 0, stale={"queue": "timeout after 5.0s"}) == 6
    assert pool.reason.startswith("hold: signal queue (timeout after 5.0s) stale for 0s")
    assert pool.at(600, 0, stale={"queue": "timeout after 5.0s"}) == 6
    assert "stale for 600s" in pool.reason


def test_a_stale_signal_still_allows_a_scale_up_from_the_others():
    pool = Pool(NO_WINDOWS, 2)
    assert pool.at(0, 7, stale={"gpu_utilization": "no value"}) == 7


def test_after_fallback_time_a_stale_pool_rises_to_the_fallback_but_never_falls():
    spec = PlanSpec(0, 10, ScalingRules(), ScalingRules(), fallback_after_seconds=300,
                    fallback_replicas=4)
    stale = {"queue": "ConnectionError"}
    low = Pool(spec, 1)
    assert low.at(0, 0, stale) == 1
    assert low.at(299, 0, stale) == 1
    assert low.at(300, 0, stale) == 4
    assert "fallback to 4" in low.reason
    high = Pool(spec, 8)
    assert high.at(400, 0, stale) == 8


def test_staleness_clears_when_the_signal_returns():
    pool = Pool(NO_WINDOWS, 3)
    pool.at(0, 0, {"queue": "x"})
    assert pool.memory.stale_since == 0
    pool.at(10, 3)
    assert pool.memory.stale_since is None


def test_a_policy_hold_keeps_capacity_with_its_reason():
    pool = Pool(NO_WINDOWS, 5)
    assert pool.at(0, 1, hold=True) == 5
    assert pool.reason == "hold: policy says 1"


def test_provider_backoff_holds_the_pool_until_it_expires():
    memory = after_action(PoolMemory(), 100, 2, 6, "InsufficientInstanceCapacity: none left",
                          backoff_seconds=30)
    rec = Recommendation(6, "want 6")
    decision, memory = plan("p", NO_WINDOWS, rec, 2, 110, memory)
    assert decision.desired == 2
    assert "provider backoff for 20s more after InsufficientInstanceCapacity" in decision.reason
    decision, _ = plan("p", NO_WINDOWS, rec, 2, 131, memory)
    assert decision.desired == 6


def test_backoff_doubles_on_repeated_failures_up_to_the_maximum():
    memory = PoolMemory()
    waits = []
    for i in range(8):
        memory = after_action(memory, i * 1000, 1, 2, "Throttled", 30, 600)
        waits.append(memory.backoff_seconds)
    assert waits == [30, 60, 120, 240, 480, 600, 600, 600]
    memory = after_action(memory, 9000, 1, 2)
    assert memory.backoff_until is None and memory.backoff_seconds == 0


def test_every_decision_has_a_reason_including_hold():
    decision, _ = plan("p", NO_WINDOWS, Recommendation(3, "policy: 3"), 3, 0, PoolMemory())
    assert decision.direction == "hold" and decision.reason == "policy: 3"


def test_memory_round_trips_through_json():
    pool = Pool(PlanSpec(0, 100, ScalingRules(60), ScalingRules(300)), 2)
    for t, d in [(0, 5), (30, 8), (90, 1)]:
        pool.at(t, d)
    pool.memory = after_action(pool.memory, 95, 8, 9, "Throttled: slow down")
    text = json.dumps(pool.memory.to_dict())
    assert PoolMemory.from_dict(json.loads(text)) == pool.memory


def test_the_planner_does_not_keep_history_it_does_not_need():
    pool = Pool(NO_WINDOWS, 1)
    for t in range(100):
        pool.at(t, 1 + t % 3)
    assert pool.memory.recommendations == ()


def test_a_restarted_controller_does_not_scale_down_on_its_first_tick():
    """The capacity found at start counts as a recommendation in the scale-down window,
    as the HPA seeds its window (maybeInitScaleDownStabilizationWindow)."""
    pool = Pool(PlanSpec(0, 100, ScalingRules(), ScalingRules(300)), 12)
    assert pool.at(0, 2) == 12
    assert pool.at(299, 2) == 12
    assert pool.at(300, 2) == 2


def test_the_start_seed_does_not_delay_scale_up():
    pool = Pool(PlanSpec(0, 100, ScalingRules(60), ScalingRules(300)), 0)
    assert pool.at(0, 4) == 4


# --- a policy that owns its keep-alive -------------------------------------------------
QUEUEING = {"type": "queueing", "service_seconds": 2, "slots_per_replica": 8, "wait_slo": 1}
KEEP_ALIVE = {**QUEUEING, "keep_alive": {"replica_cost_per_hour": 0.805}}


def config_pool(policy: dict, **extra):
    from autoscaler.config import Pool as PoolConfig

    return PoolConfig.model_validate(
        {"name": "p", "target": {"kind": "simulated"}, "max": 8, "policy": policy, **extra}
    )


def test_a_learned_keep_alive_has_no_default_zero_delay_stacked_on_top():
    plain = PlanSpec.from_pool(config_pool(QUEUEING))
    assert plain.scale_to_zero_after_seconds == 300 and not plain.policy_keep_alive
    owned = PlanSpec.from_pool(config_pool(KEEP_ALIVE))
    assert owned.scale_to_zero_after_seconds == 0 and owned.policy_keep_alive
    assert owned.down == plain.down  # the scale-down window still smooths other steps
    other = PlanSpec.from_pool(config_pool(KEEP_ALIVE, behavior={"cooldown": 30}))
    assert other.scale_to_zero_after_seconds == 0 and other.cooldown_seconds == 30


def test_a_zero_delay_the_user_set_is_kept_with_a_learned_keep_alive():
    chosen = config_pool(KEEP_ALIVE, behavior={"scale_to_zero_after": "2m"})
    assert PlanSpec.from_pool(chosen).scale_to_zero_after_seconds == 120
    explicit_default = config_pool(KEEP_ALIVE, behavior={"scale_to_zero_after": 300})
    assert PlanSpec.from_pool(explicit_default).scale_to_zero_after_seconds == 300


def test_a_keep_alive_inside_a_composite_owns_the_zero_step_too():
    composite = {"type": "composite", "policies": [{"type": "queue-depth",
                 "target_per_replica": 4}, KEEP_ALIVE]}  # fmt: skip
    spec = PlanSpec.from_pool(config_pool(composite))
    assert spec.policy_keep_alive and spec.scale_to_zero_after_seconds == 0
    plain = {"type": "composite", "policies": [{"type": "queue-depth",
             "target_per_replica": 4}, QUEUEING]}  # fmt: skip
    assert not PlanSpec.from_pool(config_pool(plain)).policy_keep_alive


def test_the_policys_let_go_is_not_held_by_the_scale_down_window():
    spec = PlanSpec.from_pool(config_pool(KEEP_ALIVE))
    pool = Pool(spec, 4)
    pool.memory = PoolMemory(started_at=-1000.0, started_with=4)
    assert pool.at(0, 4) == 4
    assert pool.at(60, 1) == 4  # the window still smooths 4 -> 1
    assert "stabilization window 300s keeps 4" in pool.reason
    assert pool.at(120, 0) == 0  # the keep-alive let go: no window, no zero delay
    # without a keep-alive of its own, the window and the delay hold the pool
    plain = Pool(PlanSpec.from_pool(config_pool(QUEUEING)), 4)
    plain.memory = PoolMemory(started_at=-1000.0, started_with=4)
    assert [plain.at(t, d) for t, d in [(0, 4), (60, 1), (120, 0)]] == [4, 4, 4]
    assert plain.at(301, 0) == 1 and "stabilization window 300s keeps 1" in plain.reason
    assert plain.at(400, 0) == 1 and "scale to zero in 20s" in plain.reason
