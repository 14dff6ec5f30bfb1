"""How a replay begins (`simulation.start`, `simulate --start`): warm at the first window's
peak need, the default, or cold at the pool's `min`, the rest after the startup delay.

A hand-built burst whose answers are known: 40 requests in the first 10 s, each holding a
slot for 101 s (1,000 prompt tokens at 1,000/s, 1,000 generated at 10/s), on replicas of
8 slots: the first window needs 5 replicas. A replica starts in 60 s; the controller
ticks every 5 s; an activator holds the requests that find no replica ready.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from autoscaler.cli import cli
from autoscaler.config import load_config
from autoscaler.sim.engine import initial_replicas, run_policy, workload
from autoscaler.sim.oracle import oracle
from autoscaler.sim.run import load_trace, oracle_metrics, simulate
from autoscaler.sim.sweep import TraceSpec, grid, run_variant

STARTUP = 60.0
TICK = 5.0
CONFIG = """installation: {id: test}
controller: {interval: 5s}
pools:
  - name: p
    target: {kind: simulated}
    min: MIN
    max: 20
    startup: 60s
    activator: {backend: {urls: ["http://127.0.0.1:8000"]}}
    policy: {type: queue-depth, signal: concurrency, target_per_replica: 8}
    simulation:
      service: {type: llm, slots_per_replica: 8, prefill_tokens_per_s: 1000,
                decode_tokens_per_s: 10}
      cost_per_hour: 1.0
      wait_slo: 1s
      trace: {path: burst.csv}
