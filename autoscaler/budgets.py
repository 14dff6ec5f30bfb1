"""Budgets and priorities: cap a tick's scale-ups at the pools' and the installation's budget.

Runs between plan and act. Every pool's planner has decided its capacity; `allocate` then
grants the scale-ups in priority order (higher `priority` first; pools of equal priority
one replica each in turn, by name) while every budget the pool falls under has room. A pool
that runs out gets the most it can afford, and its reason names the budget:

    ...; budget: installation $40/h reached -> 6

A budget never scales anything down: it only caps growth. A pool over budget (prices rose,
the budget was lowered, it grew before the budget existed) holds where it is; a pool
scaling down does so as planned, and frees its share for others in the same tick.

Strict priority: once a pool is capped by a shared budget, no pool of lower priority under
that budget grows in the same tick (it holds with `held for priority N pools`), even where
a cheaper replica would still fit. Pools whose replicas cost nothing are never capped.

Two kinds of budget, both turned into a rate the tick can compare with:
- dollars per hour: replicas x their price (`autoscaler.config.budget.replica_price`);
- GPU-hours per UTC day: a scale-up is allowed while the GPU-hours left today cover the
  new capacity for the next hour (or until midnight UTC, if sooner). GPU-hours used are
  integrated tick by tick from the replicas the controller asked for (`Spend`), kept in
  the pool's persisted memory so that a restart does not reset the day;
- GPU-hours ever (`gpu_hours_total`, an experiment's budget): the same rule over the
  GPU-hours left of the lifetime budget, integrated alongside and never reset. Once it is
  spent nothing new starts; a `job` pool then drains to zero as its Jobs finish.

A pool whose price (or GPUs) is unknown cannot grow under a budget in dollars (GPU-hours):
its reason says to set `cost_per_hour` (`gpus_per_replica`); 0 leaves it out.

Pure: no I/O, no clock (times are passed in).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

from .config.budget import replica_gpus, replica_price
from .types import Decision

if TYPE_CHECKING:
    from .config import Config, Pool
    from .config.budget import Budget

DAY = 86_400.0
HORIZON = 3_600.0
"""A GPU-hours-per-day budget allows the capacity that the GPU-hours left today pay for
over this many seconds (or until midnight UTC, if sooner)."""
_EPS = 1e-9

Resource = Literal["dollars", "gpus"]


@dataclass(frozen=True, slots=True)
class Claim:
    """One pool's planned decision, as the allocator sees it."""

    pool: str
    current: int
    desired: int
    priority: int = 0
    price: float | None = None
    """Dollars per hour of one replica; None when unknown."""
    gpus: int | None = None
    """GPUs of one replica; None when unknown."""

    def cost(self, resource: Resource) -> float | None:
        return self.price if resource == "dollars" else self.gpus


@dataclass(frozen=True, slots=True)
class Limit:
    """A budget as a rate: at most `amount` (dollars per hour, or GPUs) over `pools`
    (None: every pool), named `label` in reasons."""

    label: str
    resource: Resource
    amount: float
    pools: frozenset[str] | None = None

    def covers(self, pool: str) -> bool:
        return self.pools is None or pool in self.pools

    @property
    def shared(self) -> bool:
        return self.pools is None or len(self.pools) > 1


@dataclass(frozen=True, slots=True)
class Grant:
    """What a pool may have: `desired` (never above its claim, never below the lower of
    its current and claimed capacity) and, when capped, why."""

    desired: int
    capped_by: str | None = None
    why: str = ""


def allocate(
    claims: Sequence[Claim], limits: Sequence[Limit], fixed: Mapping[str, float] | None = None
) -> dict[str, Grant]:
    """Each claim's grant. `fixed`: usage (per limit label) of pools not claiming this tick
    (not decided, say), already spent."""
    fixed = fixed or {}
    free = {i: lim.amount - fixed.get(lim.label, 0.0) for i, lim in enumerate(limits)}
    mine = {c.pool: [i for i, lim in enumerate(limits) if lim.covers(c.pool)] for c in claims}
    for c in claims:
        base = min(c.current, c.desired)
        for i in mine[c.pool]:
            cost = c.cost(limits[i].resource)
            if cost:
                free[i] -= base * cost
    granted = {c.pool: 0 for c in claims}
    capped: dict[str, Grant] = {}
    closed: dict[int, int] = {}  # limit index -> priority of the pool it capped
    for priority in sorted({c.priority for c in claims}, reverse=True):
        group = sorted((c for c in claims if c.priority == priority), key=lambda c: c.pool)
        active = [c for c in group if c.desired > c.current]
        while active:
            still = []
            single = len(active) == 1
            for c in active:
                blocked, steps = _room(c, mine[c.pool], limits, free, closed)
                want = c.desired - c.current - granted[c.pool]
                take = min(want, steps if single or blocked is None else min(steps, 1))
                if take > 0:
                    granted[c.pool] += take
                    for i in mine[c.pool]:
                        cost = c.cost(limits[i].resource)
                        if cost:
                            free[i] -= take * cost
                if granted[c.pool] >= c.desired - c.current:
                    continue
                if blocked is not None and take < want and (single or take == 0):
                    capped[c.pool] = _capped(c, limits[blocked], closed.get(blocked), granted)
                    continue
                still.append(c)
            active = still
        # A shared budget that capped a pool of this priority is closed to lower ones (not
        # for a pool whose price is unknown: that says nothing about the budget's room).
        claimed = {c.pool: c for c in group}
        for pool, grant in capped.items():
            if grant.capped_by is None or pool not in claimed:
                continue
            for i in mine[pool]:
                lim = limits[i]
                known = claimed[pool].cost(lim.resource) is not None
                if lim.label == grant.capped_by and lim.shared and known:
                    closed.setdefault(i, priority)
    out = {}
    for c in claims:
        if c.desired <= c.current:
            out[c.pool] = Grant(c.desired)
        elif c.pool in capped:
            out[c.pool] = capped[c.pool]
        else:
            out[c.pool] = Grant(c.current + granted[c.pool])
    return out


