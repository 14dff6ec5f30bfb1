"""`autoscaler simulate`: the policy lab on the command line (`sweep`: cli_sweep.py).

Parsing options and printing results only: the simulation itself is autoscaler/sim/, and
nothing here touches a cloud or a cluster.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console, RenderableType
from rich.table import Table

from .cli_options import (
    MAX_SPEEDUP,
    config_errors,
    duration,
    fail,
    output_file,
    output_folder,
    plain,
    positive_number,
    write_json,
)
from .cli_output import deprecated, emit, note, out_option, output_option, write_result
from .cli_triggers import simulate_trigger_options, simulate_triggers
from .config import Config, ConfigError, Pool, load_config
from .sim.engine import START_MODES, SimulationError
from .sim.report_units import duration as human_duration
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
    # The max wait beside p99: a few requests held for hours hide behind "p99 0.00s".
    columns = ("GPU-h", "cost", "eff.", "p50 wait", "p99 wait", "max wait", "SLO met", "actions")
    for column in columns:
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
            human_duration(m["wait_max_s"]),
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


def _tables(report: SimulationReport) -> list[RenderableType]:
    """The results for people: the comparison, what happened at zero, the lower bound."""
    title = (
        f"pool {report.pool} on {report.trace} (wait SLO {report.wait_slo_seconds:g} s, "
        f"tick {report.tick_seconds:g} s)"
    )
    zero = zero_table(report)
    return [
        results_table(report, title),
        *([zero] if zero is not None else []),
        f"work lower bound: {report.lower_bound_gpu_hours:.2f} GPU-hours",
    ]


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
    "--start",
    type=click.Choice(START_MODES),
    help="warm: begin with the replicas the first startup window needs at its peak; cold: "
    "with the pool's min, the rest after the startup delay (default: the pool's "
    "simulation.start, else warm)",
)
@output_option(what="the results")
@out_option("the results")
@click.option(
    "--json",
    "json_out",
    callback=output_file,
    hidden=True,
    help="deprecated: '-o json' for standard output, '--out FILE' for a file",
)
@click.option(
    "--report",
    "report_dir",
    callback=output_folder,
    help="write an HTML report with plots and timelines into this folder",
)
@simulate_trigger_options
def simulate_cmd(
    config_file: str,
    trace_path: str | None,
    trace_format: str | None,
    pool_name: str | None,
    compare: str,
    tick: float | None,
    speedup: float | None,
    repeat: int | None,
    start: str | None,
    output: str,
    out_file: str | None,
    json_out: str | None,
    report_dir: str | None,
    **trigger: Any,
) -> None:
    """Replay a workload trace through the pool's policy and compare it with HPA, KEDA,
    KPA and a clairvoyant oracle: GPU-hours, cost, queue wait and SLO attainment; or
    (--trigger-series) replay a metric series through the file's evaluation triggers."""
    if json_out is not None:  # the deprecated spelling: '-' was standard output
        deprecated(f"--json {json_out}", "-o json" if json_out == "-" else "--out FILE")
        output = "json" if json_out == "-" else output
    config = _load(config_file)
    if trigger["trigger_series"] is not None:
        simulate_triggers(config, output, out_file, **trigger)
        return
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
                start=start,
            )
    except (SimulationError, TraceError) as exc:
        fail(plain(exc))
    note(report.start["note"])  # how the replay began changes every figure: say so
    data = report.to_dict()
    emit(data, output, lambda: _tables(report))
    if out_file:
        write_result(out_file, data)
    elif json_out and json_out != "-":
        write_json(json_out, data)  # the deprecated --json FILE: JSON whatever its name
        note(f"wrote {json_out}")
    if report_dir:
        from .sim.report import write_report

        page = write_report(report, Path(report_dir))
        console.print(f"report: {page}")
