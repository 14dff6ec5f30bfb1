"""Serving from zero (issue 15): requests that find no replica ready are held by an
activator, or lost without one; cold starts are counted and reported.

Small hand-built traces whose answers are known: a cold start takes `startup` (60 s); the
pool goes back to zero 120 s after its last request; the controller ticks every 5 s.
"""

from __future__ import annotations

import json
import math
from typing import Any, ClassVar

import numpy as np
import pytest
from click.testing import CliRunner

from autoscaler.cli import cli
from autoscaler.config import parse_config
from autoscaler.sim import engine
from autoscaler.sim.baselines import KNATIVE_ACTIVATOR
from autoscaler.sim.cluster import LOST_AT_ZERO, AtZero, Cluster
from autoscaler.sim.engine import AT_ZERO_KEYS, Workload, run_policy
from autoscaler.sim.report import write_report
from autoscaler.sim.run import POLICY, SimulationReport, oracle_metrics
from policies.queue_depth import QueueDepthConfig

STARTUP = 60.0
TICK = 5.0
ACTIVATOR = '{backend: {urls: ["http://127.0.0.1:8000"]}}'
POOL = """installation: {id: test}
controller: {interval: 5s}
pools:
  - name: p
    target: {kind: simulated}
    min: 0
    max: 10
    startup: 60s
    policy: {type: queue-depth, signal: concurrency, target_per_replica: 8}
    behavior: {scale_down: {stabilization_window: 0}, scale_to_zero_after: 120s}
    simulation:
      service: {type: llm, slots_per_replica: 8, prefill_tokens_per_s: 1000,
                decode_tokens_per_s: 10}
      cost_per_hour: 1.0
      wait_slo: 1s
"""

# A request at 0 (the pool starts warm for it), then bursts after gaps far longer than the
# 120 s keep-alive: each finds the pool at zero. Every request takes 10 s.
SPARSE = [0.0, 1000.0, 1001.0, 2500.0, 4000.0]


def pool_with(activator: str | None = None, text: str = POOL) -> Any:
    if activator is not None:
        text = text.replace("    simulation:", f"    activator: {activator}\n    simulation:")
    return parse_config(text, env={}).pools[0]


def work(arrivals: list[float], duration: float = 10.0) -> Workload:
    a = np.asarray(arrivals, float)
    return Workload(a, np.full(len(a), duration), np.ones(len(a), dtype=np.int64), 8, 1, 1.0,
                    STARTUP, 1.0, 0.0, False, "sparse")  # fmt: skip


def run(arrivals: list[float], activator: str | None = None, policy: Any = None,
        label: str = "qd", **kw: Any) -> engine.PolicyRun:  # fmt: skip
    pool = pool_with(activator)
    return run_policy(pool, work(arrivals), policy or pool.policy, label, TICK, **kw)


# -- through the controller ------------------------------------------------------------
def test_with_an_activator_every_request_is_served_some_after_a_cold_start():
    result = run(SPARSE, ACTIVATOR)
    m = result.metrics
    assert m["at_zero"] == "held"
    assert m["unfinished"] == 0 and m["lost_at_zero"] == m["rejected"] == m["timed_out"] == 0
    # one cold start per burst after a gap, each at the first tick that sees it
    assert m["cold_starts"] == 3
    bursts = [1000.0, 2500.0, 4000.0]
    assert len(result.cold_start_times) == 3
    for began, burst in zip(result.cold_start_times, bursts, strict=True):
        assert burst <= began <= burst + TICK
    # the four requests after the gaps waited for a cold start: at least the startup
    # minus the time since the scale-up, and the ready replica took them at once
    assert m["cold_start_requests"] == 4
    assert m["cold_start_wait_max_s"] <= STARTUP + TICK
    assert m["cold_start_wait_p50_s"] >= STARTUP - 1.0  # 1001 waits from 1001 to 1065
    assert m["cold_start_wait_max_s"] >= STARTUP
    # the request at 0 found a warm pool; the others all missed the 1 s SLO
    assert m["slo_attainment"] == pytest.approx(1 / 5)


