"""Pools that come, change and go while the activator runs (AutoscalingPool objects).

The pools come from the controller's own pool source (`CrdPools`: the file's pools, then
every valid object), read from a stand-in lister or from the in-memory Kubernetes API. A
new pool is fronted, a gone one is dropped (its held requests answered 503 with
Retry-After), a changed one is updated in place (held requests and counts kept), and an
invalid object is skipped with a warning naming it, never a crash.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import logging
import threading
from typing import Any

import pytest

from autoscaler.config.file_settings import FileSettings
from autoscaler.kube.crd import GROUP, VERSION
from autoscaler.kube.pools import CrdPools, PoolLister
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
from tests.activator.test_endpoint_slices import piece
from tests.fakes import kube_objects
from tests.fakes.kube_api import FakeKube


def obj(spec: dict[str, Any], namespace: str = "llm") -> dict[str, Any]:
    """The AutoscalingPool object of a rig pool dict (its name becomes metadata.name)."""
    body = {k: v for k, v in copy.deepcopy(spec).items() if k != "name"}
    meta = {"name": spec["name"], "namespace": namespace, "generation": 1, "uid": "u"}
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "AutoscalingPool", "metadata": meta,
            "spec": body}  # fmt: skip


class Objects:
    """A stand-in PoolLister: `items` are the objects now; `threads` who listed them."""

    def __init__(self, *items: dict[str, Any]) -> None:
        self.items = list(items)
        self.threads: set[int] = set()

    def list(self) -> list[dict[str, Any]]:
        self.threads.add(threading.get_ident())
        return copy.deepcopy(self.items)


def crd(lister: Any, file: FileSettings | None = None, **kwargs: Any) -> dict[str, Any]:
    """Activator arguments for pools read through CrdPools; reloads only when the test
    asks (`act.reload()`) unless it sets `reload_seconds`."""
    kwargs.setdefault("reload_seconds", 3600)
    return {"source": CrdPools(lister, file or FileSettings()), "serve_empty": True, **kwargs}


async def post(http: Any, url: str, **body: Any) -> tuple[int, Any, dict[str, str]]:
    async with http.post(url, json=completion(**body)) as r:
        return r.status, await r.json(), dict(r.headers)


@run
async def test_with_no_pool_yet_it_is_ready_answers_404_and_fronts_a_pool_that_appears():
    objects = Objects()
    async with backends(1) as (backend,), started(None, **crd(objects)) as act, client() as http:
        async with http.get(act.admin_url + "/readyz") as r:
            assert r.status == 200
        status, body, _ = await post(http, act.url + "/v1/completions")
        assert status == 404
        assert "no pool is fronted yet" in body["error"]["message"]
        objects.items.append(obj(pool("chat", [backend.url])))
        assert await act.reload()
        status, body, _ = await post(http, act.url + "/v1/completions")
        assert status == 200 and body["backend"] == "b0"
        stats = await get_json(http, act.admin_url + "/activator/v1/stats")
        assert list(stats["pools"]) == ["chat"] and stats["pools"]["chat"]["served"] == 1
        async with http.get(act.admin_url + "/metrics") as r:
            assert 'autoscaler_activator_arrivals_total{pool="chat"} 1.0' in await r.text()
    assert threading.get_ident() not in objects.threads  # listed off the loop's thread


@run
async def test_a_pool_that_goes_answers_its_held_requests_503_and_is_no_longer_routed():
    async with backends(1) as (backend,), client() as http:
        warm = obj(pool("warm", [backend.url], paths=["/v1/"]))
        objects = Objects(obj(pool("zero", paths=["/zero/"])), warm)
        async with started(None, **crd(objects)) as act:
            assert list(act.pools) == ["warm", "zero"]
            held = [asyncio.create_task(post(http, act.url + "/zero/v1/completions"))
                    for _ in range(2)]  # fmt: skip
            await until(lambda: act.pools["zero"].waiting == 2)
            gone = act.pools["zero"]
            objects.items = [warm]
            assert await act.reload()
            for status, body, headers in await asyncio.gather(*held):
                assert status == 503 and headers["Retry-After"] == "1"
                assert "pool 'zero' is no longer fronted" in body["error"]["message"]
            assert list(act.pools) == ["warm"] and gone.counts["shutdown"] == 2
            status, body, _ = await post(http, act.url + "/zero/v1/completions")
            assert status == 404 and "pools tried: warm" in body["error"]["message"]
            assert (await post(http, act.url + "/v1/completions"))[0] == 200
            stats = await get_json(http, act.admin_url + "/activator/v1/stats")
            assert list(stats["pools"]) == ["warm"]
            async with http.get(act.admin_url + "/metrics") as r:
                assert 'pool="zero"' not in await r.text()


@run
async def test_a_changed_pool_keeps_its_held_requests_and_counts_and_takes_new_limits():
    async with backends(1) as (backend,), client() as http:
        objects = Objects(obj(pool("chat", paths=["/v1/"], max_queue=5)))
        async with started(None, **crd(objects)) as act:
            state = act.pools["chat"]
            held = asyncio.create_task(post(http, act.url + "/v1/completions"))
            await until(lambda: state.waiting == 1)
            objects.items = [obj(pool("chat", paths=["/v2/"], max_queue=1, retry_after=7))]
            assert await act.reload()
            assert act.pools["chat"] is state and state.waiting == 1
            assert state.limits.max_queue == 1
            status, body, headers = await post(http, act.url + "/v2/completions")
            assert status == 503 and headers["Retry-After"] == "7"  # the new max_queue
            assert (await post(http, act.url + "/v1/completions"))[0] == 404  # the new route
            act.set_endpoints("chat", [backend.url])
            assert (await held)[0] == 200
            assert state.counts["served"] == 1 and state.counts["rejected_full"] == 1


@run
async def test_a_changed_backend_re_points_the_pool_and_its_held_request_goes_there():
    async with backends(1) as (backend,), client() as http:
        objects = Objects(obj(pool("chat")))  # a Service backend, nothing ready
        async with started(None, **crd(objects)) as act:
            held = asyncio.create_task(post(http, act.url + "/v1/completions"))
            await until(lambda: act.pools["chat"].waiting == 1)
            objects.items = [obj(pool("chat", [backend.url]))]
            assert await act.reload()
            status, body, _ = await held
            assert status == 200 and body["backend"] == "b0"
            assert act.pools["chat"].endpoints == [backend.url]


def test_an_invalid_object_is_skipped_with_one_warning_naming_it(caplog):
    bad = obj(pool("bad", ["http://127.0.0.1:9"]), namespace="team")
    bad["spec"]["activator"]["backend"]["service"] = "also"  # urls and a Service: invalid

    @run
    async def scenario():
        async with backends(1) as (backend,), client() as http:
            objects = Objects(bad, obj(pool("good", [backend.url])))
            async with started(None, **crd(objects)) as act:
                assert list(act.pools) == ["good"]
                assert await act.reload() and await act.reload()
                assert (await post(http, act.url + "/v1/completions"))[0] == 200

    with caplog.at_level(logging.INFO, logger="autoscaler.activator"):
        scenario()
    (warning,) = [r for r in caplog.records if "team/bad" in r.getMessage()]
    assert warning.levelno == logging.WARNING
    assert "AutoscalingPool team/bad" in warning.getMessage()
    assert "spec.activator.backend" in warning.getMessage()
    # Loaded again unchanged: nothing to update.
    assert not [r for r in caplog.records if "changed" in r.getMessage()]
    assert [r.getMessage() for r in caplog.records if "fronting" in r.getMessage()] == [
        "activator: fronting pool good (from AutoscalingPool llm/good)"
    ]


@run
async def test_the_pools_are_read_again_every_reload_seconds():
    objects = Objects()
    fast = crd(objects, reload_seconds=0.05)
    async with backends(1) as (backend,), started(None, **fast) as act:
        objects.items = [obj(pool("chat", [backend.url]))]
        await until(lambda: "chat" in act.pools, what="the object fronted")
        objects.items = []
        await until(lambda: not act.pools, what="the object dropped")


@pytest.fixture
def kube(monkeypatch):
    """A FakeKube that also serves EndpointSlices (discovery.k8s.io/v1); built outside the
    tests' time limit (the first one loads the client's models)."""
    monkeypatch.setitem(kube_objects.BUILTIN, "endpoint_slice", kube_objects.Kind(
        "EndpointSlice", "endpointslices", "discovery.k8s.io/v1", "V1EndpointSlice"))  # fmt: skip
    with FakeKube() as fake:
        yield fake


def test_file_pools_route_before_objects_read_through_the_kube_api(kube):
    lister = PoolLister(None, ["llm"])
    lister.api = kube.custom

    @run
    async def scenario():
        async with backends(2) as (b0, b1), client() as http:
            file = FileSettings.of(config(pool("file-chat", [b0.url], models=["m"])))
            kube.add(obj(pool("chat", [b1.url])), obj(pool("elsewhere", [b1.url]), "other"))
            kube.add(obj(pool("file-chat", [b1.url])))  # the file's name: skipped
            async with started(None, **crd(lister, file)) as act:
                assert list(act.pools) == ["file-chat", "chat"]
                for model, backend in (("m", "b0"), ("x", "b1")):
                    answer = await post(http, act.url + "/v1/completions", model=model)
                    assert answer[1]["backend"] == backend
                kube.inject("list_namespaced_custom_object", error=ConnectionError("reset"))
                assert not await act.reload()  # could not look: keeps what it has
                assert list(act.pools) == ["file-chat", "chat"]
                kube.clear_faults()
                kube.remove("AutoscalingPool", "chat", "llm")
                assert await act.reload()
                assert list(act.pools) == ["file-chat"]
                status, body, _ = await post(http, act.url + "/v1/completions", model="x")
                assert status == 404

    scenario()


def watch_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("watch EndpointSlices")]


def test_a_service_pool_that_comes_is_watched_and_one_that_goes_stops_its_watch(kube):
    lister = PoolLister(None, ["llm"])
    lister.api = kube.custom
    slices = functools.partial(kube.call, "list_namespaced_endpoint_slice")

    @run
    async def scenario():
        async with backends(1) as (backend,), client() as http:
            kube.add(piece("vllm-1", [("127.0.0.1", True)], [("http", backend.port)]))
            async with started(None, **crd(lister, list_slices=slices)) as act:
                listing = threading.Event()  # the new pool's first list hangs
                kube.inject("list_namespaced_endpoint_slice", hold=listing, watch=False)
                kube.add(obj(pool("chat", service="vllm", backend_port="http")))
                assert await act.reload()
                assert watch_threads() == ["watch EndpointSlices of Service llm/vllm"]
                # A pool that came later does not take readiness away from the others.
                async with http.get(act.admin_url + "/readyz") as r:
                    assert r.status == 200
                held = asyncio.create_task(post(http, act.url + "/v1/completions"))
                await until(lambda: act.pools["chat"].waiting == 1)
                listing.set()
                assert (await held)[0] == 200
                kube.remove("AutoscalingPool", "chat", "llm")
                assert await act.reload()
                # Watches end at once from now on: only a stopped informer stops listing.
                kube.close()
                await until(lambda: not watch_threads(), 10, "the watch stopped")

    scenario()


@run
async def test_a_pool_dropped_while_its_request_body_is_read_answers_503():
    objects = Objects(obj(pool("chat", ["http://127.0.0.1:9"], models=["m"])))
    rest = asyncio.Event()

    async def body():
        yield b'{"prompt": "hello", '
        await rest.wait()
        yield b'"model": "m"}'

    async with started(None, **crd(objects)) as act, client() as http:
        routed = asyncio.Event()  # routed by host and path; then the body is read for `model`
        candidates = act.router.candidates
        act.router.candidates = lambda *a: routed.set() or candidates(*a)
        answer = asyncio.create_task(http.post(act.url + "/v1/completions", data=body()))
        await routed.wait()
        objects.items = []
        assert await act.reload()
        rest.set()
        response = await answer
        assert response.status == 503 and response.headers["Retry-After"] == "1"
        assert "no longer fronted" in (await response.json())["error"]["message"]
