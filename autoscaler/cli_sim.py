"""`autoscaler simulate` and `autoscaler sweep`: the policy lab on the command line."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from .config import ConfigError, load_config
from .sim.engine import SimulationError
from .sim.run import COMPARE_CHOICES, SimulationReport, simulate
from .sim.traces import FORMATS, TraceError

console = Console(stderr=True)


def results_table(report: SimulationReport, title: str) -> Table:
    table = Table(title=title)
    for column in (
        "policy",
        "GPU-h",
        "cost",
        "efficiency",
        "wait p50 s",
        "wait p99 s",
        "SLO met",
        "actions",
    ):
        table.add_column(column, justify="left" if column == "policy" else "right")
    for run in report.runs:
        m = run.metrics
        table.add_row(
            m["policy"],
            f"{m['gpu_hours']:.2f}",
            f"{m['cost']:.2f}",
            f"{m['efficiency']:.1%}",
            f"{m['wait_p50_s']:.2f}",
            f"{m['wait_p99_s']:.2f}",
            f"{m['slo_attainment']:.2%}",
            str(m["scale_actions"]),
        )
    return table


def _compare(text: str) -> list[str]:
    if text.strip().lower() in ("", "none"):
        return []
    return [c.strip() for c in text.split(",") if c.strip()]


@click.command()
@click.argument("config_file", metavar="CONFIG", type=click.Path(dir_okay=False))
@click.option(
    "--trace",
    "trace_path",
    help="trace file (default: the pool's configured trace, else the bundled Azure LLM sample)",
)
@click.option("--trace-format", type=click.Choice(FORMATS), help="default: from the header")
@click.option(
    "--pool", "pool_name", help="pool to simulate (default: the only one with a simulation block)"
)
@click.option(
    "--compare",
    default=",".join(COMPARE_CHOICES),
    show_default=True,
    help="baselines to compare with, or 'none'",
)
@click.option("--tick", type=float, help="controller interval in seconds (default: config)")
@click.option("--speedup", type=float, help="replay the trace this many times faster")
@click.option("--repeat", type=int, help="replay the trace this many times back to back")
@click.option(
    "--json",
    "json_out",
    type=click.Path(dir_okay=False),
    help="write results as JSON here ('-' for standard output)",
)
@click.option(
    "--report",
    "report_dir",
    type=click.Path(file_okay=False),
    help="write an HTML report with plots and timelines into this folder",
)
def simulate_cmd(
    config_file: str,
    trace_path: str | None,
    trace_format: str | None,
    pool_name: str | None,
    compare: str,
    tick: float | None,
    speedup: float | None,
    repeat: int | None,
    json_out: str | None,
    report_dir: str | None,
) -> None:
    """Replay a workload trace through the pool's policy and compare it with HPA, KEDA,
    KPA and a clairvoyant oracle: GPU-hours, cost, queue wait and SLO attainment."""
    try:
        config = load_config(config_file)
    except ConfigError as exc:
        click.echo(str(exc), err=True)
        sys.exit(2)
    try:
        with console.status("simulating") as status:
            report = simulate(
                config,
                pool_name,
                trace_path,
                trace_format,
                _compare(compare),
                tick,
                speedup,
                repeat,
                timeline=report_dir is not None,
                progress=lambda name: status.update(f"simulating {name}"),
            )
    except (SimulationError, TraceError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    data = report.to_dict()
    if json_out == "-":
        click.echo(json.dumps(data, indent=2))
    else:
        Console().print(
            results_table(
                report,
                f"pool {report.pool} on {report.trace} (wait SLO {report.wait_slo_seconds:g}"
                f" s, tick {report.tick_seconds:g} s)",
            )
        )
        Console().print(f"work lower bound: {report.lower_bound_gpu_hours:.2f} GPU-hours")
        if json_out:
            Path(json_out).write_text(json.dumps(data, indent=2) + "\n")
            Console().print(f"wrote {json_out}")
    if report_dir:
        from .sim.report import write_report

        page = write_report(report, Path(report_dir))
        console.print(f"report: {page}")
