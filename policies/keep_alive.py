"""The learned keep-alive's configuration and decision (model: idle_gaps.py).

Why a module of its own: the model (what the pool's idle gaps look like) and the price of
acting on it (one warm replica against the SLO misses of a cold start) change for different
reasons; queueing.py builds a `KeepAliveDecider` once and calls `decide` while idle. Pure,
like the model: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from autoscaler.units import Seconds

from .idle_gaps import (
    DAILY_MIN_SHARE,
    MAX_TICK,
    MAX_WEIGHT,
    burst_replicas,
    burst_requests,
    conditional,
    daily_share,
    representative,
)


class KeepAlive(BaseModel):
    """Learned keep-alive and pre-warm for the last replica, priced in money."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    replica_cost_per_hour: float = Field(
        gt=0,
        le=100_000,
        description="price of one replica for an hour ($), e.g. the GPU instance's",
    )
    slo_miss_cost: float = Field(
        0.05,
        ge=0,
        le=100_000,
        description="price ($) of one request that waits beyond the SLO because of a cold start",
    )
    fallback: Seconds = Field(
        300.0,
        le=7 * 86_400,
        description="fixed keep-alive while the learned gaps are not representative "
        "(as KEDA's cooldownPeriod)",
    )
    prewarm: bool = Field(True, description="start one replica ahead of a gap's likely end")
    daily: bool = Field(
        True, description="pre-warm for hours of the day (UTC) in which bursts recur"
    )
    min_gaps: int = Field(
        8, ge=1, le=int(MAX_WEIGHT), description="gaps seen before the histogram is trusted"
    )

    def build(self) -> KeepAliveDecider:
        return KeepAliveDecider(self)


class KeepAliveDecider:
    """The configuration's fields as plain attributes (see FAST_FIELDS in base.py)."""

    def __init__(self, config: KeepAlive) -> None:
        self.config = config
        self.cost_per_second = config.replica_cost_per_hour / 3600.0
        self.slo_miss_cost = config.slo_miss_cost
        self.fallback = config.fallback
        self.prewarm = config.prewarm
        self.daily = config.daily
        self.min_gaps = config.min_gaps


def decide(
    d: KeepAliveDecider,
    state: Mapping[str, Any],
    now: float,
    current: int,
    startup: float,
    dt: float,
    per_replica: int = 0,
) -> tuple[int, str]:
    """The replicas for an idle pool (0, 1, or as many as a burst's usual peak needs when
    its expected misses pay for all of them: burst headroom from zero), and the reason
    naming what decided it. `per_replica`: slots a replica serves at once."""
    since = state["since"]
    tau = 0.0 if since is None else max(0.0, now - since)
    window = startup + min(max(dt, 0.0), MAX_TICK)
    if representative(state, d.min_gaps):
        miss = d.slo_miss_cost * burst_requests(state)
        alive, p, held = conditional(state, tau, window, window - startup)
        if alive <= 0:
            warm = False
            verdict = f"idle {tau:.0f}s, longer than every gap seen"
        else:
            keep = d.cost_per_second * held
            warm = p > 0 and miss * p >= keep
            verdict = (
                f"idle {tau:.0f}s, P(work within {window:.0f}s) {p:.0%} x ${miss:.3g} "
                f"{'>=' if warm else '<'} ${keep:.3g} warm"
            )
            if not warm and current > 0:
                soon = _due_within(d, state, tau, window, startup, miss)
                if soon is not None:
                    return 1, f"keep-alive: {verdict}, but a pre-warm is due in {soon:.0f}s -> 1"
        if warm:
            size, sized = 1, ""
            k = burst_replicas(state, per_replica)
            if k > 1 and miss * p >= k * d.cost_per_second * held:
                size = k
                sized = f", burst peak {state['peak']:.3g} slots"
            if current > 0:
                return size, f"keep-alive: {verdict}{sized} -> {size}"
            if d.prewarm:
                return size, f"pre-warm: {verdict}{sized}; startup {startup:g}s -> {size}"
            verdict += " (pre-warm off)"
        let_go = f"let go: {verdict} -> 0"
    else:
        n = round(sum(state["bins"]) + state["overflow"])
        fixed = f"fallback keep-alive {d.fallback:g}s ({n} gaps, not representative)"
        if current > 0 and tau < d.fallback:
            return 1, f"{fixed}: idle {tau:.0f}s -> 1"
        let_go = f"let go: {fixed}: idle {tau:.0f}s -> 0"
    if d.daily and (d.prewarm or current > 0):
        due = _daily_due(d, state, now, window)
        if due:
            return 1, f"pre-warm: {due}; startup {startup:g}s -> 1"
    return 0, let_go


LOOKAHEAD_STEPS = 4


def _due_within(
    d: KeepAliveDecider,
    state: Mapping[str, Any],
    tau: float,
    window: float,
    startup: float,
    miss: float,
) -> float | None:
    """Seconds until a replica would be worth having again, if that is within one startup
    (checked at a few points): letting the replica go then saves less than the startup a
    new one pays for, and risks the misses in between. None when not due that soon."""
    for step in range(1, LOOKAHEAD_STEPS + 1):
        ahead = startup * step / LOOKAHEAD_STEPS
        alive, p, held = conditional(state, tau + ahead, window, window - startup)
        if alive > 0 and p > 0 and miss * p >= d.cost_per_second * held:
            return ahead
    return None


def _daily_due(d: KeepAliveDecider, state: Mapping[str, Any], now: float, window: float) -> str:
    """Why to hold a replica for a recurring hour of the day, or "": the hour that starts
    within the reaction window saw a burst start on most recent days, none started since
    one window before that hour, and a warm replica over one window pays for the misses it
    avoids."""
    ahead = now + window
    hour = int(ahead // 3600)
    share = daily_share(state, hour % 24)
    if share < DAILY_MIN_SHARE:
        return ""
    last = state["last_start"]
    if last is not None and last >= hour * 3600 - window:
        return ""  # this hour's burst came already
    miss = d.slo_miss_cost * burst_requests(state) * share
    if miss < d.cost_per_second * window:
        return ""
    return f"daily burst at {hour % 24:02d}:00 UTC ({share:.0%} of recent days)"
