"""Scenarios on small synthetic traces with known answers, through the real controller."""

from __future__ import annotations

import numpy as np
import pytest

from autoscaler.config import parse_config
from autoscaler.sim import engine
from autoscaler.sim.engine import Workload, run_policy

POOL = """installation: {id: test}
controller: {interval: 5s}
pools:
  - name: p
    target: {kind: simulated}
    min: 0
    max: 50
    startup: 60s
    policy: {type: queue-depth, signal: concurrency, target_per_replica: 8}
    behavior: {scale_down: {stabilization_window: 0}, scale_to_zero_after: 120s}
    activator: {backend: {urls: ["http://127.0.0.1:8000"]}}  # holds requests at zero
    simulation:
      service: {type: llm, slots_per_replica: 8, prefill_tokens_per_s: 1000,
                decode_tokens_per_s: 10}
      cost_per_hour: 1.0
      wait_slo: 1s
"""


def work(arrivals, durations) -> Workload:
    a = np.asarray(arrivals, float)
    return Workload(a, np.asarray(durations, float), np.ones(len(a), dtype=np.int64), 8, 1,
                    1.0, 60.0, 1.0, 0.0, False, "synthetic")


def run(arrivals, durations, text=POOL):
    pool = parse_config(text, env={}).pools[0]
    return run_policy(pool, work(arrivals, durations), pool.policy, "qd", 5.0)


def first_time(line, key, predicate):
    return next(t for t, v in zip(line["t"], line[key], strict=True) if predicate(v))


def test_a_burst_reaches_the_right_replica_count_within_startup_plus_one_tick():
    # idle for 10 minutes (the pool starts at 0), then 80 long requests at once
    result = run([600.0] * 80, [1000.0] * 80)
    line = result.timeline
    assert line["ready"][0] == 0
    reached = first_time(line, "ready", lambda r: r >= 10)
    assert 600 + 60 <= reached <= 600 + 60 + 5
    assert max(line["ready"]) == 10          # not more than 80 / 8


def test_an_idle_pool_goes_to_zero_after_its_delay():
    # (the simulation ends when the work does, so a late request keeps it running)
    result = run([0.0, 1000.0], [10.0, 10.0])
    line = result.timeline
    zero = first_time(line, "desired", lambda d: d == 0)
    assert 10 + 120 <= zero <= 10 + 120 + 10
    # the late request finds the pool at zero and waits one cold start (plus a tick)
    assert 60 <= result.metrics["wait_max_s"] <= 65


def test_a_stale_signal_holds_capacity_until_it_returns(monkeypatch):
    class Flaky(engine.ClusterSignals):
        def read(self, requests, now):
            if 100 <= now < 400:
                raise ConnectionError("metrics backend down")
            return super().read(requests, now)

    monkeypatch.setattr(engine, "ClusterSignals", Flaky)
    # 16 requests for 150 s at t=90 keep 2 replicas busy until 240; the outage runs to 400
    result = run([90.0] * 16 + [1200.0], [150.0] * 16 + [1.0])
    line = result.timeline
    during = [d for t, d in zip(line["t"], line["desired"], strict=True) if 100 <= t < 400]
    assert during and all(d == 2 for d in during)
    reasons = [r for t, r in zip(line["t"], line["reason"], strict=True) if 100 <= t < 400]
    assert all("stale" in r and "ConnectionError" in r for r in reasons)
    assert first_time(line, "desired", lambda d: d == 0) >= 400 + 120


def test_a_policy_reading_a_signal_the_simulator_lacks_is_refused():
    text = POOL.replace("signal: concurrency,", "signal: tokens, in_flight_signal: in_flight,")
    text = text.replace("target: {kind: simulated}", "target: {kind: deployment, name: d}")
    text = text.replace("    startup: 60s", "    startup: 60s\n    signals: "
                        "{tokens: {source: {type: static, value: 1}}, "
                        "in_flight: {source: {type: static, value: 1}}}")
    pool = parse_config(text, env={}).pools[0]
    with pytest.raises(engine.SimulationError, match="reads tokens, which the simulator"):
        run_policy(pool, work([0.0], [1.0]), pool.policy, "x", 5.0)