"""


def config_file(tmp_path: Path, minimum: int = 0, start: str | None = None) -> Path:
    rows = "".join(f"{i * 0.25},1000,1000\n" for i in range(40))
    (tmp_path / "burst.csv").write_text("timestamp,input_tokens,output_tokens\n" + rows)
    text = CONFIG.replace("MIN", str(minimum))
    if start is not None:
        text = text.replace("      wait_slo: 1s", f"      wait_slo: 1s\n      start: {start}")
    path = tmp_path / f"pool-{minimum}-{start}.yaml"
    path.write_text(text)
    return path


def replay(tmp_path: Path, minimum: int, start: str | None) -> Any:
    config = load_config(config_file(tmp_path, minimum, start))
    pool = config.pools[0]
    work = workload(pool, load_trace(pool, None, None, None, None, config))
    return pool, work, run_policy(pool, work, pool.policy, "qd", TICK)


def test_a_min_zero_pool_starts_warm_at_the_first_windows_peak_by_default(tmp_path):
    pool, work, run = replay(tmp_path, 0, None)
    assert work.start == "warm"
    assert initial_replicas(pool, pool.policy, work) == 5  # 40 requests / 8 slots
    m = run.metrics
    assert m["cold_starts"] == 0 and run.cold_start_times == []
    assert m["wait_max_s"] == 0.0 and m["slo_attainment"] == 1.0


def test_a_cold_start_begins_at_min_and_counts_the_cold_start_at_t0(tmp_path):
    pool, work, run = replay(tmp_path, 0, "cold")
    assert work.start == "cold"
    assert initial_replicas(pool, pool.policy, work) == 0
    m = run.metrics
    assert run.cold_start_times[0] == 0.0  # the first tick sees held requests, no replica
    assert m["cold_starts"] == 1
    # the request at 0 waited the whole startup, those the first replica could not take
    # waited for the ones requested a tick later; none met the 1 s SLO, none was lost
    assert STARTUP <= m["wait_max_s"] <= STARTUP + TICK
    assert m["wait_p50_s"] >= STARTUP - 10.0
    assert m["cold_start_requests"] == 40 and m["slo_attainment"] == 0.0
    assert m["lost_at_zero"] == m["timed_out"] == m["unfinished"] == 0


def test_a_cold_start_with_a_floor_serves_what_the_floor_holds_at_once(tmp_path):
    _, _, run = replay(tmp_path, 2, "cold")
    m = run.metrics
    assert m["cold_starts"] == 0  # two replicas were ready at t=0
    assert m["slo_attainment"] == pytest.approx(16 / 40)  # the 16 slots they have
    assert m["wait_max_s"] >= STARTUP - 10.0  # the rest waited for the scale-up


def test_the_oracle_pays_the_startup_of_a_cold_start_too(tmp_path):
    _, warm, _ = replay(tmp_path, 0, None)
    _, cold, _ = replay(tmp_path, 0, "cold")
    w, c = oracle_metrics(warm), oracle_metrics(cold)
    assert w["cold_starts"] == 0 and c["cold_starts"] == 1
    # the first replica, warm at the first arrival, pays its startup (60 s) when cold
    assert c["gpu_hours"] - w["gpu_hours"] == pytest.approx(STARTUP / 3600, abs=1e-3)


def test_the_baselines_start_the_same_way_as_the_pools_policy(tmp_path):
    config = load_config(config_file(tmp_path, 0))
    report = simulate(config, compare=["keda", "kpa"], timeline=False, start="cold")
    assert report.start["mode"] == "cold" and report.start["replicas"] == 0
    for run in report.runs:
        assert run.metrics["cold_starts"] >= 1, run.metrics["policy"]


def test_the_hpa_baseline_starts_cold_at_its_own_floor(tmp_path):
    config = load_config(config_file(tmp_path, 0))
    report = simulate(config, compare=["hpa"], timeline=False, start="cold")
    hpa = report.runs[1].metrics
    # an HPA never holds fewer than its minReplicas (1): the pool would never be at 0
    assert hpa["policy"] == "hpa" and hpa["cold_starts"] == 0 and hpa["gpu_hours"] > 0


def test_sweeping_min_gives_the_same_rows_warm_and_different_rows_cold(tmp_path):
    rows = {}
    for start in ("warm", "cold"):
        config = load_config(config_file(tmp_path, 0, start))
        pool = config.pools[0]
        spec = TraceSpec(config.resolve_path("burst.csv"), None, 1.0, 1, pool.name)
        found = [run_variant(v, spec, TICK) for v in grid(pool, [("min", [0, 2])])]
        rows[start] = [(r["gpu_hours"], r["slo_attainment"], r["wait_max_s"]) for r in found]
    warm0, warm2 = rows["warm"]
    cold0, cold2 = rows["cold"]
    assert warm0 == warm2  # both begin at the first window's peak, 5 replicas
    assert cold0 != cold2
    assert cold2[1] > cold0[1]  # two ready replicas serve 16 requests at once


def test_simulate_says_how_it_started_on_stderr_and_in_the_json(tmp_path):
    path = str(config_file(tmp_path, 0))
    warm = CliRunner().invoke(cli, ["simulate", path, "--compare", "none"])
    assert warm.exit_code == 0, warm.output
    assert "start: warm at 5 replica(s)" in warm.stderr and "--start cold" in warm.stderr
    assert "start:" not in warm.stdout  # the table stays on standard output alone
    cold = CliRunner().invoke(
        cli, ["simulate", path, "--compare", "oracle", "--start", "cold", "--json", "-"]
    )
    assert cold.exit_code == 0, cold.output
    data = json.loads(cold.stdout)  # the JSON says how it began
    note = data["start"]["note"]
    assert data["start"] == {"mode": "cold", "replicas": 0, "note": note}
    assert note.startswith("start: cold, 0 replica(s) ready at t=0")
    assert "60s startup delay" in note
    assert [r["cold_starts"] for r in data["results"]] == [1, 1]  # the policy and the oracle
    warm_json = CliRunner().invoke(cli, ["simulate", path, "--compare", "none", "--json", "-"])
    assert json.loads(warm_json.stdout)["start"]["mode"] == "warm"


def test_the_start_option_refuses_an_unknown_mode(tmp_path):
    result = CliRunner().invoke(
        cli, ["simulate", str(config_file(tmp_path, 0)), "--start", "tepid"]
    )
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "'tepid' is not one of 'warm', 'cold'" in result.output


def test_the_oracle_can_start_with_the_whole_first_windows_peak_warm(tmp_path):
    # What the policies' warm start holds (5 replicas over the first window); simulate's
    # warm oracle still warms only what the first arrival needs (the goldens hold it).
    _, work, _ = replay(tmp_path, 0, None)
    args = (work.arrivals, work.durations, work.slots_held, work.slots_per_replica, STARTUP)
    first_arrival = oracle(*args)
    whole_window = oracle(*args, warm_replicas=5, warm_until=STARTUP + 60.0)
    assert first_arrival.cold_starts == whole_window.cold_starts == 0
    # the four replicas needed within the burst's first 10 s no longer pay their startup
    saved = first_arrival.replica_seconds - whole_window.replica_seconds
    assert saved == pytest.approx(4 * STARTUP)


def test_the_start_option_overrides_the_configured_start(tmp_path):
    config = load_config(config_file(tmp_path, 0, "cold"))
    assert simulate(config, compare=[], timeline=False).start["mode"] == "cold"
    warm = simulate(config, compare=[], timeline=False, start="warm")
    assert warm.start["mode"] == "warm" and warm.start["replicas"] == 5
    assert warm.runs[0].metrics["cold_starts"] == 0


def test_sweep_says_a_warm_start_hides_min_and_its_start_option_compares_it(tmp_path):
    path = str(config_file(tmp_path, 0))
    rows = {}
    for start in ("warm", "cold"):
        args = ["sweep", path, "--param", "min=0,2", "--start", start, "--workers", "1"]
        result = CliRunner().invoke(cli, [*args, "-o", "json"])
        assert result.exit_code == 0, result.output
        assert ("variants of `min` look alike" in result.stderr) == (start == "warm")
        found = json.loads(result.stdout)["variants"]
        rows[start] = sorted((r["gpu_hours"], r["slo_attainment"]) for r in found)
    assert rows["warm"][0] == rows["warm"][1]
    assert rows["cold"][0] != rows["cold"][1]
