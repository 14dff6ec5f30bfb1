"""Benchmark: read 1,000 signals (Prometheus and Redis mixed) in one tick, against real servers.

Target (issue 7): one tick's observe step under 1 s. Starts a real `prometheus` scraping a
test exporter and a real `redis-server`, both on 127.0.0.1 (`make servers` installs them),
then runs the observer exactly as the controller does (every source type in its own thread,
per-type timeout, one deadline) for `--ticks` ticks after two warm-up ticks. Every reading
is checked against the value published for it, so a fast wrong answer cannot pass.

Prometheus signals are 500 distinct queries, sent `BATCH` to a request with
`CONCURRENCY` requests in flight per server (`--setups BATCHxCONCURRENCY,...`, one row each);
Redis signals are lists, streams, pending counts and lags read in one pipeline.

    python bench/signals.py [--prometheus 500] [--redis 500] [--ticks 50]
                            [--setups 1x8,25x8,...] [--json bench/results/signals.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import redis

from autoscaler.config.sources import PrometheusSource as PromModel
from autoscaler.config.sources import RedisSource as RedisModel
from autoscaler.observe import Observer
from autoscaler.signals.base import SignalRequest
from autoscaler.signals.prometheus import PrometheusReader
from autoscaler.signals.redis import RedisReader
from tests.servers.processes import MetricsExporter, PrometheusServer, RedisServer

REDIS_KINDS = ("list", "stream", "stream-pending", "stream-lag")


def prometheus_requests(exporter: MetricsExporter, url: str, n: int) -> dict[str, Any]:
    """n signals, alternating the vLLM-queue and DCGM shapes, each on its own series."""
    reqs, expected = [], {}
    for i in range(n):
        pool = f"p{i:04d}"
        if i % 2:
            exporter.set("vllm:num_requests_waiting", i, pool=pool)
            model = PromModel(url=url, shape="vllm-queue", selector=f'pool="{pool}"')
            expected[(pool, "prom")] = float(i)
        else:
            exporter.set("DCGM_FI_DEV_GPU_UTIL", i % 100, pool=pool, gpu="0")
            model = PromModel(url=url, shape="dcgm-gpu-utilization", selector=f'pool="{pool}"')
            expected[(pool, "prom")] = (i % 100) / 100
        reqs.append(SignalRequest(pool, "prom", model))
    return {"requests": reqs, "expected": expected}


def redis_requests(url: str, n: int) -> dict[str, Any]:
    """n signals over lists and streams with groups; values follow from the data written."""
    client = redis.Redis.from_url(url)
    pipe = client.pipeline(transaction=False)
    reqs, expected = [], {}
    for i in range(n):
        pool, kind, key = f"r{i:04d}", REDIS_KINDS[i % len(REDIS_KINDS)], f"bench:{i}"
        items = i % 17 + 3
        if kind == "list":
            pipe.rpush(key, *range(items))
            expected[(pool, "redis")] = float(items)
        else:
            for j in range(items):
                pipe.xadd(key, {"n": j})
            pipe.xgroup_create(key, "g", id="0")
            pipe.xreadgroup("g", "c", {key: ">"}, count=2)
            expected[(pool, "redis")] = {
                "stream": float(items),
                "stream-pending": 2.0,
                "stream-lag": float(items - 2),
            }[kind]
        group = "g" if kind in ("stream-pending", "stream-lag") else None
        model = RedisModel(url=url, key=key, kind=kind, group=group)  # type: ignore[arg-type]
        reqs.append(SignalRequest(pool, "redis", model))
    pipe.execute()
    client.close()
    return {"requests": reqs, "expected": expected}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def run_ticks(
    prom: dict[str, Any], red: dict[str, Any], batch: int, concurrency: int, ticks: int
) -> dict[str, Any]:
    sources = {
        "prometheus": Timed(PrometheusReader(concurrency=concurrency, batch_size=batch)),
        "redis": Timed(RedisReader()),
    }
    requests = {"prometheus": prom["requests"], "redis": red["requests"]}
    expected = {**prom["expected"], **red["expected"]}
    observer = Observer()
    timeouts = {"prometheus": 5.0, "redis": 5.0}
    walls: list[float] = []
    wrong = 0
    try:
        for t in range(ticks + 2):
            t0 = time.perf_counter()
            readings = observer.read_signals(sources, requests, float(t), timeouts, 10.0)
            wall = time.perf_counter() - t0
            bad = [k for k, v in expected.items() if readings[k].value != _approx(v)]
            if t >= 2:  # two warm-up ticks open the connections
                walls.append(wall)
                wrong += len(bad)
            elif bad:
                sample = readings[bad[0]]
                raise SystemExit(
                    f"wrong reading for {bad[0]}: {sample} (expected {expected[bad[0]]})"
                )
    finally:
        observer.close()
        for source in sources.values():
            source.close()
    return {
        "prometheus_batch_size": batch,
        "concurrency_per_prometheus_server": concurrency,
        "ticks": ticks,
        "signals": len(expected),
        "p50_s": statistics.median(walls),
        "p99_s": percentile(walls, 0.99),
        "max_s": max(walls),
        "prometheus_p50_s": statistics.median(sources["prometheus"].seconds[2:]),
        "redis_p50_s": statistics.median(sources["redis"].seconds[2:]),
        "wrong_or_stale_readings": wrong,
    }


class Timed:
    """A source whose every read is timed (seconds), to tell the two sources apart."""

    def __init__(self, source: Any) -> None:
        self.source = source
        self.seconds: list[float] = []

    def read(self, requests: Any, now: float) -> Any:
        t0 = time.perf_counter()
        try:
            return self.source.read(requests, now)
        finally:
            self.seconds.append(time.perf_counter() - t0)

    def close(self) -> None:
        self.source.close()


class _approx(float):
    """A float equal to readings within 1e-9 (DCGM fractions come back from PromQL division)."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, float) and abs(other - float(self)) < 1e-9

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    __hash__ = float.__hash__


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prometheus", type=int, default=500, help="Prometheus signals")
    parser.add_argument("--redis", type=int, default=500, help="Redis signals")
    parser.add_argument("--ticks", type=int, default=50)
    parser.add_argument(
        "--setups",
        default="1x8,1x16,10x8,25x4,25x8,50x8",
        help="rows to measure, BATCHxCONCURRENCY: Prometheus queries per request x requests "
        "in flight per server",
    )
    parser.add_argument("--json", default="bench/results/signals.json")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-signals-"))
    exporter = MetricsExporter()
    redis_server = RedisServer(work / "redis").start()
    prometheus = PrometheusServer(work / "prom", [exporter.address]).start()
    try:
        prom = prometheus_requests(exporter, prometheus.url, args.prometheus)
        red = redis_requests(redis_server.url, args.redis)
        prometheus.wait_for('count({pool=~"p.*"})', float(args.prometheus), timeout=60)
        setups = [tuple(int(x) for x in s.split("x")) for s in args.setups.split(",")]
        rows = [run_ticks(prom, red, b, c, args.ticks) for b, c in setups]
    finally:
        prometheus.stop()
        redis_server.stop()
        exporter.stop()
    report(rows, args)


