"""Fixed keep-alive baselines (issue 16): the pool's own policy, scaled to zero a fixed time
after its last work, as KEDA (300 s), Knative (60 s stable window + 30 s grace) and FaaS
platforms (10 and 20 min) run it.

The hand-built trace's answers are known: the queueing policy asks for zero once nothing
has arrived for its 60 s rate window and nothing runs; a fixed keep-alive of K then keeps
the last replica K more seconds. With K = 300 s a replica is still there 200 s after a
request (60 + 300 > 200) and gone 400 s after one (60 + 300 + a 5 s tick < 400).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from autoscaler.cli import cli
from autoscaler.config import parse_config
from autoscaler.sim.baselines import (
    KEEPALIVE,
    KEEPALIVE_GRID,
    fixed_keepalive,
    keepalive_seconds,
    without_learned_keep_alive,
)
from autoscaler.sim.engine import SimulationError, Workload, run_policy
from autoscaler.sim.run import COMPARE_CHOICES, expand_compare, keepalive_pool
from autoscaler.sim.sweep import keepalive_variants

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
    policy:
      type: composite
      policies:
        - {type: queueing, service_seconds: 10, slots_per_replica: 8, wait_slo: 1s}
        - {type: queue-depth, signal: held, target_per_replica: 8}
    behavior:
      scale_down:
        stabilization_window: 5m
        rate_limits: [{type: pods, value: 2, period: 60s}]
      scale_to_zero_after: 15m
    simulation:
      service: {type: llm, slots_per_replica: 8, prefill_tokens_per_s: 1000,
                decode_tokens_per_s: 10}
      cost_per_hour: 1.0
      wait_slo: 1s
"""


def pool_with(activator: str | None = ACTIVATOR, text: str = POOL) -> Any:
    if activator is not None:
        text = text.replace("    simulation:", f"    activator: {activator}\n    simulation:")
    return parse_config(text, env={}).pools[0]


def work(arrivals: list[float], duration: float = 10.0) -> Workload:
    a = np.asarray(arrivals, float)
    return Workload(a, np.full(len(a), duration), np.ones(len(a), dtype=np.int64), 8, 1, 1.0,
                    STARTUP, 1.0, 0.0, False, "gaps")  # fmt: skip


def run_keepalive(seconds: float, arrivals: list[float], activator: str | None = ACTIVATOR):
    pool = keepalive_pool(pool_with(activator), seconds)
    return run_policy(pool, work(arrivals), pool.policy, f"keepalive {seconds:g}s", TICK)


# -- the baselines' settings -----------------------------------------------------------
def test_the_named_baselines_are_the_platforms_defaults():
    assert KEEPALIVE == {
        "keepalive-knative": 90.0,  # 60 s stable window + 30 s scale-to-zero grace
        "keepalive-keda": 300.0,  # cooldownPeriod
        "keepalive-faas-10m": 600.0,
        "keepalive-faas-20m": 1200.0,
    }
    assert set(KEEPALIVE.values()) <= set(KEEPALIVE_GRID)
    assert min(KEEPALIVE_GRID) == 30.0 and max(KEEPALIVE_GRID) == 1800.0


def test_names_and_durations():
    assert keepalive_seconds("keepalive-keda") == 300.0
    assert keepalive_seconds("keepalive-45s") == 45.0
    assert keepalive_seconds("keepalive-2m") == 120.0
    assert keepalive_seconds("keepalive-90") == 90.0
    assert keepalive_seconds("keepalive-soon") is None
    assert keepalive_seconds("keda") is None


@pytest.mark.parametrize("name", list(KEEPALIVE))
def test_a_baseline_is_the_pools_policy_with_only_its_keep_alive_changed(name):
    pool = pool_with()
    seconds = KEEPALIVE[name]
    fixed = keepalive_pool(pool, seconds)
    assert fixed.policy == pool.policy
    assert fixed.behavior.scale_to_zero_after == seconds
    # the planner removes the last replica only after the scale-down window too: capped
    assert fixed.behavior.scale_down.stabilization_window == min(300.0, seconds)
    assert fixed.behavior.scale_down.rate_limits == pool.behavior.scale_down.rate_limits
    assert fixed.behavior.scale_up == pool.behavior.scale_up
    assert (fixed.min, fixed.max, fixed.startup) == (pool.min, pool.max, pool.startup)
    assert fixed.activator == pool.activator and fixed.simulation == pool.simulation


