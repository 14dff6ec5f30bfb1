"""Parsing Prometheus answers and combining series: every odd answer, in tables."""

from __future__ import annotations

import json
from typing import Any

import pytest

from autoscaler.signals._promql import (
    BATCH_LABEL,
    PromResult,
    QueryFailed,
    Series,
    batch_query,
    combine,
    parse_response,
    split_batch,
)


def vector(*values: str, labels: list[dict[str, str]] | None = None) -> bytes:
    labels = labels or [{"pod": f"p{i}"} for i in range(len(values))]
    result = [
        {"metric": m, "value": [1700000000.0, v]} for m, v in zip(labels, values, strict=True)
    ]
    return json.dumps(
        {"status": "success", "data": {"resultType": "vector", "result": result}}
    ).encode()


def answer(result_type: str, result: Any) -> bytes:
    return json.dumps(
        {"status": "success", "data": {"resultType": result_type, "result": result}}
    ).encode()


def error(error_type: str, message: str) -> bytes:
    return json.dumps({"status": "error", "errorType": error_type, "error": message}).encode()


PARSED: list[tuple[str, int, bytes, list[float]]] = [
    ("one series", 200, vector("3"), [3.0]),
    ("two series", 200, vector("1.5", "2"), [1.5, 2.0]),
    ("empty vector", 200, vector(), []),
    ("scalar", 200, answer("scalar", [1700000000.0, "7"]), [7.0]),
    ("exponent", 200, vector("1e3"), [1000.0]),
]


@pytest.mark.parametrize(("case", "status", "body", "values"), PARSED, ids=[p[0] for p in PARSED])
def test_an_answer_parses_into_its_series(
    case: str, status: int, body: bytes, values: list[float]
) -> None:
    result = parse_response("q", status, body)
    assert [s.value for s in result.series] == values


FAILED: list[tuple[str, int, bytes, str, str]] = [
    ("bad PromQL", 400, error("bad_data", "parse error"), "bad_query", "parse error"),
    ("execution", 422, error("execution", "too many samples"), "prometheus_execution", "samples"),
    ("server timeout", 503, error("timeout", "query timed out"), "prometheus_timeout", "timed"),
    ("unauthorized", 401, b"Unauthorized", "http_401", "bearer_token_file"),
    ("forbidden", 403, b"denied", "http_403", "not authorized"),
    ("proxy error", 502, b"<html>Bad Gateway</html>", "http_502", "Bad Gateway"),
    ("not JSON", 200, b"hello", "bad_response", "not JSON"),
    ("JSON list", 200, b"[]", "bad_response", "not a JSON object"),
    ("no data", 200, b'{"status": "success"}', "bad_response", "no `data`"),
    ("matrix", 200, answer("matrix", []), "bad_result_type", "drop the [range]"),
    ("string", 200, answer("string", [0, "x"]), "bad_result_type", "string"),
    ("unknown type", 200, answer("histogram", []), "bad_response", "resultType"),
    ("bad sample", 200, answer("vector", [{"metric": {}, "value": [1]}]), "bad_response", "sample"),
    ("bad number", 200, vector("many"), "bad_response", "malformed sample"),
    ("bad series", 200, answer("vector", ["x"]), "bad_response", "malformed series"),
]


@pytest.mark.parametrize(
    ("case", "status", "body", "code", "says"), FAILED, ids=[f[0] for f in FAILED]
)
def test_a_bad_answer_fails_with_a_code_and_a_reason(
    case: str, status: int, body: bytes, code: str, says: str
) -> None:
    with pytest.raises(QueryFailed) as info:
        parse_response("sum(x)", status, body)
    assert info.value.code == code
    assert says in info.value.message


def result(*values: float) -> PromResult:
    return PromResult("q", tuple(Series({"pod": f"p{i}"}, v) for i, v in enumerate(values)))


COMBINED: list[tuple[tuple[float, ...], str, float | None]] = [
    ((), "single", None),
    ((), "sum", None),
    ((), "avg", None),
    ((4.0,), "single", 4.0),
    ((1.0, 2.0, 6.0), "sum", 9.0),
    ((1.0, 2.0, 6.0), "avg", 3.0),
    ((1.0, 2.0, 6.0), "max", 6.0),
    ((1.0, 2.0, 6.0), "min", 1.0),
    ((0.0,), "single", 0.0),
]


@pytest.mark.parametrize(("values", "aggregate", "expected"), COMBINED)
def test_series_combine_as_configured_and_none_stays_missing(
    values: tuple[float, ...], aggregate: str, expected: float | None
) -> None:
    assert combine(result(*values), aggregate) == expected


def test_several_series_without_an_aggregate_are_an_error_naming_them() -> None:
    with pytest.raises(QueryFailed) as info:
        combine(result(1, 2, 3, 4, 5), "single")
    assert info.value.code == "several_series"
    assert 'pod="p0"' in info.value.message
    assert "and 2 more" in info.value.message
    assert "aggregate: sum" in info.value.message


@pytest.mark.parametrize("bad", ["NaN", "+Inf", "-Inf"])
def test_a_non_finite_sample_is_an_error_whatever_the_aggregate(bad: str) -> None:
    parsed = parse_response("q", 200, vector("1", bad))
    for aggregate in ("sum", "avg", "max", "min"):
        with pytest.raises(QueryFailed) as info:
            combine(parsed, aggregate)
        assert info.value.code == "non_finite"


def test_a_batch_labels_each_query_and_splits_back_into_each_querys_series() -> None:
    queries = ["sum(a) # a comment", "b"]
    text = batch_query(queries)
    assert text.count("label_replace(") == 2
    assert "sum(a) # a comment\n," in text, "a comment ends at its own line"
    answer = PromResult(
        text,
        (
            Series({BATCH_LABEL: "1", "pod": "x"}, 2.0),
            Series({BATCH_LABEL: "1", "pod": "y"}, 3.0),
        ),
    )
    split = split_batch(answer, queries)
    assert split["sum(a) # a comment"].series == ()
    assert [s.labels for s in split["b"].series] == [{"pod": "x"}, {"pod": "y"}]


def test_a_series_without_the_batch_label_is_a_bad_response() -> None:
    answer = PromResult("q", (Series({"pod": "x"}, 1.0),))
    with pytest.raises(QueryFailed) as info:
        split_batch(answer, ["a", "b"])
    assert info.value.code == "bad_response"
