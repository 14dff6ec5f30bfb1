"""The SQS and CloudWatch signal sources against moto: what a backlog sums, what a missing
datapoint means, and that one failure stays with its own signals."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from autoscaler.config.sources import CloudWatchSource as CloudWatchSpec
from autoscaler.config.sources import SqsSource as SqsSpec
from autoscaler.signals import SignalRequest, build_source
from autoscaler.signals.cloudwatch import CloudWatchReader
from autoscaler.signals.sqs import SqsReader, region_of

from .faults import FaultyMotoServer
from .helpers import client

pytestmark = pytest.mark.aws


def sqs_request(pool: str, url: str, **options: Any) -> SignalRequest:
    return SignalRequest(pool, "queue", SqsSpec(queue_url=url, **options))


def queue_with_backlog(name: str, waiting: int, in_flight: int, delayed: int) -> str:
    sqs = client("sqs")
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    for n in range(waiting + in_flight):
        sqs.send_message(QueueUrl=url, MessageBody=f"job-{n}")
    received = 0
    while received < in_flight:  # received and not deleted: in flight
        got = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=in_flight - received, VisibilityTimeout=600
        )
        received += len(got.get("Messages", []))
    for n in range(delayed):
        sqs.send_message(QueueUrl=url, MessageBody=f"later-{n}", DelaySeconds=600)
    return url


def test_sqs_backlog_sums_waiting_and_in_flight_and_optionally_delayed(mocked: None) -> None:
    url = queue_with_backlog("jobs", waiting=5, in_flight=2, delayed=3)
    requests = [
        sqs_request("default", url),
        sqs_request("waiting-only", url, include_in_flight=False),
        sqs_request("everything", url, include_delayed=True),
    ]
    readings = SqsReader().read(requests, now=100.0)
    values = {pool: r.value for (pool, _), r in readings.items()}
    assert values == {"default": 7.0, "waiting-only": 5.0, "everything": 10.0}
    assert all(r.observed_at == 100.0 and not r.stale for r in readings.values())


def test_a_missing_queue_is_stale_with_the_aws_error_code_and_other_queues_still_read(
    mocked: None,
) -> None:
    good = queue_with_backlog("jobs", waiting=4, in_flight=0, delayed=0)
    gone = good.rsplit("/", 1)[0] + "/no-such-queue"
    readings = SqsReader().read([sqs_request("a", good), sqs_request("b", gone)], now=1.0)
    assert readings[("a", "queue")].value == 4.0
    broken = readings[("b", "queue")]
    assert broken.stale and broken.value is None
    assert broken.error is not None and "NonExistentQueue" in broken.error


def test_each_queue_is_asked_once_however_many_pools_read_it(server: FaultyMotoServer) -> None:
    url = queue_with_backlog("shared", waiting=3, in_flight=0, delayed=0)
    server.injector.calls.clear()
    source = build_source("sqs", "pools[0].signals.queue.source")
    readings = source.read([sqs_request(f"pool-{n}", url) for n in range(5)], now=1.0)
    assert {r.value for r in readings.values()} == {3.0}
    assert len(server.injector.calls_to("GetQueueAttributes")) == 1


@pytest.mark.parametrize(
    ("url", "region"),
    [
        ("https://sqs.eu-west-1.amazonaws.com/123456789012/jobs", "eu-west-1"),
        ("https://us-gov-west-1.queue.amazonaws.com/123456789012/jobs", "us-gov-west-1"),
        ("http://127.0.0.1:5000/123456789012/jobs", None),
    ],
)
def test_the_region_comes_from_a_standard_queue_url(url: str, region: str | None) -> None:
    assert region_of(url) == region


def cw_request(pool: str, metric: str = "gpu_utilization", **options: Any) -> SignalRequest:
    spec = CloudWatchSpec(
        namespace="CWAgent",
        metric_name=metric,
        dimensions={"AutoScalingGroupName": "gpu"},
        **options,
    )
    return SignalRequest(pool, "gpu", spec)


def put(metric: str, value: float, at: datetime) -> None:
    client("cloudwatch").put_metric_data(
        Namespace="CWAgent",
        MetricData=[
            {
                "MetricName": metric,
                "Dimensions": [{"Name": "AutoScalingGroupName", "Value": "gpu"}],
                "Timestamp": at,
                "Value": value,
            }
        ],
    )


def test_cloudwatch_reads_the_newest_datapoint_with_its_statistic(mocked: None) -> None:
    now = datetime.now(UTC)
    put("gpu_utilization", 20.0, now - timedelta(minutes=3))
    put("gpu_utilization", 70.0, now - timedelta(minutes=1))
    put("gpu_utilization", 90.0, now - timedelta(minutes=1))
    readings = CloudWatchReader().read(
        [cw_request("avg"), cw_request("max", statistic="Maximum")], now.timestamp()
    )
    assert readings[("avg", "gpu")].value == 80.0
    assert readings[("max", "gpu")].value == 90.0


def test_cloudwatch_with_no_datapoint_is_missing_never_zero(mocked: None) -> None:
    put("gpu_utilization", 50.0, datetime.now(UTC) - timedelta(hours=2))  # outside lookback
    reading = CloudWatchReader().read(
        [cw_request("pool"), cw_request("other", metric="never_published")], time.time()
    )
    for value in reading.values():
        assert value.value is None and value.error is None
        assert value.stale and value.why_stale() == "no value (empty result)"


def test_many_cloudwatch_signals_share_one_get_metric_data_call(server: FaultyMotoServer) -> None:
    put("gpu_utilization", 42.0, datetime.now(UTC) - timedelta(minutes=1))
    server.injector.calls.clear()
    requests = [cw_request(f"pool-{n}") for n in range(501)]
    readings = CloudWatchReader().read(requests, time.time())
    assert {r.value for r in readings.values()} == {42.0}
    assert len(server.injector.calls_to("GetMetricData")) == 2  # 500 per call at most


def test_an_unreachable_cloudwatch_marks_its_signals_stale_with_the_error(
    aws_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_MONITORING", "http://127.0.0.1:9")  # nothing listens
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    readings = CloudWatchReader().read([cw_request("a"), cw_request("b")], 5.0)
    for reading in readings.values():
        assert reading.stale and reading.value is None
        assert reading.error is not None and reading.error.startswith("EndpointConnectionError")


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("statistic", "Mean", "unknown statistic"),
        ("period", 45, "multiple of 60"),
    ],
)
def test_cloudwatch_settings_are_checked_when_loaded(field: str, value: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CloudWatchSpec(namespace="CWAgent", metric_name="m", **{field: value})


def test_a_read_returns_by_its_budget_with_what_answered_and_starts_with_the_rest_next(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No AWS here: `_attributes` is replaced, so the timing is the test's own."""
    from types import SimpleNamespace

    urls = [f"https://sqs.us-east-1.amazonaws.com/1/q{i}" for i in range(10)]
    slow = set(urls[5:])
    calls: list[str] = []

    def attributes(self: SqsReader, region: str | None, url: str) -> dict[str, str]:
        calls.append(url)
        if url in slow:
            time.sleep(2.0)
        return {"ApproximateNumberOfMessages": "3"}

    monkeypatch.setattr(SqsReader, "_attributes", attributes)
    source = SqsReader(SimpleNamespace(source_timeout=0.5))
    requests = [sqs_request(f"p{i}", url) for i, url in enumerate(urls)]
    started = time.monotonic()
    got = source.read(requests, 0.0)
    assert time.monotonic() - started < 1.5, "the read waited for the slow queues"
    assert [got[(f"p{i}", "queue")].value for i in range(5)] == [3.0] * 5
    for i in range(5, 10):
        reading = got[(f"p{i}", "queue")]
        assert reading.value is None and reading.error.startswith("Timeout"), reading
    slow.clear()
    calls.clear()
    got = source.read(requests, 1.0)
    assert calls[0] == urls[5], "the queues left unread go first on the next read"
    assert all(r.value == 3.0 for r in got.values())


