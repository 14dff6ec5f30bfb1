"""The hpa, keda and kpa baselines reproduce the documented numbers in BASELINES.md."""

from __future__ import annotations

import pytest
from pydantic import TypeAdapter

from autoscaler.types import Observation
from policies import AnyPolicyConfig

build = TypeAdapter(AnyPolicyConfig).validate_python


class Driver:
    """Feeds a policy a series of observations, applying its answers as the pool would."""

    def __init__(self, config: dict, current: int, lo: int = 0, hi: int = 1000) -> None:
        self.policy = build(config).build()
        self.current, self.lo, self.hi = current, lo, hi
        self.memory: dict = {}
        self.last_reason = ""

    def at(self, now: float, ready: int | None = None, empty: tuple[str, ...] = (),
           **signals: float) -> int:
        o = Observation("p", now, self.current, self.current if ready is None else ready,
                        signals, stale=frozenset(empty), empty=frozenset(empty),
                        min_replicas=self.lo, max_replicas=self.hi)
        rec = self.policy.recommend(o, self.memory)
        self.memory, self.last_reason = rec.memory, rec.reason
        self.current = rec.desired
        return rec.desired


# --- HPA ---------------------------------------------------------------------------
HPA_UTIL = {"type": "hpa", "metrics": [{"signal": "gpu", "target_utilization": 0.5}]}
HPA_QUEUE = {"type": "hpa", "metrics": [{"signal": "queue", "target_average_value": 10}]}


@pytest.mark.parametrize(
    ("util", "desired"),
    [(0.5, 4), (0.545, 4), (0.455, 4), (0.56, 5), (0.44, 4), (1.0, 8)],
)
def test_hpa_tolerance_band_is_ten_percent_each_way(util, desired):
    # 0.545/0.5 = 1.09 and 0.455/0.5 = 0.91 are inside the band; 1.12 is outside.
    # 0.44 -> 0.88 is outside but scale-down waits for its 300 s window.
    assert Driver(HPA_UTIL, 4).at(0, gpu=util) == desired


def test_hpa_external_average_value_is_sum_over_target():
    d = Driver(HPA_QUEUE, 2)
    assert d.at(0, queue=95) == 6  # up limited: max(2 x 2, 2 + 4) = 6 in one period
    assert d.at(15, queue=95) == 10  # ceil(95 / 10)


def test_hpa_default_scale_up_is_max_of_double_or_four_pods_per_15s():
    assert Driver(HPA_QUEUE, 1).at(0, queue=10_000) == 5   # 1 + 4 > 2 x 1
    assert Driver(HPA_QUEUE, 10).at(0, queue=10_000) == 20  # 2 x 10 > 10 + 4


def test_hpa_scale_down_waits_for_the_300s_window_then_takes_its_max():
    d = Driver(HPA_QUEUE, 10)
    assert d.at(0, queue=100) == 10
    assert d.at(15, queue=30) == 10   # window still holds the 10
    assert d.at(150, queue=50) == 10
    assert d.at(301, queue=20) == 5   # the 10 from t=0 left; max(3, 5, 2) = 5
    assert d.at(451, queue=20) == 2


def test_hpa_only_acts_every_sync_period():
    d = Driver(HPA_QUEUE, 2)
    assert d.at(0, queue=40) == 4
    assert d.at(5, queue=200) == 4
    assert d.at(15, queue=200) == 8


def test_hpa_counts_starting_pods_as_idle_when_scaling_up():
    # 4 ready at 100 % of a 50 % target; 4 more starting count as 0 %: ratio 1.0 -> no change
    assert Driver(HPA_UTIL, 8).at(0, ready=4, gpu=1.0) == 8


def test_hpa_largest_metric_wins():
    config = {"type": "hpa", "metrics": [
        {"signal": "gpu", "target_utilization": 0.5},
        {"signal": "queue", "target_average_value": 10}]}
    assert Driver(config, 4).at(0, gpu=0.5, queue=70) == 7


def test_hpa_does_nothing_if_a_metric_fails_and_others_would_scale_down():
    config = {"type": "hpa", "metrics": [
        {"signal": "gpu", "target_utilization": 0.5},
        {"signal": "queue", "target_average_value": 10}],
        "scale_down": {"stabilization_window_seconds": 0}}
    d = Driver(config, 6)
    assert d.at(0, queue=10) == 6
    assert "failed" in d.last_reason


def test_hpa_does_not_act_at_zero_replicas():
    assert Driver(HPA_QUEUE, 0).at(0, queue=500) == 0


def test_hpa_never_goes_below_one():
    config = {**HPA_QUEUE, "scale_down": {"stabilization_window_seconds": 0}}
    assert Driver(config, 3).at(0, queue=0) == 1


def test_hpa_percent_and_pods_policies_with_min_select():
    config = {**HPA_QUEUE, "scale_up": {"select_policy": "Min", "policies": [
        {"type": "Percent", "value": 50, "period_seconds": 60},
        {"type": "Pods", "value": 3, "period_seconds": 60}]}}
    d = Driver(config, 10)
    assert d.at(0, queue=1000) == 13           # min(15, 13)
    assert d.at(15, queue=1000) == 13          # 3 added this period already
    assert d.at(61, queue=1000) == 16          # a new period from 13


