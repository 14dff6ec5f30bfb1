"""What a signal source is: it reads many pools' signals of one kind in one call.

A source never raises for a failed read of one signal: it returns a Reading with `error`
set, so one broken queue marks only its own pool stale. Exceptions that do escape (a bug,
a dead endpoint) are caught by the observer and turned into stale readings for every
signal the source was asked for.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from autoscaler.types import Reading

SignalKey = tuple[str, str]
"""(pool name, signal name)."""


@dataclass(frozen=True, slots=True)
class SignalRequest:
    """One signal of one pool, with its source's configuration."""

    pool: str
    signal: str
    source: Any  # a model from autoscaler.config.sources

    @property
    def key(self) -> SignalKey:
        return (self.pool, self.signal)


class SignalSource(Protocol):
    """Reads every requested signal of one source type."""

    def read(self, requests: Sequence[SignalRequest], now: float) -> dict[SignalKey, Reading]: ...

