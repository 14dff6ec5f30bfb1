"""Erlang C: how many servers keep the queue wait within a bound, for Poisson arrivals.

Pure math for the `queueing` policy: no I/O, no state. Servers here are request slots (a
replica serving `slots_per_replica` sequences at once is that many servers). Uses the stable
Erlang B recursion, so it works for thousands of servers without overflow, and costs
O(servers) per call.
"""

from __future__ import annotations

import math


def wait_exceeds_probability(servers: int, offered_load: float, wait_over_service: float) -> float:
    """P(wait > t) in an M/M/c queue; `offered_load` = arrival rate x mean service time
    (in servers), `wait_over_service` = t / mean service time. 1.0 when unstable."""
    if offered_load <= 0:
        return 0.0
    if servers <= offered_load:
        return 1.0
    blocking = 1.0
    for k in range(1, servers + 1):
        blocking = offered_load * blocking / (k + offered_load * blocking)
    waiting = servers * blocking / (servers - offered_load * (1.0 - blocking))
    return waiting * math.exp(-(servers - offered_load) * wait_over_service)


_FLOATS = [float(k) for k in range(4097)]
"""1.0, 2.0, ...: iterating floats spares an int-to-float conversion per server."""
_MARGIN = 1.0 + 1e-9
"""Slack on the quick rejection below, far above rounding, so it never rejects a count the
full test would accept."""


def servers_for_wait(
    offered_load: float,
    wait_over_service: float,
    max_wait_probability: float,
    max_servers: int,
) -> int:
    """The fewest servers with P(wait > t) <= `max_wait_probability` (capped at
    `max_servers`). 0 when there is no load."""
    if offered_load <= 0:
        return 0
    if offered_load >= max_servers:
        return max_servers  # no count up to the cap is stable
    # Erlang B through its reciprocal, R(k) = 1 + (k / a) R(k-1) (B = 1 / R): one multiply
    # and add per server below the load, where no answer is possible yet. This loop is most
    # of the policy's time in a simulated day (bench/sim_speed.py).
    inv = 1.0 / offered_load
    stable_from = int(offered_load) + 1
    reciprocal = 1.0
    ks = _FLOATS if stable_from <= len(_FLOATS) else [float(k) for k in range(stable_from)]
    for kf in ks[1:stable_from]:
        reciprocal = 1.0 + kf * inv * reciprocal
    # exp(-(k - a) t) for successive k: one exp, then a constant factor per server.
    tail = math.exp(-(stable_from - offered_load) * wait_over_service)
    step = math.exp(-wait_over_service)
    reject = max_wait_probability * _MARGIN
    for k in range(stable_from, max_servers + 1):
        reciprocal = 1.0 + k * inv * reciprocal
        # Erlang C >= Erlang B, so B x tail above the bound rejects k without the divisions.
        if reciprocal * reject < tail:
            tail *= step
            continue
        blocking = 1.0 / reciprocal
        waiting = k * blocking / (k - offered_load * (1.0 - blocking))
        if waiting * tail <= max_wait_probability:
            return k
        tail *= step
    return max_servers
