"""The `cloudwatch` signal source: any CloudWatch metric, through GetMetricData.

All signals of one region are asked in one GetMetricData call (up to 500 queries each),
each with its own statistic and period; the newest datapoint within the signal's
`lookback` window is its value. Typical use: the CloudWatch agent's GPU utilization
(namespace CWAgent, nvidia_smi_utilization_gpu) averaged over a pool's instances.

A metric with no datapoint in its window is *missing* (a stale reading, so the pool
holds), never 0: an idle queue and a dead exporter must not look alike. The source must
never raise for one failed query: failures come back as readings with `error` set to the
AWS error code and message.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from autoscaler.clients.aws import AwsClients, error_code, error_message
from autoscaler.types import Reading

from .base import SignalKey, SignalRequest

MAX_QUERIES_PER_CALL = 500
"""GetMetricData's limit on MetricDataQueries per call."""


def metric_query(query_id: str, source: Any) -> dict[str, Any]:
    """One MetricDataQuery for a CloudWatchReader model."""
    stat: dict[str, Any] = {
        "Metric": {
            "Namespace": source.namespace,
            "MetricName": source.metric_name,
            "Dimensions": [{"Name": k, "Value": v} for k, v in sorted(source.dimensions.items())],
        },
        "Period": int(source.period),
        "Stat": source.statistic,
    }
    if source.unit:
        stat["Unit"] = source.unit
    return {"Id": query_id, "MetricStat": stat, "ReturnData": True}


def newest(
    timestamps: Sequence[datetime], values: Sequence[float], not_before: float
) -> float | None:
    """The value of the newest datapoint at or after `not_before` (seconds), else None."""
    best: tuple[float, float] | None = None
    for stamp, value in zip(timestamps, values, strict=False):
        at = stamp.timestamp()
        if at >= not_before and (best is None or at > best[0]):
            best = (at, float(value))
    return None if best is None else best[1]


def _chunks(items: Sequence[SignalRequest], size: int) -> Iterator[Sequence[SignalRequest]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class CloudWatchReader:
    """Reads CloudWatch metrics; one boto3 client per region."""

    def __init__(self, settings: Any = None) -> None:
        timeout = float(getattr(settings, "source_timeout", 5.0))
        self._clients = AwsClients(timeout_seconds=timeout)

    def read(self, requests: Sequence[SignalRequest], now: float) -> dict[SignalKey, Reading]:
        by_region: dict[str | None, list[SignalRequest]] = defaultdict(list)
        for request in requests:
            by_region[request.source.region].append(request)
        out: dict[SignalKey, Reading] = {}
        for region, in_region in by_region.items():
            for chunk in _chunks(in_region, MAX_QUERIES_PER_CALL):
                out.update(self._read_chunk(region, chunk, now))
        return out

    def _read_chunk(
        self, region: str | None, chunk: Sequence[SignalRequest], now: float
    ) -> dict[SignalKey, Reading]:
        ids = {f"q{n}": request for n, request in enumerate(chunk)}
        try:
            results = self._metric_data(region, ids, now)
        except Exception as exc:  # the whole call failed: every signal in it is stale
            why = f"{error_code(exc)}: {error_message(exc)}"
            return {r.key: Reading(None, now, error=why) for r in chunk}
        out: dict[SignalKey, Reading] = {}
        for query_id, request in ids.items():
            result = results.get(query_id, {})
            if result.get("StatusCode") in ("InternalError", "Forbidden"):
                messages = "; ".join(m.get("Value", "") for m in result.get("Messages", ()))
                out[request.key] = Reading(None, now, error=f"{result['StatusCode']}: {messages}")
                continue
            not_before = now - request.source.lookback_seconds
            value = newest(result.get("Timestamps", ()), result.get("Values", ()), not_before)
            out[request.key] = Reading(value, now)
        return out

    def _metric_data(
        self, region: str | None, ids: Mapping[str, SignalRequest], now: float
    ) -> dict[str, dict[str, Any]]:
        """GetMetricData over every page, results merged by query id."""
        client = self._clients.get("cloudwatch", region, max_attempts=2, mode="standard")
        lookback = max(r.source.lookback_seconds for r in ids.values())
        kwargs: dict[str, Any] = {
            "MetricDataQueries": [metric_query(i, r.source) for i, r in ids.items()],
            "StartTime": datetime.fromtimestamp(now - lookback, UTC),
            "EndTime": datetime.fromtimestamp(now, UTC),
            "ScanBy": "TimestampDescending",
        }
        merged: dict[str, dict[str, Any]] = {}
        while True:
            answer = client.get_metric_data(**kwargs)
            for result in answer.get("MetricDataResults", ()):
                into = merged.setdefault(
                    result["Id"], {"Timestamps": [], "Values": [], "Messages": []}
                )
                into["Timestamps"].extend(result.get("Timestamps", ()))
                into["Values"].extend(result.get("Values", ()))
                into["Messages"].extend(result.get("Messages", ()))
                into["StatusCode"] = result.get("StatusCode")
            token = answer.get("NextToken")
            if not token:
                return merged
            kwargs["NextToken"] = token
