"""The `--report` page rendered in a real headless Chromium, with assertions on what it draws.

One month-long replay of a gpu-batch pool (a synthetic trace of a few hundred jobs with a
quiet spell that takes the pool to zero, and a burst that makes jobs wait) through the
pool's own policy, hpa, keda, kpa and the oracle, at a 5-minute tick so it stays quick;
one browser for the module. Chromium is Debian's (`scripts/install-chromium.sh`, run by
`make test`): playwright cannot download its own browsers here. Without it the tests fail
in CI (`CI=true`) and are skipped elsewhere, as the suite does for its servers.
"""

from __future__ import annotations

import csv
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import sync_playwright

from autoscaler.config import load_config
from autoscaler.sim.report import write_report
from autoscaler.sim.report_units import duration
from autoscaler.sim.run import SimulationReport, simulate
from tests.servers.fixtures import in_ci

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DAY = 86400.0
COMPARED = ("hpa", "keda", "kpa", "oracle")
HEADERS = {"GPU-hours", "cost ($)", "p50 wait", "p95 wait", "p99 wait", "max wait",
           "wait SLO met", "scale actions", "cold starts"}  # fmt: skip


def month_of_jobs(path: Path) -> None:
    """30 days: four jobs a day (1-8 GPUs, 2 h), none on days 10-13 (the pool empties and
    cold-starts after), and on day 20 forty 8-GPU jobs at once (more than 20 nodes hold)."""
    rows = []
    for day in range(30):
        if 10 <= day < 13:
            continue
        for k in range(4):
            rows.append((day * DAY + (2 + 5 * k) * 3600.0, 7200.0, 1 + (day + k) % 8))
        if day == 20:
            rows += [(day * DAY + 12 * 3600.0 + i, 3 * 3600.0, 8) for i in range(40)]
    rows.sort()
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["timestamp", "service_seconds", "num_gpu"])
        writer.writerows(rows)


@pytest.fixture(scope="module")
def month(tmp_path_factory: pytest.TempPathFactory) -> tuple[SimulationReport, Path]:
    tmp = tmp_path_factory.mktemp("report")
    trace = tmp / "month.csv"
    month_of_jobs(trace)
    report = simulate(
        load_config(ROOT / "examples" / "gpu-batch.yaml"),
        trace_path=str(trace),
        trace_format="csv",
        compare=COMPARED,
        tick_seconds=300.0,
    )
    return report, write_report(report, tmp / "out")


@pytest.fixture(scope="module")
def page(month: tuple[SimulationReport, Path]) -> Any:
    if not Path(CHROMIUM).exists():
        # The suite's rule for a missing prerequisite: a failure in CI, a skip elsewhere.
        missing = f"no Chromium at {CHROMIUM}: `make chromium` installs Debian's"
        if in_ci():
            pytest.fail(f"CI=true and {missing}", pytrace=False)
        pytest.skip(missing)
    _, index = month
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        view = browser.new_page()
        errors: list[str] = []
        view.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        view.on("pageerror", lambda e: errors.append(str(e)))
        view.on("requestfailed", lambda r: errors.append(f"failed: {r.url}"))
        view.goto(index.as_uri())
        view.wait_for_load_state("load")
        view.errors = errors
        yield view
        browser.close()


def ids(page: Any, prefix: str) -> set[str]:
    return set(page.eval_on_selector_all(f'[id^="{prefix}"]', "els => els.map(e => e.id)"))


def texts(page: Any, selector: str) -> list[str]:
    """Text of each match; SVG elements have no innerText, so their textContent."""
    return page.eval_on_selector_all(selector, "els => els.map(e => e.textContent.trim())")


def policies(report: SimulationReport) -> list[str]:
    return [r.policy for r in report.runs]


def test_the_replay_has_what_the_page_must_show(month):
    report, _ = month
    m = {r.policy: r.metrics for r in report.runs}
    assert policies(report) == ["packing", *COMPARED]
    assert m["packing"]["cold_starts"] >= 1 and max(r["wait_max_s"] for r in m.values()) > 600


def test_every_policy_and_the_oracle_get_a_replicas_panel_with_drawn_lines(page, month):
    report, _ = month
    assert ids(page, "panel-ready-") == {f"panel-ready-{p}" for p in policies(report)}
    for policy in policies(report):
        for key in ("ready", "desired"):
            path = page.locator(f"#line-ready-{policy}-{key} path").first
            assert len(path.get_attribute("d") or "") > 100, (policy, key)
        assert page.locator(f"#panel-ready-{policy}").is_visible()


def test_legend_entries_name_only_lines_that_are_drawn(page, month):
    report, _ = month
    legends = ids(page, "legend-")
    assert legends
    for legend in legends:
        line = "line-" + legend.removeprefix("legend-")
        assert page.locator(f"#{line} path, #{line} use").count() > 0, legend
    utilization = {i.split("-")[2] for i in ids(page, "panel-gpu_utilization-")}
    assert utilization == {"hpa"}  # the only policy here that reads GPU utilization
    notes = page.locator("#notes-gpu_utilization").inner_text()
    for policy in set(policies(report)) - utilization:
        assert not ids(page, f"legend-gpu_utilization-{policy}")
        assert f"{policy}: no GPU-utilization series" in notes
    assert "does not read gpu_utilization" in notes


def test_a_month_is_drawn_in_days(page):
    labels = texts(page, "svg text")
    assert labels.count("time (days)") == 4  # arrivals, replicas, queue, utilization
    assert not any("minutes" in t for t in labels)


def test_the_worst_wait_is_annotated_with_its_value(page, month):
    report, _ = month
    worst = max(report.runs, key=lambda r: r.metrics["wait_max_s"])
    text = " ".join(texts(page, f"#worst-wait-{worst.policy} text"))
    assert text == f"max wait {duration(worst.metrics['wait_max_s'])}"
    callout = page.locator("#worst-wait").inner_text()
    assert f"Longest wait: {duration(worst.metrics['wait_max_s'])}" in callout
    assert worst.policy in callout
    for run in report.runs:
        if run.policy != "oracle" and run.metrics["wait_max_s"] > 0:
            assert page.locator(f"#line-queue-{run.policy}-worst-wait").count() == 1


def test_the_tables_have_human_headers_and_waits_in_fitting_units(page, month):
    report, _ = month
    headers = set(page.locator("table th").all_inner_texts())
    assert headers >= HEADERS
    assert not {h for h in headers if re.fullmatch(r"[a-z0-9]+(_[a-z0-9]+)+", h)}
    worst = max(report.runs, key=lambda r: r.metrics["wait_max_s"])
    row = page.locator("#results tbody tr", has_text=worst.policy).first
    assert duration(worst.metrics["wait_max_s"]) in row.inner_text()


def test_cold_starts_are_marked_where_the_run_had_them(page, month):
    report, _ = month
    for run in report.runs:
        marker = page.locator(f"#line-ready-{run.policy}-cold-start")
        assert marker.count() == (1 if run.cold_start_times else 0), run.policy
        if run.cold_start_times:
            uses = marker.locator("use").count()
            assert uses == len(run.cold_start_times), run.policy


def test_the_page_loads_without_errors(page):
    assert page.errors == []
    assert page.title().startswith("simulation: training-jobs")
