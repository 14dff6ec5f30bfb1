"""`autoscaler simulate` and `autoscaler sweep`: the policy lab on the command line.

Parsing options and printing results only: the simulation itself is autoscaler/sim/, and
nothing here touches a cloud or a cluster.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from .cli_options import (
    fraction,
    output_file,
    output_folder,
    positive_number,
    seconds,
    write_json,
)
from .config import ConfigError, Pool, load_config
from .sim.engine import SimulationError
from .sim.run import COMPARE_CHOICES, SimulationReport, simulate
from .sim.traces import FORMATS, TraceError

console = Console(stderr=True)


def results_table(report: SimulationReport, title: str) -> Table:
    table = Table(title=title)
    table.add_column("policy", no_wrap=True, min_width=10)
    for column in ("GPU-h", "cost", "eff.", "p50 wait", "p99 wait", "SLO met", "actions"):
        table.add_column(column, justify="right", no_wrap=True)
    for run in report.runs:
        m = run.metrics
        table.add_row(
            m["policy"],
            f"{m['gpu_hours']:.2f}",
            f"{m['cost']:.2f}",
            f"{m['efficiency']:.1%}",
            f"{m['wait_p50_s']:.2f}s",
            f"{m['wait_p99_s']:.2f}s",
            f"{m['slo_attainment']:.2%}",
            str(m["scale_actions"]),
        )
    return table


def zero_table(report: SimulationReport) -> Table | None:
    """What happened at zero ready replicas, per policy: cold starts, the requests that
    waited for one and their wait, and the requests lost there. None when nothing did."""
    runs = [run.metrics for run in report.runs]
    counts = ("cold_starts", "cold_start_requests", "lost_at_zero", "rejected", "timed_out")
    if not any(m.get(k) for m in runs for k in counts):
        return None
    table = Table(
        title="at zero ready replicas: cold starts, requests that waited (held or queued) "
        "and how long, lost (no activator), rejected (503), timed out (504)"
    )
    table.add_column("policy", no_wrap=True, min_width=10)
    for column in ("at 0", "starts", "waited", "wait p50/p99/max", "lost", "503", "504"):
        table.add_column(column, justify="right", no_wrap=True)
    for m in runs:
        waits = (m[f"cold_start_wait_{q}_s"] for q in ("p50", "p99", "max"))
        table.add_row(
            m["policy"],
            str(m["at_zero"]),
            str(m["cold_starts"]),
            str(m["cold_start_requests"]),
            "/".join(f"{w:.3g}" for w in waits) + "s",
            str(m["lost_at_zero"]),
            str(m["rejected"]),
            str(m["timed_out"]),
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
    help="baselines to compare with, or 'none'; also the pool's own policy with a fixed "
    "keep-alive: keepalive-knative (90 s), keepalive-keda (300 s), keepalive-faas-10m, "
    "keepalive-faas-20m, keepalive (all four) or keepalive-<duration> (e.g. keepalive-45s)",
)
@click.option(
    "--tick", callback=seconds, help="controller interval: seconds or e.g. 5s (default: config)"
)
@click.option("--speedup", callback=positive_number, help="replay the trace this many times faster")
@click.option(
    "--repeat",
    type=click.IntRange(min=1),
    help="replay the trace this many times back to back",
)
@click.option(
    "--json",
    "json_out",
    callback=output_file,
    help="write results as JSON here ('-' for standard output)",
)
@click.option(
    "--report",
    "report_dir",
    callback=output_folder,
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
        zero = zero_table(report)
        if zero is not None:
            Console().print(zero)
        Console().print(f"work lower bound: {report.lower_bound_gpu_hours:.2f} GPU-hours")
        if json_out:
            write_json(json_out, data)
            Console().print(f"wrote {json_out}")
    if report_dir:
        from .sim.report import write_report

        page = write_report(report, Path(report_dir))
        console.print(f"report: {page}")


def _floors(text: str | None, pool: Pool) -> list[int] | None:
    """`--floors 0,2,4`, each within the pool's bounds."""
    if text is None:
        return None
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise SimulationError(f"--floors {text!r}: write whole numbers, e.g. 0,2,4") from None
    outside = [v for v in values if not pool.min <= v <= pool.max]
    if outside:
        raise SimulationError(
            f"--floors {text!r}: {outside[0]} is outside pool {pool.name!r}'s bounds "
            f"[{pool.min}, {pool.max}]"
        )
    return values


