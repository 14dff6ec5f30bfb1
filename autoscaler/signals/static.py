"""The `static` source: the value written in the configuration. For tests and demos."""

from __future__ import annotations

from collections.abc import Sequence

from autoscaler.types import Reading

from .base import SignalKey, SignalRequest


class StaticReader:
    def read(self, requests: Sequence[SignalRequest], now: float) -> dict[SignalKey, Reading]:
        return {r.key: Reading(float(r.source.value), now) for r in requests}
