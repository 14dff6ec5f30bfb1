"""The planner: from a policy's recommendation to the capacity to act on, safely.

Pure. It clamps to the pool's bounds, applies stabilization windows, the scale-to-zero delay,
the cooldown and rate limits, holds pools whose signals are stale (a missing, failing or
non-finite signal never scales a pool down; after `fallback_after` it may raise the pool
to `fallback_replicas`, never lower it), and holds pools in provider backoff. Every decision,
"hold" included, carries a reason. Its memory is a plain value passed in and returned,
serializable to JSON, so a restarted controller can carry on where it stopped.

It must never do I/O, read a clock, or change anything but the memory it returns.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from .scaling import (
    History,
    RatePolicy,
    ScalingRules,
    longest_period,
    prune,
    rate_limit,
)
from .types import Decision, JSONDict, Recommendation

if TYPE_CHECKING:
    from .config import Behavior, DirectionBehavior, Pool


@dataclass(frozen=True, slots=True)
class PlanSpec:
    """What the planner needs to know about a pool, built once from its configuration."""

    min: int
    max: int
    up: ScalingRules = field(default_factory=ScalingRules)
    down: ScalingRules = field(default_factory=lambda: ScalingRules(300.0))
    cooldown_seconds: float = 0.0
    scale_to_zero_after_seconds: float = 300.0
    fallback_after_seconds: float | None = None
    fallback_replicas: int | None = None
    policy_keep_alive: bool = False
    """The policy decides when the last replica goes (a learned keep-alive): its 0 is not
    held up by the scale-down stabilization window (which still smooths every other step)."""
    keep_recommendations_seconds: float = field(init=False, default=0.0)
    keep_events_seconds: float = field(init=False, default=0.0)
    up_window_note: str = field(init=False, default="", repr=False, compare=False)
    down_window_note: str = field(init=False, default="", repr=False, compare=False)

    def __post_init__(self) -> None:
        # How much history the windows and rate limits need, computed once per pool.
        up, down = self.up, self.down
        keep = max(up.stabilization_seconds, down.stabilization_seconds)
        object.__setattr__(self, "keep_recommendations_seconds", keep)
        object.__setattr__(self, "keep_events_seconds", longest_period((up, down)))
        # The stabilization note is in most decisions; its float is formatted once here.
        for name, rules in (("up_window_note", up), ("down_window_note", down)):
            note = f"stabilization window {rules.stabilization_seconds:g}s keeps "
            object.__setattr__(self, name, note)

    @classmethod
    def from_pool(cls, pool: Pool) -> PlanSpec:
        spec = cls.from_behavior(pool.min, pool.max, pool.effective_behavior)
        if not pool.policy.owns_keep_alive:
            return spec
        # A policy with its own keep-alive already kept the last replica as long as it pays:
        # the default scale-to-zero delay is not stacked on top; one the user set is kept.
        chosen = (
            pool.behavior is not None and "scale_to_zero_after" in pool.behavior.model_fields_set
        )
        zero_after = spec.scale_to_zero_after_seconds if chosen else 0.0
        return replace(spec, scale_to_zero_after_seconds=zero_after, policy_keep_alive=True)

    @classmethod
    def from_behavior(cls, lo: int, hi: int, b: Behavior) -> PlanSpec:
        return cls(
            lo,
            hi,
            _rules(b.scale_up),
            _rules(b.scale_down),
            b.cooldown,
            b.scale_to_zero_after,
            b.stale.fallback_after,
            b.stale.fallback_replicas,
        )


def _rules(d: DirectionBehavior) -> ScalingRules:
    policies = tuple(RatePolicy(r.type, r.value, r.period) for r in d.rate_limits)
    return ScalingRules(d.stabilization_window, policies, d.select)


MAX_ERROR_CHARS = 4_096
"""The provider error kept in memory is cut to this many characters when written out (a
state file, a pool's status): the reader bounds it."""


@dataclass(frozen=True, slots=True)
class PoolMemory:
    """Everything the planner (and the pool's policy) remembers between ticks."""

    recommendations: History = ()
    scale_events: History = ()
    last_scale_at: float | None = None
    stale_since: float | None = None
    zero_since: float | None = None
    backoff_until: float | None = None
    backoff_seconds: float = 0.0
    last_error: str | None = None
    actions: int = 0
    policy: JSONDict = field(default_factory=dict)
    started_at: float | None = None
    """First tick planned; the scale-down window is seeded with the capacity found then."""
    started_with: int = 0

    def to_dict(self) -> JSONDict:
        return {
            "recommendations": [list(r) for r in self.recommendations],
            "scale_events": [list(e) for e in self.scale_events],
            "last_scale_at": self.last_scale_at,
            "stale_since": self.stale_since,
            "zero_since": self.zero_since,
            "backoff_until": self.backoff_until,
            "backoff_seconds": self.backoff_seconds,
            "last_error": None if self.last_error is None else self.last_error[:MAX_ERROR_CHARS],
            "actions": self.actions,
            "policy": self.policy,
            "started_at": self.started_at,
            "started_with": self.started_with,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PoolMemory:
        """From what `to_dict` wrote. Memory read from outside is checked first
        (autoscaler/state_schema.py): this converts, it does not validate."""

        def history(key: str) -> History:
            # In time order, which the planner's compaction relies on.
            return tuple(sorted((float(t), int(n)) for t, n in data.get(key) or ()))

        return cls(
            recommendations=history("recommendations"),
            scale_events=history("scale_events"),
            last_scale_at=data.get("last_scale_at"),
            stale_since=data.get("stale_since"),
            zero_since=data.get("zero_since"),
            backoff_until=data.get("backoff_until"),
            backoff_seconds=float(data.get("backoff_seconds") or 0.0),
            last_error=data.get("last_error"),
            actions=int(data.get("actions") or 0),
            policy=dict(data.get("policy") or {}),
            started_at=data.get("started_at"),
            started_with=int(data.get("started_with") or 0),
        )


def _with(m: PoolMemory, **changes: Any) -> PoolMemory:
    """`m` with some fields changed."""
    return replace(m, **changes)


def clamp(value: int, spec: PlanSpec) -> int:
    return spec.min if value < spec.min else spec.max if value > spec.max else value


def plan(
    pool: str,
    spec: PlanSpec,
    rec: Recommendation,
    current: int,
    now: float,
    memory: PoolMemory,
    stale: Mapping[str, str] | None = None,
) -> tuple[Decision, PoolMemory]:
    """Decide the pool's capacity. `stale` maps each stale signal to why it is stale."""
    if memory.backoff_until is not None and now < memory.backoff_until:
        desired = clamp(current, spec)
        wait = memory.backoff_until - now
        why = f"hold: provider backoff for {wait:.0f}s more after {memory.last_error}"
        memory = _with(memory, policy=rec.memory)
        return _decision(pool, now, current, rec, desired, why, bool(stale)), memory
    bounded = clamp(rec.desired, spec)
    if stale:
        return _plan_stale(pool, spec, rec, bounded, current, now, memory, stale)
    if rec.hold:
        desired = clamp(current, spec)
        memory = _with(memory, policy=rec.memory, stale_since=None)
        return _decision(pool, now, current, rec, desired, f"hold: {rec.reason}"), memory
    return _plan_fresh(pool, spec, rec, bounded, current, now, memory)


def holds_steady(spec: PlanSpec, memory: PoolMemory, decision: Decision) -> bool:
    """True when `plan` would make `decision` again at any later time, given the same
    recommendation and capacity: a fresh (not stale) hold at exactly the capacity the
    policy recommends, within the pool's bounds, outside any provider backoff. Then no
    stabilization window, scale-to-zero delay, cooldown or rate limit can move the pool,
    and the reason names nothing that counts down (the simulator skips such ticks)."""
    if decision.stale:
        return False
    if not decision.desired == decision.current == clamp(decision.recommended, spec):
        return False
    return memory.backoff_until is None or memory.backoff_until <= decision.at


def _plan_fresh(
    pool: str,
    spec: PlanSpec,
    rec: Recommendation,
    bounded: int,
    current: int,
    now: float,
    memory: PoolMemory,
) -> tuple[Decision, PoolMemory]:
    notes: list[str] = []
    if bounded != rec.desired:
        notes.append(f"bounds [{spec.min}, {spec.max}] -> {bounded}")
    keep = spec.keep_recommendations_seconds
    history: History = ()
    if keep > 0:
        # One backward pass over the history gives both windows' extremes (what prune() and
        # stabilize() give) and the history to remember, compacted: an entry is kept only if
        # it is above every later one (it may still be a down window's maximum) or below
        # every later one (an up window's minimum). Any other entry has a later one at least
        # as high and one at least as low, inside every window that holds it, so dropping
        # it changes no decision. A pool whose recommendation wavers keeps a few entries,
        # not one per tick of its window. This runs for every pool at every tick
        # (bench/decide.py).
        keep_cut = now - keep
        up_cut = now - spec.up.stabilization_seconds
        down_cut = now - spec.down.stabilization_seconds
        lowest = highest = bounded  # over the up / down window, this recommendation included
        low = high = bounded  # over the entries after the one looked at
        kept = [(now, bounded)]
        for entry in reversed(memory.recommendations):
            at, replicas = entry
            if at <= keep_cut:
                continue  # outside both windows
            if at > up_cut and replicas < lowest:
                lowest = replicas
            if at > down_cut and replicas > highest:
                highest = replicas
            if replicas > high:
                high = replicas
                kept.append(entry)
            elif replicas < low:
                low = replicas
                kept.append(entry)
        kept.reverse()
        history = tuple(kept)
        target = lowest if current < lowest else highest if current > highest else current
    else:  # what stabilize() gives with no windows, without the calls
        target = current if current == bounded else bounded
    started_at = now if memory.started_at is None else memory.started_at
    started_with = current if memory.started_at is None else memory.started_with
    if now - started_at < spec.down.stabilization_seconds and target < current:
        # A (re)started controller knows no history: the capacity it found counts as a
        # recommendation in the scale-down window (the HPA seeds its window the same way).
        target = max(target, min(current, started_with))
    if bounded == 0 and target > 0 and spec.policy_keep_alive:
        target = 0  # the policy's keep-alive let the last replica go: no window on top
    if target != bounded:
        window_note = spec.down_window_note if target > bounded else spec.up_window_note
        notes.append(f"{window_note}{target}")
    zero_since = (
        (memory.zero_since if memory.zero_since is not None else now) if bounded == 0 else None
    )
    if target == 0 and current > 0 and zero_since is not None:
        left = spec.scale_to_zero_after_seconds - (now - zero_since)
        if left > 0:
            target = 1
            notes.append(f"scale to zero in {left:.0f}s")
    if target < current and memory.last_scale_at is not None:
        left = spec.cooldown_seconds - (now - memory.last_scale_at)
        if left > 0:
            target = current
            notes.append(f"cooldown {left:.0f}s more")
    events = memory.scale_events
    if events:
        events = prune(events, now, spec.keep_events_seconds)
    # rate_limit leaves a hold alone; most decisions are holds, so it is not called for them.
    if target == current:
        limited = target
    else:
        limited = rate_limit(current, target, events, spec.up, spec.down, now)
    if limited != target:
        notes.append(f"rate limit -> {limited}")
    desired = clamp(limited, spec)
    if desired != limited:
        notes.append(f"bounds [{spec.min}, {spec.max}] -> {desired}")
    memory = PoolMemory(
        recommendations=history,
        scale_events=events,
        last_scale_at=memory.last_scale_at,
        stale_since=None,
        zero_since=zero_since,
        backoff_until=memory.backoff_until,
        backoff_seconds=memory.backoff_seconds,
        last_error=memory.last_error,
        actions=memory.actions,
        policy=rec.memory,
        started_at=started_at,
        started_with=started_with,
    )
    reason = rec.reason if not notes else f"{rec.reason}; {'; '.join(notes)}"
    return Decision(pool, now, current, rec.desired, desired, reason), memory


def _plan_stale(
    pool: str,
    spec: PlanSpec,
    rec: Recommendation,
    bounded: int,
    current: int,
    now: float,
    memory: PoolMemory,
    stale: Mapping[str, str],
) -> tuple[Decision, PoolMemory]:
    since = memory.stale_since if memory.stale_since is not None else now
    memory = _with(memory, stale_since=since, policy=rec.memory)
    if not rec.hold and bounded > 0 and memory.zero_since is not None:
        # the signals still read want capacity: the pool is not idle, so the countdown to
        # zero starts again when they next say 0 (else a replica launched during a stale
        # spell would go the moment it is ready)
        memory = _with(memory, zero_since=None)
    listed = ", ".join(f"{name} ({why})" for name, why in sorted(stale.items()))
    reason = f"hold: signal {listed} stale for {now - since:.0f}s; no scale-down"
    target = current
    if not rec.hold and bounded > current:
        events = prune(memory.scale_events, now, spec.keep_events_seconds)
        target = rate_limit(current, bounded, events, spec.up, spec.down, now)
        reason += f"; other signals scale up: {rec.reason}"
    if (
        spec.fallback_after_seconds is not None
        and spec.fallback_replicas is not None
        and now - since >= spec.fallback_after_seconds
        and spec.fallback_replicas > target
    ):
        target = spec.fallback_replicas
        reason += f"; fallback to {target} after {spec.fallback_after_seconds:g}s stale"
    desired = clamp(target, spec)
    return _decision(pool, now, current, rec, desired, reason, stale=True), memory


def _decision(
    pool: str,
    now: float,
    current: int,
    rec: Recommendation,
    desired: int,
    reason: str,
    stale: bool = False,
) -> Decision:
    return Decision(pool, now, current, rec.desired, desired, reason, stale)


SUPERSEDED = frozenset({"IdempotentParameterMismatch"})
"""Provider error codes saying the request id was already used for another action."""


def after_superseded(memory: PoolMemory, error: str) -> PoolMemory:
    """Memory after an action refused because its request id was already spent on another
    one: the id advances (the next action is a new request), and nothing backs off, since
    nothing failed that a wait would mend."""
    return _with(memory, actions=memory.actions + 1, last_error=error)


def after_action(
    memory: PoolMemory,
    now: float,
    current: int,
    desired: int,
    error: str | None = None,
    backoff_seconds: float = 30.0,
    backoff_max_seconds: float = 600.0,
) -> PoolMemory:
    """Memory after act: a scale event on success, or an exponential backoff on failure."""
    if error is None:
        return _with(
            memory,
            scale_events=(*memory.scale_events, (now, desired - current)),
            last_scale_at=now,
            backoff_until=None,
            backoff_seconds=0.0,
            last_error=None,
            actions=memory.actions + 1,
        )
    wait = min(backoff_max_seconds, max(backoff_seconds, memory.backoff_seconds * 2))
    return _with(memory, backoff_until=now + wait, backoff_seconds=wait, last_error=error)
