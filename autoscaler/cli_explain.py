"""`autoscaler explain`: what a pool's policy and planner would decide for given signal
values, optionally from the memory a controller left in its state file.

The work is autoscaler/explain.py; this module parses the options and prints the result.
"""

from __future__ import annotations

from typing import Any

import click
from rich.console import Console
from rich.table import Table

from .cli_options import config_errors, fail
from .cli_output import (
    chosen_format,
    emit,
    json_flag_alias,
    output_option,
    print_table,
    stdout_console,
)
from .cli_triggers import explain_trigger, explain_trigger_options
from .config import ConfigError, load_config
from .explain import ExplainError, Explanation, explain, load_pool_memory, parse_signals


@click.command(name="explain")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--pool", "pool_name", help="pool to explain (default: the only pool)")
@click.option(
    "--signal",
    "signals",
    multiple=True,
    metavar="NAME=VALUE",
    help="a signal value, e.g. queue=120 (repeat for each signal)",
)
@click.option("--replicas", type=int, help="replicas the pool has now (required for a pool)")
@click.option("--ready", type=int, help="of which ready (default: all)")
@click.option(
    "--state",
    "state_file",
    type=click.Path(dir_okay=False, exists=True),
    help="start from the pool's memory in this controller state file (`run --state`), at "
    "its last tick: forecast, learned idle gaps, planner windows",
)
@output_option(what="the explanation")
@json_flag_alias()
@explain_trigger_options
def explain_cmd(
    file: str,
    pool_name: str | None,
    signals: tuple[str, ...],
    replicas: int | None,
    ready: int | None,
    state_file: str | None,
    output: str,
    **trigger: Any,
) -> None:
    """Show what a pool's policy and planner would decide for given signal values, or
    (--trigger) whether an evaluation trigger would fire and why."""
    try:
        config = load_config(file)
    except ConfigError as exc:
        config_errors(exc)
        raise SystemExit(2) from None
    if trigger["trigger_name"] is not None:
        explain_trigger(config, output, **trigger)
        return
    if replicas is None:
        fail("explain: give --replicas N (the pool's replicas now), or --trigger NAME")
    if pool_name is None:
        if len(config.pools) != 1:
            fail(
                f"{file} has {len(config.pools)} pools; choose one with --pool "
                f"({', '.join(p.name for p in config.pools)})"
            )
        pool = config.pools[0]
    else:
        try:
            pool = config.pool(pool_name)
        except KeyError as exc:
            fail(f"--pool: {exc.args[0]}")
    try:
        backoff_max = config.controller.provider_backoff_max
        memory = load_pool_memory(state_file, pool, backoff_max) if state_file else None
        result = explain(
            pool,
            parse_signals(signals, pool),
            replicas,
            ready,
            memory=memory,
            budget=config.installation.budget,
        )
    except ExplainError as exc:
        fail(str(exc))
    output = chosen_format(output)
    if output != "table":
        emit(result.to_dict(), output)
        return
    _print_explanation(result)


def _print_explanation(result: Explanation) -> None:
    console = stdout_console()
    obs, rec, dec = result.observation, result.recommendation, result.decision
    table = Table(
        title=f"pool {result.pool.name} ({result.pool.policy.type} policy)", show_header=True
    )
    table.add_column("signal")
    table.add_column("value", justify="right")
    table.add_column("status", overflow="fold")
    for name, value in sorted(obs.signals.items()):
        table.add_row(name, f"{value:g}", "ok")
    for name, why in sorted(result.stale.items()):
        table.add_row(name, "-", f"[yellow]stale: {why}[/]")
    print_table(table, console)
    console.print(
        f"replicas now: {obs.current_replicas} ({obs.ready_replicas} ready), "
        f"bounds [{result.pool.min}, {result.pool.max}]"
    )
    console.print(f"policy recommends: [bold]{rec.desired}[/]  ({rec.reason})")
    colour = {"up": "green", "down": "red", "hold": "cyan"}[dec.direction]
    console.print(
        f"planner decides:   [bold {colour}]{dec.direction} {dec.current} -> {dec.desired}[/]"
    )
    console.print(f"reason: {dec.reason}")
    for entry in result.keep_alive:
        _print_learned_gaps(console, entry)
    if result.from_state:
        console.print(f"[dim]from the state file: memory as of the last tick (t={dec.at:g})[/]")
    else:
        console.print(
            "[dim]first-tick view: planner memory starts empty (no stabilization history)[/]"
        )


def _print_learned_gaps(console: Console, entry: dict[str, object]) -> None:
    """What a keep-alive learned (explain.learned_gaps)."""
    learned = entry["learned"]
    where = entry["policy"]
    if not isinstance(learned, dict):
        console.print(f"keep-alive ({where}): nothing learned yet (give --state FILE)")
        return

    def secs(value: object) -> str:
        return "> 1 day" if value is None else f"{value:g}s"

    trusted = "representative" if learned["representative"] else "not representative"
    console.print(
        f"keep-alive ({where}): {learned['gaps']} gaps seen, p10 {secs(learned['p10'])}, "
        f"p50 {secs(learned['p50'])}, p90 {secs(learned['p90'])}; CV {learned['cv']:g}, "
        f"{trusted}; a burst brings ~{learned['burst_requests']:g} requests in its first "
        "startup"
        + (
            f" and wants ~{learned['burst_peak_slots']:g} slots at once at its peak"
            if learned.get("burst_peak_slots")
            else ""
        )
    )
    hours = learned["top_hours"]
    if isinstance(hours, list) and hours:
        listed = ", ".join(f"{h['hour']:02d}:00 ({h['share']:.0%} of days)" for h in hours)
        console.print(f"  bursts start most at (UTC): {listed}")
