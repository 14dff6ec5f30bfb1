"""What a capacity provider is: it reports and changes one kind of pool's capacity.

Narrow on purpose (Karpenter's CloudProvider is the model): `describe`, `scale`, `remove`,
and three hooks with no-op defaults (`begin_tick`, `tidy`, `close`).
Every change carries a request id so that a retried action — after a crash between the call
and its answer — is recognised and not done twice. Providers touch only what they own.
Errors are typed so the controller can back off or try elsewhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Protocol, TypeVar

from autoscaler.config import Pool
from autoscaler.errors import ProviderError
from autoscaler.types import Capacity

T = TypeVar("T")

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
    """The seam between the controller and a kind of pool; every method the controller
    calls is declared here. A provider subclasses it to inherit the no-op defaults of the
    optional three (`begin_tick`, `tidy`, `close`)."""

    def describe(self, pool: Pool) -> Capacity:
        """Requested, ready and pending replicas of the pool, with its members."""
        ...

    def scale(self, pool: Pool, desired: int, request_id: str) -> None:
        """Make the pool's requested capacity `desired`; idempotent by `request_id`."""
        ...

    def remove(self, pool: Pool, members: Sequence[str], request_id: str) -> None:
        """Remove these members (and lower the requested capacity by as many)."""
        ...

    def begin_tick(self) -> None:
        """A new tick starts: drop per-tick caches (the Kubernetes snapshots)."""
        return None

    has_housekeeping: ClassVar[bool] = False
    """True when `tidy` does something: the controller then runs it in the background for
    pools not acted on, and skips the pool while it runs (as after an action)."""

    def tidy(self, pool: Pool) -> None:
        """Housekeeping for a pool not acted on this tick (delete finished Jobs, which no
        scale action would otherwise trigger once a pool holds at zero)."""
        return None

    def close(self) -> None:
        """Release connections and threads; safe to call twice."""
        return None


def target_of(pool: Pool, kind: type[T]) -> T:
    """The pool's target as the provider's own target type; a pool of another kind routed
    here is a wiring bug, reported as a ProviderError naming the pool."""
    target = pool.target
    if not isinstance(target, kind):
        raise ProviderError(
            f"pool {pool.name}: target kind {target.kind!r} given to the {kind.__name__} provider"
        )
    return target
