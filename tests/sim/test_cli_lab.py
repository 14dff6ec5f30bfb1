"""`autoscaler simulate` and `autoscaler sweep` as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from autoscaler.cli import cli

ROOT = Path(__file__).resolve().parents[2]
LLM = str(ROOT / "examples" / "llm-serving.yaml")


def test_simulate_prints_the_documented_json():
    result = CliRunner().invoke(cli, ["simulate", LLM, "-o", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["trace"] == "azure_llm_conv_sample" and data["pool"] == "llm-chat"
    assert [r["policy"] for r in data["results"]] == ["composite", "hpa", "keda", "kpa",
                                                       "oracle"]
    for key in ("gpu_hours", "cost", "efficiency", "wait_p50_s", "wait_p99_s",
                "slo_attainment", "scale_actions"):
        assert all(key in r for r in data["results"])
    assert 0 < data["lower_bound_gpu_hours"] <= min(r["gpu_hours"] for r in data["results"])


def test_simulate_writes_an_html_report_with_plots_and_timelines(tmp_path):
    out = tmp_path / "report"
    result = CliRunner().invoke(cli, ["simulate", LLM, "--compare", "hpa", "--report",
                                      str(out)])
    assert result.exit_code == 0, result.output
    names = {p.name for p in out.iterdir()}
    assert {"index.html", "arrivals.png", "queue.png", "ready.png", "gpu_utilization.png",
            "timeline-composite.csv", "timeline-hpa.csv", "results.json"} <= names
    header, first = (out / "timeline-composite.csv").read_text().splitlines()[:2]
    assert header.split(",")[-1] == "reason" and first
    assert "timeline-hpa.csv" in (out / "index.html").read_text()


def test_simulate_reports_a_bad_trace_with_its_line_and_exit_2(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp,service_seconds\n1,2\n0,2\n")
    result = CliRunner().invoke(cli, ["simulate", LLM, "--trace", str(bad)])
    assert result.exit_code == 2
    assert "line 3" in result.output and "Traceback" not in result.output


def test_simulate_rejects_an_unknown_baseline():
    result = CliRunner().invoke(cli, ["simulate", LLM, "--compare", "hpa,magic"])
    assert result.exit_code == 2 and "unknown magic" in result.output


def test_sweep_runs_the_grid_on_two_workers_and_prints_the_front(tmp_path):
    out = tmp_path / "sweep.json"
    result = CliRunner().invoke(cli, [
        "sweep", LLM, "--workers", "2", "--json", str(out),
        "--param", "policy.policies.0.max_utilization=0.8,0.9",
        "--param", "behavior.scale_down.stabilization_window=60,300",
    ])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert len(data["variants"]) == 4
    assert data["pareto"] and set(data["pareto"]) <= {v["variant"] for v in data["variants"]}
    assert "Pareto front" in result.stdout


def test_sweep_tune_names_the_cheapest_setting_per_family():
    result = CliRunner().invoke(cli, ["sweep", LLM, "--tune", "--workers", "1", "--json", "-"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data["best"]) == {"composite", "hpa", "keda", "kpa"}


def test_sweep_tune_tries_every_family_at_each_warm_floor():
    result = CliRunner().invoke(cli, ["sweep", LLM, "--tune", "--floors", "0,2", "--workers",
                                      "1", "--json", "-"])  # fmt: skip
    assert result.exit_code == 0, result.output
    labels = [v["variant"] for v in json.loads(result.stdout)["variants"]]
    for family in ("hpa", "keda", "kpa"):
        ours = [x for x in labels if x.startswith(f"{family} ")]
        assert len([x for x in ours if x.endswith("min=2")]) == len(ours) // 2 > 0
    assert any(x.startswith("min=2, policy.") for x in labels)


def test_sweep_refuses_floors_outside_the_pool_bounds():
    result = CliRunner().invoke(cli, ["sweep", LLM, "--tune", "--floors", "0,99"])
    assert result.exit_code == 2
    assert "--floors '0,99': 99 is outside pool 'llm-chat''s bounds [0, 16]" in result.output


def test_sweep_refuses_a_path_that_does_not_exist():
    result = CliRunner().invoke(cli, ["sweep", LLM, "--param", "policy.nope.x=1,2"])
    assert result.exit_code == 2


def test_tuning_the_batch_example_tries_packing_fill_and_scale_down_windows():
    from autoscaler.config import load_config
    from autoscaler.sim.sweep import tuning_variants

    pool = load_config(ROOT / "examples" / "gpu-batch.yaml", env={}).pools[0]
    ours = [v.label for v in tuning_variants(pool, 8, True) if v.family == "packing"]
    assert len(ours) == 9  # fill 0.5, 0.75, 1.0 x windows 60, 180, 300 s
    assert "policy.fill=0.75, behavior.scale_down.stabilization_window=180" in ours


BAD_OPTIONS = [
    (["--tick", "-5"], "Invalid value for '--tick'"),
    (["--tick", "nan"], "Invalid value for '--tick'"),
    (["--speedup", "nan"], "Invalid value for '--speedup': must be a finite number above 0"),
    (["--speedup", "0"], "Invalid value for '--speedup': must be a finite number above 0"),
    (["--repeat", "0"], "Invalid value for '--repeat'"),
    (["--json", "/no/such/dir/x.json"], "folder '/no/such/dir' does not exist"),
]


@pytest.mark.parametrize("command", ["simulate", "sweep"])
@pytest.mark.parametrize(("args", "message"), BAD_OPTIONS)
def test_bad_options_exit_2_at_once_with_one_clear_line(command, args, message):
    extra = ["--param", "policy.max_utilization=0.8"] if command == "sweep" else []
    result = CliRunner().invoke(cli, [command, LLM, *extra, *args])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_simulate_refuses_a_binary_trace_naming_the_file(tmp_path):
    binary = tmp_path / "bin.csv"
    binary.write_bytes(bytes(range(128, 256)) * 3)
    result = CliRunner().invoke(cli, ["simulate", LLM, "--trace", str(binary)])
    assert result.exit_code == 2, result.output
    assert f"{binary}: line 1: not a UTF-8 CSV text file" in result.output


def test_a_report_folder_that_cannot_be_created_is_refused_before_simulating(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = CliRunner().invoke(cli, ["simulate", LLM, "--report", str(blocker / "report")])
    assert result.exit_code == 2, result.output
    assert "Invalid value for '--report': cannot create folder" in result.output


def test_sweep_tune_prints_a_compact_front_labelled_by_family():
    result = CliRunner().invoke(cli, ["sweep", LLM, "--tune", "--workers", "2"])
    assert result.exit_code == 0, result.output
    front = result.stdout.split("cheapest per family")[0]
    rows = [line for line in front.splitlines() if line.startswith("│")]
    # 240 variants, many landing on the same point: one row per distinct point.
    assert 0 < len(rows) <= 10, front
    numbers = [tuple(cell.strip() for cell in row.split("│")[3:]) for row in rows]
    assert len(set(numbers)) == len(numbers), front
    for row in rows:
        family = row.split("│")[1].strip()
        assert family and all(
            f in ("ours (composite)", "hpa", "keda", "kpa") for f in family.split(" / ")
        ), row
    assert "alike)" in front and "dominated point(s) not shown (--all lists them)" in result.stdout
    every = CliRunner().invoke(cli, ["sweep", LLM, "--tune", "--workers", "2", "--all"])
    listed = [line for line in every.stdout.split("cheapest")[0].splitlines() if "│" in line]
    assert len(listed) > len(rows)