def test_a_pool_without_behavior_gets_the_default_one_with_the_keep_alive():
    pool = pool_with(text=POOL.replace(
        """    behavior:
      scale_down:
        stabilization_window: 5m
        rate_limits: [{type: pods, value: 2, period: 60s}]
      scale_to_zero_after: 15m
""", ""))  # fmt: skip
    assert pool.behavior is None
    data = fixed_keepalive(pool, 90.0)
    assert data["behavior"]["scale_to_zero_after"] == 90.0
    assert data["behavior"]["scale_down"]["stabilization_window"] == 90.0  # default 300


def test_a_learned_keep_alive_section_is_removed_wherever_it_is():
    policy = {
        "type": "composite",
        "policies": [
            {"type": "queueing", "wait_slo": 2.0, "keep_alive": {"replica_cost_per_hour": 1}},
            {"type": "queue-depth", "signal": "held", "target_per_replica": 8},
        ],
    }
    out = without_learned_keep_alive(policy)
    assert out == {
        "type": "composite",
        "policies": [
            {"type": "queueing", "wait_slo": 2.0},
            {"type": "queue-depth", "signal": "held", "target_per_replica": 8},
        ],
    }
    assert "keep_alive" in policy["policies"][0]  # the input is left alone
    assert without_learned_keep_alive({"type": "queueing", "keep_alive": {}}) == {
        "type": "queueing"
    }


def test_a_policy_with_its_own_behavior_cannot_get_a_keep_alive():
    text = POOL.replace(
        """    policy:
      type: composite
      policies:
        - {type: queueing, service_seconds: 10, slots_per_replica: 8, wait_slo: 1s}
        - {type: queue-depth, signal: held, target_per_replica: 8}
    behavior:
      scale_down:
        stabilization_window: 5m
        rate_limits: [{type: pods, value: 2, period: 60s}]
      scale_to_zero_after: 15m
""",
        "    policy: {type: keda, triggers: [{signal: demand, target: 8}]}\n",
    )
    pool = pool_with(text=text)
    with pytest.raises(SimulationError, match="brings its own behavior"):
        keepalive_pool(pool, 300.0)


def test_compare_names_expand_and_unknown_ones_are_refused():
    assert expand_compare(["hpa", "keepalive"]) == ["hpa", *KEEPALIVE]
    assert expand_compare(["keepalive-keda", "keepalive-45s", "keepalive-keda"]) == [
        "keepalive-keda", "keepalive-45s"]  # fmt: skip
    assert COMPARE_CHOICES == ("hpa", "keda", "kpa", "oracle")  # the default is unchanged
    with pytest.raises(SimulationError, match="unknown keepalive-never"):
        expand_compare(["keepalive-never"])


def test_the_sweep_family_is_the_grid_at_the_pools_floor():
    pool = pool_with()
    variants = keepalive_variants(pool)
    assert [v.label for v in variants] == [f"keepalive {s:g}s" for s in KEEPALIVE_GRID]
    assert {v.family for v in variants} == {"keepalive"}
    for v, s in zip(variants, KEEPALIVE_GRID, strict=True):
        assert v.pool["behavior"]["scale_to_zero_after"] == s
        assert v.pool["min"] == 0 and v.pool["target"] == {"kind": "simulated"}


# -- through the controller ------------------------------------------------------------
GAPS = [0.0, 200.0, 600.0]
"""A request, one 200 s later, and one 400 s after that."""


def test_300s_keeps_a_replica_through_a_200s_gap_and_loses_it_over_a_400s_gap():
    result = run_keepalive(300.0, GAPS)
    m = result.metrics
    assert m["cold_starts"] == 1
    (began,) = result.cold_start_times
    assert 600.0 <= began <= 600.0 + TICK  # the request after the 400 s gap woke it
    assert m["cold_start_requests"] == 1 and m["cold_start_wait_max_s"] >= STARTUP - TICK
    assert m["slo_attainment"] == pytest.approx(2 / 3, abs=1e-4)  # 0 and 200 found a warm replica


def test_without_an_activator_the_request_after_the_long_gap_is_lost():
    m = run_keepalive(300.0, GAPS, activator=None).metrics
    assert m["at_zero"] == "lost" and m["lost_at_zero"] == 1
    assert m["slo_attainment"] == pytest.approx(2 / 3, abs=1e-4)


