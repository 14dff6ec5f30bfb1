"""Option parsing the commands share: durations, positive numbers, fractions and output
paths, each checked before any work starts; and the one-line exit for errors a user can fix.

A bad value is a click.BadParameter naming the option, the value and what is allowed, so
the command exits 2 with one line and no traceback. This module must never do a command's
work.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

import click
from pydantic import ValidationError

from .config import ConfigError
from .config.loader import issues_from
from .units import parse_duration, parse_fraction

Callback = Callable[[click.Context, click.Parameter, str | None], float | None]

MAX_SPEEDUP = 1_000_000.0
"""The most `--speedup` replays a trace faster: a week in well under a second."""


def fail(message: str) -> NoReturn:
    """`error: <message>` on stderr, exit 2: an error the user can fix, no traceback."""
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


def config_errors(error: ConfigError) -> None:
    """Every issue of an invalid configuration on stderr, each with its path and line."""
    click.echo(f"{error.source}: {len(error.issues)} error(s)", err=True)
    for issue in error.issues:
        click.echo(f"  {issue}", err=True)


def plain(error: BaseException) -> str:
    """An exception as one plain line: a pydantic error as `field: problem; ...` (the
    configuration's own wording, never pydantic's URLs), anything else as its text."""
    if isinstance(error, ValidationError):
        return "; ".join(str(issue) for issue in issues_from(error, {}))
    if isinstance(error, OSError) and error.strerror:
        return f"{error.filename}: {error.strerror}" if error.filename else error.strerror
    text = str(error)
    # An error that quotes the pydantic error it was raised from (`raise X(f"...: {exc}")
    # from None` keeps it as the context): the quote in plain words.
    context = error.__context__
    if isinstance(context, ValidationError) and str(context) in text:
        text = text.replace(str(context), plain(context))
    return text


def show_seconds(value: float) -> str:
    """A duration as a user writes it: 10ms, 15s, 5m, 1h, 1d."""
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("m", 60.0), ("s", 1.0)):
        if value >= size and (value / size).is_integer():
            return f"{value / size:g}{unit}"
    return f"{value * 1000:g}ms" if value < 1 else f"{value:g}s"


def duration(low: float, high: float) -> Callback:
    """An option callback: a duration from `low` to `high` seconds, given as seconds (15)
    or a string such as '15s', '5m', '250ms'."""
    allowed = f"from {show_seconds(low)} to {show_seconds(high)}"

    def check(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
        if value is None:
            return None
        try:
            parsed = parse_duration(value)
        except (ValueError, TypeError):
            raise click.BadParameter(
                f"{value!r} is not a duration: give seconds (15) or a string such as '15s', "
                f"'250ms', '5m', {allowed}"
            ) from None
        if not low <= parsed <= high:
            raise click.BadParameter(f"{value!r} is out of range: give a duration {allowed}")
        return parsed

    return check


seconds = duration(0.001, 86400.0)
"""A positive duration, 1ms to 1 day: seconds (15) or a string such as '15s', '5m'."""


def positive_number(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    """A finite number above 0, at most MAX_SPEEDUP (a speed-up factor)."""
    if value is None:
        return None
    try:
        parsed = float(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not a number: give a number above 0, at most {MAX_SPEEDUP:,.0f}"
        ) from None
    if not math.isfinite(parsed) or not 0 < parsed <= MAX_SPEEDUP:
        raise click.BadParameter(
            f"must be a finite number above 0, at most {MAX_SPEEDUP:,.0f}; got {value!r}"
        )
    return parsed


def fraction(ctx: click.Context, param: click.Parameter, value: str | float | None) -> float | None:
    """A share in (0, 1]: 0.99 or '99%'."""
    if value is None:
        return None
    try:
        parsed = parse_fraction(value)
    except (ValueError, TypeError) as exc:
        raise click.BadParameter(str(exc)) from None
    if not 0 < parsed <= 1:
        raise click.BadParameter(
            f"{value!r} is out of range: give a share above 0 and at most 1, e.g. 0.99 or '99%'"
        )
    return parsed


def output_file(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A file to write results to ('-': standard output), that can be written now: its
    folder exists and takes a new file (or the file exists and can be written), so a long
    run never ends with results it cannot write. Nothing is left behind by the check."""
    if value is None or value == "-":
        return value
    path = Path(value)
    folder = path.parent
    try:
        is_dir, in_folder, existed = path.is_dir(), folder.is_dir(), path.exists()
    except OSError as exc:  # a name too long for the file system
        raise click.BadParameter(f"cannot write {value!r}: {exc.strerror or exc}") from None
    if is_dir:
        raise click.BadParameter(f"{value!r} is a folder; give a file name")
    if not in_folder:
        raise click.BadParameter(f"folder {str(folder)!r} does not exist; create it first")
    try:
        # "a" leaves an existing file as it is; "x" creates a new one, removed at once.
        with open(path, "a" if existed else "x", encoding="utf-8"):
            pass
        if not existed:
            path.unlink()
    except OSError as exc:
        raise click.BadParameter(
            f"cannot write {value!r}: {exc.strerror or exc}; give a file in a folder you "
            "can write to"
        ) from None
    return value


def output_folder(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A folder to write a report into, created now and checked to take files (so a long
    run never ends without one)."""
    if value is None:
        return None
    folder = Path(value)
    try:
        a_file = folder.exists() and not folder.is_dir()
    except OSError as exc:  # a name too long for the file system
        raise click.BadParameter(f"cannot create folder {value!r}: {exc.strerror}") from None
    if a_file:
        raise click.BadParameter(f"{value!r} is a file; give a folder for the report")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise click.BadParameter(f"cannot create folder {value!r}: {exc.strerror}") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise click.BadParameter(f"cannot write into folder {value!r}: permission denied")
    probe = folder / f".autoscaler-write-check-{os.getpid()}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise click.BadParameter(
            f"cannot write into folder {value!r}: {exc.strerror or exc}"
        ) from None
    return value


def write_json(path: str, data: object) -> None:
    """Write `data` as indented JSON; a file that cannot be written (the disk filled, the
    folder went away) is one line on standard error and exit 2, never a traceback."""
    try:
        Path(path).write_text(json.dumps(data, indent=2) + "\n")
    except OSError as exc:
        click.echo(f"error: cannot write {path}: {exc.strerror or exc}", err=True)
        sys.exit(2)
