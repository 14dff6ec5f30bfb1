"""Service backends: the ready endpoints of a Service's EndpointSlices, translated from the
slices as listed (pure) and followed through a watch (against the in-memory FakeKube), so
a held request goes out within milliseconds of an endpoint turning ready."""

from __future__ import annotations

import asyncio
import functools
import time

import pytest

from autoscaler.activator.endpoints import slice_urls
from autoscaler.clients.kube import Raw
from tests.activator.rig import backends, client, completion, config, get_json, pool, run, started
from tests.fakes import kube_objects
from tests.fakes.kube_api import FakeKube


def piece(name: str, endpoints: list[tuple[str, bool | None]], ports: list[tuple[str, int]],
          service: str = "vllm", family: str = "IPv4") -> dict:  # fmt: skip
    """An EndpointSlice as the API lists it."""
    return {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": name, "namespace": "llm",
                     "labels": {"kubernetes.io/service-name": service}},
        "addressType": family,
        "endpoints": [{"addresses": [address]} | ({} if ready is None else
                      {"conditions": {"ready": ready}}) for address, ready in endpoints],
        "ports": [{"name": n, "port": p, "protocol": "TCP"} for n, p in ports],
    }  # fmt: skip


def test_ready_endpoints_of_the_slices_become_urls():
    slices = [
        Raw(piece("a", [("10.0.0.1", True), ("10.0.0.2", False), ("10.0.0.3", None)],
                  [("metrics", 9000), ("http", 8000)])),
        Raw(piece("b", [("10.0.0.1", True), ("10.0.0.4", True)], [("http", 8000)])),
        Raw(piece("c", [("fd00::5", True)], [("http", 8000)], family="IPv6")),
        Raw(piece("d", [("10.0.0.9", True)], [("grpc", 7000)])),
    ]  # fmt: skip
    assert slice_urls(slices, "http") == [
        "http://10.0.0.1:8000", "http://10.0.0.3:8000", "http://10.0.0.4:8000",
        "http://[fd00::5]:8000",
    ]  # fmt: skip
    assert slice_urls(slices[:1], None, "https") == [
        "https://10.0.0.1:9000", "https://10.0.0.3:9000"]  # fmt: skip
    assert slice_urls(slices[3:], 7443) == ["http://10.0.0.9:7443"]
    assert slice_urls([Raw({"metadata": {"name": "empty"}})], "http") == []


@pytest.fixture
def kube(monkeypatch):
    """A FakeKube that also serves EndpointSlices (discovery.k8s.io/v1)."""
    monkeypatch.setitem(kube_objects.BUILTIN, "endpoint_slice", kube_objects.Kind(
        "EndpointSlice", "endpointslices", "discovery.k8s.io/v1", "V1EndpointSlice"))  # fmt: skip
    with FakeKube() as fake:
        yield fake


def test_a_held_request_goes_as_soon_as_the_slice_shows_a_ready_endpoint(kube):
    kube.add(piece("other", [("127.0.0.1", True)], [("http", 1)], service="other"))

    @run
    async def scenario():
        lister = functools.partial(kube.call, "list_namespaced_endpoint_slice")
        cfg = config(pool("p", service="vllm", backend_port="http"))
        async with backends(1) as (backend,), started(cfg, list_slices=lister) as act:
            state = act.pools["p"]
            async with client() as http:
                async with http.get(act.admin_url + "/readyz") as r:
                    assert r.status in (200, 503)  # listed at once, or about to be
                for _ in range(200):
                    if not act.not_ready():
                        break
                    await asyncio.sleep(0.01)
                async with http.get(act.admin_url + "/readyz") as r:
                    assert r.status == 200
                assert state.ready_endpoints == 0  # the other Service's slice is not ours
                call = asyncio.create_task(
                    http.post(act.url + "/v1/completions", json=completion())
                )
                while state.waiting == 0:
                    await asyncio.sleep(0.002)
                port = backend.port
                kube.add(piece("vllm-1", [("127.0.0.1", False)], [("http", port)]))
                changed = time.monotonic()
                await asyncio.sleep(0.05)
                assert state.waiting == 1  # not ready yet: still held
                kube.edit("EndpointSlice", "vllm-1", {"endpoints": [
                    {"addresses": ["127.0.0.1"], "conditions": {"ready": True}}]},
                    namespace="llm")  # fmt: skip
                changed = time.monotonic()
                while state.ready_endpoints == 0:
                    await asyncio.sleep(0.001)
                seen_after = time.monotonic() - changed
                response = await call
                assert response.status == 200
                assert seen_after < 0.25, f"the endpoint took {seen_after:.3f}s to arrive"
                assert len(backend.seen) == 1
                kube.remove("EndpointSlice", "vllm-1", namespace="llm")
                while state.ready_endpoints:
                    await asyncio.sleep(0.002)
                stats = await get_json(http, act.admin_url + "/activator/v1/stats")
                assert stats["pools"]["p"]["ready_endpoints"] == 0
            kube.close()  # end the watch so the informer stops at once

    scenario()
