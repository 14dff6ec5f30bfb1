"""Learned keep-alive and pre-warming, the model: an online record of a pool's idle gaps.

GPU cold starts take minutes. A pool either pays for an idle GPU through a fixed keep-alive
(the planner's `behavior.scale_to_zero_after`, KEDA's `cooldownPeriod`) or makes the next
requests wait a whole cold start. *Serverless in the Wild* (Shahrad et al., USENIX ATC 2020)
keeps, per application, a histogram of the idle times between invocations and derives a
keep-alive window and a pre-warm time from it. This module does that for a serving pool:

- **The model** (`observe`), kept in the policy's memory as plain JSON values of bounded
  size: the pool has *work* when anything arrives, waits or runs; when work stops an idle
  period starts, and when work comes back its length is one *gap*. Gaps go into a fixed
  histogram of `BINS` geometric bins from 15 s to 24 h (ratio ~1.24) plus an overflow count,
  with each bin's sum and sum of squares (so a bin's gaps are placed by their mean and
  spread, not smeared over a bin a quarter wide). The weights halve when they pass
  `MAX_WEIGHT`, so the model follows a changing pattern and never grows. It also keeps how
  many requests the first `startup` seconds of a burst bring and its peak demand in slots
  over the first `PEAK_STARTUPS` startups (EWMAs over bursts), and a
  24-bin hour-of-day (UTC) record of the hours in which bursts started, decayed by day.
- **The decision** (`decide`, in keep_alive.py), while the pool has been idle for τ
  seconds: over the next reaction window W = startup + one tick (a pool at zero when it
  starts cannot serve a burst inside it), one replica is worth having when

      slo_miss_cost × burst requests × P(gap ends within W | gap > τ)
          >= replica cost per second × E[min(gap - τ, W) | gap > τ]

  With a replica up this is the keep-alive (`keep-alive: ...`, else `let go: ...`); at
  zero it is the pre-warm (`pre-warm: ...`), which therefore fires one startup (and a
  tick) ahead of the gap's likely end. A recurring hour-of-day pattern (a burst started in
  the coming hour on most recent days) pre-warms for that hour too. While the histogram is
  not representative the fixed fallback keep-alive applies
  (`fallback keep-alive 300s (N gaps, not representative)`).

Pure: no I/O, no clock (time is `observation.now`), nothing kept between calls but the
memory returned. The model is only updated by building new values: a memory given in is
never changed in place (it may share its lists with the one returned).
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt

FIRST_EDGE = 15.0
"""Seconds: gaps shorter than this share the first bin (a tick is 15 s by default)."""
LAST_EDGE = 86_400.0
"""Seconds: gaps of a day or longer only count in the overflow."""
BINS = 40
RATIO = (LAST_EDGE / FIRST_EDGE) ** (1.0 / BINS)  # ~1.2417
EDGES: tuple[float, ...] = tuple(
    [FIRST_EDGE * RATIO**k for k in range(BINS)] + [LAST_EDGE]
)  # BINS + 1 edges; bin k holds gaps in [EDGES[k], EDGES[k+1]), bin 0 also shorter ones
MAX_WEIGHT = 1_000.0
"""When the histogram's weight passes this, every count halves: bounded, and recent gaps
weigh more than old ones."""
MIN_CV = 2.0
"""Representative histogram: coefficient of variation of the bin counts at least this."""
MAX_OVERFLOW_SHARE = 0.5
"""Not representative when more than this share of gaps is longer than `LAST_EDGE`."""
BURST_EWMA = 0.3
"""Weight of the newest burst in the EWMA of requests a burst brings in its first startup."""
DAY = 86_400.0
DAILY_DECAY = math.exp(-1.0 / 7.0)
"""Per day: the hour-of-day record forgets with a time constant of a week."""
DAILY_MIN_WEIGHT = 2.5
"""A recurring hour needs (decayed) bursts on about three recent days..."""
DAILY_MIN_SHARE = 0.5
"""...and on most of the recent days seen..."""
DAILY_MAX_BUSY_HOURS = 6.0
"""...in a pool whose bursts start in at most this many hours of a day on average."""
PEAK_STARTUPS = 2.0
"""A burst's peak demand is taken over its first this-many startups: requests held at zero
reach the pool's queue only once a replica is up."""
MAX_PEAK_SLOTS = 1e6
MAX_TICK = 60.0
"""Seconds: the time to the next call is taken to be the time since the last, at most this."""
PRIOR_GAPS = 3.0
"""A bin's spread is its own from this many gaps on; before, partly the whole bin's."""
SPREAD = math.sqrt(3.0)  # a uniform spread with standard deviation s has half-width s·√3


