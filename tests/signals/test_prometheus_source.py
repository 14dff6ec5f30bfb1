"""The Prometheus reader without a server: auth, TLS, batching, isolation, errors.

httpx's MockTransport stands in for the network. Handlers answer one query each; the
Recorder unpacks a batched request into its queries and packs their answers the way
Prometheus does (a scalar or a failing query fails the whole batch). The real-server
behaviour is in test_servers_prometheus.py.
"""

from __future__ import annotations

import base64
import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import parse_qs

import httpx
import pytest

from autoscaler.signals._promql import BATCH_LABEL
from autoscaler.signals.prometheus import PrometheusReader
from tests.signals.helpers import code_of, req

Handler = Callable[[httpx.Request], httpx.Response]


def ok(*values: str) -> httpx.Response:
    result = [{"metric": {"i": str(i)}, "value": [0, v]} for i, v in enumerate(values)]
    return httpx.Response(
        200, json={"status": "success", "data": {"resultType": "vector", "result": result}}
    )


BATCH_PART = re.compile(
    r'^label_replace\(\n(.*)\n, "' + BATCH_LABEL + r'", "(\d+)", "", ""\)$', re.DOTALL
)


def query_of(request: httpx.Request) -> str:
    return parse_qs(request.content.decode())["query"][0]