# --- KEDA --------------------------------------------------------------------------
def keda(**extra):
    trigger = {"signal": "queue", "target": extra.pop("target", 10),
               "activation_threshold": extra.pop("activation", 0)}
    return {"type": "keda", "triggers": [trigger], **extra}


def test_keda_activation_wins_over_scaling():
    # target 10, activation 50, 40 messages: the workload goes to (or stays at) zero
    assert Driver(keda(activation=50), 0).at(0, queue=40) == 0
    d = Driver(keda(activation=50), 4)
    d.at(0, queue=40)
    assert d.at(301, queue=40) == 0


def test_keda_wakes_a_workload_at_zero_to_one():
    assert Driver(keda(), 0).at(0, queue=1) == 1
    assert Driver(keda(min_replica_count=2), 0).at(0, queue=1) == 2


def test_keda_scales_to_zero_only_after_the_cooldown():
    d = Driver(keda(), 3)
    assert d.at(0, queue=30) == 3
    assert d.at(30, queue=0) == 3        # inactive, 30 s < 300 s; the HPA holds (window)
    # 300 s since last active: KEDA waits (strictly after), but the HPA's own 300 s
    # window no longer holds the t=0 proposal, so the HPA goes to its minimum of 1.
    assert d.at(300, queue=0) == 1
    assert d.at(330, queue=0) == 0


def test_keda_between_one_and_n_uses_the_hpa_with_tolerance():
    d = Driver(keda(), 4)
    assert d.at(0, queue=42) == 4   # 42 / 40 = 1.05: within tolerance
    assert d.at(30, queue=80) == 8


def test_keda_polls_every_30_seconds_at_zero():
    d = Driver(keda(), 0)
    assert d.at(0, queue=0) == 0
    assert d.at(10, queue=5) == 0    # not polled yet
    assert d.at(30, queue=5) == 1


def test_keda_fallback_reports_target_times_fallback_replicas_after_failures():
    d = Driver(keda(fallback={"failure_threshold": 3, "replicas": 6}), 2)
    assert d.at(0) == 2
    assert d.at(15) == 2
    assert d.at(30) == 6


def test_keda_reads_an_empty_prometheus_result_as_zero_by_default():
    # kedacore/keda #3065: an outage that empties the query scales everything down
    d = Driver(keda(), 3)
    d.at(0, queue=30)
    assert d.at(330, empty=("queue",)) == 0


def test_keda_clamps_to_max_replica_count():
    assert Driver(keda(max_replica_count=5), 4).at(0, queue=1000) == 5


# --- KPA ---------------------------------------------------------------------------
KPA = {"type": "kpa", "container_concurrency": 10}


def test_kpa_target_is_seventy_percent_of_container_concurrency_or_of_100():
    assert build(KPA).target == pytest.approx(7.0)
    assert build({"type": "kpa"}).target == pytest.approx(70.0)


def test_kpa_stable_mode_sizes_by_the_60s_average():
    d = Driver(KPA, 3)
    for t in range(0, 60, 2):
        d.at(t, concurrency=21)
    assert d.current == 3
    assert "stable" in d.last_reason


def test_kpa_enters_panic_when_the_panic_proposal_doubles_ready_pods():
    d = Driver(KPA, 2)
    for t in range(0, 60, 2):
        d.at(t, concurrency=14)          # 2 pods' worth
    assert d.current == 2
    assert d.at(60, concurrency=200) >= 4  # panic window sees the burst at once
    assert "panic" in d.last_reason


def test_kpa_never_scales_down_in_panic_and_exits_after_a_stable_window():
    d = Driver(KPA, 2)
    for t in range(0, 60, 2):
        d.at(t, concurrency=14)
    for t in range(60, 70, 2):
        d.at(t, concurrency=200)
    peak = d.current
    assert d.at(80, concurrency=1) == peak      # calm, but still in panic
    assert "panic" in d.last_reason
    for t in range(82, 140, 2):
        d.at(t, concurrency=1)
    assert "panic" in d.last_reason             # panic_time + 60 s not yet passed
    d.at(140, concurrency=1)
    assert "stable" in d.last_reason


def test_kpa_scales_down_at_most_by_half_per_decision():
    d = Driver(KPA, 10)
    assert d.at(0, concurrency=0) == 5          # floor(10 / 2)


def test_kpa_goes_to_zero_after_the_grace_period():
    d = Driver(KPA, 1)
    assert d.at(0, concurrency=0) == 1
    assert d.at(20, concurrency=0) == 1
    assert d.at(30, concurrency=0) == 0


def test_kpa_decides_every_two_seconds():
    d = Driver(KPA, 1)
    d.at(0, concurrency=7)
    assert d.at(1, concurrency=700) == 1


def test_a_new_hpa_seeds_its_scale_down_window_with_the_current_count():
    d = Driver(HPA_QUEUE, 8)
    assert d.at(0, queue=10) == 8      # would be 1, but the window starts with 8
    assert d.at(300, queue=10) == 1
