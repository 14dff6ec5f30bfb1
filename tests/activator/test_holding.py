"""Holding at zero: requests wait in arrival order and go the moment an endpoint is ready;
past max_queue they get 503 with Retry-After, past hold_timeout 504; a client that leaves
frees its place; an endpoint that refuses the connection is passed over (retried elsewhere,
or held again), and nothing accepted is lost."""

from __future__ import annotations

import asyncio
import time

import aiohttp

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
from tests.servers.fake_openai import FakeOpenAI
from tests.servers.processes import free_port


async def _post(http: aiohttp.ClientSession, url: str, tag: str = "") -> tuple[int, dict, dict]:
    async with http.post(url + "/v1/completions", json=completion(),
                         headers={"X-Test-Tag": tag}) as r:  # fmt: skip
        return r.status, dict(r.headers), await r.json()


@run
async def test_held_requests_go_in_arrival_order_when_an_endpoint_turns_ready():
    async with started(config(pool("p"))) as act, client() as http, backends(1) as (backend,):
        state = act.pools["p"]
        calls = []
        for i in range(6):
            calls.append(asyncio.create_task(_post(http, act.url, str(i))))
            await until(lambda i=i: state.waiting == i + 1, what=f"{i + 1} held")
        stats = await get_json(http, act.admin_url + "/activator/v1/stats")
        assert stats["pools"]["p"]["waiting"] == 6
        assert stats["pools"]["p"]["ready_endpoints"] == 0
        assert stats["generation"] == 1  # one cold start, however many requests
        await asyncio.sleep(0.05)
        assert not any(c.done() for c in calls)
        act.set_endpoints("p", [backend.url])
        results = await asyncio.gather(*calls)
        assert [status for status, _, _ in results] == [200] * 6
        assert backend.order == [str(i) for i in range(6)]
        assert state.waiting == 0 and state.counts["served"] == 6


@run
async def test_a_full_queue_answers_503_with_retry_after():
    cfg = config(pool("p", max_queue=2, retry_after=7))
    async with started(cfg) as act, client() as http:
        held = [asyncio.create_task(_post(http, act.url)) for _ in range(2)]
        await until(lambda: act.pools["p"].waiting == 2)
        status, headers, body = await _post(http, act.url)
        assert status == 503 and headers["Retry-After"] == "7"
        assert "max_queue" in body["error"]["message"]
        stats = await get_json(http, act.admin_url + "/activator/v1/stats")
        assert stats["pools"]["p"]["rejected"] == 1 and stats["pools"]["p"]["waiting"] == 2
        for task in held:
            task.cancel()


@run
async def test_a_request_held_past_hold_timeout_gets_504():
    async with started(config(pool("p", hold_timeout=0.3))) as act, client() as http:
        began = time.monotonic()
        status, _, body = await _post(http, act.url)
        assert status == 504 and 0.3 <= time.monotonic() - began < 2
        assert "hold_timeout" in body["error"]["message"]
        state = act.pools["p"]
        assert state.waiting == 0 and state.counts["timed_out"] == 1


@run
async def test_a_client_that_leaves_frees_its_place():
    async with started(config(pool("p", max_queue=1))) as act, backends(1) as (backend,):
        state = act.pools["p"]
        async with client() as leaving:
            task = asyncio.create_task(_post(leaving, act.url, "gone"))
            await until(lambda: state.waiting == 1)
            task.cancel()
        await until(lambda: state.waiting == 0, what="the slot freed")
        assert state.counts["client_gone"] == 1
        async with client() as http:
            staying = asyncio.create_task(_post(http, act.url, "stays"))
            await until(lambda: state.waiting == 1)  # held, not refused
            act.set_endpoints("p", [backend.url])
            assert (await staying)[0] == 200
        assert backend.order == ["stays"]


@run
async def test_a_refused_connection_is_retried_on_another_endpoint():
    dead = f"http://127.0.0.1:{free_port()}"
    async with backends(1) as (live,), started(config(pool("p", [dead, live.url]))) as act:
        async with client() as http:
            results = await asyncio.gather(*(_post(http, act.url) for _ in range(6)))
        assert [status for status, _, _ in results] == [200] * 6
        state = act.pools["p"]
        assert len(live.seen) == 6
        assert state.counts["served"] == 6 and state.counts["backend_error"] == 0


@run
async def test_a_request_is_held_again_until_its_only_endpoint_answers():
    port = free_port()
    cfg = config(pool("p", [f"http://127.0.0.1:{port}"], hold_timeout=10))
    async with started(cfg) as act, client() as http:
        call = asyncio.create_task(_post(http, act.url, "late"))
        await until(lambda: act.pools["p"].waiting == 1, what="held after the refusal")
        await asyncio.sleep(0.3)  # refused, passed over, tried again...
        backend = await FakeOpenAI().start(port)
        try:
            status, _, body = await call
            assert status == 200 and backend.order == ["late"]
        finally:
            await backend.stop()


async def _half_reader(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """An endpoint that reads a little of a request and hangs up."""
    await reader.read(100)
    writer.transport.abort()


@run
async def test_a_body_too_large_to_send_again_fails_with_502():
    bad = await asyncio.start_server(_half_reader, "127.0.0.1", 0)
    bad_url = f"http://127.0.0.1:{bad.sockets[0].getsockname()[1]}"
    body = {"model": "m", "prompt": "z" * 400_000}
    try:
        async with backends(1) as (live,):
            for replay_limit, want in ((1000, 502), (10_000_000, 200)):
                cfg = config(pool("p", [bad_url, live.url]))
                async with started(cfg, replay_limit=replay_limit) as act, client() as http:
                    async with http.post(act.url + "/v1/completions", json=body) as r:
                        assert r.status == want, await r.text()
                    if want == 502:
                        assert act.pools["p"].counts["backend_error"] == 1
    finally:
        bad.close()


@run
async def test_a_per_endpoint_limit_holds_the_rest_in_order_and_fills_each_freed_slot():
    cfg = config(pool("p", concurrency_per_endpoint=1))
    async with started(cfg) as act, client() as http, backends(2) as (one, two):
        state = act.pools["p"]
        for backend in (one, two):
            backend.gate = asyncio.Event()  # streams pause after their first chunk
        act.set_endpoints("p", [one.url, two.url])

        async def stream(tag: str) -> tuple[int, bytes]:
            body = completion(stream=True)
            async with http.post(act.url + "/v1/completions", json=body,
                                 headers={"X-Test-Tag": tag}) as r:  # fmt: skip
                return r.status, await r.read()

        calls = []
        for i in range(5):
            calls.append(asyncio.create_task(stream(str(i))))
            if i < 2:
                await until(lambda i=i: state.in_flight == i + 1, what=f"{i + 1} forwarded")
            else:
                await until(lambda i=i: state.waiting == i - 1, what=f"{i - 1} waiting")
        # Both endpoints busy with one each: the other three wait, and no wake is asked
        # for (endpoints are ready, only busy).
        assert state.in_flight == 2 and state.waiting == 3 and not state.cold
        assert sorted(one.order + two.order) == ["0", "1"]
        one.gate.set()  # endpoint one finishes its request: the next in line takes its slot
        await until(lambda: len(one.order) == 2, what="request 2 forwarded to the freed slot")
        assert one.order[1] == "2" and state.waiting == 2
        two.gate.set()
        results = await asyncio.gather(*calls)
        assert [status for status, _ in results] == [200] * 5
        assert sorted(one.order + two.order) == [str(i) for i in range(5)]
        assert state.waiting == 0 and state.counts["served"] == 5