def test_a_shorter_keep_alive_loses_the_replica_in_both_gaps_a_longer_one_in_neither():
    short = run_keepalive(90.0, GAPS).metrics
    assert short["cold_starts"] == 2 and short["slo_attainment"] == pytest.approx(1 / 3, abs=1e-4)
    long = run_keepalive(600.0, GAPS).metrics
    assert long["cold_starts"] == 0 and long["slo_attainment"] == 1.0
    keda = run_keepalive(300.0, GAPS).metrics
    # the short one saves the idle replica (a run ends with its last request: the last
    # keep-alive is not billed, so the long one is cheaper than KEDA's with a cold start)
    assert short["gpu_hours"] < keda["gpu_hours"]


def test_the_replica_goes_the_keep_alive_after_the_policy_first_asks_for_zero():
    result = run_keepalive(300.0, [0.0, 1000.0])
    line = result.timeline
    asks_zero = next(t for t, r in zip(line["t"], line["reason"], strict=True)
                     if "-> 0" in r.split(";")[0])  # fmt: skip
    gone = next(t for t, d in zip(line["t"], line["desired"], strict=True) if d == 0)
    assert 60.0 <= asks_zero <= 60.0 + 2 * TICK  # the rate window empties
    assert gone - asks_zero == pytest.approx(300.0, abs=TICK)


# -- on the command line ---------------------------------------------------------------
def files(tmp_path: Path) -> tuple[Path, Path]:
    """The pool (with an activator) and the GAPS trace as files, for the command line."""
    trace = tmp_path / "gaps.csv"
    trace.write_text("timestamp,service_seconds\n" + "".join(f"{t},10\n" for t in GAPS))
    config = tmp_path / "pool.yaml"
    activator = f"    activator: {ACTIVATOR}\n    simulation:"
    config.write_text(POOL.replace("    simulation:", activator))
    return config, trace


def test_simulate_compares_the_named_keep_alives(tmp_path):
    config, trace = files(tmp_path)
    args = [
        "simulate",
        str(config),
        "--trace",
        str(trace),
        "--compare",
        "keepalive-keda,keepalive-knative,keepalive-faas-10m,keepalive-faas-20m,oracle",
    ]
    result = CliRunner().invoke(cli, [*args, "--json", "-"])
    assert result.exit_code == 0, result.output
    rows = {r["policy"]: r for r in json.loads(result.stdout)["results"]}
    assert list(rows) == [
        "composite",
        "keepalive-keda",
        "keepalive-knative",
        "keepalive-faas-10m",
        "keepalive-faas-20m",
        "oracle",
    ]
    assert rows["keepalive-keda"]["cold_starts"] == 1
    assert rows["keepalive-knative"]["cold_starts"] == 2
    assert rows["keepalive-faas-10m"]["cold_starts"] == 0
    assert rows["keepalive-faas-20m"]["cold_starts"] == 0
    # the pool's own 15 min keep-alive: the same run as the 20 min one on these gaps
    assert rows["composite"]["cold_starts"] == 0
    table = CliRunner().invoke(cli, args)
    assert table.exit_code == 0, table.output
    for name in ("keepalive-keda", "keepalive-knative", "oracle"):
        assert name in table.stdout


def test_simulate_refuses_an_unknown_keep_alive():
    llm = str(Path(__file__).resolve().parents[2] / "examples" / "llm-serving.yaml")
    result = CliRunner().invoke(cli, ["simulate", llm, "--compare", "keepalive-forever"])
    assert result.exit_code == 2 and "unknown keepalive-forever" in result.output


def test_sweep_keepalive_tunes_the_fixed_keep_alive_beside_the_pool_as_configured(tmp_path):
    config, trace = files(tmp_path)
    result = CliRunner().invoke(
        cli,
        ["sweep", str(config), "--keepalive", "--trace", str(trace), "--workers", "1",
         "--json", "-"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    labels = [v["variant"] for v in data["variants"]]
    assert labels == ["as configured", *(f"keepalive {s:g}s" for s in KEEPALIVE_GRID)]
    starts = {v["variant"]: v["cold_starts"] for v in data["variants"]}
    assert starts["keepalive 30s"] == 2 and starts["keepalive 300s"] == 1
    assert starts["keepalive 600s"] == 0
    assert set(data["best"]) == {"composite", "keepalive"}
    # the cheapest fixed keep-alive that serves all three within the SLO
    assert data["best"]["keepalive"]["variant"] == "keepalive 600s"
