"""Garbage-collector settings for the long-running controller process.

The controller keeps a large, long-lived heap (pool configurations, policies, planner memory
for thousands of pools) and allocates many short-lived objects every tick (observations,
recommendations, decisions, memory). With CPython's defaults a young collection runs every
700 allocations, several per pool, and the older generations are walked again and again over
the long-lived heap: at 10,000 pools that was about a tenth of a tick and most of its p99
(bench/decide.py, measured side by side). So, as large Python services do:

- `tune_gc` raises the collection thresholds (young garbage is still freed by reference
  counting at once; only cycles wait a little longer);
- `freeze_long_lived` moves what exists once the pools are built out of the collector's
  view (`gc.freeze`), after one last collection, so it is not rescanned every tick.
"""

from __future__ import annotations

import gc

GC_THRESHOLDS = (10_000, 50, 100)
"""Young-generation allocations, then collections of the next generation, per collection."""


def tune_gc() -> None:
    gc.set_threshold(*GC_THRESHOLDS)


def freeze_long_lived() -> None:
    """Call after (re)building the controller. What an earlier call froze is unfrozen and
    collected first, so a replaced controller's cycles are not kept forever."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()
