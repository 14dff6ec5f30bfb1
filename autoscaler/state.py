"""The state file: planner memory persisted between runs of the process loop.

Written atomically after every tick, so a restarted process keeps its stabilization
windows, backoffs and action counter (the request ids of a retried action stay the same).
A file that cannot be read is an error naming it and what to do; it is never read as empty.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def load_state(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(
            f"state file {path}: cannot read ({exc}); move it away to start fresh"
        ) from None
    if not isinstance(data, dict):
        raise ValueError(f"state file {path}: not a JSON object; move it away to start fresh")
    return data


def save_state(path: Path, data: dict[str, Any]) -> None:
    """Write atomically: a crash mid-write leaves the previous state intact."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(data, fh)
    os.replace(tmp, path)