def test_costs_and_efficiency_add_up():
    result = run([600.0] * 80, [1000.0] * 80)
    m = result.metrics
    assert m["useful_gpu_hours"] == pytest.approx(80 * 1000 / 8 / 3600, abs=1e-3)
    assert m["gpu_hours"] >= m["useful_gpu_hours"]
    assert m["cost"] == pytest.approx(m["gpu_hours"], abs=0.01)  # 1 GPU at 1.0 per hour
    assert m["unfinished"] == 0


BATCH = """installation: {id: test}
controller: {interval: 10s}
pools:
  - name: b
    target: {kind: simulated}
    min: 0
    max: 20
    startup: 60s
    policy: {type: packing, slots_per_replica: 8}
    behavior: {scale_down: {stabilization_window: 0}, scale_to_zero_after: 120s}
    simulation:
      service: {type: gpu-batch, gpus_per_node: 8}
      cost_per_hour: 1.0
      wait_slo: 120s
"""


def run_jobs(arrivals, durations, gpus, text=BATCH):
    pool = parse_config(text, env={}).pools[0]
    a = np.asarray(arrivals, float)
    w = Workload(a, np.asarray(durations, float), np.asarray(gpus, dtype=np.int64), 8, 8,
                 1.0, 60.0, 120.0, 0.0, True, "synthetic-jobs")
    return run_policy(pool, w, pool.policy, "packing", 10.0)


def test_packing_starts_a_node_per_full_job_and_returns_to_zero():
    # three whole-node jobs after 10 idle minutes: three nodes, up after one cold start (a
    # small late job keeps the simulation running past the pool's return to zero)
    result = run_jobs([600.0] * 3 + [6000.0], [3600.0] * 3 + [10.0], [8] * 3 + [1])
    line = result.timeline
    assert line["ready"][0] == 0
    assert 600 + 60 <= first_time(line, "ready", lambda r: r == 3) <= 600 + 60 + 10
    assert max(line["ready"]) == 3
    assert result.metrics["wait_max_s"] <= 60 + 10 and result.metrics["unfinished"] == 0
    done = 600 + 60 + 3600
    after = [(t, d) for t, d in zip(line["t"], line["desired"], strict=True) if t > done]
    zero = next(t for t, d in after if d == 0)
    assert done + 120 <= zero <= done + 120 + 20


def test_packing_removes_idle_nodes_and_keeps_the_one_running_a_job():
    # 16 one-GPU jobs fill two warm nodes (first fit, oldest first); the last runs 50 min,
    # the others 10 min. The idle node goes at once; the busy one stays, never drained.
    result = run_jobs([0.0] * 16, [600.0] * 15 + [3000.0], [1] * 16)
    line = result.timeline
    assert line["ready"][0] == 2
    held = [r for t, r in zip(line["t"], line["ready"], strict=True) if 620 <= t < 3000]
    assert held and set(held) == {1}
    assert result.metrics["wait_max_s"] == 0.0
    # billed: both nodes for 600 s, then one until the long job ends (the run ends there)
    assert result.metrics["gpu_hours"] == pytest.approx(8 * (2 * 600 + 2400) / 3600, abs=0.1)


def test_packing_plans_for_fragmentation_with_fill():
    # five 5-GPU jobs pack one to a node; planned full (fill 1) that is 4 nodes, so one job
    # waits a second cold start. Planned at 5/8 full it is 5 nodes at once.
    full = run_jobs([600.0] * 5, [3600.0] * 5, [5] * 5)
    assert full.metrics["wait_max_s"] >= 2 * 60
    text = BATCH.replace("slots_per_replica: 8}", "slots_per_replica: 8, fill: 0.625}")
    planned = run_jobs([600.0] * 5, [3600.0] * 5, [5] * 5, text)
    assert planned.metrics["wait_max_s"] <= 60 + 10
    assert max(planned.timeline["ready"]) == 5
