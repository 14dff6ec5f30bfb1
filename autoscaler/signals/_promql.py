"""Parsing a Prometheus instant-query answer and combining its series into one number.

Pure functions (bytes in, numbers or QueryFailed out) so every odd answer is tested in a
table without a server. Nothing here may read an empty result or a NaN as zero: an empty
vector combines to None (missing), a non-finite sample is an error.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

_MAX_LISTED = 3
"""Series named in a `several_series` error before "and N more"."""


class QueryFailed(Exception):
    """A query that gave no usable answer; `code` is what telemetry counts."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Series:
    labels: dict[str, str]
    value: float

    def describe(self) -> str:
        name = self.labels.get("__name__", "")
        inner = ",".join(f'{k}="{v}"' for k, v in sorted(self.labels.items()) if k != "__name__")
        return f"{name}{{{inner}}}"


@dataclass(frozen=True, slots=True)
class PromResult:
    """An instant query's answer: its series (a scalar is one series without labels)."""

    query: str
    series: tuple[Series, ...]
    scalar: bool = False


BATCH_LABEL = "autoscaler_query"
"""The label that tells the queries of a batch apart in its answer."""

BATCH_SAFE_FAILURES = frozenset({"bad_query", "bad_result_type", "prometheus_execution"})
"""Failures of a batched query that one of its queries may have caused alone: the batch is
then retried query by query. Other failures (connection, timeout, auth, HTTP 5xx) would
fail each query the same way, so they apply to the whole batch."""


def batch_query(queries: list[str]) -> str:
    """One PromQL expression that answers every query, each series labelled with its index.

    Each query sits on lines of its own so a `#` comment in it cannot swallow the rest.
    """
    parts = [
        f'label_replace(\n{q}\n, "{BATCH_LABEL}", "{i}", "", "")' for i, q in enumerate(queries)
    ]
    return "\nor\n".join(parts)


def split_batch(result: PromResult, queries: list[str]) -> dict[str, PromResult]:
    """Each query's own result from a batch's answer (the batch label removed)."""
    series: list[list[Series]] = [[] for _ in queries]
    for s in result.series:
        index = s.labels.get(BATCH_LABEL, "")
        if not index.isdigit() or int(index) >= len(queries):
            raise QueryFailed("bad_response", f"a batched answer has a stray series {s.describe()}")
        labels = {k: v for k, v in s.labels.items() if k != BATCH_LABEL}
        series[int(index)].append(Series(labels, s.value))
    return {q: PromResult(q, tuple(found)) for q, found in zip(queries, series, strict=True)}


def parse_response(query: str, status: int, body: bytes) -> PromResult:
    """The result of `/api/v1/query`, or QueryFailed with a code and a readable message."""
    try:
        doc = json.loads(body)
    except ValueError:
        raise _http_failure(query, status, body) from None
    if not isinstance(doc, dict):
        raise QueryFailed("bad_response", f"query {query!r}: the answer is not a JSON object")
    if doc.get("status") != "success":
        raise _api_failure(query, status, doc)
    if status >= 300:
        raise _http_failure(query, status, body)
    data = doc.get("data")
    if not isinstance(data, dict):
        raise QueryFailed("bad_response", f"query {query!r}: the answer has no `data` object")
    return PromResult(query, _series(query, data), scalar=data.get("resultType") == "scalar")


def _series(query: str, data: dict[str, Any]) -> tuple[Series, ...]:
    kind = data.get("resultType")
    result = data.get("result")
    if kind == "vector" and isinstance(result, list):
        return tuple(_vector_item(query, item) for item in result)
    if kind == "scalar":
        return (Series({}, _sample(query, result)),)  # PromResult.scalar is set by the caller
    if kind in ("matrix", "string"):
        raise QueryFailed(
            "bad_result_type",
            f"query {query!r} returned a {kind}; an instant query must return one number "
            "(drop the [range] selector or wrap it, e.g. rate(x[5m]) or avg_over_time(x[5m]))",
        )
    raise QueryFailed("bad_response", f"query {query!r}: unexpected resultType {kind!r}")


def _vector_item(query: str, item: Any) -> Series:
    if not isinstance(item, dict):
        raise QueryFailed("bad_response", f"query {query!r}: malformed series {item!r}")
    return Series(dict(item.get("metric") or {}), _sample(query, item.get("value")))


def _sample(query: str, pair: Any) -> float:
    """The value of a [timestamp, "value"] pair; Prometheus writes NaN/+Inf as strings."""
    try:
        return float(pair[1])
    except (TypeError, ValueError, IndexError):
        raise QueryFailed("bad_response", f"query {query!r}: malformed sample {pair!r}") from None


def combine(result: PromResult, aggregate: str) -> float | None:
    """One number from the result's series; None when there are none (missing, not zero).

    `aggregate` is single (several series are an error), sum, avg, max or min.
    """
    series = result.series
    for s in series:
        if not math.isfinite(s.value):
            raise QueryFailed(
                "non_finite",
                f"query {result.query!r}: series {s.describe()} is {s.value}; "
                "a NaN or infinite value is not usable (a division by zero in the query?)",
            )
    if not series:
        return None
    values = [s.value for s in series]
    if aggregate == "single":
        if len(series) > 1:
            raise _several(result)
        return values[0]
    if aggregate == "sum":
        return math.fsum(values)
    if aggregate == "avg":
        return math.fsum(values) / len(values)
    if aggregate == "max":
        return max(values)
    if aggregate == "min":
        return min(values)
    raise ValueError(f"unknown aggregate {aggregate!r}")


def _several(result: PromResult) -> QueryFailed:
    listed = ", ".join(s.describe() for s in result.series[:_MAX_LISTED])
    more = len(result.series) - _MAX_LISTED
    if more > 0:
        listed += f" and {more} more"
    return QueryFailed(
        "several_series",
        f"query {result.query!r} returned {len(result.series)} series ({listed}); set "
        "`aggregate: sum|avg|max|min`, aggregate in PromQL (sum(...)), or narrow the selector",
    )


def _api_failure(query: str, status: int, doc: dict[str, Any]) -> QueryFailed:
    error_type = str(doc.get("errorType") or "unknown")
    message = f"query {query!r}: HTTP {status}, {error_type}: {doc.get('error', '')}"
    if error_type == "bad_data":
        return QueryFailed("bad_query", message)
    return QueryFailed(f"prometheus_{_slug(error_type)}", message)


def _http_failure(query: str, status: int, body: bytes) -> QueryFailed:
    snippet = body[:200].decode("utf-8", "replace").strip()
    if status in (401, 403):
        hint = "; check `bearer_token_file`, or `username` and `password_env`"
        return QueryFailed(f"http_{status}", f"HTTP {status} (not authorized){hint}: {snippet}")
    if status >= 300:
        return QueryFailed(f"http_{status}", f"query {query!r}: HTTP {status}: {snippet}")
    return QueryFailed("bad_response", f"query {query!r}: the answer is not JSON: {snippet!r}")


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text.lower())
