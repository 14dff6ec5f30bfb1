"""Benchmark: the activator's cost in front of a backend, holding 10,000 requests, and waking
a pool from zero (issue 15). Everything runs on 127.0.0.1, measured side by side in one run.

1. **Forwarding** — requests straight to a fake OpenAI backend (its own process) and the
   same requests through `autoscaler activator` (its own process, the CLI as users run it),
   plain and streaming, alternated `--rounds` times:
   - throughput at `--concurrency` requests in flight (target: through >= 0.5x direct);
   - latency of one request at a time, p50/p99 (target: <= 2 ms added at p50).
2. **Holding** — `--held` requests arrive at a pool with no ready endpoint (the activator in
   a child process, so its peak memory is its own; target <= 300 MB), then an endpoint
   turns ready and every request must be answered, forwarded in the order of arrival
   (checked batch by batch: requests are sent in batches, each held before the next).
3. **Waking** — the controller's process loop (`autoscaler run`'s `Process`, 15 s interval)
   reads an in-process activator through the `activator` signal source; a request arrives at
   the pool at zero; the time until the provider is asked to scale is measured, `--wakes`
   times (target: p99 <= 1 s; without the wake channel it would be up to one interval).

    python bench/activator.py [--rounds 3] [--seconds 4] [--concurrency 32] [--held 10000]
                              [--wakes 30] [--json bench/results/activator.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import aiohttp
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.servers.fake_openai import FakeOpenAI, FakeOpenAIProcess  # noqa: E402
from tests.servers.processes import free_port  # noqa: E402

MODEL = "bench-model"
PLAIN = {"model": MODEL, "prompt": "hello", "max_tokens": 8}
STREAM = {**PLAIN, "stream": True}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def static_config(backend_url: str) -> dict[str, Any]:
    return {
        "installation": {"id": "bench"},
        "pools": [{
            "name": "bench",
            "target": {"kind": "simulated"},
            "max": 4,
            "signals": {"held": {"source": {"type": "static", "value": 0}}},
            "policy": {"type": "queue-depth", "signal": "held", "target_per_replica": 1},
            "activator": {"backend": {"urls": [backend_url]}, "models": [MODEL]},
        }],
    }  # fmt: skip


# -- 1. forwarding ----------------------------------------------------------------------------
async def one(session: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> int:
    async with session.post(url + "/v1/completions", json=body) as answer:
        size = 0
        async for chunk in answer.content.iter_any():
            size += len(chunk)
        if answer.status != 200:
            raise RuntimeError(f"{url}: HTTP {answer.status}")
        return size


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def throughput(
    url: str, body: dict[str, Any], seconds: float, concurrency: int
) -> tuple[float, int]:
    """Requests answered per second with `concurrency` in flight for `seconds`, and how
    many were answered in all (the warm-up one included)."""
    done = 0
    stop_at = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        await one(session, url, body)  # warm the connections

        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < stop_at:
                await one(session, url, body)
                done += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return done / (time.perf_counter() - started), done + 1


async def latencies(url: str, body: dict[str, Any], count: int) -> list[float]:
    """Seconds per request, one at a time, over a kept-alive connection."""
    out = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as session:
        for _ in range(20):
            await one(session, url, body)
        for _ in range(count):
            started = time.perf_counter()
            await one(session, url, body)
            out.append(time.perf_counter() - started)
    return out


def start_activator_cli(config: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port, admin = free_port(), free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "autoscaler", "activator", str(config),
             "--listen", f"127.0.0.1:{port}", "--admin", f"127.0.0.1:{admin}"],
            cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    deadline = time.monotonic() + 20
    import urllib.request

    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{admin}/readyz", timeout=1) as r:
                if r.status == 200:
                    return proc, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"the activator did not become ready:\n{log.read_text()[-2000:]}")


def forwarding(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Direct and through the activator, alternated round by round so drift on a shared
    machine hits both alike."""
    backend = FakeOpenAIProcess(work, tokens=8).start()
    config = work / "static.yaml"
    config.write_text(yaml.safe_dump(static_config(backend.url)))
    procs: dict[str, subprocess.Popen[bytes]] = {}
    targets = {"direct": backend.url}
    try:
        procs["through"], targets["through"] = start_activator_cli(config, work / "act.log")
        rows: dict[str, dict[str, dict[str, list[float]]]] = {}
        for kind, body in (("plain", PLAIN), ("streaming", STREAM)):
            got: dict[str, dict[str, list[float]]] = {
                name: {"rps": [], "lat": [], "cpu_ms": []} for name in targets
            }
            for _ in range(args.rounds):
                for name, url in targets.items():
                    # CPU per request of the process answering: the backend (direct) or
                    # the activator (through), to show where the time goes.
                    pid = backend.proc.pid if name == "direct" else procs[name].pid
                    before = cpu_seconds(pid)
                    rps, answered = asyncio.run(
                        throughput(url, body, args.seconds, args.concurrency)
                    )
                    got[name]["cpu_ms"].append(1000 * (cpu_seconds(pid) - before) / answered)
                    got[name]["rps"].append(rps)
                    got[name]["lat"].extend(asyncio.run(latencies(url, body, args.latency_n)))
            rows[kind] = got
    finally:
        for proc in procs.values():
            proc.terminate()
            proc.wait(timeout=40)
        backend.stop()
    out = {}
    for kind, got in rows.items():
        direct = got["direct"]
        d_rps = statistics.median(direct["rps"])
        d50, d99 = pct(direct["lat"], 0.5), pct(direct["lat"], 0.99)
        through = got["through"]
        t_rps = statistics.median(through["rps"])
        t50, t99 = pct(through["lat"], 0.5), pct(through["lat"], 0.99)
        out[kind] = {
            "direct_rps": round(d_rps, 1),
            "through_rps": round(t_rps, 1),
            "throughput_ratio": round(t_rps / d_rps, 3),
            "direct_p50_ms": round(d50 * 1000, 3),
            "through_p50_ms": round(t50 * 1000, 3),
            "added_p50_ms": round((t50 - d50) * 1000, 3),
            "direct_p99_ms": round(d99 * 1000, 3),
            "through_p99_ms": round(t99 * 1000, 3),
            "added_p99_ms": round((t99 - d99) * 1000, 3),
            "backend_cpu_ms_per_request": round(statistics.median(direct["cpu_ms"]), 3),
            "activator_cpu_ms_per_request": round(statistics.median(through["cpu_ms"]), 3),
        }
    return out