def report(rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    print(
        f"{args.prometheus} Prometheus + {args.redis} Redis signals per tick, real servers on "
        f"127.0.0.1, {os.cpu_count()} CPUs; {args.ticks} ticks after 2 warm-up ticks"
    )
    print(
        f"{'batch':>5} {'in flight':>9} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} "
        f"{'prom p50':>8} {'redis p50':>9} {'wrong':>5}  target < 1000 ms"
    )
    for r in rows:
        ok = "ok" if r["p99_s"] < 1.0 and not r["wrong_or_stale_readings"] else "MISSED"
        print(
            f"{r['prometheus_batch_size']:>5} {r['concurrency_per_prometheus_server']:>9} "
            f"{r['p50_s'] * 1000:>8.1f} {r['p99_s'] * 1000:>8.1f} {r['max_s'] * 1000:>8.1f} "
            f"{r['prometheus_p50_s'] * 1000:>8.1f} {r['redis_p50_s'] * 1000:>9.1f} "
            f"{r['wrong_or_stale_readings']:>5}  {ok}"
        )
    result = {
        "benchmark": "signals",
        "command": " ".join(["python bench/signals.py", *sys.argv[1:]]),
        "target_s": 1.0,
        "prometheus_signals": args.prometheus,
        "redis_signals": args.redis,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "servers": {"prometheus": _version("prometheus"), "redis": _version("redis-server")},
        "rows": rows,
    }
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


def _version(binary: str) -> str:
    import subprocess

    from tests.servers.processes import find_binary

    text = subprocess.run([find_binary(binary), "--version"], capture_output=True, text=True)
    return (text.stdout or text.stderr).splitlines()[0].strip()


if __name__ == "__main__":
    main()
