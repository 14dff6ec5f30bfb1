"""The `sqs` signal source: a queue's backlog in messages, from GetQueueAttributes.

Backlog = ApproximateNumberOfMessages (waiting) + ApproximateNumberOfMessagesNotVisible
(received, being worked on; with `include_in_flight`) + ApproximateNumberOfMessagesDelayed
(with `include_delayed`). Every queue is asked once per tick however many pools read it;
queues are read concurrently, 32 at a time.

A read returns by its budget (`READ_BUDGET` of the source timeout) with what has answered:
queues still unread are stale readings (`Timeout`), never left to sink the whole source past
its timeout. Each read starts where the last one's answers ended, so with more queues than
fit into one budget every queue is read in turn rather than the same tail always missing.

A queue whose source sets `poll_interval` is read at most that often; between reads its
last good reading stands, stamped with the time it was read. Reads are spread out rather
than all falling due on one tick: every queue never read is read at once, and each then
keeps its own slot (a phase on the clock) in its interval, so about (queues / interval) are
read per second however the first reads fell.

A source must never raise for one failed queue: its signals come back as readings with
`error` set to the AWS error code and message, and the other queues are unaffected.
"""

from __future__ import annotations

import concurrent.futures as cf
import math
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from autoscaler.clients.aws import AwsClients, error_code, error_message
from autoscaler.types import Reading

from .base import SignalKey, SignalRequest

WAITING = "ApproximateNumberOfMessages"
IN_FLIGHT = "ApproximateNumberOfMessagesNotVisible"
DELAYED = "ApproximateNumberOfMessagesDelayed"
_REGION_IN_URL = re.compile(r"^https?://(?:sqs[.-])?([a-z]{2}(?:-[a-z]+)+-\d)\.")
READ_BUDGET = 0.8
"""Share of the source timeout a read may take; the rest is the observer's margin."""
Queue = tuple[str | None, str]  # (region, queue URL)
_MAX_CONCURRENT_QUEUES = 32  # SQS answers in ~10-20 ms; a thousand queues per tick need width


def region_of(queue_url: str) -> str | None:
    """The region in a standard queue URL (sqs.<region>.amazonaws.com), else None."""
    match = _REGION_IN_URL.match(queue_url)
    return match.group(1) if match else None


def backlog(attributes: Mapping[str, str], source: Any) -> float:
    """Messages the pool has to work through, by the source's settings."""
    total = float(attributes.get(WAITING, 0))
    if source.include_in_flight:
        total += float(attributes.get(IN_FLIGHT, 0))
    if source.include_delayed:
        total += float(attributes.get(DELAYED, 0))
    return total


