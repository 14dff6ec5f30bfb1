"""What a capacity provider is: it reports and changes one kind of pool's capacity.

Narrow on purpose (Karpenter's CloudProvider is the model): `describe`, `scale`, `remove`.
Every change carries a request id so that a retried action — after a crash between the call
and its answer — is recognised and not done twice. Providers touch only what they own.
Errors are typed so the controller can back off or try elsewhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from autoscaler.types import Capacity

_TRUE = {"true", "yes", "busy", "1"}
_FALSE = {"false", "no", "idle", "0"}


def parse_busy(value: str | None) -> float | None:
    """A member's share of time busy (0..1) from the `<prefix>/busy` tag or annotation it
    carries (a number, or true/false); None when absent or unusable."""
    if value is None:
        return None
    text = value.strip().lower()
    if text in _TRUE:
        return 1.0
    if text in _FALSE:
        return 0.0
    try:
        busy = float(text)
    except ValueError:
        return None
    return busy if 0.0 <= busy <= 1.0 else None


class CapacityProvider(Protocol):
    def describe(self, pool: Any) -> Capacity:
        """Requested, ready and pending replicas of the pool, with its members."""
        ...

    def scale(self, pool: Any, desired: int, request_id: str) -> None:
        """Make the pool's requested capacity `desired`; idempotent by `request_id`."""
        ...

    def remove(self, pool: Any, members: Sequence[str], request_id: str) -> None:
        """Remove these members (and lower the requested capacity by as many)."""
        ...
