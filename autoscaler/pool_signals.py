"""Which signals each pool reads, from which source, and how a pool's readings become the
`Observation` its policy sees.

Built once per controller from the configuration: the signal requests grouped by source
type (one `read` call per type per tick), each type's timeout, and per pool the signals with
their maximum age. `observation()` then turns one tick's readings into an Observation and
the stale signals that hold the pool. Only signals the policy reads can hold a pool; the
others are just observed. This module must never read a signal itself, and never turn a
missing, failing, old or non-finite reading into a value, with one exception the user
declares: a signal `from_pods` (scraped from the pool's own pods) that answers "no series"
while the pool has no ready replica reads as 0, since nobody is there to export it.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping

from autoscaler.config import Config, Pool
from autoscaler.signals import SignalKey, SignalRequest, SignalSource, build_source
from autoscaler.types import Capacity, Observation, Reading

_NONE: frozenset[str] = frozenset()


class PoolSignals:
    """The signal wiring of every pool of a configuration."""

    def __init__(self, config: Config, sources: dict[str, SignalSource]) -> None:
        """Sources missing from `sources` (keyed by source type) are built from the
        registry and added to it; an unavailable type raises SourceUnavailable naming the
        config path. Pools of kind `simulated` read the signals their policy needs, unless
        declared, from the source keyed `simulated` (the simulator's)."""
        self.interval = config.controller.interval
        self.requests: dict[str, list[SignalRequest]] = defaultdict(list)
        """Signal requests by source type."""
        self.timeouts: dict[str, float] = {}
        """Seconds each source type may take."""
        self.required = {
            p.name: p.policy.signal_names() - p.policy.optional_signals() for p in config.pools
        }
        # Per pool: (reading key, signal name, declared max age or None, from its pods).
        self._signals: dict[str, list[tuple[SignalKey, str, float | None, bool]]] = (
            defaultdict(list)
        )
        for i, pool in enumerate(config.pools):
            if pool.target.kind == "simulated" and "simulated" in sources:
                for name in sorted(pool.policy.signal_names() - set(pool.signals)):
                    self.requests["simulated"].append(SignalRequest(pool.name, name, None))
                    self._signals[pool.name].append(((pool.name, name), name, None, False))
            for name, spec in pool.signals.items():
                max_age = spec.max_age
                poll = getattr(spec.source, "poll_interval", None)
                if max_age is None and poll is not None:
                    # A polled reading stands until its next read: it is due `poll` after
                    # it was taken, and may be a few ticks late when reads are spread out.
                    max_age = poll + 3 * self.interval
                self._signals[pool.name].append(
                    ((pool.name, name), name, max_age, spec.from_pods)
                )
                kind = spec.source.type
                if kind not in sources:
                    where = f"pools[{i}].signals.{name}.source"
                    sources[kind] = build_source(kind, where, config.controller)
                self.requests[kind].append(SignalRequest(pool.name, name, spec.source))
                timeout = spec.source.timeout or config.controller.source_timeout
                self.timeouts[kind] = max(self.timeouts.get(kind, 0.0), timeout)

    def observation(
        self,
        pool: Pool,
        capacity: Capacity,
        readings: Mapping[SignalKey, Reading],
        now: float,
    ) -> tuple[Observation, dict[str, str]]:
        """The pool's observation and its stale signals (name -> why)."""
        values: dict[str, float] = {}
        stale: dict[str, str] = {}
        empty: set[str] = set()
        required = self.required[pool.name]
        max_age_default = 3 * self.interval
        no_pods = capacity.ready == 0
        for key, name, declared_max_age, from_pods in self._signals[pool.name]:
            reading = readings.get(key) or Reading(None, now, "not read")
            max_age = declared_max_age if declared_max_age is not None else max_age_default
            value = reading.value
            if (
                from_pods
                and no_pods
                and value is None
                and reading.error is None
                and now - reading.observed_at <= max_age
            ):
                # Nobody is there to export it: an answer of "no series" is the truth (0),
                # not an outage. A source that fails (error set) still holds the pool.
                values[name] = 0.0
                continue
            if (
                reading.error is None
                and value is not None
                and 0.0 <= value < math.inf
                and now - reading.observed_at <= max_age
            ):
                values[name] = value
                continue
            why = reading.why_stale()
            if not why and now - reading.observed_at > max_age:
                why = f"{now - reading.observed_at:.0f}s old (max_age {max_age:g}s)"
            if why:
                if reading.error is None and reading.value is None:
                    empty.add(name)
                if name in required:
                    stale[name] = why
                continue
            assert reading.value is not None
            values[name] = reading.value
        observation = Observation(
            pool=pool.name,
            now=now,
            current_replicas=capacity.desired,
            ready_replicas=capacity.ready,
            signals=values,
            stale=frozenset(stale) if stale else _NONE,
            empty=frozenset(empty) if empty else _NONE,
            startup_seconds=pool.startup,
            min_replicas=pool.min,
            max_replicas=pool.max,
        )
        return observation, stale