def test_a_polled_queue_is_read_once_per_interval_and_its_reading_keeps_its_time(
    mocked: None,
) -> None:
    url = queue_with_backlog("polled", waiting=3, in_flight=0, delayed=0)
    source = SqsReader()
    request = sqs_request("p", url, poll_interval=10)
    first = source.read([request], now=0.0)[("p", "queue")]
    assert (first.value, first.observed_at) == (3.0, 0.0)
    client("sqs").send_message(QueueUrl=url, MessageBody="one more")
    between = source.read([request], now=5.0)[("p", "queue")]
    assert (between.value, between.observed_at) == (3.0, 0.0), "read again before its interval"
    after = source.read([request], now=10.0)[("p", "queue")]
    assert (after.value, after.observed_at) == (4.0, 10.0)


def counted_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """No AWS: every queue reads 1 message, and each read's URL is appended to the list."""
    reads: list[str] = []

    def attributes(self: SqsReader, region: str | None, url: str) -> dict[str, str]:
        reads.append(url)
        return {"ApproximateNumberOfMessages": "1"}

    monkeypatch.setattr(SqsReader, "_attributes", attributes)
    return reads


def test_polled_reads_spread_evenly_over_the_ticks_and_never_age_past_the_interval(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No AWS here: `_attributes` is replaced and counts the reads per tick."""
    reads = counted_reads(monkeypatch)
    source = SqsReader()
    requests = [
        sqs_request(f"p{i}", f"https://sqs.us-east-1.amazonaws.com/1/q{i}", poll_interval=10)
        for i in range(100)
    ]
    per_tick = []
    worst_age = 0.0
    for tick in range(60):
        reads.clear()
        # half the pools join one tick late (as when a read's budget leaves half unread)
        got = source.read(requests[::2] if tick == 0 else requests, float(tick))
        per_tick.append(len(reads))
        worst_age = max(worst_age, max(tick - r.observed_at for r in got.values()))
    assert per_tick[0] == 50 and per_tick[1] >= 50, "every queue is read as soon as it is seen"
    assert all(r.value == 1.0 for r in got.values())
    assert max(per_tick[2:]) <= 12 and min(per_tick[11:]) >= 8, per_tick
    assert sum(per_tick[2:]) <= 6 * 100, "one read per queue per interval"
    assert worst_age <= 10.0


def test_polled_reads_stay_even_when_the_first_reads_took_several_slow_ticks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A new controller reading 1,000 queues: its first ticks are slow and each reads a
    third of them (the budget), 5 s apart. Later rounds must not inherit that bunching:
    about 1,000 / 15 reads a second, not two thirds of the queues in a few ticks."""
    reads = counted_reads(monkeypatch)
    source = SqsReader()
    requests = [
        sqs_request(f"p{i:04d}", f"https://sqs.us-east-1.amazonaws.com/1/q{i:04d}",
                    poll_interval=15)
        for i in range(999)
    ]  # fmt: skip
    for tick, part in ((0.0, requests[:333]), (5.0, requests[:666]), (10.0, requests)):
        source.read(part, tick)
    per_tick = []
    for tick in range(11, 71):
        reads.clear()
        source.read(requests, float(tick))
        per_tick.append(len(reads))
    assert max(per_tick) <= 999 / 15 * 1.2, per_tick
    assert sum(per_tick) <= 999 * 4 + 67, "one read per queue per interval"


def test_polled_queues_with_and_without_a_region_are_read_together(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(SqsReader, "_attributes",
                        lambda self, region, url: {"ApproximateNumberOfMessages": "4"})
    requests = [
        sqs_request("aws", "https://sqs.us-east-1.amazonaws.com/1/q", poll_interval=10),
        sqs_request("local", "http://127.0.0.1:4566/1/q", poll_interval=10),
    ]
    got = SqsReader().read(requests, 0.0)
    assert {key: r.value for key, r in got.items()} == {("aws", "queue"): 4.0,
                                                         ("local", "queue"): 4.0}


def test_a_failed_polled_read_is_retried_next_tick_not_after_its_interval(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    failing = {"yes": True}

    def attributes(self: SqsReader, region: str | None, url: str) -> dict[str, str]:
        if failing["yes"]:
            raise RuntimeError("connection reset")
        return {"ApproximateNumberOfMessages": "2"}

    monkeypatch.setattr(SqsReader, "_attributes", attributes)
    source = SqsReader()
    request = sqs_request("p", "https://sqs.us-east-1.amazonaws.com/1/q", poll_interval=30)
    assert source.read([request], 0.0)[("p", "queue")].stale
    failing["yes"] = False
    again = source.read([request], 1.0)[("p", "queue")]
    assert (again.value, again.observed_at) == (2.0, 1.0)


def test_max_age_shorter_than_the_poll_interval_is_refused() -> None:
    from autoscaler.config.sources import SignalSpec

    source = {"type": "sqs", "queue_url": "https://sqs.us-east-1.amazonaws.com/1/q",
              "poll_interval": "10s"}  # fmt: skip
    with pytest.raises(ValueError, match="shorter than the source's poll_interval"):
        SignalSpec.model_validate({"source": source, "max_age": "5s"})
    assert SignalSpec.model_validate({"source": source}).max_age is None
