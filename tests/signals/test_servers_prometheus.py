"""The Prometheus reader against a real Prometheus scraping a test exporter every second.

Each test publishes its own series (labelled with a unique `case`), waits until Prometheus
has scraped them, then reads them through `PrometheusReader`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from autoscaler.signals.prometheus import PrometheusReader
from tests.servers.fixtures import build_server
from tests.servers.processes import MetricsExporter, PrometheusServer
from tests.servers.tls import make_tls_files
from tests.signals.helpers import code_of, req

pytestmark = pytest.mark.servers


@pytest.fixture
def source() -> Iterator[PrometheusReader]:
    s = PrometheusReader()
    yield s
    s.close()


@pytest.fixture
def case() -> str:
    return uuid.uuid4().hex[:10]


def test_dcgm_vllm_and_triton_values_arrive_through_the_ready_made_shapes(
    prometheus: PrometheusServer, exporter: MetricsExporter, source: PrometheusReader, case: str
) -> None:
    for gpu, util in (("0", 90), ("1", 30)):
        exporter.set("DCGM_FI_DEV_GPU_UTIL", util, case=case, gpu=gpu, pod="vllm-0")
    exporter.set("DCGM_FI_DEV_GPU_UTIL", 100, case=case, gpu="0", pod="other")
    exporter.set("vllm:num_requests_waiting", 12, case=case, pod="vllm-0")
    exporter.set("vllm:num_requests_waiting", 5, case=case, pod="vllm-1")
    exporter.set("vllm:gpu_cache_usage_perc", 0.25, case=case, pod="vllm-0")
    exporter.set("nv_inference_pending_request_count", 4, case=case, model="resnet")
    prometheus.wait_for(f'count({{case="{case}"}})', 7)

    sel = f'case="{case}"'
    reqs = [
        req("prometheus", signal="gpu", url=prometheus.url, shape="dcgm-gpu-utilization",
            selector=f'{sel},pod="vllm-0"'),
        req("prometheus", signal="queue", url=prometheus.url, shape="vllm-queue", selector=sel),
        req("prometheus", signal="kv", url=prometheus.url, shape="vllm-kv-cache", selector=sel),
        req("prometheus", signal="triton", url=prometheus.url, shape="triton-queue", selector=sel),
    ]  # fmt: skip
    got = source.read(reqs, now=100.0)
    values = {r.signal: got[r.key].value for r in reqs}
    assert values == {"gpu": pytest.approx(0.6), "queue": 17.0, "kv": 0.25, "triton": 4.0}
    assert all(got[r.key].observed_at == 100.0 for r in reqs)


def test_a_query_that_returns_nothing_does_not_read_as_zero(
    prometheus: PrometheusServer, source: PrometheusReader, case: str
) -> None:
    nothing = req(
        "prometheus", url=prometheus.url, query=f'vllm:num_requests_waiting{{case="{case}"}}'
    )
    reading = source.read([nothing], now=1.0)[nothing.key]
    assert reading.value is None and reading.error is None
    assert reading.stale and reading.why_stale() == "no value (empty result)"


def test_a_series_that_disappears_becomes_missing_not_zero(
    prometheus: PrometheusServer, exporter: MetricsExporter, source: PrometheusReader, case: str
) -> None:
    exporter.set("vllm:num_requests_waiting", 8, case=case)
    query = f'sum(vllm:num_requests_waiting{{case="{case}"}})'
    prometheus.wait_for(query, 8)
    r = req("prometheus", url=prometheus.url, query=query)
    assert source.read([r], now=1.0)[r.key].value == 8.0
    exporter.remove("vllm:num_requests_waiting", case=case)
    prometheus.wait_for(query, None)  # the scrape's staleness marker ends the series
    assert source.read([r], now=2.0)[r.key].value is None


def test_several_series_without_an_aggregate_are_an_error_and_with_one_are_combined(
    prometheus: PrometheusServer, exporter: MetricsExporter, source: PrometheusReader, case: str
) -> None:
    for pod, waiting in (("a", 3), ("b", 9)):
        exporter.set("vllm:num_requests_waiting", waiting, case=case, pod=pod)
    query = f'vllm:num_requests_waiting{{case="{case}"}}'
    prometheus.wait_for(f"count({query})", 2)
    single = req("prometheus", signal="single", url=prometheus.url, query=query)
    biggest = req("prometheus", signal="max", url=prometheus.url, query=query, aggregate="max")
    got = source.read([single, biggest], now=1.0)
    assert code_of(got[single.key].error) == "several_series"
    assert got[biggest.key].value == 9.0


def test_a_nan_from_an_exporter_is_stale_with_non_finite(
    prometheus: PrometheusServer, exporter: MetricsExporter, source: PrometheusReader, case: str
) -> None:
    exporter.set("DCGM_FI_DEV_GPU_UTIL", float("nan"), case=case)
    query = f'DCGM_FI_DEV_GPU_UTIL{{case="{case}"}}'
    prometheus.wait_for(f"count({query})", 1)
    r = req("prometheus", url=prometheus.url, query=query)
    reading = source.read([r], now=1.0)[r.key]
    assert code_of(reading.error) == "non_finite"


def test_a_bad_query_is_stale_with_the_servers_own_message(
    prometheus: PrometheusServer, source: PrometheusReader
) -> None:
    r = req("prometheus", url=prometheus.url, query="sum(rate(x[5m])")
    reading = source.read([r], now=1.0)[r.key]
    assert code_of(reading.error) == "bad_query"
    assert "parse error" in (reading.error or "")


def test_tls_is_verified_against_the_configured_ca(
    tmp_path: Path, exporter: MetricsExporter, source: PrometheusReader
) -> None:
    tls = make_tls_files(tmp_path / "tls")
    web = {"tls_server_config": {"cert_file": str(tls.cert), "key_file": str(tls.key)}}
    server = build_server(lambda: PrometheusServer(tmp_path / "prom", [exporter.address],
                                                  web_config=web))  # fmt: skip
    server.start()
    try:
        query = "vector(3)"
        trusted = req("prometheus", signal="ca", url=server.url, query=query, ca_file=str(tls.ca))
        skipped = req("prometheus", signal="skip", url=server.url, query=query,
                      insecure_skip_verify=True)  # fmt: skip
        default = req("prometheus", signal="default", url=server.url, query=query)
        got = source.read([trusted, skipped, default], now=1.0)
    finally:
        server.stop()
    assert got[trusted.key].value == 3.0
    assert got[skipped.key].value == 3.0
    assert code_of(got[default.key].error) == "tls"


def test_a_batch_with_a_comment_a_scalar_and_a_bad_query_answers_each_on_its_own(
    prometheus: PrometheusServer, exporter: MetricsExporter, case: str
) -> None:
    exporter.set("vllm:num_requests_waiting", 6, case=case)
    query = f'sum(vllm:num_requests_waiting{{case="{case}"}})'
    prometheus.wait_for(query, 6)
    url = prometheus.url
    reqs = [
        req("prometheus", signal="plain", url=url, query=query),
        req("prometheus", signal="comment", url=url, query=f"{query} # the waiting requests"),
        req("prometheus", signal="scalar", url=url, query="scalar(vector(2))"),
        req("prometheus", signal="bad", url=url, query="sum(("),
        req("prometheus", signal="empty", url=url, query=f'sum(nothing{{case="{case}"}})'),
    ]
    source = PrometheusReader(batch_size=10)
    try:
        for now in (1.0, 2.0):  # the second read sends the scalar and the bad query alone
            readings = source.read(reqs, now=now)
            got = {r.signal: readings[r.key] for r in reqs}
            values = {name: reading.value for name, reading in got.items()}
            assert values == {"plain": 6.0, "comment": 6.0, "scalar": 2.0, "bad": None,
                              "empty": None}  # fmt: skip
            assert code_of(got["bad"].error) == "bad_query"
            assert got["empty"].error is None
    finally:
        source.close()
