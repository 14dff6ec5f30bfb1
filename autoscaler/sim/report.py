"""`--report DIR`: an HTML page with plots, the metrics table and CSV timelines.

Plots (matplotlib, PNG): arrivals per minute, queue length (requests held by an activator
included), replicas desired and ready with a mark where each cold start began, and GPU
utilization over time, one line per compared policy. Beside the metrics table, a table of
what happened at zero ready replicas (cold starts, requests that waited for one and their
wait, requests lost, rejected and timed out). Each policy's timeline of every decision with
its reason goes to `timeline-<policy>.csv`. It only writes what a run produced: it never
simulates or decides anything itself.
"""

from __future__ import annotations

import csv
import html
import json
from pathlib import Path
from typing import Any

import numpy as np

from .engine import AT_ZERO_KEYS
from .run import SimulationReport

COLUMNS = (
    "policy",
    "gpu_hours",
    "cost",
    "efficiency",
    "wait_p50_s",
    "wait_p95_s",
    "wait_p99_s",
    "wait_max_s",
    "slo_attainment",
    "scale_actions",
    "unfinished",
)
ZERO_COLUMNS = ("policy", *AT_ZERO_KEYS)


def write_report(report: SimulationReport, out: Path) -> Path:
    """Write index.html, plots and timelines into `out`; returns the HTML path."""
    out.mkdir(parents=True, exist_ok=True)
    runs = [r for r in report.runs if r.timeline]
    for run in runs:
        _timeline_csv(run.policy, run.timeline, out / f"timeline-{run.policy}.csv")
    plots = _plots(runs, out)
    (out / "results.json").write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    page = out / "index.html"
    page.write_text(_html(report, plots))
    return page


def _timeline_csv(policy: str, line: dict[str, list[Any]], path: Path) -> None:
    keys = list(line)
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(keys)
        for row in zip(*(line[k] for k in keys), strict=True):
            writer.writerow(["" if v is None else v for v in row])


def _plots(runs: list[Any], out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not runs:
        return []
    names = []
    first = runs[0].timeline
    t = np.asarray(first["t"]) / 60.0
    arrived = np.asarray(first["arrivals"], dtype=float)
    fig, ax = plt.subplots(figsize=(10, 3))
    minute = np.floor(t).astype(int)
    per_minute = np.bincount(minute, weights=np.diff(np.concatenate([[0], arrived])))
    ax.bar(np.arange(len(per_minute)), per_minute, width=1.0, color="#888")
    ax.set(title="arrivals per minute", xlabel="minutes", ylabel="requests")
    names.append(_save(fig, out, "arrivals.png"))
    for key, title, ylabel in (
        ("queue", "queue length (held by an activator included)", "waiting"),
        ("ready", "replicas ready (solid) and desired (dotted); ▲ a cold start began", "replicas"),
        ("gpu_utilization", "GPU utilization", "busy share"),
    ):
        fig, ax = plt.subplots(figsize=(10, 3))
        for i, run in enumerate(runs):
            line = run.timeline
            x = np.asarray(line["t"]) / 60.0
            y = np.asarray([np.nan if v is None else v for v in line[key]], dtype=float)
            color = f"C{i}"
            ax.plot(x, y, label=run.policy, color=color, linewidth=1)
            if key == "ready":
                ax.plot(x, line["desired"], color=color, linewidth=1, linestyle=":")
                _cold_starts(ax, run.cold_start_times, color)
        ax.set(title=title, xlabel="minutes", ylabel=ylabel)
        handles, labels = ax.get_legend_handles_labels()
        if key == "ready" and any(run.cold_start_times for run in runs):
            from matplotlib.lines import Line2D

            handles.append(Line2D([], [], color="#444", marker="^", linestyle="", markersize=6))
            labels.append("cold start began")
        ax.legend(handles, labels, loc="upper right", fontsize="small")
        names.append(_save(fig, out, f"{key}.png"))
    return names


def _cold_starts(ax: Any, times: list[float], color: str) -> None:
    """A small mark on the time axis where each cold start began (a replica requested while
    the pool had none), in the policy's color."""
    if not times:
        return
    x = np.asarray(times) / 60.0
    ax.plot(x, np.zeros_like(x), linestyle="", marker="^", markersize=6, color=color,
            clip_on=False, zorder=3)  # fmt: skip


def _save(fig: Any, out: Path, name: str) -> str:
    fig.tight_layout()
    fig.savefig(out / name, dpi=90)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return name


def _html(report: SimulationReport, plots: list[str]) -> str:
    table = _table(report, COLUMNS)
    zero = _table(report, ZERO_COLUMNS)
    links = "".join(
        f'<li><a href="timeline-{html.escape(r.policy)}.csv">timeline-'
        f"{html.escape(r.policy)}.csv</a></li>"
        for r in report.runs
        if r.timeline
    )
    images = "".join(f'<p><img src="{p}" alt="{p}"></p>' for p in plots)
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>simulation: {html.escape(report.pool)}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}</style></head><body>
<h1>Pool {html.escape(report.pool)} on {html.escape(report.trace)}</h1>
<p>Tick {report.tick_seconds:g} s; wait SLO {report.wait_slo_seconds:g} s; work lower bound
{report.lower_bound_gpu_hours} GPU-hours (busy time at 100 % utilization).</p>
{table}
<h2>At zero ready replicas</h2>
<p>A cold start is a replica requested while the pool had none. Requests that arrive while no
replica is ready are held by an activator (<code>at_zero</code> = held: the pool's
<code>activator</code> section, or Knative's under the KPA), queued as pending pods (batch
jobs), or lost (no activator). <code>cold_start_requests</code> waited there and were served
(their waits: <code>cold_start_wait_*</code>); <code>lost_at_zero</code> found nothing in
front of the pool, <code>rejected</code> found the activator's queue full (503) and
<code>timed_out</code> were held longer than its <code>hold_timeout</code> (504). Lost,
rejected and timed-out requests count as missing the wait SLO.</p>
{zero}
{images}
<h2>Timelines (every decision with its reason)</h2><ul>{links}</ul>
<p><a href="results.json">results.json</a></p>
</body></html>
"""


def _table(report: SimulationReport, columns: tuple[str, ...]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    rows = []
    for run in report.runs:
        cells = "".join(f"<td>{html.escape(str(run.metrics.get(c, '')))}</td>" for c in columns)
        rows.append(f"<tr>{cells}</tr>")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"
