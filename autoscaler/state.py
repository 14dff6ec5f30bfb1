"""The state file: planner memory persisted between runs of the process loop.

Written atomically after every tick, so a restarted process keeps its stabilization
windows, backoffs and action counter (the request ids of a retried action stay the same).
A file that cannot be read, or holds anything but what the controller writes (the schema
and bounds in autoscaler/state_schema.py), is an error naming it, the JSON path of the bad
field and what to do; it is never read as empty, never repaired and never rewritten.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from .state_schema import MAX_DEPTH, StateInvalid, validate_state

MAX_BYTES = 64 * 1024 * 1024
"""A state file larger than this is refused before it is read."""
_FRESH = "move it away to start fresh"


def load_state(
    path: Path, now: float | None = None, backoff_max: float | None = None
) -> dict[str, Any]:
    """The state in `path` ({} when there is none), checked against the schema. `now`: the
    reader's clock (default: the system's), no stored time may lie much beyond it;
    `backoff_max`: the longest provider backoff the controller sets. Raises ValueError (one
    line: the file, the path of the bad field, what to do)."""
    if not path.exists():
        return {}
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise ValueError(f"{size} bytes, more than {MAX_BYTES}")
        data = json.loads(path.read_text(encoding="utf-8"))
    except RecursionError:
        raise ValueError(
            f"state file {path}: (top level): nested more than {MAX_DEPTH} deep; {_FRESH}"
        ) from None
    except (OSError, ValueError) as exc:
        raise ValueError(f"state file {path}: cannot read ({exc}); {_FRESH}") from None
    if not isinstance(data, dict):
        raise ValueError(f"state file {path}: not a JSON object; {_FRESH}")
    try:
        validate_state(data, time.time() if now is None else now, backoff_max)
    except StateInvalid as exc:
        raise ValueError(f"state file {path}: {exc.where}: {exc.message}; {_FRESH}") from None
    return data


def save_state(path: Path, data: dict[str, Any]) -> None:
    """Write atomically: a crash mid-write leaves the previous state intact."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(data, fh)
    os.replace(tmp, path)
