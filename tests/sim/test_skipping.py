"""Skipping quiet ticks changes nothing: every metric and every timeline row (reasons too)
is what ticking every time gives, on sparse work where most ticks are skipped."""

from __future__ import annotations

import random
from typing import Any, ClassVar

import numpy as np
import pytest

from autoscaler.config import parse_config
from autoscaler.sim import engine
from autoscaler.sim.engine import Workload, run_policy
from policies.gpu_utilization import GpuUtilizationConfig
from policies.queue_depth import QueueDepthConfig

POOL = """installation: {id: test}
controller: {interval: 10s}
pools:
  - name: p
    target: {kind: simulated}
    min: MIN
    max: 12
    startup: 45s
    policy: {type: packing, slots_per_replica: 4}
    behavior: BEHAVIOR
"""
BEHAVIORS = [
    "{}",
    "{scale_down: {stabilization_window: 0}, scale_to_zero_after: 60s}",
    "{scale_down: {stabilization_window: 95s}, cooldown: 120s, scale_to_zero_after: 200s}",
    "{scale_up: {stabilization_window: 30s, rate_limits: [{type: pods, value: 1, "
    "period: 60s}]}, scale_down: {stabilization_window: 45s}}",
]


class StatelessQueueDepth(QueueDepthConfig):
    """Queue-depth on any signal, declared stateless (it is), for the signals' windows."""

    stateless: ClassVar[bool] = True


class StatelessUtilization(GpuUtilizationConfig):
    stateless: ClassVar[bool] = True


def sparse_work(seed: int, one_slot: bool) -> Workload:
    """Bursts of requests (or jobs) with quiet gaps of minutes to an hour between them."""
    rng = random.Random(seed)
    arrivals: list[float] = []
    t = 0.0
    for _ in range(12):
        t += rng.choice([30.0, 200.0, 900.0, 3600.0]) + rng.random()
        arrivals += sorted(t + rng.uniform(0, 40) for _ in range(rng.randrange(1, 9)))
    held = [1 if one_slot else rng.choice([1, 2, 4]) for _ in arrivals]
    durations = [rng.choice([5.0, 60.0, 400.0, 1500.0]) for _ in arrivals]
    return Workload(np.array(arrivals), np.array(durations), np.array(held, dtype=np.int64), 4,
                    1, 1.0, 45.0, 60.0, 0.0, not one_slot, f"sparse-{seed}")  # fmt: skip


def both_ways(pool: Any, work: Workload, policy: Any, monkeypatch) -> tuple[Any, Any, int]:
    ticks = []

    def counting(*args: Any) -> Any:
        controller = make(*args)
        tick = controller.tick
        controller.tick = lambda: ticks.append(1) or tick()  # type: ignore[method-assign]
        return controller

    make = engine.sim_controller
    monkeypatch.setattr(engine, "sim_controller", counting)
    skipped = run_policy(pool, work, policy, "x", 10.0)
    ran = len(ticks)
    every = run_policy(pool, work, policy, "x", 10.0, skip_quiet_ticks=False)
    assert len(ticks) - ran == len(every.timeline["t"])
    return skipped, every, ran


def same(a: Any, b: Any) -> None:
    drop = "wall_seconds"
    assert {k: v for k, v in a.metrics.items() if k != drop} == {
        k: v for k, v in b.metrics.items() if k != drop
    }
    assert a.timeline == b.timeline


@pytest.mark.parametrize("behavior", BEHAVIORS)
@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("one_slot", [False, True])
def test_packing_decides_the_same_with_quiet_ticks_skipped(behavior, seed, one_slot,
                                                           monkeypatch):  # fmt: skip
    text = POOL.replace("BEHAVIOR", behavior).replace("MIN", str(seed % 2))
    pool = parse_config(text, env={}).pools[0]
    work = sparse_work(seed, one_slot)
    skipped, every, ran = both_ways(pool, work, pool.policy, monkeypatch)
    same(skipped, every)
    assert ran < len(every.timeline["t"]) / 2, "most ticks of sparse work are quiet"


@pytest.mark.parametrize(
    "policy",
    [
        StatelessQueueDepth(signal="arrival_rate", target_per_replica=0.05),
        StatelessQueueDepth(signal="service_seconds", target_per_replica=200.0),
        StatelessQueueDepth(signal="demand", target_per_replica=3.0, activation=1.0),
        StatelessUtilization(target=0.5),
    ],
    ids=["arrival-rate-window", "service-time-window", "demand", "gpu-utilization"],
)
@pytest.mark.parametrize("seed", range(3))
def test_signals_that_move_without_events_end_a_quiet_span(policy, seed, monkeypatch):
    text = POOL.replace("BEHAVIOR", BEHAVIORS[seed % len(BEHAVIORS)]).replace("MIN", "1")
    pool = parse_config(text, env={}).pools[0]
    skipped, every, ran = both_ways(pool, sparse_work(seed, True), policy, monkeypatch)
    same(skipped, every)
    assert ran < len(every.timeline["t"])


def test_a_policy_not_declared_stateless_ticks_every_time(monkeypatch):
    pool = parse_config(POOL.replace("BEHAVIOR", "{}").replace("MIN", "0"), env={}).pools[0]
    policy = QueueDepthConfig(signal="queue", target_per_replica=4.0)
    skipped, every, ran = both_ways(pool, sparse_work(0, True), policy, monkeypatch)
    same(skipped, every)
    assert ran == len(every.timeline["t"])


def test_a_delayed_metrics_source_ticks_every_time(monkeypatch):
    pool = parse_config(POOL.replace("BEHAVIOR", "{}").replace("MIN", "0"), env={}).pools[0]
    work = sparse_work(1, False)
    delayed = Workload(*[getattr(work, f) for f in Workload.__dataclass_fields__][:8], 20.0,
                       work.batch, work.trace_name)  # fmt: skip
    skipped, every, ran = both_ways(pool, delayed, pool.policy, monkeypatch)
    same(skipped, every)
    assert ran == len(every.timeline["t"])
