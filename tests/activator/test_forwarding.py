"""Forwarding with ready endpoints: headers, spreading the load, and streaming both ways."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from aiohttp import web

from tests.activator.rig import backends, client, completion, config, pool, run, started, until


@run
async def test_headers_are_forwarded_less_hop_by_hop_with_x_forwarded():
    async with backends(1) as (backend,), started(config(pool("p", [backend.url]))) as act:
        async with client() as http:
            headers = {"X-Custom": "yes", "X-Forwarded-For": "10.0.0.9",
                       "Connection": "keep-alive, X-Drop-Me", "X-Drop-Me": "1",
                       "Proxy-Authorization": "secret", "Host": "api.example:8443"}  # fmt: skip
            async with http.put(act.url + "/echo/a%2Fb?q=1&r=%20", data=b"abc",
                                headers=headers) as r:  # fmt: skip
                assert r.status == 200
                got = await r.json()
                assert r.headers["X-Backend"] == "b0"
                assert r.headers["Set-Cookie"] == "a=b"
        seen = got["headers"]
        assert got["method"] == "PUT" and got["path"] == "/echo/a%2Fb?q=1&r=%20"
        assert got["size"] == 3
        assert seen["X-Custom"] == "yes"
        assert seen["X-Forwarded-For"] == "10.0.0.9, 127.0.0.1"
        assert seen["X-Forwarded-Proto"] == "http"
        assert seen["X-Forwarded-Host"] == "api.example:8443"
        assert seen["Host"] == backend.url.removeprefix("http://")
        for hop in ("X-Drop-Me", "Proxy-Authorization", "Keep-Alive"):
            assert hop not in seen
        stats = act.pools["p"]
        assert stats.counts["served"] == 1 and stats.in_flight == 0


@run
async def test_requests_spread_round_robin_and_to_the_least_busy_endpoint():
    async with (
        backends(2) as (a, b),
        started(config(pool("p", [a.url, b.url]))) as act,
        client() as http,
    ):
        for _ in range(6):
            async with http.post(act.url + "/v1/completions", json=completion()) as r:
                assert r.status == 200
        assert (len(a.seen), len(b.seen)) == (3, 3)
        # a is busy with a held stream: new requests go to b while it is.
        a.gate = asyncio.Event()
        a.first_sent.clear()
        busy = asyncio.create_task(_post_stream(http, act.url, a))
        await asyncio.wait_for(a.first_sent.wait(), 5)
        assert act.pools["p"].in_flight == 1
        for _ in range(3):
            async with http.post(act.url + "/v1/completions", json=completion()) as r:
                assert (await r.json())["backend"] == "b1"
        a.gate.set()
        assert (await busy).endswith("data: [DONE]\n\n")


async def _post_stream(http: aiohttp.ClientSession, base: str, backend: object) -> str:
    async with http.post(base + "/v1/completions", json=completion(stream=True)) as r:
        return await r.text()


@pytest.mark.parametrize("path", ["/v1/completions", "/v1/chat/completions"])
def test_a_stream_reaches_the_client_chunk_by_chunk(path):
    @run
    async def scenario():
        async with backends(1, tokens=20) as (backend,):
            backend.gate = asyncio.Event()
            async with started(config(pool("p", [backend.url]))) as act, client() as http:
                body = {"model": "m", "stream": True, "max_tokens": 20,
                        "messages": [{"role": "user", "content": "hi"}]}  # fmt: skip
                async with http.post(act.url + path, json=body) as r:
                    assert r.status == 200
                    assert r.headers["Content-Type"] == "text/event-stream"
                    first = await asyncio.wait_for(r.content.readuntil(b"\n\n"), 5)
                    # The first event is here while the backend holds back the rest.
                    assert first.startswith(b"data: {")
                    assert not backend.last_sent.is_set()
                    assert act.pools["p"].in_flight == 1
                    backend.gate.set()
                    rest = await r.content.read()
                events = (first + rest).decode().split("\n\n")
                assert events[-2] == "data: [DONE]" and len(events) == 22
                await until(lambda: act.pools["p"].in_flight == 0)
                assert act.pools["p"].counts["served"] == 1
                assert act.pools["p"].latencies.mean() is not None

    scenario()


@run
async def test_an_answer_the_backend_breaks_off_is_cut_for_the_client():
    async def broken(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b"data: {}\n\n")
        await asyncio.sleep(0.05)
        assert request.transport is not None
        request.transport.abort()
        return response

    app = web.Application()
    app.router.add_post("/v1/completions", broken)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        async with started(config(pool("p", [url]))) as act, client() as http:
            with pytest.raises(aiohttp.ClientPayloadError):
                async with http.post(act.url + "/v1/completions", json=completion()) as r:
                    assert r.status == 200
                    await r.read()
            await until(lambda: act.pools["p"].counts["backend_error"] == 1)
            assert act.pools["p"].counts["served"] == 0
    finally:
        await runner.cleanup()
