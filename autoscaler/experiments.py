"""Experiment pools: say in a decision's reason that its Optuna study is done.

An experiment pool scales on an `optuna` signal (docs/experiments.md); once the study is
done that signal reads 0 and the pool's policy winds it down like any empty queue. The
reason would then read only `queue 0 ... -> 0`, so a pool that also declares a
`metric: done` signal gets `; experiment done: study S` appended, and the status, the
Events and `explain` say why the experiment's capacity went. (A spent GPU-hour budget
already names itself: `budget: pool P 10 GPU-hours total (0.0 left) reached`.)

Pure: no I/O; it reads only the readings the tick already has.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING

from .types import Decision, Reading

if TYPE_CHECKING:
    from .config import Pool


def done_studies(pool: Pool, readings: Mapping[tuple[str, str], Reading]) -> list[str]:
    """Names of the pool's studies whose `done` signal reads 1 (stale readings say nothing)."""
    out = []
    for name, spec in pool.signals.items():
        source = spec.source
        if source.type != "optuna" or source.metric != "done":
            continue
        reading = readings.get((pool.name, name))
        if reading is not None and not reading.stale and (reading.value or 0) >= 1:
            out.append(source.study)
    return out


def with_experiment_reason(
    pool: Pool, decision: Decision, readings: Mapping[tuple[str, str], Reading]
) -> Decision:
    """The decision, its reason naming the done studies of the pool (if any)."""
    studies = done_studies(pool, readings)
    if not studies:
        return decision
    names = ", ".join(studies)
    return replace(decision, reason=f"{decision.reason}; experiment done: study {names}")
