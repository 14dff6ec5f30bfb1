"""Requests reach the pool their Host, path or body's `model` names, through real servers;
large bodies are routed without being buffered whole and arrive intact."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json

from tests.activator.rig import backends, client, completion, config, pool, run, started


@run
async def test_host_path_and_model_route_to_their_pools():
    async with backends(4) as (chat, coder, hosted, rest):
        cfg = config(
            pool("hosted", [hosted.url], hosts=["special.example"]),
            pool("chat", [chat.url], models=["llama"]),
            pool("coder", [coder.url], models=["coder"]),
            pool("rest", [rest.url], paths=["/v1/models"]),
        )
        async with started(cfg) as act, client() as http:
            url = act.url + "/v1/completions"
            for model, want in (("llama", "b0"), ("coder", "b1")):
                async with http.post(url, json=completion(model)) as r:
                    assert r.status == 200
                    assert (await r.json())["backend"] == want
            async with http.post(url, json=completion("llama"),
                                 headers={"Host": "Special.Example:8080"}) as r:  # fmt: skip
                assert (await r.json())["backend"] == "b2"
            async with http.get(act.url + "/v1/models") as r:
                assert (await r.json())["data"][0]["owned_by"] == "b3"
            async with http.post(url, json=completion("gpt-9")) as r:
                assert r.status == 404
                message = (await r.json())["error"]["message"]
                assert "model 'gpt-9'" in message and "path '/v1/completions'" in message
                assert "chat (models llama)" in message
            async with http.post(url, data=b"not json") as r:
                assert r.status == 404
                assert "no `model` in the body" in (await r.json())["error"]["message"]
        assert [len(b.seen) for b in (chat, coder, hosted)] == [1, 1, 1]
        assert act.pools["chat"].counts["served"] == 1


def _body(model_first: bool, size: int) -> tuple[bytes, bytes]:
    """A completion body split into a head and a tail of about `size` bytes."""
    filler = "x" * size
    if model_first:
        head = b'{"model": "coder", "prompt": "' + b"y" * 65536
        return head, filler.encode() + b'", "max_tokens": 2}'
    text = json.dumps({"messages": [{"role": "user", "content": filler, "model": "nested"}],
                       "max_tokens": 2})  # fmt: skip
    return text[:-1].encode()[:1000], text[:-1].encode()[1000:] + b', "model": "coder"}'


@run
async def test_a_large_body_streams_through_when_its_model_comes_first():
    async with backends(2) as (chat, coder):
        cfg = config(pool("chat", [chat.url], models=["llama"]),
                     pool("coder", [coder.url], models=["coder"]))  # fmt: skip
        head, tail = _body(True, 8 * 1024 * 1024)

        async def body():
            yield head
            # The backend must have the start of the body before the client sends the
            # rest: an activator that buffered the whole body would never get here.
            await asyncio.wait_for(coder.body_started.wait(), 5)
            yield tail

        async with started(cfg) as act, client() as http:
            r = await http.post(act.url + "/v1/completions", data=body())
            assert r.status == 200, await r.text()
            assert (await r.json())["backend"] == "b1"
        seen = coder.seen[0]
        assert seen.size == len(head) + len(tail)
        assert seen.sha256 == hashlib.sha256(head + tail).hexdigest()
        assert seen.model == "coder" and not chat.seen


@run
async def test_a_large_body_routes_by_a_model_that_comes_last():
    async with backends(2) as (chat, coder):
        cfg = config(pool("chat", [chat.url], models=["llama"]),
                     pool("coder", [coder.url], models=["coder"]))  # fmt: skip
        head, tail = _body(False, 4 * 1024 * 1024)
        async with started(cfg) as act, client() as http:
            r = await http.post(act.url + "/v1/chat/completions", data=io.BytesIO(head + tail),
                                headers={"Content-Type": "application/json"})  # fmt: skip
            assert r.status == 200, await r.text()
        seen = coder.seen[0]
        assert seen.sha256 == hashlib.sha256(head + tail).hexdigest()
        assert seen.headers["Content-Length"] == str(len(head + tail))
        assert not chat.seen
