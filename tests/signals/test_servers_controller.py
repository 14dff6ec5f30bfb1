"""Whole ticks against real servers: the controller reads a real Prometheus and Redis.

Two pools on simulated capacity: `chat` scales on a vLLM queue read from Prometheus,
`batch` on a Redis list. Scale-down has no stabilization window, so any wrong zero would
show at once as a scale-down; a stale signal must hold the pool instead. The sources are
the real ones, built by the controller from the registry.
"""

from __future__ import annotations

import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
import yaml

from autoscaler.clock import FakeClock
from autoscaler.config import parse_config
from autoscaler.controller import Controller, TickResult
from autoscaler.providers import SimulatedProvider
from autoscaler.types import Decision
from tests.servers.processes import MetricsExporter, PrometheusServer, RedisServer, SlowPrometheus
from tests.signals.helpers import code_of

pytestmark = pytest.mark.servers
ROOT = Path(__file__).resolve().parents[2]


def config_text(prometheus_url: str, redis_url: str, case: str, prom_timeout: str = "1s") -> str:
    return textwrap.dedent(
        f"""
        installation: {{id: test}}
        controller: {{interval: 15s, observe_deadline: 2s, source_timeout: 1s}}
        pools:
          - name: chat
            target: {{kind: simulated}}
            max: 20
            signals:
              queue:
                source: {{type: prometheus, url: "{prometheus_url}", shape: vllm-queue,
                          selector: 'case="{case}"', timeout: {prom_timeout}}}
            policy: {{type: queue-depth, target_per_replica: 10}}
            behavior: {{scale_down: {{stabilization_window: 0}}, scale_to_zero_after: 0}}
          - name: batch
            target: {{kind: simulated}}
            max: 20
            signals:
              queue: {{source: {{type: redis, url: "{redis_url}", key: "{case}:jobs"}}}}
            policy: {{type: queue-depth, target_per_replica: 10}}
            behavior: {{scale_down: {{stabilization_window: 0}}, scale_to_zero_after: 0}}
        """
    )


class Rig:
    """A controller over simulated capacity, its fake clock, and both pools at 5 replicas."""

    def __init__(self, text: str) -> None:
        self.clock = FakeClock(1000.0)
        self.provider = SimulatedProvider(self.clock)
        self.config = parse_config(text)
        self.controller = Controller(self.config, {"simulated": self.provider}, clock=self.clock)
        for pool in self.config.pools:
            self.provider.preset(pool, 5)

    def tick(self) -> tuple[TickResult, dict[str, Decision]]:
        self.clock.advance(15)
        result = self.controller.tick()
        return result, {d.pool: d for d in result.decisions}

    def replicas(self, pool: str) -> int:
        return self.provider.describe(self.config.pool(pool)).desired

    def close(self) -> None:
        self.controller.close()
        for source in self.controller.sources.values():
            close: Callable[[], None] | None = getattr(source, "close", None)
            if close is not None:
                close()


@pytest.fixture
def make_rig() -> Iterator[Callable[[str], Rig]]:
    rigs: list[Rig] = []

    def make(text: str) -> Rig:
        rigs.append(Rig(text))
        return rigs[-1]

    yield make
    for rig in rigs:
        rig.close()


def queue(exporter: MetricsExporter, case: str, value: float) -> None:
    exporter.set("vllm:num_requests_waiting", value, case=case)


def fill(url: str, key: str, items: int) -> None:
    client = redis.Redis.from_url(url)
    client.delete(key)
    if items:
        client.rpush(key, *range(items))
    client.close()


def test_a_stopped_prometheus_holds_its_pool_and_the_pool_recovers_when_it_returns(
    own_prometheus: PrometheusServer,
    redis_server: RedisServer,
    exporter: MetricsExporter,
    make_rig: Callable[[str], Rig],
) -> None:
    case = uuid.uuid4().hex[:10]
    query = f'sum(vllm:num_requests_waiting{{case="{case}"}})'
    queue(exporter, case, 50)
    fill(redis_server.url, f"{case}:jobs", 50)
    own_prometheus.wait_for(query, 50)
    rig = make_rig(config_text(own_prometheus.url, redis_server.url, case))

    _, d = rig.tick()
    assert (d["chat"].desired, d["chat"].stale) == (5, False)

    own_prometheus.stop()
    queue(exporter, case, 0)  # were it read as 0 (or the gap as 0), chat would drop to 0
    fill(redis_server.url, f"{case}:jobs", 0)
    result, d = rig.tick()
    assert d["chat"].stale and d["chat"].desired == 5, d["chat"].reason
    assert "hold" in d["chat"].reason and "connect" in d["chat"].reason
    assert code_of(result.readings[("chat", "queue")].error) == "connect"
    assert rig.replicas("chat") == 5
    assert (d["batch"].stale, rig.replicas("batch")) == (False, 0), "Redis pools go on"

    queue(exporter, case, 20)
    own_prometheus.start()
    own_prometheus.wait_for(query, 20)
    _, d = rig.tick()
    assert (d["chat"].stale, d["chat"].desired, rig.replicas("chat")) == (False, 2, 2)


