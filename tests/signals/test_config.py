"""The source models: which configurations load, which are refused and why, and the shapes."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from autoscaler.config import parse_config
from tests.signals.helpers import MODELS

P = "http://prom:9090"
R = "redis://redis:6379/0"

REFUSED: list[tuple[str, dict[str, Any], str]] = [
    ("prometheus", {"url": P}, "exactly one of `query`"),
    ("prometheus", {"url": P, "query": "up", "shape": "vllm-queue"}, "exactly one of `query`"),
    ("prometheus", {"url": P, "query": "up", "selector": 'a="b"'}, "`selector` goes with"),
    ("prometheus", {"url": P, "shape": "vllm-queue", "selector": '{a="b"}'}, "without braces"),
    ("prometheus", {"url": P, "query": "up", "username": "u"}, "needs both"),
    ("prometheus", {"url": P, "query": "up", "password_env": "X"}, "needs both"),
    (
        "prometheus",
        {"url": P, "query": "up", "bearer_token_file": "/t", "username": "u", "password_env": "X"},
        "either `bearer_token_file`",
    ),
    ("prometheus", {"url": "prom:9090", "query": "up"}, "must start with http"),
    ("prometheus", {"url": P, "query": "up", "aggregate": "median"}, "aggregate"),
    ("prometheus", {"url": P, "shape": "dcgm-util"}, "shape"),
    ("redis", {"url": R, "key": "s", "kind": "stream-lag"}, "needs `group`"),
    ("redis", {"url": R, "key": "s", "kind": "stream-pending"}, "needs `group`"),
    ("redis", {"url": R, "key": "q", "group": "g"}, "`group` goes with"),
    ("redis", {"url": "http://redis", "key": "q"}, "must start with redis://"),
    ("redis", {"url": R, "key": "q", "ca_file": "/ca.pem"}, "rediss://"),
    ("redis", {"url": R, "key": "q", "kind": "hash"}, "kind"),
    ("kube-pending-pods", {"kind": "job-backlog", "gpu_only": True}, "apply to kind pending-pods"),
    ("kube-pending-pods", {"kind": "deployments"}, "kind"),
    ("nvml", {"devices": []}, "distinct GPU indices"),
    ("nvml", {"devices": [0, 0]}, "distinct GPU indices"),
    ("nvml", {"devices": [-1]}, "greater than or equal to 0"),
    ("nvml", {"metric": "temperature"}, "metric"),
]


@pytest.mark.parametrize(("type_", "fields", "says"), REFUSED)
def test_a_bad_source_configuration_is_refused_with_a_reason(
    type_: str, fields: dict[str, Any], says: str
) -> None:
    with pytest.raises(ValidationError) as info:
        MODELS[type_](**fields)
    assert says in str(info.value)


ACCEPTED: list[tuple[str, dict[str, Any]]] = [
    ("prometheus", {"url": P, "query": "sum(up)"}),
    ("prometheus", {"url": "https://prom", "shape": "vllm-queue", "selector": 'model_name="m"'}),
    ("prometheus", {"url": P, "query": "up", "username": "u", "password_env": "PROM_PASSWORD"}),
    ("prometheus", {"url": P, "query": "up", "bearer_token_file": "/var/run/token"}),
    ("redis", {"url": "rediss://r:6380/1", "key": "q", "ca_file": "/ca.pem"}),
    ("redis", {"url": R, "key": "s", "kind": "stream-lag", "group": "workers"}),
    ("redis", {"url": "unix:///run/redis.sock", "key": "arq:queue", "kind": "zset"}),
    ("kube-pending-pods", {"namespace": "llm", "selector": "app=vllm", "gpu_only": True}),
    ("kube-pending-pods", {"kind": "job-backlog", "selector": "queue=batch"}),
    ("nvml", {"metric": "memory", "devices": [0, 2]}),
]


@pytest.mark.parametrize(("type_", "fields"), ACCEPTED)
def test_a_good_source_configuration_loads(type_: str, fields: dict[str, Any]) -> None:
    MODELS[type_](**fields)


SHAPES: list[tuple[dict[str, Any], str]] = [
    ({"shape": "dcgm-gpu-utilization"}, "avg(DCGM_FI_DEV_GPU_UTIL) / 100"),
    (
        {"shape": "dcgm-gpu-utilization", "selector": 'Hostname=~"gpu-.*"', "aggregate": "max"},
        'max(DCGM_FI_DEV_GPU_UTIL{Hostname=~"gpu-.*"}) / 100',
    ),
    (
        {"shape": "dcgm-gpu-utilization", "selector": 'pod="p"', "aggregate": "single"},
        '(DCGM_FI_DEV_GPU_UTIL{pod="p"}) / 100',
    ),
    (
        {"shape": "vllm-queue", "selector": 'model_name="llama"'},
        'sum(vllm:num_requests_waiting{model_name="llama"})',
    ),
    ({"shape": "vllm-running"}, "sum(vllm:num_requests_running)"),
    (
        {"shape": "vllm-kv-cache", "selector": 'namespace="llm"'},
        'avg(vllm:kv_cache_usage_perc{namespace="llm"} or '
        'vllm:gpu_cache_usage_perc{namespace="llm"})',
    ),
    (
        {"shape": "triton-queue", "selector": 'model="resnet"'},
        'sum(nv_inference_pending_request_count{model="resnet"})',
    ),
    ({"query": "sum(rate(x[1m]))"}, "sum(rate(x[1m]))"),
]


@pytest.mark.parametrize(("fields", "promql"), SHAPES)
def test_a_shape_becomes_the_documented_promql(fields: dict[str, Any], promql: str) -> None:
    source = MODELS["prometheus"](url=P, **fields)
    assert source.effective_query == promql


def test_shapes_aggregate_in_promql_and_raw_queries_in_the_reader() -> None:
    shaped = MODELS["prometheus"](url=P, shape="vllm-queue", aggregate="max")
    raw = MODELS["prometheus"](url=P, query="vllm:num_requests_waiting", aggregate="max")
    plain = MODELS["prometheus"](url=P, query="up")
    assert (shaped.result_aggregate, raw.result_aggregate, plain.result_aggregate) == (
        "single",
        "max",
        "single",
    )


def test_a_pool_can_read_every_source_type_at_once() -> None:
    parse_config(  # loads: no ConfigError
        """installation: {id: test}
pools:
  - name: chat
    target: {kind: simulated}
    max: 10
    signals:
      queue: {source: {type: prometheus, url: "http://prom:9090", shape: vllm-queue}}
      gpu: {source: {type: nvml, metric: utilization}}
      backlog: {source: {type: redis, url: "redis://r:6379/0", key: jobs, kind: stream-lag,
                         group: workers}}
      pending: {source: {type: kube-pending-pods, namespace: llm, gpu_only: true}}
    policy: {type: queue-depth, signal: queue, target_per_replica: 5}
"""
    )