class SqsReader:
    """Reads SQS backlogs; one boto3 client per region, shared by the reading threads."""

    def __init__(self, settings: Any = None) -> None:
        self._timeout = float(getattr(settings, "source_timeout", 5.0))
        self._clients = AwsClients(timeout_seconds=self._timeout)
        self._start = 0  # where the next read begins in the list of queues
        self._last: dict[Queue, tuple[dict[str, str], float]] = {}  # good answers, read at

    def read(self, requests: Sequence[SignalRequest], now: float) -> dict[SignalKey, Reading]:
        queues: dict[Queue, list[SignalRequest]] = defaultdict(list)
        polls: dict[Queue, float | None] = {}
        for request in requests:
            source = request.source
            region = source.region or region_of(source.queue_url)
            queue = (region, source.queue_url)
            queues[queue].append(request)
            poll = source.poll_interval
            # A queue is read as often as its most demanding reader asks.
            if poll is None or (queue in polls and polls[queue] is None):
                polls[queue] = None
            else:
                polls[queue] = min(poll, polls.get(queue) or poll)
        every_tick = [q for q in queues if polls[q] is None]
        start = self._start % max(1, len(every_tick))
        every_tick = every_tick[start:] + every_tick[:start]
        polled = self._due(polls, now)
        order = polled + every_tick
        timeout = min((r.source.timeout or self._timeout) for r in requests) if requests else 0
        budget = READ_BUDGET * timeout
        futures: dict[cf.Future[dict[str, str]], Queue] = {}
        if order:
            workers = max(1, min(_MAX_CONCURRENT_QUEUES, len(order)))
            pool = cf.ThreadPoolExecutor(workers, thread_name_prefix="sqs")
            try:
                futures = {pool.submit(self._attributes, *queue): queue for queue in order}
                cf.wait(futures, timeout=budget)
            finally:
                pool.shutdown(wait=False, cancel_futures=True)  # unread queues: not waited for
        out: dict[SignalKey, Reading] = {}
        for queue in queues.keys() - set(order):  # polled, not due: the last reading stands
            out.update(self._standing(queue, queues[queue]))
        first_unread: int | None = None
        for i, (future, queue) in enumerate(futures.items()):
            if future.done() and not future.cancelled():
                out.update(self._readings(future, queue, queues[queue], now))
            elif queue in self._last and polls[queue] is not None:
                out.update(self._standing(queue, queues[queue]))  # late: max_age judges
            else:
                why = (f"Timeout: not read within {budget:.1f}s ({len(order)} queues this "
                       "tick; read first next tick)")  # fmt: skip
                out.update({r.key: Reading(None, now, error=why) for r in queues[queue]})
                if polls[queue] is None:
                    at = i - len(polled)
                    first_unread = at if first_unread is None else first_unread
        if first_unread is not None:
            self._start = start + first_unread  # the unread ones go first next time
        return out

    def _standing(
        self, queue: Queue, requests: Sequence[SignalRequest]
    ) -> dict[SignalKey, Reading]:
        """The last good reading of a polled queue, stamped with the time it was read."""
        attributes, read_at = self._last[queue]
        return {r.key: Reading(backlog(attributes, r.source), read_at) for r in requests}

    def _due(self, polls: Mapping[Queue, float | None], now: float) -> list[Queue]:
        """Polled queues to read now: every queue never read (or whose last read failed),
        then those whose next read is due, longest overdue first.

        A queue's next read is the first time after its last one at its slot's phase in
        its interval: slots are on the clock, spread evenly over the queues (sorted, so
        they are stable), not on when each queue happened to be read first, so the first
        reads' ticks do not bunch every later round."""
        # A queue without a region (a local endpoint) sorts first.
        polled = sorted(((q, p) for q, p in polls.items() if p is not None),
                        key=lambda e: (e[0][0] or "", e[0][1]))  # fmt: skip
        never: list[Queue] = []
        due: list[tuple[float, Queue]] = []
        for i, (queue, interval) in enumerate(polled):
            last = self._last.get(queue)
            if last is None:
                never.append(queue)
                continue
            phase = interval * (i + 1) / len(polled)
            at = phase + (math.floor((last[1] - phase) / interval) + 1) * interval
            if at <= now:
                due.append((at, queue))
        due.sort(key=lambda entry: entry[0])  # stable: equal times keep the slot order
        return never + [queue for _, queue in due]

    def _readings(
        self,
        future: cf.Future[dict[str, str]],
        queue: Queue,
        requests: Sequence[SignalRequest],
        now: float,
    ) -> dict[SignalKey, Reading]:
        try:
            attributes = future.result()
        except Exception as exc:  # one queue's failure marks only its own signals stale
            why = f"{error_code(exc)}: {error_message(exc)}"
            self._last.pop(queue, None)  # read again next tick, not after an interval
            return {r.key: Reading(None, now, error=why) for r in requests}
        self._last[queue] = (attributes, now)
        return {r.key: Reading(backlog(attributes, r.source), now) for r in requests}

    def _attributes(self, region: str | None, queue_url: str) -> dict[str, str]:
        client = self._clients.get("sqs", region, max_attempts=2, mode="standard")
        answer = client.get_queue_attributes(
            QueueUrl=queue_url, AttributeNames=[WAITING, IN_FLIGHT, DELAYED]
        )
        return dict(answer.get("Attributes") or {})
