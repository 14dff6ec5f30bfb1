"""Units for the report: a time axis scaled to the replay's span, durations in the unit that
fits them, and series binned down to what a plot can show.

A month replayed at a 30 s tick is ~90,000 rows per policy; drawn as is, every line is a
solid block and the SVG weighs megabytes. Binning keeps each bin's highest value (queue,
replicas: the peaks are what a reader looks for) or its mean (utilization), and the
caption says how wide a bin is. Pure functions over lists and arrays: nothing here reads a
run or writes a file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

MAX_POINTS = 1500
"""Most points a plotted line keeps; longer series are binned."""


@dataclass(frozen=True)
class TimeUnit:
    name: str
    """Plural unit name, for the axis label ("minutes", "hours", "days")."""
    seconds: float


MINUTES = TimeUnit("minutes", 60.0)
HOURS = TimeUnit("hours", 3600.0)
DAYS = TimeUnit("days", 86400.0)


def time_unit(span_seconds: float) -> TimeUnit:
    """Minutes up to 3 hours, hours up to 3 days, days beyond: a month reads as 0-34 days,
    not 0-50000 minutes."""
    if span_seconds <= 3 * 3600:
        return MINUTES
    if span_seconds <= 3 * 86400:
        return HOURS
    return DAYS


def duration(seconds: float) -> str:
    """A wait as a person writes it: "0 s", "4.2 s", "95 s", "12.5 min", "6.1 h", "2.3 days"."""
    if not np.isfinite(seconds):
        return "n/a"
    if seconds < 10:
        return f"{seconds:.1f} s" if seconds and seconds != int(seconds) else f"{seconds:.0f} s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def bin_width(t: Sequence[float] | np.ndarray, points: int = MAX_POINTS) -> float:
    """Seconds per bin so that the series keeps at most `points` points (0: no binning)."""
    if len(t) <= points:
        return 0.0
    span = float(t[-1]) - float(t[0])
    return span / points if span > 0 else 0.0


def binned(
    t: Sequence[float], values: Sequence[Any], width: float, how: str = "max"
) -> tuple[np.ndarray, np.ndarray]:
    """`values` (None read as missing) reduced to one point per `width` seconds, at the
    bin's start: its highest value (`how="max"`) or its mean (`"mean"`). A bin with no
    value stays missing (NaN), so a gap in the data stays a gap in the line."""
    x = np.asarray(t, dtype=float)
    y = np.asarray([np.nan if v is None else v for v in values], dtype=float)
    if width <= 0 or len(x) == 0:
        return x, y
    index = ((x - x[0]) // width).astype(np.int64)
    n = int(index[-1]) + 1
    present = ~np.isnan(y)
    counts = np.bincount(index[present], minlength=n)
    if how == "mean":
        sums = np.bincount(index[present], weights=y[present], minlength=n)
        with np.errstate(invalid="ignore", divide="ignore"):
            out = sums / counts
    else:
        out = np.full(n, -np.inf)
        np.maximum.at(out, index[present], y[present])
    out[counts == 0] = np.nan
    return x[0] + np.arange(n) * width, out


def per_bin_counts(times: Sequence[float], width: float) -> tuple[np.ndarray, np.ndarray]:
    """How many of `times` fall in each `width`-second bin from 0, and the bins' starts."""
    x = np.asarray(times, dtype=float)
    if len(x) == 0:
        return np.zeros(0), np.zeros(0)
    counts = np.bincount((x // width).astype(np.int64))
    return np.arange(len(counts)) * width, counts.astype(float)
