"""Option parsing the commands share: durations, positive numbers, fractions and output
paths, each checked before any work starts; and the one-line exit for errors a user can fix.

A bad value is a click.BadParameter naming the option and what to give instead, so the
command exits 2 with one line and no traceback. This module must never do a command's work.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import NoReturn

import click

from .config import ConfigError
from .units import parse_duration, parse_fraction


def fail(message: str) -> NoReturn:
    """`error: <message>` on stderr, exit 2: an error the user can fix, no traceback."""
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


def config_errors(error: ConfigError) -> None:
    """Every issue of an invalid configuration on stderr, each with its path and line."""
    click.echo(f"{error.source}: {len(error.issues)} error(s)", err=True)
    for issue in error.issues:
        click.echo(f"  {issue}", err=True)


def seconds(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    """A positive duration: seconds (15) or a string such as '15s', '5m', '250ms'."""
    if value is None:
        return None
    try:
        parsed = parse_duration(value)
    except (ValueError, TypeError) as exc:
        raise click.BadParameter(str(exc)) from None
    if parsed <= 0:
        raise click.BadParameter(f"must be positive, got {value!r}")
    return parsed


def positive_number(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    """A finite number above zero (a speed-up factor)."""
    if value is None:
        return None
    try:
        parsed = float(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a number") from None
    if not math.isfinite(parsed) or parsed <= 0:
        raise click.BadParameter(f"must be a finite number above 0, got {value!r}")
    return parsed


def fraction(ctx: click.Context, param: click.Parameter, value: str | float | None) -> float | None:
    """A share in (0, 1]: 0.99 or '99%'."""
    if value is None:
        return None
    try:
        return parse_fraction(value)
    except (ValueError, TypeError) as exc:
        raise click.BadParameter(str(exc)) from None


def output_file(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A file to write results to ('-': standard output), whose folder must exist now, so a
    long run never ends with results it cannot write."""
    if value is None or value == "-":
        return value
    folder = Path(value).parent
    if not folder.is_dir():
        raise click.BadParameter(f"folder {str(folder)!r} does not exist; create it first")
    if Path(value).is_dir():
        raise click.BadParameter(f"{value!r} is a folder; give a file name")
    return value


def output_folder(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A folder to write a report into, created now (so a long run never ends without one)."""
    if value is None:
        return None
    try:
        Path(value).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise click.BadParameter(f"cannot create folder {value!r}: {exc.strerror}") from None
    return value


def write_json(path: str, data: object) -> None:
    """Write `data` as indented JSON; a file that cannot be written (the disk filled, the
    folder went away) is one line on standard error and exit 2, never a traceback."""
    try:
        Path(path).write_text(json.dumps(data, indent=2) + "\n")
    except OSError as exc:
        click.echo(f"error: cannot write {path}: {exc.strerror or exc}", err=True)
        sys.exit(2)