def _room(
    c: Claim,
    mine: Iterable[int],
    limits: Sequence[Limit],
    free: Mapping[int, float],
    closed: Mapping[int, int],
) -> tuple[int | None, int]:
    """(the limit that binds first, or None; replicas every limit still has room for)."""
    steps: float = math.inf
    blocked: int | None = None
    for i in mine:
        cost = c.cost(limits[i].resource)
        if cost == 0:
            continue
        n = 0 if cost is None or i in closed else math.floor(max(0.0, free[i]) / cost + _EPS)
        if n < steps:
            steps, blocked = n, i
    if blocked is None:
        return None, 1_000_000_000
    return blocked, int(steps)


def _capped(c: Claim, limit: Limit, closed_at: int | None, granted: Mapping[str, int]) -> Grant:
    desired = c.current + granted[c.pool]
    cost = c.cost(limit.resource)
    if cost is None:
        field = "cost_per_hour" if limit.resource == "dollars" else "gpus_per_replica"
        why = (
            f"budget: {limit.label}: this pool's {field} is unknown (set it; 0 leaves the pool out)"
        )
    elif closed_at is not None:
        why = f"budget: {limit.label} reached; held for priority {closed_at} pools"
    else:
        why = f"budget: {limit.label} reached"
    return Grant(desired, limit.label, why)


def apply(decision: Decision, grant: Grant) -> Decision:
    """The decision with its grant: capped capacity and the budget in its reason."""
    if grant.capped_by is None or grant.desired >= decision.desired:
        return decision
    reason = f"{decision.reason}; {grant.why} -> {grant.desired}"
    return replace(decision, desired=grant.desired, reason=reason)