def test_each_held_request_waits_the_startup_minus_the_time_since_the_scale_up(monkeypatch):
    arrivals = [0.0, 1000.0, 1020.0, 1040.0]
    pool = pool_with(ACTIVATOR)
    made: list[Cluster] = []

    class Kept(Cluster):
        def __init__(self, *a: Any, **kw: Any) -> None:
            super().__init__(*a, **kw)
            made.append(self)

    monkeypatch.setattr(engine, "Cluster", Kept)
    result = run_policy(pool, work(arrivals), pool.policy, "qd", TICK)
    (cluster,) = made
    (began,) = result.cold_start_times
    assert 1000.0 <= began <= 1000.0 + TICK
    for i in (1, 2, 3):
        wait = cluster.start[i] - arrivals[i]
        assert wait >= STARTUP - (arrivals[i] - began) - 1e-9
        assert cluster.start[i] == began + STARTUP  # all start when the replica is ready
    assert result.metrics["cold_start_requests"] == 3


def test_without_an_activator_requests_at_zero_are_lost_and_counted():
    result = run(SPARSE)
    m = result.metrics
    assert m["at_zero"] == "lost"
    assert m["lost_at_zero"] == 4
    # nothing held them, so nothing showed them to the policy (its concurrency stays 0)
    assert m["cold_starts"] == 0 and m["cold_start_requests"] == 0
    assert m["unfinished"] == 0 and m["requests"] == 5
    assert m["slo_attainment"] == pytest.approx(1 / 5)  # lost requests miss the SLO
    assert m["wait_max_s"] == 0.0  # waits are of the served request only


def test_the_work_of_a_lost_request_is_not_counted_as_useful():
    pool = pool_with()
    m = run_policy(pool, work([0.0, 5000.0], 600.0), pool.policy, "qd", TICK).metrics
    assert m["lost_at_zero"] == 1
    assert m["useful_gpu_hours"] == pytest.approx(600 / 8 / 3600, abs=1e-3)  # one request


def test_a_hold_timeout_shorter_than_the_startup_times_held_requests_out():
    result = run(SPARSE, '{backend: {urls: ["http://127.0.0.1:8000"]}, hold_timeout: 30s}')
    m = result.metrics
    assert m["timed_out"] == 4
    assert m["cold_starts"] == 3  # they still woke the pool
    assert m["cold_start_requests"] == 0 and m["lost_at_zero"] == 0
    assert m["unfinished"] == 0
    assert m["slo_attainment"] == pytest.approx(1 / 5)


def test_a_full_activator_queue_rejects_the_rest():
    arrivals = [0.0] + [1000.0 + 0.1 * i for i in range(5)]
    result = run(arrivals, '{backend: {urls: ["http://127.0.0.1:8000"]}, max_queue: 2}')
    m = result.metrics
    assert m["rejected"] == 3
    assert m["cold_start_requests"] == 2 and m["timed_out"] == 0 and m["unfinished"] == 0
    assert m["slo_attainment"] == pytest.approx(1 / 6, abs=1e-5)


def test_the_kpa_holds_requests_at_zero_as_knative_s_activator_does():
    kpa = POLICY.validate_python({"type": "kpa", "signal": "demand", "container_concurrency": 8})
    result = run(SPARSE, policy=kpa, label="kpa")
    m = result.metrics
    assert m["at_zero"] == "held"
    assert m["lost_at_zero"] == m["rejected"] == m["timed_out"] == 0 and m["unfinished"] == 0
    assert m["cold_starts"] == 3 and m["cold_start_requests"] == 4
    assert engine.at_zero(pool_with(), work(SPARSE), kpa) == AtZero.held(*KNATIVE_ACTIVATOR)
    # with the pool's own activator section, its settings
    own = engine.at_zero(pool_with('{backend: {urls: ["http://h:1"]}, max_queue: 7}'),
                         work(SPARSE), kpa)  # fmt: skip
    assert own == AtZero.held(7, 300.0)


def test_keda_loses_requests_at_zero_unless_the_pool_has_an_activator():
    keda = POLICY.validate_python(
        {"type": "keda", "triggers": [{"signal": "demand", "target": 5.6}]}
    )
    assert engine.at_zero(pool_with(), work(SPARSE), keda) == LOST_AT_ZERO
    fronted = engine.at_zero(pool_with(ACTIVATOR), work(SPARSE), keda)
    assert fronted == AtZero.held(1000, 300.0)  # the same activator as every other policy


