"""`autoscaler sweep`: many variants of a pool simulated at once, the policy lab's grid and
search on the command line.

Parsing options and printing results only: variants and the grid are autoscaler/sim/
sweep.py, the Optuna search sim/search.py, where the simulations run sim/executors.py;
nothing here touches a cloud or a cluster. Output follows cli_output.py: the result on
standard output (`-o table|json|yaml`), progress and notes on standard error.
"""

from __future__ import annotations

import os
from typing import Any

import click

from .cli_options import fail, fraction, output_file, plain, positive_number
from .cli_output import (
    deprecated,
    emit,
    note,
    out_option,
    output_option,
    write_result,
)
from .cli_progress import Progress
from .cli_sim import MAX_REPEAT, _load, _raw_trace, _replay_settings, replay_size, tick_option
from .cli_sweep_tables import result_tables
from .config import Pool
from .sim.engine import START_MODES, SimulationError
from .sim.executors import EXECUTORS, ExecutorError
from .sim.front import best_per_family, distinct, pareto
from .sim.run import pick_pool, with_start
from .sim.traces import FORMATS, TraceError

MAX_WORKERS = max(256, os.cpu_count() or 1)
MAX_TRIALS = 100_000
SEARCH_ONLY = ("trials", "batch", "seed", "storage", "resume", "study")
"""Options that mean something only with --search: given without it they are refused."""


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


