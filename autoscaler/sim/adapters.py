"""The simulator's signal source and capacity provider: views over a Cluster.

They let the production controller tick run unchanged against the simulated world.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from autoscaler.signals.base import SignalKey, SignalRequest
from autoscaler.types import Capacity, Reading

from .cluster import Cluster


class ClusterSignals:
    """Reads the cluster's signals once per tick; a missing one reads as stale."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self._at: float | None = None
        self._values: dict[str, float | None] = {}
        # The controller asks with the same request list every tick: its keys, once.
        self._asked: Sequence[SignalRequest] | None = None
        self._keys: list[tuple[SignalKey, str]] = []

    def read(self, requests: Sequence[SignalRequest], now: float) -> dict[SignalKey, Reading]:
        if requests is not self._asked or len(self._keys) != len(requests):
            self._keys = [(r.key, r.signal) for r in requests]
            self._asked = requests
            for r in requests:  # a loop, not any() over a generator: compiled, no closure
                if r.signal == "busy_replicas":
                    self.cluster.measure_busy = True
        if self._at != now:
            self._values = self.cluster.signals(now)
            self._at = now
        values = self._values
        # Readings built without the dataclass constructor, a third cheaper at every tick:
        # the same fields (tests/sim/test_fast_path.py compares them with the constructor's).
        new = Reading.__new__
        out: dict[SignalKey, Reading] = {}
        for key, signal in self._keys:
            reading = new(Reading)
            reading.value = values.get(signal)
            reading.observed_at = now
            reading.error = None
            out[key] = reading
        return out


class ClusterProvider:
    """Scales the cluster; idempotent by request id like every provider."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.applied: set[str] = set()
        self.actions = 0

    def describe(self, pool: Any) -> Capacity:
        return self.cluster.capacity()

    def scale(self, pool: Any, desired: int, request_id: str) -> None:
        if request_id in self.applied:
            return
        self.applied.add(request_id)
        self.actions += 1
        self.cluster.scale(desired, self.cluster.clock)

    def remove(self, pool: Any, members: Sequence[str], request_id: str) -> None:
        raise NotImplementedError("the simulator scales by count only")