def test_batch_jobs_at_zero_wait_as_pending_pods():
    batch = Workload(np.array([0.0, 5000.0]), np.array([10.0, 10.0]),
                     np.array([8, 8], dtype=np.int64), 8, 8, 1.0, STARTUP, 120.0, 0.0, True,
                     "jobs")  # fmt: skip
    text = POOL.replace(
        "policy: {type: queue-depth, signal: concurrency, target_per_replica: 8}",
        "policy: {type: packing, slots_per_replica: 8}",
    ).replace(
        "type: llm, slots_per_replica: 8, prefill_tokens_per_s: 1000,\n"
        "                decode_tokens_per_s: 10}",
        "type: gpu-batch, gpus_per_node: 8}",
    )
    pool = parse_config(text, env={}).pools[0]
    m = run_policy(pool, batch, pool.policy, "packing", TICK).metrics
    assert m["at_zero"] == "queued"
    assert m["cold_starts"] == 1 and m["cold_start_requests"] == 1
    assert m["lost_at_zero"] == 0 and m["unfinished"] == 0
    assert STARTUP <= m["cold_start_wait_max_s"] <= STARTUP + TICK


def test_the_oracle_loses_nothing_and_counts_its_own_cold_starts():
    m = oracle_metrics(work(SPARSE))
    assert m["lost_at_zero"] == m["rejected"] == m["timed_out"] == m["unfinished"] == 0
    assert m["slo_attainment"] == 1.0
    assert m["cold_starts"] == 3  # warm for 0, then one start ahead of each burst
    assert set(AT_ZERO_KEYS) <= set(m)


def test_a_pool_that_never_reaches_zero_has_no_cold_start():
    m = run([float(i) for i in range(0, 600, 5)], ACTIVATOR).metrics
    assert m["cold_starts"] == 0 and m["cold_start_requests"] == 0


# -- skipping quiet ticks ---------------------------------------------------------------
class StatelessQueueDepth(QueueDepthConfig):
    stateless: ClassVar[bool] = True


@pytest.mark.parametrize("signal", ["demand", "held", "concurrency"])
def test_a_held_request_timing_out_ends_a_quiet_span(signal):
    # timeouts are the only events that move these signals while the replica starts
    pool = pool_with('{backend: {urls: ["http://127.0.0.1:8000"]}, hold_timeout: 20s}')
    policy = StatelessQueueDepth(signal=signal, target_per_replica=8)
    w = work([0.0, 1000.0, 1012.0, 3000.0, 3001.0])
    skipped = run_policy(pool, w, policy, "x", TICK)
    every = run_policy(pool, w, policy, "x", TICK, skip_quiet_ticks=False)
    assert skipped.metrics["timed_out"] > 0
    drop = "wall_seconds"
    assert {k: v for k, v in skipped.metrics.items() if k != drop} == {
        k: v for k, v in every.metrics.items() if k != drop
    }
    assert skipped.timeline == every.timeline


# -- the cluster by hand ------------------------------------------------------------------
def cluster(arrivals: list[float], at_zero: AtZero, startup: float = 60.0) -> Cluster:
    n = len(arrivals)
    return Cluster(np.asarray(arrivals, float), np.full(n, 10.0), np.ones(n, dtype=np.int64),
                   2, startup, at_zero=at_zero)  # fmt: skip


def test_held_requests_are_dispatched_in_arrival_order_once_a_replica_is_ready():
    c = cluster([1.0, 2.0, 3.0], AtZero.held(10, 300.0))
    c.advance(3.0)
    assert c.signals(3.0)["held"] == 3.0 and c.signals(3.0)["queue"] == 0.0
    assert c.signals(3.0)["demand"] == 3.0 and c.signals(3.0)["concurrency"] == 3.0
    c.scale(1, 3.0)  # a cold start at 3, ready at 63
    assert c.cold_start_times == [3.0]
    c.advance(63.0)
    assert c.start[:2] == [63.0, 63.0] and math.isnan(c.start[2])  # 2 slots
    assert c.signals(63.0)["held"] == 0.0 and c.signals(63.0)["queue"] == 1.0
    c.advance(73.0)
    assert c.start[2] == 73.0


