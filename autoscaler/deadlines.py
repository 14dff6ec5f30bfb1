"""Waiting for concurrent work against deadlines: the one helper the observer and the
signal sources share.

Each piece of work is a future with its own budget (seconds), counted from one common start,
never from when an earlier piece was done; pieces are waited for in order of expiry, so one
slow piece never eats the budget of the others. What did not answer in time comes back as
`Late`, what failed as its exception: the caller turns either into stale readings or a
skipped pool. This module must never raise for a piece of work, nor read a clock other than
the one it is given.
"""

from __future__ import annotations

import concurrent.futures as cf
from collections.abc import Callable, Sequence
from typing import TypeVar

from autoscaler.clock import SystemClock

T = TypeVar("T")

_MONOTONIC = SystemClock().monotonic


class Late(Exception):
    """No answer within `budget` seconds."""

    def __init__(self, budget: float) -> None:
        super().__init__(f"no answer within {budget:.2f}s")
        self.budget = budget


def wait_all(
    work: Sequence[tuple[cf.Future[T], float]],
    started: float,
    *,
    cancel_late: bool = True,
    monotonic: Callable[[], float] = _MONOTONIC,
) -> list[T | BaseException]:
    """Each (future, budget seconds)'s result, or its exception, or `Late`, in the order
    given. `started` is the common start on `monotonic`. With `cancel_late` a late future
    that has not started yet is cancelled, so it is never sent."""
    out: list[T | BaseException] = [Late(0.0)] * len(work)
    for i in sorted(range(len(work)), key=lambda j: work[j][1]):
        future, budget = work[i]
        try:
            out[i] = future.result(timeout=max(0.0, started + budget - monotonic()))
        except cf.TimeoutError:
            if cancel_late:
                future.cancel()
            out[i] = Late(budget)
        except Exception as exc:
            out[i] = exc
    return out