@click.command()
@click.argument("config_file", metavar="CONFIG", type=click.Path(dir_okay=False))
@click.option(
    "--param",
    "params",
    multiple=True,
    metavar="PATH=V1,V2,...",
    help="vary a pool setting, e.g. policy.max_utilization=0.8,0.9 (repeatable; "
    "the grid is every combination)",
)
@click.option(
    "--tune",
    is_flag=True,
    help="tune our policy and each baseline on a built-in "
    "grid; print the cheapest setting per family that meets the SLO",
)
@click.option(
    "--keepalive",
    is_flag=True,
    help="also try the pool's own policy with a fixed keep-alive (scale_to_zero_after) "
    "of 30 s to 30 min, as KEDA, Knative and FaaS platforms run it",
)
@click.option(
    "--floors",
    help="with --tune: minimum replicas every family is tried at, e.g. 0,2,4 (default: "
    "the pool's min, and where the cold start exceeds the wait SLO also 1/8 to 1/2 of max)",
)
@click.option(
    "--slo-target",
    callback=fraction,
    default="0.99",
    show_default=True,
    help="share of requests within the wait SLO that counts as meeting it",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=os.cpu_count() or 1,
    show_default=True,
    help="parallel processes",
)
@click.option("--trace", "trace_path")
@click.option("--trace-format", type=click.Choice(FORMATS))
@click.option("--pool", "pool_name")
@click.option("--tick", callback=seconds)
@click.option("--speedup", callback=positive_number)
@click.option("--repeat", type=click.IntRange(min=1))
@click.option(
    "--json",
    "json_out",
    callback=output_file,
    help="write every variant's results as JSON here ('-' for standard output)",
)
def sweep_cmd(
    config_file: str,
    params: tuple[str, ...],
    tune: bool,
    keepalive: bool,
    floors: str | None,
    slo_target: float,
    workers: int,
    trace_path: str | None,
    trace_format: str | None,
    pool_name: str | None,
    tick: float | None,
    speedup: float | None,
    repeat: int | None,
    json_out: str | None,
) -> None:
    """Simulate a grid of variants in parallel and print the cost-vs-SLO Pareto front.

    With --tune, the cheapest setting per family that meets the SLO target; with
    --keepalive, a fixed keep-alive family (the pool's policy, scale_to_zero_after from
    30 s to 30 min) besides."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from .sim.engine import workload
    from .sim.run import load_trace, pick_pool
    from .sim.sweep import (
        TraceSpec,
        best_per_family,
        grid,
        keepalive_variants,
        pareto,
        parse_param,
        run_all,
        tuning_variants,
    )

    try:
        config = load_config(config_file)
    except ConfigError as exc:
        click.echo(str(exc), err=True)
        sys.exit(2)
    if not params and not tune and not keepalive:
        click.echo("error: give --param PATH=V1,V2 (repeatable), --tune or --keepalive", err=True)
        sys.exit(2)
    try:
        pool = pick_pool(config, pool_name)
        trace = load_trace(pool, trace_path, trace_format, speedup, repeat, config)
        work = workload(pool, trace)
        configured = pool.simulation.trace if pool.simulation else None
        spec = TraceSpec(
            trace_path
            or (
                config.resolve_path(configured.path)
                if configured
                else "bundled:azure-llm-code-sample"
            ),
            trace_format or (configured.format if configured else None),
            speedup if speedup is not None else (configured.speedup if configured else 1.0),
            repeat if repeat is not None else (configured.repeat if configured else 1),
            pool.name,
        )
        variants = grid(pool, [parse_param(p) for p in params]) if params else []
        if tune:
            variants += tuning_variants(
                pool, work.slots_per_replica, work.batch, _floors(floors, pool)
            )
        if keepalive:
            if not variants:  # the pool as configured, to compare the keep-alives with
                variants = grid(pool, [])
            variants += keepalive_variants(pool)
    except (SimulationError, TraceError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    interval = tick or config.controller.interval
    columns = (
        *Progress.get_default_columns()[:1],
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console) as bar:
        task = bar.add_task(f"{len(variants)} variants on {workers} worker(s)", total=len(variants))
        results = run_all(variants, spec, interval, workers, progress=lambda _: bar.advance(task))
    front = pareto(results)
    # With `--json -` standard output carries only the JSON document.
    out = Console(stderr=json_out == "-")
    out.print(_variants_table("cost-vs-SLO Pareto front", front))
    summary: dict[str, object] = {
        "pool": pool.name,
        "trace": work.trace_name,
        "slo_target": slo_target,
        "variants": results,
        "pareto": [r["variant"] for r in front],
    }
    if tune or keepalive:
        best = best_per_family(results, slo_target)
        out.print(
            _variants_table(
                f"cheapest per family meeting {slo_target:.0%} within the wait SLO",
                list(best.values()),
                mark=True,
            )
        )
        summary["best"] = best
    if json_out == "-":
        click.echo(json.dumps(summary, indent=2))
    elif json_out:
        write_json(json_out, summary)
        out.print(f"wrote {json_out}")


def _variants_table(title: str, rows: list[dict[str, object]], mark: bool = False) -> Table:
    table = Table(title=title)
    table.add_column("variant", overflow="fold")
    for column in ("GPU-h", "cost", "p99 wait", "SLO met"):
        table.add_column(column, justify="right", no_wrap=True)
    if mark:
        table.add_column("meets SLO", justify="center")
    for r in rows:
        cells = [
            str(r["variant"]),
            f"{r['gpu_hours']:.2f}",
            f"{r['cost']:.2f}",
            f"{r['wait_p99_s']:.2f}s",
            f"{r['slo_attainment']:.2%}",
        ]
        if mark:
            cells.append("yes" if r["meets_slo"] else "NO")
        table.add_row(*cells)
    return table
