"""`--report DIR`: an HTML page with plots, the results tables, CSV timelines and JSON.

It writes `index.html` (the plots inlined as SVG: report_plots.py; the page and tables:
report_html.py), each plot also as `<name>.svg` and `<name>.png`, `timeline-<policy>.csv`
for every policy replayed (every decision with its reason) and for the oracle (its
replicas), and `results.json`. It only writes what a run produced: it never simulates or
decides anything itself.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from .report_html import page
from .report_plots import (
    Plot,
    Series,
    arrivals_plot,
    queue_plot,
    replicas_plot,
    utilization_plot,
)
from .report_units import time_unit
from .run import SimulationReport


def write_report(report: SimulationReport, out: Path) -> Path:
    """Write index.html, plots and timelines into `out`; returns the HTML path."""
    out.mkdir(parents=True, exist_ok=True)
    series = _series(report)
    csvs = []
    for s in series:
        name = f"timeline-{s.policy}.csv"
        _timeline_csv(s.timeline, out / name)
        csvs.append(name)
    (out / "results.json").write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    index = out / "index.html"
    # Batch pools queue jobs as pending pods at zero; serving pools hold or lose requests.
    batch = any(run.metrics.get("at_zero") == "queued" for run in report.runs)
    index.write_text(page(report, _plots(series, out, "jobs" if batch else "requests"), csvs))
    return index


def _series(report: SimulationReport) -> list[Series]:
    """Every run with a timeline, the oracle's replicas included, in the report's order."""
    series = []
    for run in report.runs:
        line = run.timeline or (report.oracle_timeline if run.policy == "oracle" else {})
        if not line:
            continue
        series.append(
            Series(
                run.policy,
                line,
                list(run.cold_start_times),
                run.worst_wait_at,
                float(run.metrics.get("wait_max_s") or 0.0),
            )
        )
    return series


def _plots(series: list[Series], out: Path, work: str) -> list[Plot]:
    replayed = [s for s in series if "arrivals" in s.timeline]
    if not series:
        return []
    span = max(float(s.timeline["t"][-1]) for s in series if s.timeline["t"])
    unit = time_unit(span)
    plots = []
    if replayed:
        first = replayed[0].timeline
        plots.append(arrivals_plot(first["t"], first["arrivals"], unit, out))
    plots.append(replicas_plot(series, unit, out))
    plots.append(queue_plot(series, unit, out, f"{work} waiting"))
    plots.append(utilization_plot(series, unit, out))
    return plots


def _timeline_csv(line: dict[str, list[Any]], path: Path) -> None:
    keys = list(line)
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(keys)
        for row in zip(*(line[k] for k in keys), strict=True):
            writer.writerow(["" if v is None else v for v in row])
