"""The evaluation-trigger parts of the command line: `explain --trigger` (what a trigger's
condition says for a given value, how long held and since its last run) and `simulate
--trigger-series` (replay a metric series and show when triggers would have fired).

Option parsing and printing only: the condition is autoscaler/triggers/condition.py and
the replay autoscaler/sim/triggers.py. Nothing here touches a cluster.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click
from rich.table import Table

from .cli_options import duration, fail
from .cli_output import chosen_format, emit
from .config import Config
from .config.triggers import Trigger
from .sim.triggers import SeriesError, report
from .triggers.condition import ConditionMemory, assess

_WEEK = 7 * 86400.0


def explain_trigger_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The options of `explain` for a trigger (passed as `trigger_name`, `trigger_value`,
    `held`, `since_last_run`, `running`)."""
    options = [
        click.option("--trigger", "trigger_name",
                     help="explain this trigger instead of a pool (see docs/triggers.md)"),
        click.option("--trigger-value", type=float,
                     help="with --trigger: the condition's value now, e.g. 0.84"),
        click.option("--held", callback=duration(0.0, _WEEK),
                     help="with --trigger: how long the value has been breaching (default 0)"),
        click.option("--since-last-run", callback=duration(0.0, _WEEK),
                     help="with --trigger: time since its last run ended (default: never ran)"),
        click.option("--running", is_flag=True, help="with --trigger: a run is in progress"),
    ]  # fmt: skip
    for option in reversed(options):
        command = option(command)
    return command


def pick_trigger(config: Config, name: str, option: str = "--trigger") -> Trigger:
    for trigger in config.triggers:
        if trigger.name == name:
            return trigger
    have = ", ".join(t.name for t in config.triggers) or "none in this file"
    fail(f"{option}: no trigger named {name!r} (triggers: {have})")


def explain_trigger(
    config: Config,
    output: str,
    trigger_name: str,
    trigger_value: float | None,
    held: float | None,
    since_last_run: float | None,
    running: bool,
) -> None:
    """Print what the trigger's condition says (exit 2 for a missing value)."""
    trigger = pick_trigger(config, trigger_name)
    if trigger_value is None:
        fail("--trigger: give the condition's value with --trigger-value, e.g. 0.84")
    now = 0.0
    memory = ConditionMemory(now - held) if held else ConditionMemory()
    ended = now - since_last_run if since_last_run is not None else None
    verdict, _ = assess(trigger.name, trigger.condition, memory, trigger_value, now,
                        cooldown=trigger.cooldown, last_run_ended=ended,
                        running=running)  # fmt: skip
    data = verdict.to_dict()

    def table() -> list[Any]:
        out = Table(title=f"trigger {trigger.name}", show_header=True)
        for column in ("value", "threshold", "clear", "held", "for", "cooldown left", "state"):
            out.add_column(column, justify="right" if column != "state" else "left")
        sign = "<" if verdict.direction == "below" else ">"
        colour = "bold green" if verdict.fire else "cyan"
        out.add_row(f"{trigger_value:g}", f"{sign} {verdict.threshold:g}", f"{verdict.clear:g}",
                    f"{verdict.held_seconds:g}s", f"{verdict.for_seconds:g}s",
                    f"{verdict.cooldown_left_seconds:g}s",
                    f"[{colour}]{'FIRES' if verdict.fire else verdict.state}[/]")  # fmt: skip
        return [out, f"reason: {verdict.reason}"]

    emit(data, chosen_format(output), table)


def simulate_trigger_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The options of `simulate` for replaying a series (passed as `trigger_series`,
    `trigger_name`, `run_seconds`)."""
    options = [
        click.option("--trigger-series", type=click.Path(dir_okay=False),
                     help="replay this CSV of time,value through the file's triggers and show "
                     "when they would have fired (instead of a pool simulation)"),
        click.option("--trigger", "trigger_name",
                     help="with --trigger-series: only this trigger (default: all)"),
        click.option("--run-length", "run_seconds", callback=duration(0.0, _WEEK),
                     help="with --trigger-series: how long a run takes (default 0)"),
    ]  # fmt: skip
    for option in reversed(options):
        command = option(command)
    return command


def simulate_triggers(
    config: Config,
    output: str,
    out_file: str | None,
    trigger_series: str,
    trigger_name: str | None,
    run_seconds: float | None,
) -> None:
    """Print the firings (a table, or `output` json/yaml) and write JSON to `out_file`."""
    from .cli_options import write_json

    if not config.triggers:
        fail("--trigger-series: the file has no `triggers:` to replay")
    chosen = [pick_trigger(config, trigger_name)] if trigger_name else list(config.triggers)
    try:
        data = report(chosen, trigger_series, run_seconds or 0.0)
    except SeriesError as exc:
        fail(f"--trigger-series: {exc}")
    firings: list[dict[str, Any]] = data["firings"]  # type: ignore[assignment]

    def table() -> list[Any]:
        title = (f"trigger firings over {data['series']} ({data['rows']} rows, "
                 f"{data['span_seconds']:g}s)")  # fmt: skip
        out = Table(title=title)
        for column in ("trigger", "at", "value", "held", "reason"):
            out.add_column(column, justify="right" if column in ("at", "value", "held") else "left")
        for f in firings:
            out.add_row(f["trigger"], f"{f['at']:g}s", f"{f['value']:g}",
                        f"{f['held_seconds']:g}s", f["reason"])  # fmt: skip
        return [out, f"{len(firings)} firing(s)"]

    emit(data, chosen_format(output), table)
    if out_file:
        write_json(out_file, data)
