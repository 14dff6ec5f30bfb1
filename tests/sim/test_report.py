"""The `--report` pieces without a browser: units, binning, the oracle's replicas timeline,
where the worst wait happened, and the files the report writes. What the page draws is
checked in a real Chromium by test_report_browser.py."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

from autoscaler.config import load_config
from autoscaler.sim.engine import workload
from autoscaler.sim.report import write_report
from autoscaler.sim.report_units import DAYS, HOURS, MINUTES, binned, duration, time_unit
from autoscaler.sim.run import (
    load_trace,
    oracle_metrics,
    oracle_replicas,
    pick_pool,
    simulate,
    with_start,
)

ROOT = Path(__file__).resolve().parents[2]
LLM = ROOT / "examples" / "llm-serving.yaml"
BATCH = ROOT / "examples" / "gpu-batch.yaml"


@pytest.mark.parametrize(
    ("span", "unit"),
    [(20 * 60, MINUTES), (3 * 3600, MINUTES), (20 * 3600, HOURS), (34 * 86400, DAYS)],
)
def test_the_time_axis_unit_follows_the_span(span, unit):
    assert time_unit(span) == unit


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0 s"), (2.5, "2.5 s"), (93.4, "93 s"), (269, "4.5 min"), (21818, "6.1 h"),
     (3 * 86400, "3.0 days"), (math.inf, "n/a")],
)  # fmt: skip
def test_waits_are_written_in_the_unit_that_fits(seconds, text):
    assert duration(seconds) == text


def test_binning_keeps_each_bins_peak_or_mean_and_leaves_gaps():
    t = list(range(10))
    values = [0, 5, 1, None, None, None, 2, 0, 0, 3]
    x, peak = binned(t, values, 3.0, "max")
    assert x.tolist() == [0, 3, 6, 9]
    assert np.array_equal(peak, [5, np.nan, 2, 3], equal_nan=True)
    _, mean = binned(t, values, 3.0, "mean")
    assert np.allclose(mean, [2, np.nan, 2 / 3, 3], equal_nan=True)
    assert np.array_equal(binned(t, values, 0.0)[1], np.asarray(values, dtype=float),
                          equal_nan=True)  # fmt: skip


@pytest.mark.parametrize("start", ["warm", "cold"])
def test_the_oracle_timeline_is_the_schedule_the_oracle_bills(start):
    config = load_config(LLM)
    pool = with_start(pick_pool(config, None), start)
    work = workload(pool, load_trace(pool, None, None, None, None, config))
    schedule = oracle_replicas(work)
    metrics = oracle_metrics(work)
    gpu_hours = schedule.replica_seconds() * work.gpus_per_replica / 3600.0
    assert gpu_hours == pytest.approx(metrics["gpu_hours"], abs=1e-3)
    assert len(schedule.cold_start_times) == metrics["cold_starts"]
    assert 2 * len(schedule.ready) == metrics["scale_actions"]
    line = schedule.timeline(15.0)
    assert line["t"][:3] == [0.0, 15.0, 30.0]
    assert all(d >= r >= 0 for d, r in zip(line["desired"], line["ready"], strict=True))
    assert max(line["ready"]) > 0 and line["ready"][-1] == 0


def test_simulate_gives_the_oracle_a_replicas_timeline_only_when_asked():
    config = load_config(LLM)
    report = simulate(config, compare=("oracle",))
    assert set(report.oracle_timeline) == {"t", "desired", "ready"}
    assert report.oracle_timeline["t"][1] == report.tick_seconds
    assert simulate(config, compare=("oracle",), timeline=False).oracle_timeline == {}


def test_the_worst_wait_is_placed_at_the_arrival_of_the_request_that_waited(tmp_path):
    """One 8-GPU node at most: a job at t=100 waits for the one started at t=0 to end at
    t=1000, so it waits 900 s, the longest."""
    trace = tmp_path / "two.csv"
    trace.write_text("timestamp,service_seconds,num_gpu\n0,1000,8\n100,10,8\n")
    config = load_config(BATCH)
    pools = [p.model_copy(update={"max": 1}) for p in config.pools]
    config = config.model_copy(update={"pools": pools})
    report = simulate(config, trace_path=str(trace), trace_format="csv", compare=())
    (run,) = report.runs
    assert 900 <= run.metrics["wait_max_s"] <= 900 + report.tick_seconds
    assert run.worst_wait_at == 100.0


def test_the_report_writes_timelines_plots_and_results(tmp_path):
    report = simulate(load_config(LLM), compare=("hpa", "oracle"))
    page = write_report(report, tmp_path)
    names = {p.name for p in tmp_path.iterdir()}
    for plot in ("arrivals", "ready", "queue", "gpu_utilization"):
        assert {f"{plot}.svg", f"{plot}.png"} <= names
    assert {"timeline-composite.csv", "timeline-hpa.csv", "timeline-oracle.csv"} <= names
    with (tmp_path / "timeline-oracle.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["t", "desired", "ready"] and len(rows) > 10
    results = json.loads((tmp_path / "results.json").read_text())
    assert [r["policy"] for r in results["results"]] == ["composite", "hpa", "oracle"]
    text = page.read_text()
    assert text.count("<svg") == 4 and 'id="panel-ready-oracle"' in text
    assert 'data-key="wait_max_s">max wait</th>' in text and "<th>wait_max_s</th>" not in text
    assert "time (minutes)" in text  # a 20-minute sample


def test_a_report_of_runs_without_timelines_still_has_its_tables(tmp_path):
    report = simulate(load_config(LLM), compare=("hpa",), timeline=False)
    text = write_report(report, tmp_path).read_text()
    assert "<svg" not in text and 'id="results"' in text and "GPU-hours" in text
