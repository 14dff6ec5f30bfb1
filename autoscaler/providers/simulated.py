"""An in-memory provider: replicas that take `startup` seconds to become ready.

For the simulator and for tests of the controller. It honours the same contract as the
real providers (idempotent by request id, scale-in of starting members first, then the
newest), and can be told to run out of capacity or fail on chosen calls, so the paths that
handle cloud errors are exercised without a cloud.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from autoscaler.clock import Clock
from autoscaler.errors import CapacityUnavailable, NotFound, ProviderError
from autoscaler.types import Capacity, Member


@dataclass
class _Replica:
    id: str
    created_at: float
    ready_at: float


@dataclass
class _PoolState:
    replicas: list[_Replica] = field(default_factory=list)
    applied: set[str] = field(default_factory=set)
    failures: list[ProviderError] = field(default_factory=list)
    limit: int | None = None
    startup_seconds: float = 0.0
    counter: int = 0


class SimulatedProvider:
    """Pools keyed by name; each remembers its replicas and the request ids it applied."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._pools: dict[str, _PoolState] = {}
        self.calls: list[tuple[str, str, int]] = []
        """(pool, request id, desired) of every scale call, for tests."""

    @classmethod
    def from_config(cls, config: Any, clock: Clock) -> SimulatedProvider:
        return cls(clock)

    def _state(self, pool: Any) -> _PoolState:
        state = self._pools.get(pool.name)
        if state is None:
            limit = getattr(pool.target, "capacity_limit", None)
            state = _PoolState(limit=limit, startup_seconds=pool.startup)
            self._pools[pool.name] = state
        return state

    def fail_next(self, pool: Any, *errors: ProviderError) -> None:
        """The next scale calls for this pool raise these errors, in order."""
        self._state(pool).failures.extend(errors)

    def set_limit(self, pool: Any, limit: int | None) -> None:
        self._state(pool).limit = limit

    def preset(self, pool: Any, replicas: int, ready: bool = True) -> None:
        """Start the pool with `replicas` replicas (ready now, or starting)."""
        state = self._state(pool)
        now = self.clock.now()
        for _ in range(replicas):
            state.counter += 1
            ready_at = now if ready else now + state.startup_seconds
            state.replicas.append(_Replica(f"{pool.name}-{state.counter}", now, ready_at))

    def describe(self, pool: Any) -> Capacity:
        state = self._state(pool)
        now = self.clock.now()
        members = tuple(Member(r.id, r.ready_at <= now, r.created_at) for r in state.replicas)
        ready = sum(1 for m in members if m.ready)
        return Capacity(len(members), ready, len(members) - ready, members)

    def scale(self, pool: Any, desired: int, request_id: str) -> None:
        state = self._state(pool)
        self.calls.append((pool.name, request_id, desired))
        if request_id in state.applied:
            return
        if state.failures:
            raise state.failures.pop(0)
        now = self.clock.now()
        if desired < len(state.replicas):
            # Starting replicas go first (no work on them yet), then the newest.
            order = sorted(state.replicas, key=lambda r: (r.ready_at <= now, r.created_at))
            drop = {r.id for r in order[: len(state.replicas) - desired]}
            state.replicas = [r for r in state.replicas if r.id not in drop]
        short = 0
        while len(state.replicas) < desired:
            if state.limit is not None and len(state.replicas) >= state.limit:
                short = desired - len(state.replicas)
                break
            state.counter += 1
            state.replicas.append(
                _Replica(f"{pool.name}-{state.counter}", now, now + state.startup_seconds)
            )
        state.applied.add(request_id)
        if short:
            raise CapacityUnavailable(
                f"simulated cloud has room for {state.limit} replicas; {short} not launched",
                "InsufficientInstanceCapacity",
            )

    def remove(self, pool: Any, members: Sequence[str], request_id: str) -> None:
        state = self._state(pool)
        if request_id in state.applied:
            return
        known = {r.id for r in state.replicas}
        unknown = [m for m in members if m not in known]
        if unknown:
            raise NotFound(f"not members of pool {pool.name}: {', '.join(unknown)}")
        gone = set(members)
        state.replicas = [r for r in state.replicas if r.id not in gone]
        state.applied.add(request_id)