# --- spend ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Spend:
    """A pool's GPU-hours on one UTC day, integrated tick by tick: `replicas` is what the
    controller last asked for (at `at`)."""

    day: int = 0
    gpu_hours: float = 0.0
    at: float | None = None
    replicas: int = 0
    gpu_hours_total: float = 0.0
    """GPU-hours since the pool's memory began (for `gpu_hours_total`); never reset."""

    def advance(self, now: float, gpus: int | None) -> Spend:
        """Add the GPU-hours since `at` (as `replicas` replicas) up to `now`; a new day
        starts from zero (only its own part of the interval counts)."""
        today = int(now // DAY)
        start = self.at if self.at is not None else now
        used = self.gpu_hours if self.day == today else 0.0
        ever = self.gpu_hours_total
        if gpus and self.at is not None and now > self.at:
            ever += self.replicas * gpus * (now - self.at) / 3600.0
        start = max(start, today * DAY)
        if gpus and now > start:
            used += self.replicas * gpus * (now - start) / 3600.0
        return Spend(today, used, now, self.replicas, ever)

    def to_dict(self) -> dict[str, Any]:
        return {"day": self.day, "gpu_hours": self.gpu_hours, "at": self.at,
                "replicas": self.replicas,
                "gpu_hours_total": self.gpu_hours_total}  # fmt: skip

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Spend:
        at = data.get("at")
        return cls(
            int(data.get("day") or 0),
            float(data.get("gpu_hours") or 0.0),
            None if at is None else float(at),
            int(data.get("replicas") or 0),
            float(data.get("gpu_hours_total") or 0.0),
        )


def _money(amount: float) -> str:
    return f"${amount:,.2f}".replace(".00", "")


def limits_for(
    budget: Budget | None,
    pools: frozenset[str] | None,
    scope: str,
    gpu_hours_used: float,
    now: float,
    gpu_hours_ever: float = 0.0,
) -> list[Limit]:
    """The limits of one budget (`scope`: `installation` or `pool NAME`), given the
    GPU-hours its pools used today and ever."""
    if budget is None:
        return []
    out = []
    if budget.dollars_per_hour is not None:
        label = f"{scope} {_money(budget.dollars_per_hour)}/h"
        out.append(Limit(label, "dollars", budget.dollars_per_hour, pools))
    if budget.gpu_hours_per_day is not None:
        left = max(0.0, budget.gpu_hours_per_day - gpu_hours_used)
        horizon = min(HORIZON, DAY - now % DAY) / 3600.0
        label = f"{scope} {budget.gpu_hours_per_day:g} GPU-hours/day ({left:.1f} left today)"
        out.append(Limit(label, "gpus", left / max(horizon, 1e-6), pools))
    if budget.gpu_hours_total is not None:
        left = max(0.0, budget.gpu_hours_total - gpu_hours_ever)
        label = f"{scope} {budget.gpu_hours_total:g} GPU-hours total ({left:.1f} left)"
        out.append(Limit(label, "gpus", left / (HORIZON / 3600.0), pools))
    return out


@dataclass
class Budgets:
    """The controller's side: spend per pool (persisted with its memory), and the caps
    applied to each tick's decisions."""

    config: Config
    spend: dict[str, Spend] = field(default_factory=dict)
    last: dict[str, Grant] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.price = {p.name: replica_price(p) for p in self.config.pools}
        self.gpus = {p.name: replica_gpus(p) for p in self.config.pools}
        self.active = self.config.installation.budget is not None or any(
            p.budget is not None for p in self.config.pools
        )

    def restore(self, data: Mapping[str, Mapping[str, Any]]) -> None:
        """From the pools' memory (the `budget` key `memory` wrote)."""
        for name, memory in data.items():
            stored = memory.get("budget") if isinstance(memory, Mapping) else None
            if isinstance(stored, Mapping):
                self.spend[name] = Spend.from_dict(stored)

    def memory(self, pool: str) -> dict[str, Any]:
        spend = self.spend.get(pool)
        return {} if spend is None else {"budget": spend.to_dict()}

    def cap(self, planned: Sequence[tuple[Pool, Decision, int]], now: float) -> list[Decision]:
        """The decisions of pools planned this tick (with the capacity each had), capped.
        Pools not planned count at the capacity last asked for."""
        for pool in self.config.pools:
            self.spend[pool.name] = self.spend.get(pool.name, Spend()).advance(
                now, self.gpus[pool.name]
            )
        out = self._capped(planned, now) if self.active else [d for _, d, _ in planned]
        for decision in out:
            spend = self.spend[decision.pool]
            self.spend[decision.pool] = replace(
                spend, replicas=max(decision.current, decision.desired)
            )
        return out

    def _capped(self, planned: Sequence[tuple[Pool, Decision, int]], now: float) -> list[Decision]:
        names = {p.name for p in self.config.pools}
        limits = limits_for(
            self.config.installation.budget,
            None,
            "installation",
            sum(self.spend[n].gpu_hours for n in names),
            now,
            sum(self.spend[n].gpu_hours_total for n in names),
        )
        for pool in self.config.pools:
            limits += limits_for(
                pool.budget,
                frozenset((pool.name,)),
                f"pool {pool.name}",
                self.spend[pool.name].gpu_hours,
                now,
                self.spend[pool.name].gpu_hours_total,
            )
        decided = {d.pool for _, d, _ in planned}
        fixed: dict[str, float] = {}
        for name in names - decided:
            for lim in limits:
                cost = self.price[name] if lim.resource == "dollars" else self.gpus[name]
                if lim.covers(name) and cost:
                    fixed[lim.label] = fixed.get(lim.label, 0.0) + self.spend[name].replicas * cost
        claims = [
            Claim(d.pool, current, d.desired, pool.priority, self.price[d.pool], self.gpus[d.pool])
            for pool, d, current in planned
        ]
        self.last = allocate(claims, limits, fixed)
        return [apply(d, self.last[d.pool]) for _, d, _ in planned]

    def gpu_hours_total(self) -> dict[str, float]:
        """Per pool: GPU-hours ever (for `gpu_hours_total`); NaN where GPUs are unknown."""
        return {
            name: math.nan if self.gpus.get(name) is None else spend.gpu_hours_total
            for name, spend in self.spend.items()
        }

    def report(self) -> dict[str, tuple[float, float]]:
        """Per pool: (dollars per hour asked for now, GPU-hours today); NaN where unknown."""
        out = {}
        for name, spend in self.spend.items():
            price = self.price.get(name)
            dollars = math.nan if price is None else spend.replicas * price
            gpus = self.gpus.get(name)
            out[name] = (dollars, math.nan if gpus is None else spend.gpu_hours)
        return out