class Recorder:
    """A transport that records requests (and queries) and answers with `handler`."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[httpx.Request] = []
        self.queries: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        with self._lock:
            self.requests.append(request)
        parts = [BATCH_PART.match(p) for p in query_of(request).split("\nor\n")]
        if len(parts) > 1 and all(parts):
            return self._batch(request, [(m.group(1), m.group(2)) for m in parts if m])
        return self._one(request)

    def _one(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            self.queries.append(query_of(request))
        return self.handler(request)

    def _batch(self, request: httpx.Request, parts: list[tuple[str, str]]) -> httpx.Response:
        merged = []
        for query, index in parts:
            form = parse_qs(request.content.decode())
            form["query"] = [query]
            single = httpx.Request(
                "POST",
                request.url,
                headers=request.headers,
                data={k: v[0] for k, v in form.items()},
            )
            single.read()
            answer = self._one(single)
            doc = json.loads(answer.content) if answer.status_code == 200 else None
            if doc is None or doc.get("status") != "success":
                return answer  # one failing query fails the batch, as in Prometheus
            if doc["data"]["resultType"] != "vector":
                return error(400, "bad_data", "expected type instant vector in label_replace")
            for series in doc["data"]["result"]:
                merged.append({**series, "metric": {**series["metric"], BATCH_LABEL: index}})
        return httpx.Response(
            200, json={"status": "success", "data": {"resultType": "vector", "result": merged}}
        )

    def form(self, i: int = 0) -> dict[str, list[str]]:
        return parse_qs(self.requests[i].content.decode())


def error(status: int, error_type: str, message: str) -> httpx.Response:
    return httpx.Response(
        status, json={"status": "error", "errorType": error_type, "error": message}
    )


def scalar(value: str) -> httpx.Response:
    return httpx.Response(
        200, json={"status": "success", "data": {"resultType": "scalar", "result": [0, value]}}
    )


@pytest.fixture
def source_for() -> Iterator[Callable[..., tuple[PrometheusReader, Recorder]]]:
    made: list[PrometheusReader] = []

    def make(handler: Handler, **options: int) -> tuple[PrometheusReader, Recorder]:
        recorder = Recorder(handler)
        source = PrometheusReader(transport=httpx.MockTransport(recorder), **options)
        made.append(source)
        return source, recorder

    yield make
    for source in made:
        source.close()


def test_a_value_arrives_and_the_query_is_posted_with_a_server_side_timeout(source_for) -> None:
    source, rec = source_for(lambda r: ok("12"))
    r = req("prometheus", url="http://prom:9090/", query="sum(q)", timeout=2.0)
    reading = source.read([r], now=5.0)[r.key]
    assert (reading.value, reading.observed_at, reading.error) == (12.0, 5.0, None)
    assert rec.requests[0].url == "http://prom:9090/api/v1/query"
    form = rec.form()
    assert form["query"] == ["sum(q)"]
    assert 0 < float(form["timeout"][0]) <= 2.0


def test_an_empty_result_is_missing_not_zero_unless_opted_in(source_for) -> None:
    source, _ = source_for(lambda r: ok())
    missing = req("prometheus", signal="a", url="http://p", query="x")
    zero = req("prometheus", signal="b", url="http://p", query="x", empty_as_zero=True)
    got = source.read([missing, zero], now=1.0)
    assert got[missing.key].value is None and got[missing.key].error is None
    assert got[missing.key].stale
    assert got[zero.key].value == 0.0 and not got[zero.key].stale


def test_identical_queries_to_one_server_are_sent_once_and_read_each_their_way(
    source_for,
) -> None:
    source, rec = source_for(lambda r: ok("1", "5"))
    reqs = [
        req("prometheus", signal=agg, url="http://p", query="x", aggregate=agg)
        for agg in ("sum", "max", "single")
    ]
    got = source.read(reqs, now=1.0)
    assert len(rec.requests) == 1
    assert [got[r.key].value for r in reqs[:2]] == [6.0, 5.0]
    assert code_of(got[reqs[2].key].error) == "several_series"


def test_a_bearer_token_is_read_from_its_file_and_reread_when_it_rotates(
    source_for, tmp_path: Path
) -> None:
    token = tmp_path / "token"
    token.write_text("first\n")
    source, rec = source_for(lambda r: ok("1"))
    r = req("prometheus", url="http://p", query="x", bearer_token_file=str(token))
    source.read([r], now=1.0)
    token.write_text("second\n")
    os.utime(token, (time.time() + 10, time.time() + 10))  # a new mtime, whatever the clock
    source.read([r], now=2.0)
    assert [q.headers["Authorization"] for q in rec.requests] == ["Bearer first", "Bearer second"]


def test_a_missing_token_file_fails_that_signal_with_auth_config(source_for) -> None:
    source, rec = source_for(lambda r: ok("1"))
    r = req("prometheus", url="http://p", query="x", bearer_token_file="/nonexistent/token")
    reading = source.read([r], now=1.0)[r.key]
    assert code_of(reading.error) == "auth_config"
    assert "/nonexistent/token" in (reading.error or "")
    assert rec.requests == []


def test_basic_auth_takes_its_password_from_the_named_env_var(
    source_for, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_PROM_PASSWORD", "s3cret")
    source, rec = source_for(lambda r: ok("1"))
    r = req(
        "prometheus", url="http://p", query="x", username="me", password_env="TEST_PROM_PASSWORD"
    )
    assert source.read([r], now=1.0)[r.key].value == 1.0
    expected = "Basic " + base64.b64encode(b"me:s3cret").decode()
    assert rec.requests[0].headers["Authorization"] == expected


def test_an_unset_password_env_var_fails_with_auth_config_naming_it(
    source_for, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TEST_PROM_UNSET", raising=False)
    source, rec = source_for(lambda r: ok("1"))
    r = req("prometheus", url="http://p", query="x", username="me", password_env="TEST_PROM_UNSET")
    reading = source.read([r], now=1.0)[r.key]
    assert code_of(reading.error) == "auth_config"
    assert "TEST_PROM_UNSET" in (reading.error or "")
    assert rec.requests == []


def test_extra_headers_are_sent(source_for) -> None:
    source, rec = source_for(lambda r: ok("1"))
    r = req("prometheus", url="http://p", query="x", headers={"X-Scope-OrgID": "team-a"})
    source.read([r], now=1.0)
    assert rec.requests[0].headers["X-Scope-OrgID"] == "team-a"


def test_an_unreadable_ca_file_fails_with_tls_config(source_for, tmp_path: Path) -> None:
    source, _ = source_for(lambda r: ok("1"))
    r = req("prometheus", url="https://p", query="x", ca_file=str(tmp_path / "missing.pem"))
    reading = source.read([r], now=1.0)[r.key]
    assert code_of(reading.error) == "tls_config"


def raise_(exc: Exception) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    return handler


TRANSPORT_ERRORS = [
    (httpx.ConnectError("Connection refused"), "connect"),
    (httpx.ReadTimeout("timed out"), "timeout"),
    (httpx.ConnectError("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed"), "tls"),
    (httpx.RemoteProtocolError("Server disconnected"), "network"),
]


@pytest.mark.parametrize(("exc", "code"), TRANSPORT_ERRORS, ids=[c for _, c in TRANSPORT_ERRORS])
def test_a_transport_failure_is_a_stale_reading_with_its_code_and_server(
    source_for, exc: Exception, code: str
) -> None:
    source, _ = source_for(raise_(exc))
    r = req("prometheus", pool="chat", signal="queue", url="http://prom-a:9090", query="x")
    reading = source.read([r], now=1.0)[r.key]
    assert reading.value is None
    assert code_of(reading.error) == code
    assert "pool chat signal queue" in (reading.error or "")
    assert "http://prom-a:9090" in (reading.error or "")


def test_a_slow_server_does_not_hold_up_the_queries_to_another(source_for) -> None:
    release = threading.Event()

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "slow":
            release.wait(5.0)
        return ok("3")

    source, _ = source_for(handler)
    slow = [req("prometheus", signal=f"s{i}", url="http://slow", query=f"q{i}", timeout=0.4)
            for i in range(40)]  # fmt: skip
    fast = [req("prometheus", signal=f"f{i}", url="http://fast", query=f"q{i}", timeout=3.0)
            for i in range(40)]  # fmt: skip
    t0 = time.monotonic()
    got = source.read(slow + fast, now=1.0)
    elapsed = time.monotonic() - t0
    release.set()
    assert all(got[r.key].value == 3.0 for r in fast)
    assert {code_of(got[r.key].error) for r in slow} == {"timeout"}
    assert elapsed < 1.5, f"the read took {elapsed:.2f}s; the slow server's timeout is 0.4s"


def test_a_malformed_answer_to_a_lone_query_fails_only_its_own_signal(source_for) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"oops") if query_of(request) == "bad" else ok("2")

    source, _ = source_for(handler, batch_size=1)
    good = req("prometheus", signal="good", url="http://p", query="good")
    bad = req("prometheus", signal="bad", url="http://p", query="bad")
    got = source.read([good, bad], now=1.0)
    assert got[good.key].value == 2.0
    assert code_of(got[bad.key].error) == "bad_response"


def test_a_negative_value_is_stale_with_its_reason(source_for) -> None:
    source, _ = source_for(lambda r: ok("-3"))
    r = req("prometheus", url="http://p", query="x")
    reading = source.read([r], now=1.0)[r.key]
    assert code_of(reading.error) == "negative"


def test_queries_to_one_server_travel_in_batches_and_come_back_apart(source_for) -> None:
    source, rec = source_for(lambda r: ok(query_of(r).removeprefix("q")))
    reqs = [req("prometheus", signal=f"s{i}", url="http://p", query=f"q{i}") for i in range(60)]
    got = source.read(reqs, now=1.0)
    assert [got[r.key].value for r in reqs] == [float(i) for i in range(60)]
    assert len(rec.requests) == 3, "60 queries in batches of 25"


def test_several_series_of_one_batched_query_keep_their_own_labels(source_for) -> None:
    source, _ = source_for(lambda r: ok("1", "2"))
    a = req("prometheus", signal="a", url="http://p", query="a")
    b = req("prometheus", signal="b", url="http://p", query="b")
    got = source.read([a, b], now=1.0)
    assert code_of(got[a.key].error) == "several_series"
    assert BATCH_LABEL not in (got[a.key].error or "")
    assert '{i="0"}' in (got[a.key].error or "")


def test_a_bad_query_in_a_batch_fails_alone_and_is_sent_alone_from_then_on(source_for) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if query_of(request) == "bad":
            return error(400, "bad_data", "parse error: unexpected end of input")
        return ok("5")

    source, rec = source_for(handler)
    reqs = [req("prometheus", signal=q, url="http://p", query=q) for q in ("a", "bad", "b")]
    got = source.read(reqs, now=1.0)
    assert [got[r.key].value for r in reqs] == [5.0, None, 5.0]
    assert code_of(got[reqs[1].key].error) == "bad_query"
    assert len(rec.requests) == 4, "the failed batch, then each query alone"
    source.read(reqs, now=2.0)
    assert len(rec.requests) == 6, "next time: a batch of the good two, and the bad one alone"


def test_a_scalar_query_is_answered_and_sent_alone_from_then_on(source_for) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return scalar("7") if query_of(request) == "scalar(x)" else ok("1")

    source, rec = source_for(handler)
    reqs = [req("prometheus", signal=q, url="http://p", query=q) for q in ("a", "scalar(x)")]
    got = source.read(reqs, now=1.0)
    assert [got[r.key].value for r in reqs] == [1.0, 7.0]
    before = len(rec.requests)
    got = source.read(reqs, now=2.0)
    assert [got[r.key].value for r in reqs] == [1.0, 7.0]
    assert len(rec.requests) - before == 2, "each alone, no failing batch first"


def test_a_failure_every_query_shares_fails_the_batch_without_retrying_each(source_for) -> None:
    source, rec = source_for(lambda r: error(503, "unavailable", "shutting down"))
    reqs = [req("prometheus", signal=f"s{i}", url="http://p", query=f"q{i}") for i in range(5)]
    got = source.read(reqs, now=1.0)
    assert {code_of(got[r.key].error) for r in reqs} == {"prometheus_unavailable"}
    assert len(rec.requests) == 1
