"""Stopping (SIGTERM): no new connections, held requests answered 503 with Retry-After so
clients retry elsewhere, forwarded ones finish, up to the drain time."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from autoscaler.activator import Activator
from tests.activator.rig import backends, client, completion, config, pool, run


@run
async def test_stop_answers_held_requests_and_lets_forwarded_ones_finish():
    async with backends(1, tokens=5) as (backend,), client() as http:
        backend.gate = asyncio.Event()
        cfg = config(pool("zero", paths=["/zero/"]), pool("p", [backend.url]))
        act = Activator(cfg, watch=False, drain_seconds=10)
        await act.start()
        streaming = await http.post(act.url + "/v1/completions", json=completion(stream=True))
        await asyncio.wait_for(backend.first_sent.wait(), 5)
        held = asyncio.create_task(http.post(act.url + "/zero/v1/completions", json={}))
        while act.pools["zero"].waiting == 0:
            await asyncio.sleep(0.002)
        stopping = asyncio.create_task(act.stop())
        answer = await asyncio.wait_for(held, 5)
        assert answer.status == 503 and answer.headers["Retry-After"] == "1"
        assert "shutting down" in (await answer.json())["error"]["message"]
        with pytest.raises(aiohttp.ClientConnectionError):
            async with aiohttp.ClientSession() as fresh:
                await fresh.get(act.url + "/v1/models")
        assert not stopping.done()  # still draining the stream
        backend.gate.set()
        text = await streaming.text()
        assert text.endswith("data: [DONE]\n\n") and streaming.status == 200
        await asyncio.wait_for(stopping, 5)
        assert act.pools["p"].counts["served"] == 1
        assert act.pools["zero"].counts["shutdown"] == 1


@run
async def test_a_request_still_running_at_the_end_of_the_drain_is_cut():
    async with backends(1) as (backend,), client() as http:
        backend.gate = asyncio.Event()
        act = Activator(config(pool("p", [backend.url])), watch=False, drain_seconds=0.3)
        await act.start()
        streaming = await http.post(act.url + "/v1/completions", json=completion(stream=True))
        await asyncio.wait_for(backend.first_sent.wait(), 5)
        began = time.monotonic()
        await act.stop()
        assert 0.3 <= time.monotonic() - began < 3
        with pytest.raises(aiohttp.ClientPayloadError):
            await streaming.read()
        assert act.pools["p"].counts["shutdown"] == 1
        backend.gate.set()
