"""The report page: the worst wait up front, the results with human labels and units, what
happened at zero ready replicas, the plots inlined as SVG, and links to the CSV timelines.

Column headers say what a figure is and in what unit; each keeps its `--json` field name
as a tooltip (`title`) and `data-key`. Waits are shown in the unit that fits each value
(s, min, h) so a six-hour tail does not hide behind a "p99 0.00 s". It formats what the
runs hold and never computes a result.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from typing import Any

from .report_plots import Plot
from .report_units import duration
from .run import SimulationReport


def _number(digits: int) -> Callable[[Any], str]:
    return lambda v: f"{v:,.{digits}f}"


def _percent(v: Any) -> str:
    return f"{100 * v:.2f} %"


def _wait(v: Any) -> str:
    return duration(float(v))


def _text(v: Any) -> str:
    return str(v)


Column = tuple[str, str, Callable[[Any], str]]
"""(`--json` field, header, format)."""

RESULTS: tuple[Column, ...] = (
    ("policy", "policy", _text),
    ("gpu_hours", "GPU-hours", _number(1)),
    ("cost", "cost ($)", _number(2)),
    ("efficiency", "efficiency (useful / billed GPU-hours)", _percent),
    ("wait_p50_s", "p50 wait", _wait),
    ("wait_p95_s", "p95 wait", _wait),
    ("wait_p99_s", "p99 wait", _wait),
    ("wait_max_s", "max wait", _wait),
    ("slo_attainment", "wait SLO met", _percent),
    ("scale_actions", "scale actions", _number(0)),
    ("unfinished", "unfinished at the end", _number(0)),
)
AT_ZERO: tuple[Column, ...] = (
    ("policy", "policy", _text),
    ("at_zero", "at zero ready", _text),
    ("cold_starts", "cold starts", _number(0)),
    ("cold_start_requests", "waited for a cold start", _number(0)),
    ("cold_start_wait_p50_s", "their p50 wait", _wait),
    ("cold_start_wait_p99_s", "their p99 wait", _wait),
    ("cold_start_wait_max_s", "their max wait", _wait),
    ("lost_at_zero", "lost (no activator)", _number(0)),
    ("rejected", "rejected (503)", _number(0)),
    ("timed_out", "timed out (504)", _number(0)),
)


STYLE = """
body{font-family:sans-serif;margin:2em;max-width:80em}
table{border-collapse:collapse}
td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}
td{white-space:nowrap}
th{background:#f4f4f4}
td.over{color:#b00;font-weight:bold}
.worst{border-left:4px solid #b00;padding:.5em 1em;background:#fff4f4}
figure{margin:1.5em 0}
figure svg{max-width:100%;height:auto}
figcaption,.notes{color:#444}
"""


def page(report: SimulationReport, plots: list[Plot], csvs: list[str]) -> str:
    title = f"Pool {report.pool} on {report.trace}"
    figures = "".join(_figure(p) for p in plots)
    links = "".join(f'<li><a href="{html.escape(c)}">{html.escape(c)}</a></li>' for c in csvs)
    start = report.start.get("note") if report.start else None
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>simulation: {html.escape(report.pool)}</title>
<style>{STYLE}</style></head><body>
<h1>{html.escape(title)}</h1>
<p>Tick {report.tick_seconds:g} s; wait SLO {duration(report.wait_slo_seconds)}; work lower
bound {report.lower_bound_gpu_hours:,.1f} GPU-hours (busy time at 100 % utilization).
{html.escape(start) if start else ""}</p>
{_worst(report)}
<h2>Results</h2>
<p>Waits in the unit that fits each; a wait over the SLO is in red.</p>
{_table(report, RESULTS, "results")}
<h2>At zero ready replicas</h2>
<p>A cold start is a replica requested while the pool had none. Requests that arrive while no
replica is ready are held by an activator (<em>held</em>: the pool's <code>activator</code>
section, or Knative's under the KPA), queued as pending pods (<em>queued</em>: batch jobs), or
lost (no activator). Those that waited there for a cold start were served after it (their
waits shown); <em>lost</em> found nothing in front of the pool, <em>rejected</em> found the
activator's queue full (503) and <em>timed out</em> were held longer than its
<code>hold_timeout</code> (504). Lost, rejected and timed-out requests count as missing the
wait SLO. Hover a header for its <code>--json</code> field.</p>
{_table(report, AT_ZERO, "at-zero")}
{figures}
<h2>Timelines (every decision with its reason)</h2><ul>{links}</ul>
<p><a href="results.json">results.json</a></p>
</body></html>
"""


def _worst(report: SimulationReport) -> str:
    """The longest wait of any policy, said plainly, with what its percentiles showed."""
    waited = [r for r in report.runs if float(r.metrics.get("wait_max_s", 0) or 0) > 0]
    if not waited:
        return '<p class="worst" id="worst-wait">No request waited under any policy.</p>'
    run = max(waited, key=lambda r: float(r.metrics["wait_max_s"]))
    m = run.metrics
    worst, p99 = float(m["wait_max_s"]), float(m.get("wait_p99_s") or 0.0)
    slo = "over" if worst > report.wait_slo_seconds else "within"
    hidden = (
        f", while its p99 wait is {duration(p99)}: the percentiles hide it"
        if duration(p99) != duration(worst)
        else ""
    )
    return (
        f'<p class="worst" id="worst-wait"><strong>Longest wait: {duration(worst)}</strong> '
        f"under <strong>{html.escape(run.policy)}</strong> ({slo} the "
        f"{duration(report.wait_slo_seconds)} wait SLO){hidden}. Its queue panel below marks "
        "when that request arrived.</p>"
    )


def _table(report: SimulationReport, columns: Sequence[Column], name: str) -> str:
    head = "".join(
        f'<th title="{key}" data-key="{key}">{html.escape(label)}</th>' for key, label, _ in columns
    )
    rows = []
    for run in report.runs:
        cells = []
        for key, _, show in columns:
            value = run.metrics.get(key)
            text = "" if value is None else show(value)
            over = key.startswith("wait_") and value is not None and value > report.wait_slo_seconds
            cells.append(f"<td{' class=over' if over else ''}>{html.escape(text)}</td>")
        rows.append(f"<tr>{''.join(cells)}</tr>")
    body = "".join(rows)
    return f'<table id="{name}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _figure(plot: Plot) -> str:
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in plot.notes)
    listed = f'<ul class="notes" id="notes-{plot.name}">{notes}</ul>' if notes else ""
    return (
        f'<figure id="figure-{plot.name}">{plot.svg}<figcaption>{html.escape(plot.caption)}'
        f"</figcaption>{listed}</figure>"
    )
