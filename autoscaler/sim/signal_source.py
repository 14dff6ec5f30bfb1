"""The simulator's signal source: the cluster's signals, read as production reads its own.

It lets the production controller tick run unchanged against the simulated world (the
provider side is `SimulatedProvider` over the cluster, autoscaler/providers/simulated.py).
It never reads a clock: a reading is observed at the `now` it is asked about.
"""

from __future__ import annotations

from collections.abc import Sequence

from autoscaler.signals.base import SignalKey, SignalRequest
from autoscaler.types import Reading

from .cluster import Cluster


class ClusterSignals:
    """Measures the cluster once per tick; a signal it does not produce reads as stale
    (no value)."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.read_names: frozenset[str] = frozenset()
        """The signals asked for so far: the engine skips ticks only where these hold."""
        self._at: float | None = None
        self._values: dict[str, float | None] = {}
        self._asked: tuple[Sequence[SignalRequest] | None, int] = (None, 0)

    def read(self, requests: Sequence[SignalRequest], now: float) -> dict[SignalKey, Reading]:
        if self._asked != (requests, len(requests)):  # the controller asks alike every tick
            self._asked = (requests, len(requests))
            self.read_names |= {r.signal for r in requests}
            if "busy_replicas" in self.read_names:
                self.cluster.measure_busy = True
        if self._at != now:
            self._values = self.cluster.signals(now)
            self._at = now
        values = self._values
        return {r.key: Reading(values.get(r.signal), now) for r in requests}
