"""Units that configuration values carry: durations in seconds and fractions in 0..1.

Pure (pydantic only, no I/O), so `policies/` may import it. The point is to catch the
classic unit slips at load time with a message that says what to write instead: a
utilization of `70` where `0.7` was meant, or a duration of `5 minutes`.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, WithJsonSchema

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_SCALE = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def _float(value: int | float) -> float:
    """A number as a float; an integer beyond any float (10**400) as infinity, which the
    callers refuse as not finite (float() would raise OverflowError)."""
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def parse_duration(value: Any) -> float:
    """Seconds from a number (seconds) or a string such as '250ms', '30s', '5m', '1.5h'."""
    if isinstance(value, bool):
        raise ValueError("a duration must be a number of seconds or a string like '30s', '5m'")
    if isinstance(value, int | float):
        seconds = _float(value)
    elif isinstance(value, str):
        m = _DURATION.match(value)
        if not m:
            raise ValueError(
                f"{value!r} is not a duration: use seconds (300) or a string such as "
                "'300s', '5m', '1h', '250ms'"
            )
        seconds = float(m.group(1)) * _SCALE[m.group(2)]
    else:
        raise ValueError("a duration must be a number of seconds or a string like '30s', '5m'")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"a duration must be finite and >= 0 seconds, got {value!r}")
    return seconds


def parse_fraction(value: Any) -> float:
    """A share in (0, 1] from a number (0.7) or a percentage string ('70%')."""
    if isinstance(value, bool):
        raise ValueError("a fraction must be a number between 0 and 1 or a string like '70%'")
    if isinstance(value, str):
        text = value.strip()
        if text.endswith("%"):
            try:
                return float(text[:-1]) / 100.0
            except ValueError:
                raise ValueError(f"{value!r} is not a percentage such as '70%'") from None
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"{value!r} is not a fraction such as 0.7 or '70%'") from None
    if isinstance(value, int | float):
        v = _float(value)
        if not math.isfinite(v):
            raise ValueError(f"{value!r} is not a finite number")
        if v > 1.0:
            raise ValueError(
                f"{value!r} is not a fraction: utilization is between 0 and 1 "
                f"(write {v / 100:g} or '{v:g}%')"
            )
        return v
    raise ValueError("a fraction must be a number between 0 and 1 or a string like '70%'")


Seconds = Annotated[
    float,
    BeforeValidator(parse_duration),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": 0},
                {"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*(ms|s|m|h|d)?\s*$"},
            ],
            "description": "seconds, or a string such as '30s', '5m', '1h'",
        }
    ),
]
"""A duration in seconds; accepts '30s', '5m', '1h', '250ms' in files."""

Fraction = Annotated[
    float,
    BeforeValidator(parse_fraction),
    Field(gt=0, le=1),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
                {"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*%\s*$"},
            ],
            "description": "a share between 0 and 1, or a percentage string such as '70%'",
        }
    ),
]
"""A share in (0, 1]; accepts '70%' in files."""
