"""The admin port: stats, the wake long-poll the controller follows, /metrics and probes."""

from __future__ import annotations

import asyncio
import time

from tests.activator.rig import (
    backends,
    client,
    completion,
    config,
    get_json,
    pool,
    run,
    started,
    until,
)  # fmt: skip


@run
async def test_stats_count_what_each_pool_did():
    async with backends(1) as (backend,):
        cfg = config(pool("warm", [backend.url]), pool("cold", hold_timeout=0.2))
        async with started(cfg) as act, client() as http:
            for _ in range(3):
                async with http.post(act.url + "/v1/completions", json=completion()) as r:
                    assert r.status == 200
            stats = await get_json(http, act.admin_url + "/activator/v1/stats")
        warm = stats["pools"]["warm"]
        assert set(warm) >= {"waiting", "in_flight", "arrival_rate", "latency",
                             "ready_endpoints", "served", "rejected", "timed_out",
                             "client_gone"}  # fmt: skip
        assert warm["served"] == 3 and warm["ready_endpoints"] == 1
        assert warm["arrival_rate"] == 3.0  # 3 requests within the first second
        assert isinstance(warm["latency"], float) and 0 < warm["latency"] < 1
        cold = stats["pools"]["cold"]
        assert cold["served"] == 0 and cold["latency"] is None and cold["arrival_rate"] == 0


@run
async def test_wake_answers_when_a_pool_at_zero_starts_holding():
    cfg = config(pool("a"), pool("b"), pool("ready", ["http://127.0.0.1:9"]))
    async with started(cfg) as act, client() as http:
        wake = act.admin_url + "/activator/v1/wake"
        now = await get_json(http, wake + "?after=-1")
        assert now == {"generation": 0, "cold": []}
        began = time.monotonic()
        quiet = await get_json(http, wake + "?after=0&timeout=0.2")
        assert quiet == {"generation": 0, "cold": []}
        assert 0.2 <= time.monotonic() - began < 1

        poll = asyncio.create_task(get_json(http, wake + "?after=0&timeout=10"))
        await asyncio.sleep(0.05)
        assert not poll.done()
        held = [asyncio.create_task(http.post(act.url + "/v1/completions", json=completion()))]
        began = time.monotonic()
        assert await poll == {"generation": 1, "cold": ["a"]}
        assert time.monotonic() - began < 0.5

        # More requests for a pool already holding are no new cold start.
        held.append(asyncio.create_task(http.post(act.url + "/v1/completions", json={})))
        await until(lambda: act.pools["a"].waiting == 2)
        assert (await get_json(http, wake + "?after=1&timeout=0.1"))["generation"] == 1
        # An `after` ahead of ours (we restarted) answers at once.
        began = time.monotonic()
        assert (await get_json(http, wake + "?after=7&timeout=10"))["generation"] == 1
        assert time.monotonic() - began < 0.5

        # Once the pool has an endpoint it is no longer cold.
        act.set_endpoints("a", ["http://127.0.0.1:9"])
        await until(lambda: act.pools["a"].waiting == 0)
        assert (await get_json(http, wake + "?after=-1"))["cold"] == []
        for request in held:
            request.cancel()

        async with http.get(wake + "?after=x") as r:
            assert r.status == 400 and "after" in (await r.json())["error"]["message"]
        async with http.get(wake + "?after=0&timeout=-1") as r:
            assert r.status == 400


@run
async def test_metrics_and_probes():
    async with backends(1) as (backend,):
        cfg = config(pool("zero", max_queue=1, paths=["/zero/"]), pool("p", [backend.url]))
        async with started(cfg) as act, client() as http:
            async with http.post(act.url + "/v1/completions", json=completion()) as r:
                assert r.status == 200
            held = asyncio.create_task(http.post(act.url + "/zero/", json={}))
            await until(lambda: act.pools["zero"].waiting == 1)
            async with http.post(act.url + "/zero/", json={}) as r:
                assert r.status == 503
            async with http.get(act.admin_url + "/metrics") as r:
                assert r.status == 200 and r.headers["Content-Type"].startswith("text/plain")
                text = await r.text()
            async with http.get(act.admin_url + "/healthz") as r:
                assert r.status == 200
            async with http.get(act.admin_url + "/readyz") as r:
                assert r.status == 200
            held.cancel()
    for line in (
        'autoscaler_activator_waiting{pool="zero"} 1.0',
        'autoscaler_activator_waiting{pool="p"} 0.0',
        'autoscaler_activator_in_flight{pool="p"} 0.0',
        'autoscaler_activator_ready_endpoints{pool="p"} 1.0',
        'autoscaler_activator_ready_endpoints{pool="zero"} 0.0',
        'autoscaler_activator_requests_total{outcome="served",pool="p"} 1.0',
        'autoscaler_activator_requests_total{outcome="rejected_full",pool="zero"} 1.0',
        'autoscaler_activator_requests_total{outcome="timed_out",pool="p"} 0.0',
        'autoscaler_activator_arrivals_total{pool="zero"} 2.0',
        'autoscaler_activator_arrivals_total{pool="p"} 1.0',
        'autoscaler_activator_request_seconds_count{pool="p"} 1.0',
        'autoscaler_activator_hold_seconds_count{pool="p"} 0.0',
    ):
        assert line in text, line
