"""The simulated cloud: fleets of replicas that take `startup` seconds to become ready, and
the one provider that scales them.

`SimulatedProvider` honours the contract of the real providers (idempotent by request id;
scale-in removes starting replicas first, then idle ones, newest first; `remove` takes the
named members out) and can be told to run out of capacity or to fail chosen calls, so the
controller's paths for cloud errors run without a cloud. Tests use it standalone: each pool
gets a `Fleet` of its own. The simulator hands it the pool's `Cluster`
(autoscaler/sim/cluster.py), a `Fleet` whose replicas also run work: busy replicas are then
drained (they finish their work, billed until then) rather than ended.

It never reads time but from the clock it is given, and never imports the simulator.
"""

from __future__ import annotations

import heapq
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

from autoscaler.clock import Clock
from autoscaler.config import Pool
from autoscaler.config.targets import SimulatedTarget
from autoscaler.errors import CapacityUnavailable, NotFound, ProviderError
from autoscaler.types import Capacity, Member

from .base import CapacityProvider


class Replica:
    """One replica (or node). `busy` counts the slots its work holds (the simulator's; always
    0 standalone); `listed` marks it as in the simulator's heap of replicas with a free
    slot. A slots class, not a dataclass: the simulator reads these in its event loop."""

    __slots__ = ("busy", "created", "draining", "id", "listed", "name", "ready_at", "up")

    def __init__(self, id: int, name: str, created: float, ready_at: float) -> None:
        self.id = id
        self.name = name
        self.created = created
        self.ready_at = ready_at
        self.busy = 0
        self.draining = False  # scaled in while busy: takes no new work, billed until idle
        self.listed = False
        self.up = False  # its ready event was processed while not draining (counted ready)


class Fleet:
    """The replicas of one pool: added, becoming ready, scaled in, removed, billed.

    `advance(t)` processes what happens up to `t` (here: replicas becoming ready; the
    simulator's Cluster adds its work). Counters are kept so `capacity` costs nothing while
    nothing changed: `version` moves whenever the members or their readiness do.
    """

    def __init__(self, startup_seconds: float, slots_per_replica: int = 1, name: str = "r") -> None:
        self.startup = startup_seconds
        self.slots_per_replica = slots_per_replica
        self.name = name
        self.replicas: dict[int, Replica] = {}
        self.pending_ready: list[tuple[float, int]] = []  # (ready_at, id), a heap
        self.live_count = 0  # replicas not draining
        self.up_count = 0  # of those, ready (ready event processed)
        self.billed_seconds = 0.0  # replica-seconds of replicas already ended
        self.clock = 0.0  # every event up to here is processed
        self.next_id = 0
        self.version = 0
        self._capacity = Capacity(0, 0)
        self._capacity_version = 0

    # -- events ------------------------------------------------------------------------
    def advance(self, t: float) -> None:
        """Process every replica start up to time `t`."""
        pending = self.pending_ready
        while pending and pending[0][0] <= t:
            _, rid = heapq.heappop(pending)
            r = self.replicas.get(rid)
            if r is not None and not r.draining:
                self._mark_ready(r)
        self.clock = max(self.clock, t)

    def _mark_ready(self, r: Replica) -> None:
        r.up = True
        self.up_count += 1
        self.version += 1

    # -- capacity ----------------------------------------------------------------------
    def capacity(self, now: float | None = None) -> Capacity:
        """Requested (not draining), ready and starting replicas at `now` (default: as far
        as events are processed), with members."""
        now = self.clock if now is None else now
        pending = self.pending_ready
        if pending and pending[0][0] <= now:
            # Ready by now but not processed yet (added at `now` with no startup): count
            # by hand; this changes with time, so it is not kept.
            return self._count(now)
        if self._capacity_version != self.version:
            self._capacity = self._count(now)
            self._capacity_version = self.version
        return self._capacity

    def _count(self, now: float) -> Capacity:
        members = tuple(
            Member(r.name, r.ready_at <= now, r.created)
            for r in self.replicas.values()
            if not r.draining
        )
        ready = sum(1 for m in members if m.ready)
        return Capacity(len(members), ready, len(members) - ready, members)

    def find(self, name: str) -> Replica | None:
        """The live (not draining) replica with this member name, if any."""
        prefix, _, number = name.rpartition("-")
        r = self.replicas.get(int(number)) if prefix == self.name and number.isdigit() else None
        return r if r is not None and not r.draining else None

    # -- changes -----------------------------------------------------------------------
    def add(self, count: int, now: float, ready: bool = False) -> None:
        """`count` new replicas, billed from `now`, ready at once or after the startup."""
        for _ in range(count):
            rid = self.next_id
            self.next_id += 1
            ready_at = now if ready else now + self.startup
            self.replicas[rid] = Replica(rid, f"{self.name}-{rid}", now, ready_at)
            self.live_count += 1
            heapq.heappush(self.pending_ready, (ready_at, rid))
        self.version += 1
        if ready:
            self.advance(now)

    def scale(self, desired: int, now: float) -> None:
        """Add replicas, or take out the surplus: starting ones first, then idle ones (newest
        first), then busy ones (least busy first), which drain."""
        live = [r for r in self.replicas.values() if not r.draining]
        if desired > len(live):
            self.add(desired - len(live), now)
            return
        surplus = len(live) - desired
        if surplus <= 0:
            return
        starting = sorted((r for r in live if r.ready_at > now), key=lambda r: -r.id)
        idle = sorted((r for r in live if r.ready_at <= now and r.busy == 0), key=lambda r: -r.id)
        busy = sorted(
            (r for r in live if r.ready_at <= now and r.busy > 0), key=lambda r: (r.busy, -r.id)
        )
        self.retire((starting + idle + busy)[:surplus], now)

    def retire(self, replicas: Collection[Replica], now: float) -> None:
        """Take these replicas out: idle ones end now, busy ones drain."""
        for r in replicas:
            r.draining = True
            self.live_count -= 1
            if r.up:
                r.up = False
                self.up_count -= 1
            if r.busy == 0:
                self._end(r, now)
        self.version += 1

    def _end(self, r: Replica, now: float) -> None:
        self.billed_seconds += now - r.created
        del self.replicas[r.id]

    def replace(self, replicas: Sequence[Replica]) -> None:
        """Swap these replicas in as they are: no billing, no events (for tests)."""
        self.replicas = {r.id: r for r in replicas}
        self.live_count = sum(1 for r in replicas if not r.draining)
        self.up_count = sum(1 for r in replicas if r.up and not r.draining)
        self.version += 1

    def billed_replica_seconds(self, now: float) -> float:
        return self.billed_seconds + sum(now - r.created for r in self.replicas.values())


