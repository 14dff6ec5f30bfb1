"""The simulated cluster's event loop where every request holds exactly one unit.

LLM serving (one sequence, one slot) replays hundreds of thousands of requests a simulated
day, so this is `Cluster.advance` with `_dispatch`, `_start`, `_complete` and `_list`
inlined and the hot counters kept in locals. It must give bit-identical results to the
general loop in cluster.py: tests/sim/test_fast_path.py runs both side by side.
"""

from __future__ import annotations

import heapq
import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .cluster import Cluster

INF = math.inf


def advance_one_unit(c: Cluster, t: float) -> None:
    """`Cluster.advance` where every request holds one unit: the general loop with `_dispatch`,
    `_start`, `_complete` and `_list` inlined and the hot counters kept in locals
    (written back at the end). Same events, same order, same float operations."""
    arr, dur, start, n, per = c.arr, c.dur, c.start, len(c.arr), c.per
    pending, completions, free = c.pending_ready, c.completions, c.free
    replicas, queue, recent = c.replicas, c.queue, c.recent_service
    heappush, heappop = heapq.heappush, heapq.heappop
    na = c.next_arrival
    clock, busy_area, ready_area = c.clock, c.busy_area, c.ready_area
    busy_units, ready_units, running = c.busy_units, c.ready_units, c.running
    queued_units, done_service, recent_sum = (
        c.queued_units,
        c.done_service,
        c.recent_sum,
    )
    ta = arr[na] if na < n else INF
    tc = completions[0][0] if completions else INF
    tr = pending[0][0] if pending else INF
    while True:
        tmin = ta if ta < tc else tc
        if tr < tmin:
            tmin = tr
        if tmin > t:
            break
        dt = tmin - clock
        if dt > 0:
            busy_area += busy_units * dt
            ready_area += ready_units * dt
            clock = tmin
        if tr == tmin:  # a replica becomes ready
            _, rid = heappop(pending)
            tr = pending[0][0] if pending else INF
            r = replicas.get(rid)
            if r is None or r.draining:
                continue
            ready_units += per
            r.up = True
            c.up_count += 1
            if not r.listed:
                r.listed = True
                heappush(free, rid)
        elif tc == tmin:  # a request completes
            _, rid, item = heappop(completions)
            d = dur[item]
            busy_units -= 1
            running -= 1
            done_service += d  # the general loop adds d * units: the same float here
            recent.append((tmin, d))
            recent_sum += d
            r = replicas[rid]
            r.busy -= 1
            if r.draining:
                if r.busy == 0:
                    c._end(r, tmin)
                tc = completions[0][0] if completions else INF
                continue
            if not r.listed:
                r.listed = True
                heappush(free, rid)
            if not queue:
                tc = completions[0][0] if completions else INF
                continue
        else:  # a request arrives
            item = na
            na += 1
            ta = arr[na] if na < n else INF
            if not queue and free:
                # the common case: nothing waits and the lowest free replica is usable;
                # what the queue-and-dispatch below does for it, without the queue
                r = replicas.get(free[0])
                if r is not None and not r.draining and r.ready_at <= tmin and r.busy < per:
                    r.busy += 1
                    busy_units += 1
                    running += 1
                    start[item] = tmin
                    end = tmin + dur[item]
                    heappush(completions, (end, r.id, item))
                    if r.busy >= per:
                        heappop(free)
                        r.listed = False
                    if end < tc:
                        tc = end
                    continue
            queue.append(item)
            queued_units += 1
        # start queued requests on free units (lowest replica id first)
        while queue and free:
            r = replicas.get(free[0])
            if r is None or r.draining or r.ready_at > tmin or r.busy >= per:
                heappop(free)
                if r is not None:
                    r.listed = False
                continue
            item = queue.popleft()
            r.busy += 1
            busy_units += 1
            running += 1
            queued_units -= 1
            start[item] = tmin
            heappush(completions, (tmin + dur[item], r.id, item))
            if r.busy >= per:
                heappop(free)
                r.listed = False
        tc = completions[0][0] if completions else INF
    c.next_arrival = na
    c.clock, c.busy_area, c.ready_area = clock, busy_area, ready_area
    c.busy_units, c.ready_units, c.running = busy_units, ready_units, running
    c.queued_units, c.done_service, c.recent_sum = (
        queued_units,
        done_service,
        recent_sum,
    )
    c._integrate(t)
