"""Polling with a deadline, for tests that wait on a cluster to converge.

``wait_for(check, timeout=..., what=...)`` calls ``check`` until it returns something truthy
and returns that; on timeout it raises ``TimeoutError`` naming what was awaited and, when a
``describe`` callable is given, the state it last saw (so a failure explains itself).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(
    check: Callable[[], T],
    *,
    timeout: float,
    what: str,
    interval: float = 0.2,
    describe: Callable[[], str] | None = None,
) -> T:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() >= deadline:
            state = ""
            if describe is not None:
                try:
                    state = f"; last seen: {describe()}"
                except Exception as e:
                    state = f"; (describing the state failed: {e!r})"
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}{state}")
        time.sleep(interval)