def _legacy_json(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """The old `--json FILE` ('-': standard output): still works, with a warning."""
    value = output_file(ctx, param, value)
    if value is not None:
        deprecated("--json FILE", "-o json (standard output) or --out FILE")
    return value


def _search_only(ctx: click.Context, search: str | None) -> None:
    if search is not None:
        return
    for name in SEARCH_ONLY:
        if ctx.get_parameter_source(name) is click.core.ParameterSource.COMMANDLINE:
            fail(f"--{name} is for a search: add --search tpe or --search nsga2")


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
    help="tune our policy and each baseline on a built-in grid; print the cheapest "
    "setting per family that meets the SLO",
)
@click.option(
    "--search",
    type=click.Choice(("tpe", "nsga2")),
    help="search the --tune knobs with Optuna instead of walking their grid: tpe (the "
    "cheapest setting meeting the SLO) or nsga2 (the GPU-hours vs SLO front)",
)
@click.option(
    "--trials",
    type=click.IntRange(1, MAX_TRIALS),
    default=40,
    show_default=True,
    help="with --search: trials per family (with --resume: in all, the stored ones included)",
)
@click.option(
    "--batch",
    type=click.IntRange(2, 1000),
    default=8,
    show_default=True,
    help="with --search: trials asked at once per family (NSGA-II's population); results "
    "depend on it, never on --workers or --executor",
)
@click.option(
    "--seed",
    type=click.IntRange(0, 2**32 - 1),
    default=0,
    show_default=True,
    help="with --search: the samplers' seed",
)
@click.option(
    "--storage",
    metavar="PATH|URL",
    help="with --search: keep the study in this Optuna journal file, or a database URL "
    "(sqlite:///study.db), so that --resume can carry it on",
)
@click.option(
    "--resume",
    is_flag=True,
    help="with --search and --storage: carry on the stopped study stored there",
)
@click.option(
    "--study",
    metavar="NAME",
    help="with --search: the study's name in --storage (default: sweep-POOL-SEARCH; "
    "one study per family, NAME:FAMILY)",
)
@click.option(
    "--keepalive",
    is_flag=True,
    help="also try the pool's own policy with a fixed keep-alive (scale_to_zero_after) "
    "of 30 s to 30 min, as KEDA, Knative and FaaS platforms run it",
)
@click.option(
    "--floors",
    help="with --tune or --search: minimum replicas every family is tried at, e.g. 0,2,4 "
    "(default: the pool's min, and where the cold start exceeds the wait SLO also 1/8 to "
    "1/2 of max; a search tries every whole number between the lowest and highest)",
)
@click.option(
    "--slo-target",
    callback=fraction,
    default="0.99",
    show_default=True,
    help="share of requests within the wait SLO that counts as meeting it",
)
@click.option(
    "--executor",
    type=click.Choice(EXECUTORS),
    default="local",
    show_default=True,
    help="where the simulations run: local processes (--workers) or a Ray cluster (--address)",
)
@click.option(
    "--address",
    metavar="HOST:PORT",
    help="with --executor ray: the Ray head's address (as `ray start --head` prints it)",
)
@click.option(
    "--workers",
    type=click.IntRange(1, MAX_WORKERS),
    default=os.cpu_count() or 1,
    show_default=True,
    help="local parallel processes (no more are started than there are variants at once)",
)
@click.option("--all", "show_all", is_flag=True, help="also list the points the front beats")
@click.option("--trace", "trace_path")
@click.option("--trace-format", type=click.Choice(FORMATS))
@click.option("--pool", "pool_name")
@click.option("--tick", callback=tick_option, help="as for simulate: 10ms to 1h")
@click.option("--speedup", callback=positive_number, help="as for simulate")
@click.option("--repeat", type=click.IntRange(1, MAX_REPEAT), help="as for simulate")
@click.option(
    "--start",
    type=click.Choice(START_MODES),
    help="as for simulate: warm (the first window's peak need, whatever `min` says) or cold "
    "(the pool's min; compare `min` values with this)",
)
@output_option(what="the front and best per family (json, yaml: every variant too)")
@out_option("every variant's results")
@click.option("--json", "json_out", callback=_legacy_json, hidden=True)
@click.pass_context
def sweep_cmd(
    ctx: click.Context,
    config_file: str,
    params: tuple[str, ...],
    tune: bool,
    search: str | None,
    trials: int,
    batch: int,
    seed: int,
    storage: str | None,
    resume: bool,
    study: str | None,
    keepalive: bool,
    floors: str | None,
    slo_target: float,
    executor: str,
    address: str | None,
    workers: int,
    show_all: bool,
    trace_path: str | None,
    trace_format: str | None,
    pool_name: str | None,
    tick: float | None,
    speedup: float | None,
    repeat: int | None,
    start: str | None,
    output: str,
    out_file: str | None,
    json_out: str | None,
) -> None:
    """Simulate a grid of variants, or search them with Optuna, and print the cost-vs-SLO
    Pareto front: one row per distinct point, labelled by family and settings.

    With --tune, every family's built-in grid and the cheapest setting per family that
    meets the SLO target; with --search, the same knobs searched (--trials per family);
    with --keepalive, a fixed keep-alive family (the pool's policy, scale_to_zero_after
    from 30 s to 30 min) besides."""
    from .sim import sweep as sweep_lib
    from .sim.engine import workload
    from .sim.executors import executor as make_executor

    _search_only(ctx, search)
    if resume and not storage:
        fail("--resume carries on a study kept in --storage PATH; give the same --storage")
    if search and params:
        fail(
            "--param is for the grid; --search searches the --tune knobs of every family "
            "(leave --param out, or --search out for the grid)"
        )
    if not params and not tune and not keepalive and not search:
        fail("give --param PATH=V1,V2 (repeatable), --tune, --search tpe|nsga2 or --keepalive")
    if storage and "://" not in storage:
        _storage_path(storage)
    if json_out == "-":
        output = "json"
    config = _load(config_file)
    interval = tick or config.controller.interval
    spaces: list[Any] = []
    try:
        pool = with_start(pick_pool(config, pool_name), start)
        # Each --param is parsed before the trace is read, so a typo fails at once.
        parsed = [sweep_lib.parse_param(p) for p in params]
        speed, times, speed_name, times_name = _replay_settings(pool, speedup, repeat)
        raw = _raw_trace(config, pool, trace_path, trace_format)
        replay_size(raw, speed, times, interval, speed_name, times_name)
        varies_min = tune or bool(search) or any(path == "min" for path, _ in parsed)
        if varies_min and pool.simulation is not None and pool.simulation.start == "warm":
            # Every variant begins with the first window's peak need: `min` cannot show.
            note(
                "start: warm (each variant begins with the first window's peak need, so "
                "variants of `min` look alike); --start cold (or simulation.start: cold) to "
                "compare them"
            )
        work = workload(pool, raw.transformed(speed, times))
        configured = pool.simulation.trace if pool.simulation else None
        spec = sweep_lib.TraceSpec(
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
        floor_list = _floors(floors, pool)
        variants = sweep_lib.grid(pool, parsed) if parsed else []
        if search:
            from .sim.search import spaces as search_spaces

            spaces = search_spaces(pool, work.slots_per_replica, work.batch, floor_list, keepalive)
        else:
            if tune:
                variants += sweep_lib.tuning_variants(
                    pool, work.slots_per_replica, work.batch, floor_list
                )
            if keepalive:
                if not variants:  # the pool as configured, to compare the keep-alives with
                    variants = sweep_lib.grid(pool, [])
                variants += sweep_lib.keepalive_variants(pool)
        # No more local processes than simulations run at once.
        workers = min(workers, max(1, len(variants) or batch * len(spaces)))
        pool_runs = make_executor(executor, workers, address)
    except (SimulationError, TraceError, ExecutorError) as exc:
        fail(plain(exc))
    summary: dict[str, Any] = {
        "pool": pool.name,
        "trace": work.trace_name,
        "slo_target": slo_target,
    }
    with pool_runs, Progress() as progress:
        try:
            if search:
                from .sim.search import Settings
                from .sim.search import search as run_search

                settings = Settings(
                    search, trials, seed, batch, slo_target, storage, resume,
                    study or f"sweep-{pool.name}-{search}",
                )  # fmt: skip

                def simulate(variants: list[Any]) -> list[dict[str, Any]]:
                    return sweep_lib.run_all(
                        variants, spec, interval, workers, progress.advance, pool_runs
                    )

                def started(todo: int, found: int, unfinished: int) -> None:
                    _started(settings, len(spaces), pool_runs, progress, todo, found, unfinished)

                results = run_search(pool, spaces, settings, simulate, started)
                summary.update(search=search, seed=seed, batch=batch, trials_per_family=trials)
            else:
                progress.start(len(variants), f"{len(variants)} variants on {_where(pool_runs)}")
                results = sweep_lib.run_all(
                    variants, spec, interval, workers, progress.advance, pool_runs
                )
        except (SimulationError, ExecutorError) as exc:
            fail(plain(exc))
    summary["executor"] = pool_runs.name
    front = pareto(results)
    summary["variants"] = results
    summary["pareto"] = [r["variant"] for r in front]
    summary["front"] = distinct(front)
    if tune or keepalive or search:
        summary["best"] = best_per_family(results, slo_target)
    ours = pool.policy.type
    if out_file:
        write_result(out_file, summary)
    if json_out and json_out != "-":
        write_result(json_out, summary)

    emit(summary, output, lambda: result_tables(summary, results, front, ours, show_all))


def _storage_path(path: str) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        fail(f"--storage {path}: folder {folder!r} does not exist; create it first")
    if os.path.isdir(path):
        fail(f"--storage {path}: is a folder; give a journal file name or a database URL")


def _started(
    settings: Any, families: int, executor: Any, progress: Progress,
    todo: int, found: int, unfinished: int,
) -> None:  # fmt: skip
    """Once the studies are open: what a resume found, and the progress bar started."""
    if settings.resume:
        again = f", {unfinished} unfinished to run again" if unfinished else ""
        note(
            f"resuming {settings.prefix} from {settings.storage}: {found} finished trial(s) "
            f"found{again}"
        )
    what = f"{settings.method} search of {families} families on {_where(executor)}"
    progress.start(todo, what)


def _where(executor: Any) -> str:
    if executor.name == "ray":
        return f"Ray ({executor.workers} CPU(s))"
    return f"{executor.workers} worker(s)"
