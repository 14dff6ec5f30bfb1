"""Replaying a metric series through evaluation triggers: when would each have fired?

The series is a CSV of `time,value` (seconds, or RFC 3339 times; a header line is
optional). Each row is one reading, assessed by the same pure condition code the
controller runs (autoscaler/triggers/condition.py), with a fake clock. A firing starts a
run that is taken to last `run_seconds`; the cooldown counts from its end. Nothing here
touches a cluster.
"""

from __future__ import annotations

import csv
import math
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

from autoscaler.config.triggers import Trigger
from autoscaler.triggers.condition import ConditionMemory, assess

MAX_ROWS = 10_000_000


class SeriesError(ValueError):
    """A series file that cannot be replayed; the message names the file and line."""


@dataclass(frozen=True)
class Firing:
    """One time a trigger would have fired."""

    trigger: str
    at: float
    """Seconds from the series' start."""
    value: float
    held_seconds: float
    reason: str


def read_series(path: str) -> list[tuple[float, float]]:
    """(time, value) rows, times as seconds since the first row; sorted check included."""
    rows: list[tuple[float, float]] = []
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            for line, row in enumerate(csv.reader(fh), start=1):
                if not row or row[0].strip().startswith("#"):
                    continue
                if len(row) < 2:
                    raise SeriesError(f"{path}:{line}: expected `time,value`, got {row!r}")
                when, value = _time(row[0]), _number(row[1])
                if when is None or value is None:
                    if line == 1 and not rows:
                        continue  # a header
                    raise SeriesError(
                        f"{path}:{line}: {row[0]!r},{row[1]!r} is not `time,value` (time in "
                        "seconds or RFC 3339, value a finite number)"
                    )
                if rows and when < rows[-1][0]:
                    raise SeriesError(f"{path}:{line}: time goes backwards; sort the rows")
                rows.append((when, value))
                if len(rows) > MAX_ROWS:
                    raise SeriesError(f"{path}: more than {MAX_ROWS:,} rows; shorten it")
    except OSError as exc:
        raise SeriesError(f"{path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise SeriesError(f"{path}: not a text (CSV) file") from None
    if not rows:
        raise SeriesError(f"{path}: no `time,value` rows")
    start = rows[0][0]
    return [(t - start, v) for t, v in rows]


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _time(text: str) -> float | None:
    number = _number(text)
    if number is not None:
        return number
    try:
        return datetime.fromisoformat(text.strip().replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def replay(
    trigger: Trigger, series: list[tuple[float, float]], run_seconds: float = 0.0
) -> list[Firing]:
    """When `trigger` would have fired over `series`; each run lasts `run_seconds`."""
    memory = ConditionMemory()
    run_ends: float | None = None
    firings: list[Firing] = []
    for at, value in series:
        running = run_ends is not None and at < run_ends
        verdict, memory = assess(
            trigger.name,
            trigger.condition,
            memory,
            value,
            at,
            cooldown=trigger.cooldown,
            last_run_ended=run_ends,
            running=running,
        )
        if verdict.fire:
            firings.append(Firing(trigger.name, at, value, verdict.held_seconds, verdict.reason))
            run_ends = at + run_seconds
    return firings


def report(triggers: list[Trigger], series_path: str, run_seconds: float) -> dict[str, object]:
    """The firings of every trigger over one series, as JSON-ready data."""
    series = read_series(series_path)
    firings = [f for t in triggers for f in replay(t, series, run_seconds)]
    return {
        "series": str(Path(series_path)),
        "rows": len(series),
        "span_seconds": series[-1][0],
        "run_seconds": run_seconds,
        "firings": [asdict(f) for f in sorted(firings, key=lambda f: (f.at, f.trigger))],
    }