# -- 2. holding ------------------------------------------------------------------------------
CHILD = """
import asyncio, sys, yaml
sys.path.insert(0, {root!r})
from autoscaler.config import parse_config
from autoscaler.activator.server import Activator

async def main():
    config = parse_config(open({config!r}).read())
    activator = Activator(config, watch=False)
    await activator.start()
    print(activator.url, activator.admin_url, flush=True)
    loop = asyncio.get_running_loop()
    line = await loop.run_in_executor(None, sys.stdin.readline)
    activator.set_endpoints("bench", [line.strip()])
    await loop.run_in_executor(None, sys.stdin.readline)
    await activator.stop()

asyncio.run(main())
"""


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def holding(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    backend = await FakeOpenAI(tokens=1, chunk_ms=0).start()
    config = static_config("http://127.0.0.1:1")
    config["pools"][0]["activator"] = {
        "backend": {"service": "bench", "namespace": "bench"},
        "models": [MODEL],
        "max_queue": args.held,
        "hold_timeout": "10m",
        # A freshly woken replica is given what it can take (vLLM's max_num_seqs), the rest
        # follow in arrival order as it answers.
        "concurrency_per_endpoint": args.per_endpoint,
    }
    path = work / "held.yaml"
    path.write_text(yaml.safe_dump(config))
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD.format(root=str(ROOT), config=str(path))],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=ROOT,
    )  # fmt: skip
    assert child.stdout is not None and child.stdin is not None
    url, admin = child.stdout.readline().decode().split()
    batch = 100
    answered: list[int] = []
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=None)
    try:
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

            async def held(i: int) -> None:
                headers = {"X-Test-Tag": str(i)}
                async with session.post(url + "/v1/completions", json=PLAIN, headers=headers) as r:
                    await r.read()
                    if r.status == 200:
                        answered.append(i)

            async def waiting() -> int:
                async with session.get(admin + "/activator/v1/stats") as r:
                    return int((await r.json())["pools"]["bench"]["waiting"])

            tasks = []
            started = time.perf_counter()
            for first in range(0, args.held, batch):
                count = min(batch, args.held - first)
                tasks += [asyncio.create_task(held(i)) for i in range(first, first + count)]
                while await waiting() < first + count:  # this batch is held: the next may go
                    await asyncio.sleep(0.01)
            hold_seconds = time.perf_counter() - started
            rss_held = peak_rss_mb(child.pid)
            released = time.perf_counter()
            child.stdin.write(f"{backend.url}\n".encode())
            child.stdin.flush()
            await asyncio.gather(*tasks)
            drain_seconds = time.perf_counter() - released
    finally:
        rss_peak = peak_rss_mb(child.pid)
        child.stdin.write(b"stop\n")
        child.stdin.flush()
        child.wait(timeout=60)
        await backend.stop()
    order = [int(tag) for tag in backend.order if tag is not None]
    batches = [i // batch for i in order]
    return {
        "held": args.held,
        "answered": len(answered),
        "seconds_to_hold_all": round(hold_seconds, 2),
        "seconds_to_serve_all": round(drain_seconds, 2),
        "peak_rss_mb_while_held": round(rss_held, 1),
        "peak_rss_mb": round(rss_peak, 1),
        "forwarded_in_batch_order": batches == sorted(batches),
        "forwarded_in_exact_order": order == sorted(order),
        # How far any request reached the backend from its place in the arrival order:
        # forwarding is FIFO, connections opened at once may land a little out of order.
        "max_displacement": max((abs(at - i) for at, i in enumerate(order)), default=0),
        "concurrency_per_endpoint": args.per_endpoint,
    }


# -- 3. waking --------------------------------------------------------------------------------
def waking(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from autoscaler.activator.server import Activator
    from autoscaler.clock import SystemClock
    from autoscaler.config import parse_config
    from autoscaler.config.file_settings import load_settings
    from autoscaler.process import Process, ProcessSettings
    from autoscaler.providers import SimulatedProvider

    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()
    front = static_config("http://127.0.0.1:1")
    front["pools"][0]["activator"] = {"backend": {"service": "bench", "namespace": "bench"}}
    activator = Activator(parse_config(yaml.safe_dump(front)), watch=False)
    asyncio.run_coroutine_threadsafe(activator.start(), loop).result(10)
    config = {
        "installation": {"id": "bench"},
        "controller": {"interval": "15s"},
        "pools": [{
            "name": "bench",
            "target": {"kind": "simulated"},
            "max": 4,
            "signals": {"held": {"source": {"type": "activator", "url": activator.admin_url}}},
            "policy": {"type": "queue-depth", "signal": "held", "target_per_replica": 1},
            "behavior": {"scale_to_zero_after": 0,
                         "scale_down": {"stabilization_window": 0}},
        }],
    }  # fmt: skip
    path = work / "wake.yaml"
    path.write_text(yaml.safe_dump(config))
    asked: list[float] = []
    scaled = threading.Event()

    class Recording(SimulatedProvider):
        def scale(self, pool: Any, desired: int, request_id: str) -> None:
            if desired > 0:
                asked.append(time.perf_counter())
                scaled.set()
            super().scale(pool, desired, request_id)

    provider = Recording(SystemClock())
    process = Process(
        ProcessSettings(file=load_settings(str(path), False)),
        providers=lambda config, clock: {"simulated": provider},
    )
    thread = threading.Thread(target=process.run, daemon=True)
    thread.start()
    while process.ticks < 1:
        time.sleep(0.01)
    time.sleep(0.5)  # the wake long-poll is open
    seconds = []

    async def request() -> None:
        async with aiohttp.ClientSession() as session:
            try:
                async with session.post(activator.url + "/v1/completions", json=PLAIN) as r:
                    await r.read()
            except asyncio.CancelledError:
                raise

    try:
        for _ in range(args.wakes):
            scaled.clear()
            sent = time.perf_counter()
            future = asyncio.run_coroutine_threadsafe(request(), loop)
            if not scaled.wait(20):
                raise RuntimeError("no scale request within 20 s of the first request")
            seconds.append(asked[-1] - sent)
            future.cancel()  # the client goes away: nothing held any more
            deadline = time.monotonic() + 10
            while activator.pools["bench"].waiting and time.monotonic() < deadline:
                time.sleep(0.01)
            pool = process.controller.config.pools[0] if process.controller else None
            if pool is not None:  # back to zero by hand, for the next cold start
                provider.scale(pool, 0, f"reset-{len(seconds)}")
            time.sleep(0.3)
    finally:
        process.stop.set()
        thread.join(timeout=30)
        asyncio.run_coroutine_threadsafe(activator.stop(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
    return {
        "interval_s": 15,
        "wakes": len(seconds),
        "p50_s": round(pct(seconds, 0.5), 3),
        "p99_s": round(pct(seconds, 0.99), 3),
        "max_s": round(max(seconds), 3),
        "process_wakes": process.wakes,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--latency-n", type=int, default=300)
    parser.add_argument("--held", type=int, default=10_000)
    parser.add_argument("--wakes", type=int, default=30)
    parser.add_argument(
        "--per-endpoint", type=int, default=64, help="concurrency_per_endpoint of the held pool"
    )
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "activator.json")
    args = parser.parse_args(argv)
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # 10,000 held sockets
    with tempfile.TemporaryDirectory(prefix="bench-activator-") as tmp:
        work = Path(tmp)
        print("forwarding ...", file=sys.stderr)
        fwd = forwarding(args, work)
        print("holding ...", file=sys.stderr)
        held = asyncio.run(holding(args, work))
        print("waking ...", file=sys.stderr)
        wake = waking(args, work)
    print(f"\n{'':10} {'direct rps':>11} {'through rps':>12} {'ratio':>6} "
          f"{'p50 +ms':>8} {'p99 +ms':>8}")  # fmt: skip
    for kind, row in fwd.items():
        print(f"{kind:10} {row['direct_rps']:>11.1f} {row['through_rps']:>12.1f} "
              f"{row['throughput_ratio']:>6.2f} {row['added_p50_ms']:>8.3f} "
              f"{row['added_p99_ms']:>8.3f}")  # fmt: skip
    print(f"\nheld {held['held']}: answered {held['answered']}, peak RSS "
          f"{held['peak_rss_mb']:.0f} MB, served all in {held['seconds_to_serve_all']:.1f}s, "
          f"in batch order: {held['forwarded_in_batch_order']}")  # fmt: skip
    print(f"wake from zero (interval 15 s): p50 {wake['p50_s'] * 1000:.0f} ms, "
          f"p99 {wake['p99_s'] * 1000:.0f} ms, max {wake['max_s'] * 1000:.0f} ms "
          f"over {wake['wakes']}")  # fmt: skip
    result = {
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "forwarding": fwd,
        "holding": held,
        "waking": wake,
        "targets": {
            "throughput_ratio_min": 0.5,
            "added_p50_ms_max": 2.0,
            "held_rss_mb_max": 300,
            "wake_p99_s_max": 1.0,
        },
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
