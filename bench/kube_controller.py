"""Benchmark: the controller against a real kube-apiserver (kwok cluster) and moto server.

1. Reaction: one `deployment` pool driven by an SQS backlog, 1 s tick. Each burst adds
   messages so the pool needs one more replica; measured from the SendMessageBatch answer
   to the Deployment's `spec.replicas` changing (seen by a watch). KEDA polls every 30 s
   by default, the HPA every 15 s.
2. Scale: N pools (default 1,000) in one controller: N Deployments, N SQS queues (a tenth
   of them with a backlog, so the first tick scales 100 Deployments up). Tick duration
   p50/p99 (and the first tick, which acts, apart), CPU seconds per tick and the process's
   peak RSS, and the share of fresh readings (a read still running from the last tick, or
   past its source timeout, leaves its pools holding on stale signals: fast ticks that
   decided nothing new are not a win); once with static signals (the Kubernetes side
   alone), once with SQS read every tick, and with each queue read every 15 s and every
   30 s (`poll_interval`: the HPA's sync period and KEDA's default polling interval), the
   reads spread over the ticks. Target: a tick under 1 s, under 300 MB, every pool deciding
   on fresh signals; the start-up ticks (until every pool has decided on fresh signals
   once) are reported apart, as `first tick` and `after N`.

The process sets the garbage collector up as `autoscaler run` does (autoscaler/gc_tuning.py).
The cluster comes from the project's harness (`make cluster-build` first); moto runs as
its own process, so CPU and memory figures are the controller's alone.

    python bench/kube_controller.py [--pools 1000] [--ticks 20] [--bursts 30]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import boto3  # noqa: E402
from kubernetes import client as k  # noqa: E402
from kubernetes import watch  # noqa: E402

from autoscaler.config import Config  # noqa: E402
from autoscaler.controller import Controller  # noqa: E402
from autoscaler.gc_tuning import freeze_long_lived, tune_gc  # noqa: E402
from autoscaler.providers import build_providers  # noqa: E402
from tests.cluster.harness import free_ports, local_cluster  # noqa: E402

OWNER = "bench"
PREFIX = "elastic-autoscaler.io"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def start_moto() -> tuple[subprocess.Popen[bytes], str]:
    port = free_ports(1)[0]
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    for _ in range(100):
        try:
            opener.open(f"{url}/moto-api/", timeout=1)
            return proc, url
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("moto server did not start")


def deployment(name: str) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "metadata": {"name": name, "labels": {f"{PREFIX}/owner": OWNER}},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "c", "image": "registry.invalid/llm:1"}]},
            },
        },
    }


def pool(name: str, namespace: str, queue_url: str | None, backlog: float = 0,
         poll: float | None = None) -> dict[str, Any]:
    """A deployment pool reading an SQS queue (or, without one, a static backlog)."""
    source: dict[str, Any] = ({"type": "sqs", "queue_url": queue_url} if queue_url
                              else {"type": "static", "value": backlog})
    if queue_url and poll:
        source["poll_interval"] = poll
    return {
        "name": name, "min": 0, "max": 50,
        "target": {"kind": "deployment", "namespace": namespace, "name": name},
        "signals": {"backlog": {"source": source}},
        "policy": {"type": "queue-depth", "signal": "backlog", "target_per_replica": 10},
        "behavior": {"scale_down": {"stabilization_window": 0}, "cooldown": 0},
    }  # fmt: skip


def config(pools: list[dict[str, Any]]) -> Config:
    return Config.model_validate({
        "installation": {"id": OWNER, "tag_prefix": PREFIX},
        "controller": {"interval": 1.0},
        "pools": pools,
    })  # fmt: skip


def reaction(apps: Any, sqs: Any, namespace: str, bursts: int) -> dict[str, Any]:
    name = "reaction"
    apps.create_namespaced_deployment(namespace, deployment(name))
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    cfg = config([pool(name, namespace, url)])
    controller = Controller(cfg, build_providers(cfg, None))
    stop = threading.Event()

    def loop() -> None:  # the process's loop: a tick, then sleep out the interval
        while not stop.is_set():
            started = time.monotonic()
            controller.tick()
            stop.wait(max(0.0, 1.0 - (time.monotonic() - started)))

    changes: list[tuple[float, int]] = []
    w = watch.Watch()

    def watcher() -> None:
        try:
            for event in w.stream(apps.list_namespaced_deployment, namespace,
                                  field_selector=f"metadata.name={name}", timeout_seconds=3600):
                changes.append((time.monotonic(), event["object"].spec.replicas or 0))
        except Exception:  # the stream ends when the bench stops it
            if not stop.is_set():
                raise

    threads = [threading.Thread(target=loop, daemon=True),
               threading.Thread(target=watcher, daemon=True)]
    for t in threads:
        t.start()
    latencies: list[float] = []
    try:
        time.sleep(2.0)
        for burst in range(1, bursts + 1):
            seen = len(changes)
            # 10 messages per replica: burst k needs k replicas.
            sqs.send_message_batch(QueueUrl=url, Entries=[
                {"Id": str(j), "MessageBody": f"{burst}-{j}"} for j in range(10)])
            sent = time.monotonic()
            deadline = sent + 10
            while time.monotonic() < deadline:
                hit = [t for t, r in changes[seen:] if r >= burst]
                if hit:
                    latencies.append(hit[0] - sent)
                    break
                time.sleep(0.005)
            else:
                raise SystemExit(f"burst {burst}: no scale request within 10 s")
            time.sleep(0.37)  # desynchronise the next burst from the tick
    finally:
        stop.set()
        w.stop()
        controller.close()
    return {
        "bursts": len(latencies), "tick_s": 1.0,
        "p50_s": round(percentile(latencies, 50), 3),
        "p99_s": round(percentile(latencies, 99), 3),
        "max_s": round(max(latencies), 3),
    }  # fmt: skip


def scale(
    apps: Any, core: Any, sqs: Any | None, n: int, ticks: int, poll: float | None = None
) -> dict[str, Any]:
    """`sqs` None: every pool reads a static backlog (the kube side alone). `poll`: each
    queue is read every `poll` seconds (the SQS source's poll_interval), not every tick."""
    signals = "static" if sqs is None else "sqs" if not poll else f"sqs (poll_interval {poll:g} s)"
    suffix = f"-poll{poll:g}".replace(".", "-") if poll else ""
    namespace = f"scale-{'sqs' if sqs else 'static'}{suffix}"
    core.create_namespace({"metadata": {"name": namespace}})
    pools = []
    for i in range(n):
        name = f"p{i:04d}"
        apps.create_namespaced_deployment(namespace, deployment(name))
        backlog = 10 if i % 10 == 0 else 0  # a tenth of the pools want one replica
        url = None
        if sqs is not None:
            url = sqs.create_queue(QueueName=f"{name}{suffix}")["QueueUrl"]
            if backlog:
                sqs.send_message_batch(QueueUrl=url, Entries=[
                    {"Id": str(j), "MessageBody": "x"} for j in range(backlog)])
        pools.append(pool(name, namespace, url, backlog, poll))
    cfg = config(pools)
    controller = Controller(cfg, build_providers(cfg, None))
    freeze_long_lived()  # as `autoscaler run` does once its pools are built
    durations, cpu, actions, fresh = [], [], 0, []
    try:
        for _ in range(ticks):
            started, cpu0 = time.perf_counter(), time.process_time()
            result = controller.tick()
            durations.append(time.perf_counter() - started)
            cpu.append(time.process_time() - cpu0)
            actions += len(result.actions)
            # Fresh: the pool decided on signals within their max_age (a stale one holds).
            fresh.append(sum(1 for d in result.decisions if not d.stale) / n)
            if len(result.decisions) != n:
                print(f"  tick decided {len(result.decisions)} of {n} pools; skipped: "
                      f"{dict(list(result.skipped.items())[:3])}", file=sys.stderr)
            time.sleep(max(0.0, 1.0 - durations[-1]))
    finally:
        controller.close()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    # Start-up: the ticks until every pool has decided on fresh signals once (a new
    # controller reading 1,000 queues for the first time); steady state is what follows.
    startup = next((i + 1 for i, f in enumerate(fresh) if f == 1.0), ticks)
    later, later_fresh = durations[startup:] or durations, fresh[startup:] or fresh
    return {
        "pools": n, "signals": signals, "ticks": ticks,
        "scale_actions": actions,
        "tick_p50_s": round(percentile(durations, 50), 3),
        "tick_p99_s": round(percentile(durations, 99), 3),
        "first_tick_s": round(durations[0], 3),
        "startup_ticks": startup,
        "later_ticks_p50_s": round(percentile(later, 50), 3),
        "later_ticks_p99_s": round(percentile(later, 99), 3),
        "cpu_s_per_tick_p50": round(percentile(cpu, 50), 3),
        "fresh_readings_mean": round(sum(later_fresh) / len(later_fresh), 3),
        "fresh_readings_min": round(min(later_fresh), 3),
        "peak_rss_mb": round(peak_mb, 1),
        "tick_durations_s": [round(d, 3) for d in durations],
        "target_tick_s": 1.0, "target_rss_mb": 300,
        "meets_target": (percentile(later, 99) < 1.0 and peak_mb < 300
                         and min(later_fresh) == 1 and startup < ticks),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pools", type=int, default=1000)
    parser.add_argument("--ticks", type=int, default=20)
    parser.add_argument("--bursts", type=int, default=30)
    parser.add_argument("--sqs-poll", default="15,30",
                        help="poll_interval of the polled SQS runs, seconds, comma-separated "
                             "('': none)")
    parser.add_argument("--json", default=str(ROOT / "bench" / "results" / "kube_controller.json"))
    args = parser.parse_args()
    tune_gc()  # the collector as `autoscaler run` sets it
    moto, moto_url = start_moto()
    os.environ.update({
        "AWS_ENDPOINT_URL": moto_url, "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1",
    })  # fmt: skip
    try:
        with local_cluster() as cluster:
            os.environ["KUBECONFIG"] = str(cluster.kubeconfig)
            api = cluster.api_client()
            apps, core = k.AppsV1Api(api), k.CoreV1Api(api)
            sqs = boto3.client("sqs", endpoint_url=moto_url, region_name="us-east-1")
            core.create_namespace({"metadata": {"name": "bench"}})
            print(f"cluster up in {cluster.startup_seconds:.1f} s; reaction ({args.bursts} "
                  "bursts)...", flush=True)
            react = reaction(apps, sqs, "bench", args.bursts)
            runs = []
            cases: list[tuple[bool, float | None]] = [(False, None), (True, None)]
            cases += [(True, float(p)) for p in args.sqs_poll.split(",") if p.strip()]
            for with_sqs, poll in cases:
                print(f"scale ({args.pools} pools, {'SQS' if with_sqs else 'static'} signals"
                      f"{f' polled every {poll:g} s' if poll else ''}, {args.ticks} ticks)...",
                      flush=True)
                runs.append(scale(apps, core, sqs if with_sqs else None, args.pools, args.ticks,
                                  poll))
    finally:
        moto.terminate()
        moto.wait(10)
    rows = [
        {"benchmark": f"reaction, 1 s tick ({react['bursts']} bursts)",
         "p50": f"{react['p50_s']} s", "p99": f"{react['p99_s']} s", "first tick": "",
         "later p99": "", "fresh readings": "", "cpu/tick": "",
         "peak RSS": "", "target": "KEDA polls 30 s, HPA 15 s"},
    ] + [
        {"benchmark": f"tick, {big['pools']:,} pools, {big['signals']} signals "
                      f"({big['ticks']} ticks)",
         "p50": f"{big['tick_p50_s']} s", "p99": f"{big['tick_p99_s']} s",
         "first tick": f"{big['first_tick_s']} s",
         "later p99": f"{big['later_ticks_p99_s']} s (after {big['startup_ticks']})",
         "fresh readings":
             f"{big['fresh_readings_mean']:.0%} (min {big['fresh_readings_min']:.0%})",
         "cpu/tick": f"{big['cpu_s_per_tick_p50']} s", "peak RSS": f"{big['peak_rss_mb']} MB",
         "target": "< 1 s, < 300 MB" + ("" if big["meets_target"] else " (**missed**)")}
        for big in runs
    ]  # fmt: skip
    print(f"{'benchmark':<48} {'p50':>9} {'p99':>9} {'first':>8} {'later p99':>10} "
          f"{'fresh':>14} {'cpu/tick':>9} {'peak RSS':>10}  target")
    for r in rows:
        print(f"{r['benchmark']:<48} {r['p50']:>9} {r['p99']:>9} {r['first tick']:>8} "
              f"{r['later p99']:>10} {r['fresh readings']:>14} {r['cpu/tick']:>9} "
              f"{r['peak RSS']:>10}  {r['target']}")
    out = {"title": "Controller against a real API server and moto server",
           "command": "python bench/kube_controller.py", "rows": rows,
           "reaction": react, "scale": runs,
           "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
           "load_average": list(os.getloadavg())}  # fmt: skip
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