def test_a_stopped_redis_holds_its_pool_and_the_pool_recovers_when_it_returns(
    prometheus: PrometheusServer,
    own_redis: RedisServer,
    exporter: MetricsExporter,
    make_rig: Callable[[str], Rig],
) -> None:
    case = uuid.uuid4().hex[:10]
    queue(exporter, case, 50)
    fill(own_redis.url, f"{case}:jobs", 50)
    prometheus.wait_for(f'sum(vllm:num_requests_waiting{{case="{case}"}})', 50)
    rig = make_rig(config_text(prometheus.url, own_redis.url, case))

    _, d = rig.tick()
    assert (d["batch"].desired, d["batch"].stale) == (5, False)

    own_redis.stop()  # no persistence: the queue is gone with it, and must not read as 0
    result, d = rig.tick()
    assert d["batch"].stale and rig.replicas("batch") == 5, d["batch"].reason
    assert code_of(result.readings[("batch", "queue")].error) == "connect"
    assert (d["chat"].stale, d["chat"].desired) == (False, 5), "Prometheus pools go on"

    own_redis.start()
    fill(own_redis.url, f"{case}:jobs", 30)
    _, d = rig.tick()
    assert (d["batch"].stale, d["batch"].desired, rig.replicas("batch")) == (False, 3, 3)


def test_a_query_that_returns_nothing_holds_the_pool_instead_of_scaling_it_to_zero(
    prometheus: PrometheusServer,
    redis_server: RedisServer,
    make_rig: Callable[[str], Rig],
) -> None:
    case = uuid.uuid4().hex[:10]  # no series carries this label: the query returns nothing
    fill(redis_server.url, f"{case}:jobs", 10)
    rig = make_rig(config_text(prometheus.url, redis_server.url, case))
    result, d = rig.tick()
    assert result.readings[("chat", "queue")].value is None
    assert d["chat"].stale and rig.replicas("chat") == 5, d["chat"].reason
    assert "empty result" in d["chat"].reason


def test_a_slow_source_does_not_delay_other_pools_past_the_deadline(
    slow_prometheus: SlowPrometheus,
    redis_server: RedisServer,
    make_rig: Callable[[str], Rig],
) -> None:
    case = uuid.uuid4().hex[:10]
    fill(redis_server.url, f"{case}:jobs", 30)
    rig = make_rig(config_text(slow_prometheus.url, redis_server.url, case, prom_timeout="0.5s"))
    for _ in range(2):  # the second tick meets the first tick's query still hanging
        t0 = time.monotonic()
        result, d = rig.tick()
        elapsed = time.monotonic() - t0
        assert elapsed < 1.2, f"a tick took {elapsed:.2f}s with a 0.5s Prometheus timeout"
        assert (d["batch"].stale, d["batch"].desired) == (False, 3)
        assert d["chat"].stale and rig.replicas("chat") == 5
        assert code_of(result.readings[("chat", "queue")].error) == "timeout"
    assert slow_prometheus.calls == 2


def test_the_batch_example_queries_read_idle_as_zero_and_a_missing_exporter_as_a_hold(
    own_prometheus: PrometheusServer,
    exporter: MetricsExporter,
    make_rig: Callable[[str], Rig],
) -> None:
    # The `packing` pool of examples/gpu-batch.yaml with its two PromQL queries as shipped:
    # idle workers must read as 0 busy (the pool may shrink), and no series at all (the
    # dispatcher's exporter gone) as missing (the pool holds; never "nothing runs").
    example = yaml.safe_load((ROOT / "examples" / "gpu-batch.yaml").read_text())
    queries = {name: spec["source"]["query"]
               for name, spec in example["pools"][0]["signals"].items()}
    assert set(queries) == {"busy_replicas", "pending_gpus"}
    signals = "".join(
        f"\n              {name}: {{source: {{type: prometheus, url: \"{own_prometheus.url}\", "
        f"query: '{query}'}}}}" for name, query in queries.items())
    text = textwrap.dedent(f"""
        installation: {{id: test}}
        controller: {{interval: 15s, observe_deadline: 2s, source_timeout: 1s}}
        pools:
          - name: training-jobs
            target: {{kind: simulated}}
            max: 20
            signals:{signals}
            policy: {{type: packing, units_per_replica: 8}}
            behavior: {{scale_down: {{stabilization_window: 0}}, scale_to_zero_after: 0}}
        """)
    workers = {"i-0a": 1, "i-0b": 2, "i-0c": 0}  # jobs running on each worker
    try:
        for worker, running in workers.items():
            exporter.set("batch_jobs_running", running, queue="gpu-jobs", worker=worker)
        exporter.set("batch_jobs_pending_gpus", 12, queue="gpu-jobs")
        own_prometheus.wait_for(queries["busy_replicas"], 2)
        own_prometheus.wait_for(queries["pending_gpus"], 12)
        rig = make_rig(text)
        _, d = rig.tick()  # 2 busy + ceil(12 / 8) new
        assert (d["training-jobs"].desired, d["training-jobs"].stale) == (4, False)

        for worker in workers:
            exporter.set("batch_jobs_running", 0, queue="gpu-jobs", worker=worker)
        exporter.set("batch_jobs_pending_gpus", 0, queue="gpu-jobs")
        own_prometheus.wait_for(queries["busy_replicas"], 0)
        own_prometheus.wait_for(queries["pending_gpus"], 0)
        _, d = rig.tick()
        assert (d["training-jobs"].desired, rig.replicas("training-jobs")) == (0, 0)

        rig.provider.preset(rig.config.pool("training-jobs"), 3)
        for worker in workers:
            exporter.remove("batch_jobs_running", queue="gpu-jobs", worker=worker)
        exporter.remove("batch_jobs_pending_gpus", queue="gpu-jobs")
        own_prometheus.wait_for(queries["busy_replicas"], None)
        _, d = rig.tick()
        assert d["training-jobs"].stale and rig.replicas("training-jobs") == 3
        assert "empty result" in d["training-jobs"].reason
    finally:
        for worker in workers:
            exporter.remove("batch_jobs_running", queue="gpu-jobs", worker=worker)
        exporter.remove("batch_jobs_pending_gpus", queue="gpu-jobs")