# --- the model ------------------------------------------------------------------------
def bin_of(gap: float) -> int:
    """The histogram bin of a gap in seconds; BINS for the overflow (a day or longer)."""
    if gap >= LAST_EDGE:
        return BINS
    return max(0, bisect_right(EDGES, gap) - 1)


def fresh(now: float, work: bool) -> dict[str, Any]:
    """The model before any gap: an idle period seen from its middle does not count."""
    return {
        "gaps": 0,
        "bins": [0] * BINS,
        "sums": [0.0] * BINS,
        "squares": [0.0] * BINS,
        "overflow": 0,
        "concentrated": False,
        "since": None if work else now,
        "whole": False,
        "burst_at": None,
        "burst_requests": 0.0,
        "requests": None,
        "hours": [0.0] * 24,
        "days": 1.0,
        "day": int(now // DAY),
        "last_start": None,
        "burst_peak": 0.0,
        "peak": None,
    }


_Count = Annotated[StrictFloat, Field(ge=0, le=MAX_WEIGHT)]
_Amount = Annotated[StrictFloat, Field(ge=0)]
_At = Annotated[StrictFloat, Field(ge=0)]


class StoredModel(BaseModel):
    """The model as `fresh` and `observe` build it, for checking one read back from outside
    (a state file, a pool's status) before it is used: every field there, of its type, a
    finite number within its range, lists of their fixed lengths. Times are seconds >= 0;
    whether they lie in the future is for the reader to check (it knows the time)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    gaps: StrictInt = Field(ge=0)
    bins: list[_Count] = Field(min_length=BINS, max_length=BINS)
    sums: list[_Amount] = Field(min_length=BINS, max_length=BINS)
    squares: list[_Amount] = Field(min_length=BINS, max_length=BINS)
    overflow: _Count
    concentrated: StrictBool
    since: _At | None
    whole: StrictBool
    burst_at: _At | None
    burst_requests: _Amount
    requests: _Amount | None
    hours: list[_Amount] = Field(min_length=24, max_length=24)
    days: _Amount
    day: StrictInt = Field(ge=0)
    last_start: _At | None
    # added with burst-sized warm capacity; models stored before it lack them
    burst_peak: _Amount = 0.0
    peak: _Amount | None = None


def observe(
    state: Mapping[str, Any] | None,
    now: float,
    work: bool,
    rate: float,
    dt: float,
    startup: float,
    demand: float = 0.0,
) -> Mapping[str, Any]:
    """The model after one call. `work`: anything arrives, waits or runs; `rate`: arrivals
    per second; `dt`: seconds since the last call; `demand`: slots wanted now (waiting and
    running). Returns `state` itself when nothing changed (most calls), else a new mapping."""
    if not state or len(state.get("bins") or ()) != BINS:  # none yet, or not this model's
        return fresh(now, work)
    s: dict[str, Any] | None = None
    day = int(now // DAY)
    if day > state["day"]:  # a new UTC day: the hour-of-day record decays
        s = dict(state)
        factor = DAILY_DECAY ** (day - state["day"])
        s["hours"] = [h * factor for h in state["hours"]]
        # each day seen counts 1, decayed as the hours are
        s["days"] = state["days"] * factor + (1.0 - factor) / (1.0 - DAILY_DECAY)
        s["day"] = day
    since = state["since"]
    if work:
        if since is not None:  # work is back: one gap ends, a burst starts
            s = dict(state) if s is None else s
            if state["whole"]:
                _record_gap(s, now - since)
            s["since"] = None
            s["burst_at"] = now
            s["burst_peak"] = demand
            s["burst_requests"] = rate * min(dt, startup)
            if startup <= 0:
                _fold_burst(s)
            last = state["last_start"]
            hour = int(now // 3600)
            if last is None or int(last // 3600) != hour:  # once per hour of the clock
                hours = list(s["hours"])
                hours[hour % 24] += 1.0
                s["hours"] = hours
            s["last_start"] = now
        else:
            if state["burst_at"] is not None:  # the burst's first startup seconds
                s = dict(state) if s is None else s
                s["burst_requests"] = state["burst_requests"] + rate * dt
                if now - state["burst_at"] >= startup:
                    _fold_burst(s)
            last = state["last_start"]
            if (
                last is not None
                and now - last <= PEAK_STARTUPS * startup
                and demand > state.get("burst_peak", 0.0)
            ):  # its peak over the first startups (held requests reach the pool after one)
                s = dict(state) if s is None else s
                s["burst_peak"] = demand
    elif since is None:  # work stopped: an idle period starts
        s = dict(state) if s is None else s
        s["since"] = now
        s["whole"] = True
        if state["burst_at"] is not None:
            _fold_burst(s)
        seen = state.get("burst_peak", 0.0)
        if seen > 0:  # the burst is over: fold its peak into the EWMA
            old = state.get("peak")
            s["peak"] = seen if old is None else old + BURST_EWMA * (seen - old)
            s["burst_peak"] = 0.0
    return state if s is None else s


def _fold_burst(s: dict[str, Any]) -> None:
    """The burst's first startup seconds are over: fold its requests into the EWMA."""
    seen = s["burst_requests"]
    old = s["requests"]
    s["requests"] = seen if old is None else old + BURST_EWMA * (seen - old)
    s["burst_at"] = None


def _record_gap(s: dict[str, Any], gap: float) -> None:
    k = bin_of(gap)
    bins, sums, squares = list(s["bins"]), list(s["sums"]), list(s["squares"])
    overflow = s["overflow"]
    if k == BINS:
        overflow += 1
    else:
        bins[k] += 1
        sums[k] += gap
        squares[k] += gap * gap
    if sum(bins) + overflow > MAX_WEIGHT:
        bins = [c / 2 for c in bins]
        sums = [v / 2 for v in sums]
        squares = [v / 2 for v in squares]
        overflow /= 2
    s["bins"], s["sums"], s["squares"], s["overflow"] = bins, sums, squares, overflow
    s["gaps"] = s["gaps"] + 1
    s["concentrated"] = _concentrated(bins, overflow)


def coefficient_of_variation(bins: list[float]) -> float:
    """Of the bin counts (0 for an empty histogram)."""
    total = sum(bins)
    if total <= 0:
        return 0.0
    mean = total / len(bins)
    variance = max(0.0, sum(c * c for c in bins) / len(bins) - mean * mean)
    return math.sqrt(variance) / mean


def _concentrated(bins: list[float], overflow: float) -> bool:
    # Shahrad et al. (Serverless in the Wild, USENIX ATC 2020, §4.2) trust an application's
    # idle-time histogram when it is concentrated: a coefficient of variation of the bin
    # counts of at least 2, and not too many idle times out of its range. Otherwise they
    # fall back (to a time-series forecast there; to the fixed keep-alive here). The number
    # of gaps is checked against `min_gaps` where the decision is made.
    total = sum(bins) + overflow
    if total <= 0 or overflow > MAX_OVERFLOW_SHARE * total:
        return False
    return coefficient_of_variation(bins) >= MIN_CV


# --- the gap distribution ---------------------------------------------------------------
def supports(
    state: Mapping[str, Any], head: float, tail: float
) -> list[tuple[float, float, float]]:
    """(weight, start, end) per non-empty bin: its gaps taken as spread uniformly with the
    bin's mean and standard deviation, within the bin's edges (a repeated gap is a point,
    not a bin a quarter wide). Until a bin holds `PRIOR_GAPS` gaps, its variance is made up
    with the whole bin's, so that one or two gaps seen are not taken for a point. The start
    moves `head` seconds earlier (a gap is measured to the call that saw work, up to a tick
    after it came) and the end min(10% of the mean, `tail`) seconds later (Shahrad's
    keep-alive margin: a burst a little late still finds the replica)."""
    sums, squares = state["sums"], state["squares"]
    return [
        _support(k, c, sums[k], squares[k], head, tail)
        for k, c in enumerate(state["bins"])
        if c > 0
    ]


def _support(
    k: int, c: float, total: float, square: float, head: float, tail: float
) -> tuple[float, float, float]:
    mean = total / c
    lo = 0.0 if k == 0 else EDGES[k]
    width = EDGES[k + 1] - lo
    variance = max(0.0, square / c - mean * mean)
    prior = max(0.0, PRIOR_GAPS - c)  # a few gaps do not tell their spread
    half = SPREAD * math.sqrt((c * variance + prior * width * width / 12.0) / (c + prior))
    start = max(0.0, max(lo, mean - half) - head)
    end = min(EDGES[k + 1], mean + half) + min(0.1 * mean, tail)
    return float(c), start, end


def _survival(parts: list[tuple[float, float, float]], overflow: float, x: float) -> float:
    """Weight of gaps longer than x."""
    total = overflow
    for c, a, b in parts:
        if x < a:
            total += c
        elif x < b:
            total += c * (b - x) / (b - a)
    return total


def _area(a: float, b: float, x: float) -> float:
    """∫_0^x of a bin's share still going at s (1 before a, falling linearly to 0 at b)."""
    if x <= a:
        return x
    if x >= b:
        return (a + b) / 2
    return x - (x - a) * (x - a) / (2 * (b - a))


def conditional(
    state: Mapping[str, Any], tau: float, window: float, tick: float
) -> tuple[float, float, float]:
    """For a gap that has lasted `tau`: (weight of gaps this long, P(it ends within
    `window`), E[min(rest of the gap, window)] in seconds). P is 0 and E is `window` when no
    gap seen was this long. `tick`: seconds between calls (the gaps' resolution); the
    supports are those of `supports(state, tick, window)`."""
    end = tau + window
    overflow = float(state["overflow"])
    alive = left = overflow
    area = overflow * window
    sums, squares = state["sums"], state["squares"]
    for k, c in enumerate(state["bins"]):
        if c <= 0:
            continue
        # Only bins whose support may overlap [tau, end] need it worked out (one or two):
        # the support lies within [edge k - tick, edge k+1 + min(10%, window)].
        upper = EDGES[k + 1]
        if upper + min(0.1 * upper, window) <= tau:
            continue  # all these gaps ended before tau
        if k > 0 and EDGES[k] - tick >= end:
            alive += c  # all of them go on past the window
            left += c
            area += c * window
            continue
        c, a, b = _support(k, c, sums[k], squares[k], tick, window)
        if tau < a:
            alive += c
        elif tau < b:
            alive += c * (b - tau) / (b - a)
        else:
            continue
        if end < a:
            left += c
        elif end < b:
            left += c * (b - end) / (b - a)
        area += c * (_area(a, b, end) - _area(a, b, tau))
    if alive <= 0:
        return 0.0, 0.0, window
    return alive, 1.0 - left / alive, area / alive


def quantile(state: Mapping[str, Any], q: float, tau: float = 0.0) -> float:
    """The q-quantile of the gap (as measured, no margins), given that it has lasted `tau`;
    inf when it falls in the overflow or nothing is known."""
    parts = supports(state, 0.0, 0.0)
    overflow = float(state["overflow"])
    alive = _survival(parts, overflow, tau)
    if alive <= 0:
        return math.inf
    target = (1.0 - q) * alive
    hi = max((b for _, _, b in parts), default=tau)
    if _survival(parts, overflow, hi) > target:
        return math.inf
    lo = tau
    for _ in range(60):  # bisection: S is continuous and non-increasing
        mid = (lo + hi) / 2
        if _survival(parts, overflow, mid) > target:
            lo = mid
        else:
            hi = mid
    return hi


def burst_requests(state: Mapping[str, Any]) -> float:
    """Requests a burst brings in its first startup seconds: learned, at least 1."""
    learned = state.get("requests")
    return 1.0 if learned is None or learned < 1.0 else float(learned)


def burst_replicas(state: Mapping[str, Any], per_replica: int) -> int:
    """Replicas that hold a burst's usual peak (EWMA of the slots wanted at once over its
    first `PEAK_STARTUPS` startups), at least 1."""
    peak = state.get("peak")
    if not peak or per_replica <= 0:
        return 1
    return max(1, math.ceil(min(float(peak), MAX_PEAK_SLOTS) / per_replica - 1e-9))


def daily_share(state: Mapping[str, Any], hour: int) -> float:
    """Share of recent days on which a burst started in this hour of the day (UTC); 0 until
    it recurred on about three days, and 0 when bursts start in most hours anyway (then the
    hour tells nothing the gaps do not)."""
    hours = state["hours"]
    weight = hours[hour]
    if weight < DAILY_MIN_WEIGHT:
        return 0.0
    days = float(state["days"])
    if sum(hours) > DAILY_MAX_BUSY_HOURS * days:
        return 0.0
    return min(1.0, float(weight) / days)


# --- the decision -----------------------------------------------------------------------
def representative(state: Mapping[str, Any], min_gaps: int) -> bool:
    """Enough gaps (their weight, which halves with the histogram) and concentrated."""
    weight = sum(state["bins"]) + state["overflow"]
    return bool(state["concentrated"]) and weight >= min_gaps


def summary(state: Mapping[str, Any], min_gaps: int) -> dict[str, Any]:
    """What the model has learned, for `autoscaler explain`: gaps seen, the percentiles of
    the gap (seconds; None beyond a day), whether it is trusted, the top hours of the day."""
    bins = state["bins"]
    weight = sum(bins) + state["overflow"]

    def q(p: float) -> float | None:
        v = quantile(state, p) if weight else math.inf
        return None if math.isinf(v) else round(v, 1)

    hours, days = state["hours"], state["days"]
    top = sorted((h for h in range(24) if hours[h] > 0), key=lambda h: -hours[h])[:3]
    return {
        "gaps": state["gaps"],
        "weight": round(weight, 2),
        "overflow": state["overflow"],
        "p10": q(0.1),
        "p50": q(0.5),
        "p90": q(0.9),
        "cv": round(coefficient_of_variation(bins), 2),
        "representative": representative(state, min_gaps),
        "idle_since": state["since"],
        "burst_requests": round(burst_requests(state), 2),
        "burst_peak_slots": None if not state.get("peak") else round(float(state["peak"]), 2),
        "top_hours": [
            {"hour": h, "days": round(hours[h], 2), "share": round(min(1.0, hours[h] / days), 2)}
            for h in top
        ],
    }
