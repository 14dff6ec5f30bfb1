"""How fast this machine runs plain Python, so figures from different machines compare.

The development machines are shared and vary: the same `bench/decide.py` measured 218 ms
per tick on one and 490 ms on another, whose core runs this loop 2-3x slower. Benchmarks
record `reference_loop_s` next to their figures; divide by it to compare machines.
"""

from __future__ import annotations

import time

REFERENCE = "sum of i*i for i < 2,000,000 in a Python loop, best of 3"


def reference_loop_seconds() -> float:
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        total = 0
        for i in range(2_000_000):
            total += i * i
        best = min(best, time.perf_counter() - started)
    return round(best, 3)
