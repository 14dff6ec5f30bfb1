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
    MAX_SPEEDUP,
    config_errors,
    duration,
    fail,
    fraction,
    output_file,
    output_folder,
    plain,
    positive_number,
    write_json,
)
from .config import Config, ConfigError, Pool, load_config
from .sim.engine import SimulationError
from .sim.run import COMPARE_CHOICES, SimulationReport, load_trace, pick_pool, simulate
from .sim.traces import FORMATS, Trace, TraceError

console = Console(stderr=True)

tick_option = duration(0.01, 3600.0)
"""`--tick`: the simulated controller interval, 10ms to 1h."""
MAX_REPEAT = 100_000
MAX_REQUESTS = 10_000_000
"""The most requests one replay holds (--repeat times the trace's): about a gigabyte of
arrays per policy run, more than any real trace of one pool over weeks."""
MAX_TICKS = 20_000_000
"""The most controller ticks one replay may span (its length over --tick): 231 days at a
1 s tick, minutes of work per policy."""
MAX_WORKERS = max(256, os.cpu_count() or 1)


def replay_size(
    raw: Trace,
    speedup: float,
    repeat: int,
    tick: float,
    speedup_name: str = "--speedup",
    repeat_name: str = "--repeat",
) -> None:
    """Refuse, before anything is allocated or simulated, a replay too large to run: more
    than MAX_REQUESTS requests or MAX_TICKS ticks. `raw`: the trace as read (no speed-up,
    no repeat); the names: where the speed-up and repeat came from, for the message."""
    n = len(raw.arrivals)
    if n == 0:
        return
    if repeat > 1 and n * repeat > MAX_REQUESTS:
        fail(
            f"{repeat_name} {repeat}: the trace's {n:,} requests replayed {repeat:,} times "
            f"would be {n * repeat:,} requests, more than the {MAX_REQUESTS:,} a run can hold; "
            f"repeat it {max(1, MAX_REQUESTS // n)} times or fewer"
        )
    arrivals = raw.arrivals / speedup
    span = float(arrivals[-1])
    if repeat > 1:
        gap = float((arrivals[-1] - arrivals[0]) / (n - 1)) if n > 1 else 1.0
        span = (span + gap) * repeat
    ticks = span / tick
    if ticks > MAX_TICKS:
        fail(
            f"the replay would span {span / 3600:,.1f} simulated hours ({speedup_name} "
            f"{speedup:g}, {repeat_name} {repeat}): at a tick of {tick:g}s that is "
            f"{ticks:,.0f} ticks, more than {MAX_TICKS:,}; give a longer --tick, a larger "
            "speed-up (--speedup) or fewer repeats (--repeat)"
        )


def _replay_settings(
    pool: Pool, speedup: float | None, repeat: int | None
) -> tuple[float, int, str, str]:
    """The speed-up and repeat a replay uses (the option's, else the pool's trace's) and
    where each came from."""
    configured = pool.simulation.trace if pool.simulation else None
    where = f"pool {pool.name!r} simulation.trace"
    if speedup is not None:
        speed, speed_name = speedup, "--speedup"
    else:
        speed = configured.speedup if configured else 1.0
        speed_name = f"{where}.speedup"
    if repeat is not None:
        times, times_name = repeat, "--repeat"
    else:
        times = configured.repeat if configured else 1
        times_name = f"{where}.repeat"
    return speed, times, speed_name, times_name


def _raw_trace(
    config: Config, pool: Pool, trace_path: str | None, trace_format: str | None
) -> Trace:
    """The trace a replay starts from, as read: no speed-up and no repeat yet."""
    return load_trace(pool, trace_path, trace_format, 1.0, 1, config)


def _load(config_file: str) -> Config:
    try:
        return load_config(config_file)
    except ConfigError as exc:
        config_errors(exc)
        sys.exit(2)


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
    "--tick",
    callback=tick_option,
    help="controller interval: seconds or e.g. 5s, 10ms to 1h (default: config)",
)
@click.option(
    "--speedup",
    callback=positive_number,
    help=f"replay the trace this many times faster (above 0, at most {MAX_SPEEDUP:,.0f})",
)
@click.option(
    "--repeat",
    type=click.IntRange(1, MAX_REPEAT),
    help=f"replay the trace this many times back to back (1 to {MAX_REPEAT:,}, and at most "
    f"{MAX_REQUESTS:,} requests in all)",
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
    config = _load(config_file)
    try:
        # The size of the replay is checked before it is built: the trace is read twice
        # (here and in simulate), which costs little next to simulating it.
        pool = pick_pool(config, pool_name)
        speed, times, speed_name, times_name = _replay_settings(pool, speedup, repeat)
        replay_size(
            _raw_trace(config, pool, trace_path, trace_format),
            speed,
            times,
            tick or config.controller.interval,
            speed_name,
            times_name,
        )
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
        fail(plain(exc))
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
    type=click.IntRange(1, MAX_WORKERS),
    default=os.cpu_count() or 1,
    show_default=True,
    help="parallel processes (no more are started than there are variants)",
)
@click.option("--trace", "trace_path")
@click.option("--trace-format", type=click.Choice(FORMATS))
@click.option("--pool", "pool_name")
@click.option("--tick", callback=tick_option, help="as for simulate: 10ms to 1h")
@click.option("--speedup", callback=positive_number, help="as for simulate")
@click.option("--repeat", type=click.IntRange(1, MAX_REPEAT), help="as for simulate")
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

    config = _load(config_file)
    if not params and not tune and not keepalive:
        fail("give --param PATH=V1,V2 (repeatable), --tune or --keepalive")
    interval = tick or config.controller.interval
    try:
        pool = pick_pool(config, pool_name)
        # Each --param is parsed before the trace is read, so a typo fails at once.
        parsed = [parse_param(p) for p in params]
        speed, times, speed_name, times_name = _replay_settings(pool, speedup, repeat)
        raw = _raw_trace(config, pool, trace_path, trace_format)
        replay_size(raw, speed, times, interval, speed_name, times_name)
        work = workload(pool, raw.transformed(speed, times))
        configured = pool.simulation.trace if pool.simulation else None
        spec = TraceSpec(
            trace_path
            or (
                config.resolve_path(configured.path)
                if configured
                else "bundled:azure-llm-code-sample"
            ),
            # The configured format goes with the configured file, not with --trace.
            trace_format or (configured.format if configured and not trace_path else None),
            speed,
            times,
            pool.name,
        )
        variants = grid(pool, parsed) if parsed else []
        if tune:
            variants += tuning_variants(
                pool, work.slots_per_replica, work.batch, _floors(floors, pool)
            )
        if keepalive:
            if not variants:  # the pool as configured, to compare the keep-alives with
                variants = grid(pool, [])
            variants += keepalive_variants(pool)
    except (SimulationError, TraceError) as exc:
        fail(plain(exc))
    workers = min(workers, max(1, len(variants)))
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