@dataclass
class _PoolState:
    fleet: Fleet
    limit: int | None = None
    applied: set[str] = field(default_factory=set)
    failures: list[ProviderError] = field(default_factory=list)

    @property
    def replicas(self) -> list[Replica]:
        """The fleet's replicas. Assigning a list swaps them in as they are (no billing, no
        events): tests hide a provider's answer this way, and then restore it."""
        return list(self.fleet.replicas.values())

    @replicas.setter
    def replicas(self, replicas: list[Replica]) -> None:
        self.fleet.replace(replicas)


class SimulatedProvider(CapacityProvider):
    """Pools keyed by name, each a `Fleet` (its own, or the one it was given) and the request
    ids it applied."""

    def __init__(self, clock: Clock, fleets: Mapping[str, Fleet] | None = None) -> None:
        self.clock = clock
        self._given = dict(fleets or {})
        self._pools: dict[str, _PoolState] = {}
        self.calls: list[tuple[str, str, int]] = []
        """(pool, request id, desired) of every scale call, for tests."""

    @classmethod
    def from_config(cls, config: object, clock: Clock) -> SimulatedProvider:
        return cls(clock)

    def _state(self, pool: Pool) -> _PoolState:
        state = self._pools.get(pool.name)
        if state is None:
            fleet = self._given.get(pool.name) or Fleet(pool.startup, name=pool.name)
            target = pool.target
            limit = target.capacity_limit if isinstance(target, SimulatedTarget) else None
            state = self._pools[pool.name] = _PoolState(fleet, limit)
        return state

    def _fleet(self, pool: Pool) -> tuple[_PoolState, Fleet, float]:
        """The pool's state and fleet, caught up with the clock, and the time."""
        state = self._state(pool)
        now = self.clock.now()
        if now > state.fleet.clock:
            state.fleet.advance(now)
        return state, state.fleet, now

    def fail_next(self, pool: Pool, *errors: ProviderError) -> None:
        """The next scale calls for this pool raise these errors, in order."""
        self._state(pool).failures.extend(errors)

    def set_limit(self, pool: Pool, limit: int | None) -> None:
        """The cloud has room for at most `limit` replicas of this pool (None: no limit)."""
        self._state(pool).limit = limit

    def preset(self, pool: Pool, replicas: int, ready: bool = True) -> None:
        """Start the pool with `replicas` replicas (ready now, or starting)."""
        _, fleet, now = self._fleet(pool)
        fleet.add(replicas, now, ready=ready)

    # -- the provider seam -----------------------------------------------------------
    def describe(self, pool: Pool) -> Capacity:
        fleet = self._state(pool).fleet  # as _fleet(), without the tuple: once per tick
        now = self.clock.now()
        if now > fleet.clock:
            fleet.advance(now)
        return fleet.capacity(now)

    def scale(self, pool: Pool, desired: int, request_id: str) -> None:
        self.calls.append((pool.name, request_id, desired))
        state, fleet, now = self._fleet(pool)
        if request_id in state.applied:
            return
        if state.failures:
            raise state.failures.pop(0)
        live, limit = fleet.live_count, state.limit
        allowed = desired
        if limit is not None and desired > live:
            allowed = max(live, min(desired, limit))
        fleet.scale(allowed, now)
        state.applied.add(request_id)
        if allowed < desired:
            raise CapacityUnavailable(
                f"simulated cloud has room for {limit} replicas; {desired - allowed} not launched",
                "InsufficientInstanceCapacity",
            )

    def remove(self, pool: Pool, members: Sequence[str], request_id: str) -> None:
        state, fleet, now = self._fleet(pool)
        if request_id in state.applied:
            return
        found = [fleet.find(m) for m in members]
        unknown = [m for m, r in zip(members, found, strict=True) if r is None]
        if unknown:
            raise NotFound(f"not members of pool {pool.name}: {', '.join(unknown)}")
        fleet.retire({r.id: r for r in found if r is not None}.values(), now)  # once each
        state.applied.add(request_id)

    def begin_tick(self) -> None:
        """Nothing is cached between ticks: the fleets are the truth."""

    def tidy(self, pool: Pool) -> None:
        """No housekeeping: nothing is left behind by scaling in."""

    def close(self) -> None:
        """No connections to release."""
