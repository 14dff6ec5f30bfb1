"""The `sqs` signal source: a queue's backlog in messages, from GetQueueAttributes.

Backlog = ApproximateNumberOfMessages (waiting) + ApproximateNumberOfMessagesNotVisible
(received, being worked on; with `include_in_flight`) + ApproximateNumberOfMessagesDelayed
(with `include_delayed`). Every queue is asked once per tick however many pools read it;
queues are read concurrently, 32 at a time.

A read returns by its budget (`READ_BUDGET` of the source timeout) with what has answered:
queues still unread are stale readings (`Timeout`), never left to sink the whole source past
its timeout. Each read starts where the last one's answers ended, so with more queues than
fit into one budget every queue is read in turn rather than the same tail always missing.

A source must never raise for one failed queue: its signals come back as readings with
`error` set to the AWS error code and message, and the other queues are unaffected.
"""

from __future__ import annotations

import concurrent.futures as cf
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from autoscaler.providers.aws_common import AwsClients, error_code, error_message
from autoscaler.types import Reading

from .base import SignalKey, SignalRequest

WAITING = "ApproximateNumberOfMessages"
IN_FLIGHT = "ApproximateNumberOfMessagesNotVisible"
DELAYED = "ApproximateNumberOfMessagesDelayed"
_REGION_IN_URL = re.compile(r"^https?://(?:sqs[.-])?([a-z]{2}(?:-[a-z]+)+-\d)\.")
READ_BUDGET = 0.8
"""Share of the source timeout a read may take; the rest is the observer's margin."""
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


class SqsSource:
    """Reads SQS backlogs; one boto3 client per region, shared by the reading threads."""

    def __init__(self, settings: Any = None) -> None:
        self._timeout = float(getattr(settings, "source_timeout", 5.0))
        self._clients = AwsClients(timeout_seconds=self._timeout)
        self._start = 0  # where the next read begins in the list of queues

    def read(self, requests: Sequence[SignalRequest], now: float) -> dict[SignalKey, Reading]:
        queues: dict[tuple[str | None, str], list[SignalRequest]] = defaultdict(list)
        for request in requests:
            source = request.source
            region = source.region or region_of(source.queue_url)
            queues[(region, source.queue_url)].append(request)
        order = list(queues)
        start = self._start % max(1, len(order))
        order = order[start:] + order[:start]
        timeout = min((r.source.timeout or self._timeout) for r in requests) if requests else 0
        budget = READ_BUDGET * timeout
        workers = max(1, min(_MAX_CONCURRENT_QUEUES, len(order)))
        pool = cf.ThreadPoolExecutor(workers, thread_name_prefix="sqs")
        try:
            futures = {pool.submit(self._attributes, *queue): queue for queue in order}
            cf.wait(futures, timeout=budget)
        finally:
            pool.shutdown(wait=False, cancel_futures=True)  # unread queues: not waited for
        out: dict[SignalKey, Reading] = {}
        first_unread: int | None = None
        for i, (future, queue) in enumerate(futures.items()):
            if future.done() and not future.cancelled():
                out.update(_readings(future, queues[queue], now))
            else:
                why = (f"Timeout: not read within {budget:.1f}s ({len(order)} queues this "
                       "tick; read first next tick)")  # fmt: skip
                out.update({r.key: Reading(None, now, error=why) for r in queues[queue]})
                first_unread = i if first_unread is None else first_unread
        if first_unread is not None:
            self._start = start + first_unread  # the unread ones go first next time
        return out

    def _attributes(self, region: str | None, queue_url: str) -> dict[str, str]:
        client = self._clients.get("sqs", region, max_attempts=2, mode="standard")
        answer = client.get_queue_attributes(
            QueueUrl=queue_url, AttributeNames=[WAITING, IN_FLIGHT, DELAYED]
        )
        return dict(answer.get("Attributes") or {})


def _readings(
    future: cf.Future[dict[str, str]], requests: Sequence[SignalRequest], now: float
) -> dict[SignalKey, Reading]:
    try:
        attributes = future.result()
    except Exception as exc:  # one queue's failure marks only its own signals stale
        why = f"{error_code(exc)}: {error_message(exc)}"
        return {r.key: Reading(None, now, error=why) for r in requests}
    return {r.key: Reading(backlog(attributes, r.source), now) for r in requests}