def test_requests_at_zero_without_an_activator_are_lost_and_the_rest_queue():
    c = cluster([1.0, 2.0, 70.0], LOST_AT_ZERO)
    c.advance(2.0)
    c.scale(1, 2.0)
    c.advance(100.0)
    assert c.lost == 2 and list(c.fate[:2]) == [2, 2]
    assert math.isnan(c.start[0]) and c.start[2] == 70.0
    assert c.idle()


def test_the_hold_timeout_and_the_queue_bound():
    c = cluster([0.0, 1.0, 2.0, 3.0, 40.0], AtZero.held(2, 30.0))
    c.advance(3.0)
    assert (len(c.holding), c.rejected) == (2, 2)  # 2 and 3 found it full
    c.advance(31.0)
    assert c.timed_out == 1 and list(c.holding) == [1]  # 0 was held 31 s > 30 s
    c.advance(40.0)  # 1 timed out at 31+, so 4 finds room
    assert c.timed_out == 2 and list(c.holding) == [4]
    assert c.quiet(69.0, ()) and not c.quiet(71.0, ())  # 4 times out after 70


def test_a_request_held_past_its_timeout_is_not_served_by_a_replica_ready_later():
    c = cluster([1.0, 70.0], AtZero.held(10, 30.0), startup=59.0)
    c.scale(1, 0.0)  # ready at 59
    c.advance(100.0)  # one step: 0's timeout at 31 comes before the replica
    assert c.timed_out == 1 and math.isnan(c.start[0])
    assert c.start[1] == 70.0


def test_a_cold_start_is_a_replica_requested_while_the_pool_had_none():
    c = cluster([], AtZero.held(10, 300.0))
    c.add(1, 0.0, ready=True)  # the warm start is not one
    c.scale(0, 10.0)
    c.scale(1, 20.0)  # one
    c.scale(3, 25.0)  # more while one starts: not another
    c.scale(0, 30.0)
    c.scale(2, 40.0)  # one
    c.advance(200.0)
    c.scale(0, 200.0)
    c.scale(1, 300.0)  # one
    assert c.cold_start_times == [20.0, 40.0, 300.0]


def simulate_cli(tmp_path: Any, activator: str | None, compare: str) -> tuple[Any, dict]:
    text = POOL
    if activator is not None:
        text = text.replace("    simulation:", f"    activator: {activator}\n    simulation:")
    trace = tmp_path / "sparse.csv"
    trace.write_text("timestamp,service_seconds\n" + "".join(f"{a},10\n" for a in SPARSE))
    config = tmp_path / "pool.yaml"
    config.write_text(text)
    out = tmp_path / "r.json"
    result = CliRunner().invoke(cli, ["simulate", str(config), "--trace", str(trace),
                                      "--compare", compare, "--json", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    return result, {r["policy"]: r for r in json.loads(out.read_text())["results"]}


def test_the_cli_prints_and_writes_the_figures_at_zero(tmp_path):
    result, rows = simulate_cli(tmp_path, ACTIVATOR, "kpa,oracle")
    assert "at zero ready replicas" in result.output and "wait p50/p99/max" in result.output
    assert rows["queue-depth"]["cold_starts"] == 3 and rows["oracle"]["cold_starts"] == 3
    assert rows["queue-depth"]["cold_start_requests"] == rows["kpa"]["cold_start_requests"] == 4
    assert all(set(AT_ZERO_KEYS) <= set(r) for r in rows.values())


def test_the_cli_shows_requests_lost_at_zero_even_with_no_cold_start(tmp_path):
    result, rows = simulate_cli(tmp_path, None, "none")
    assert rows["queue-depth"]["lost_at_zero"] == 4 and rows["queue-depth"]["cold_starts"] == 0
    assert "at zero ready replicas" in result.output


def test_the_report_marks_cold_starts_and_shows_the_figures(tmp_path):
    result = run(SPARSE, ACTIVATOR)
    report = SimulationReport("sparse", "p", TICK, 1.0, 0.01, [result])
    page = write_report(report, tmp_path)
    text = page.read_text()
    assert "At zero ready replicas" in text and 'data-key="cold_starts">cold starts</th>' in text
    assert (tmp_path / "ready.png").stat().st_size > 0
