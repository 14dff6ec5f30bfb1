"""Informers against the real API server: a namespace is listed once and then followed by
its watch, a watch the server ends is resumed without a new list, and under a controller
the workload provider's ticks read the watched cache (one list per namespace, however
many ticks) and still see every change made by others."""

from __future__ import annotations

import time
from typing import Any

import pytest
from kubernetes import client as k

from autoscaler.clients.kube import Labels
from autoscaler.clients.kube_informer import Informer
from autoscaler.providers.kube_workload import WorkloadProvider
from tests.cluster.wait import wait_for
from tests.kube.test_kube_workload import INSTALLATION, PREFIX, workload, workload_pool

pytestmark = pytest.mark.kube


def replicas(informer: Informer, name: str) -> int | None:
    obj = informer.items(wait=10).get(name)
    return None if obj is None else obj.spec.replicas


def test_an_informer_lists_once_then_follows_adds_changes_and_deletes(
    apps_v1: Any, kube_namespace: str
) -> None:
    apps_v1.create_namespaced_deployment(kube_namespace, workload("a", 1))
    informer = Informer(apps_v1.list_namespaced_deployment, kube_namespace, "Deployments").start()
    try:
        listed = informer.items(wait=10)
        assert set(listed) == {"a"} and listed["a"].spec.replicas == 1
        assert listed["a"].metadata.managed_fields is None, "managedFields are not kept"

        apps_v1.create_namespaced_deployment(kube_namespace, workload("b", 0))
        apps_v1.patch_namespaced_deployment_scale("a", kube_namespace, {"spec": {"replicas": 3}})
        wait_for(
            lambda: replicas(informer, "a") == 3 and replicas(informer, "b") == 0,
            timeout=10,
            what="the watch to bring the scale-up and the new Deployment",
        )
        apps_v1.delete_namespaced_deployment("b", kube_namespace)
        wait_for(
            lambda: "b" not in informer.items(wait=10),
            timeout=10,
            what="the watch to bring the delete",
        )
        assert informer.lists == 1 and informer.error is None
    finally:
        started = time.monotonic()
        informer.stop()  # while its watch (60 s by default) waits for the next event
        assert time.monotonic() - started < 2, "stop does not wait out the watch"


def test_a_watch_the_server_ends_is_resumed_without_listing_again(
    apps_v1: Any, kube_namespace: str
) -> None:
    apps_v1.create_namespaced_deployment(kube_namespace, workload("r", 0))
    informer = Informer(apps_v1.list_namespaced_deployment, kube_namespace, "Deployments",
                        watch_seconds=1).start()  # fmt: skip
    try:
        informer.items(wait=10)
        time.sleep(2.5)  # the server has ended at least two watches by now
        apps_v1.patch_namespaced_deployment_scale("r", kube_namespace, {"spec": {"replicas": 2}})
        wait_for(
            lambda: replicas(informer, "r") == 2,
            timeout=10,
            what="a change after the resumed watch",
        )
        assert informer.lists == 1, "resumed from the resourceVersion, not listed again"
    finally:
        informer.stop()


def test_a_forbidden_watch_is_an_error_the_pools_hold_on(
    kube_api: Any, kube_namespace: str
) -> None:
    """Listing a namespace the API refuses: `items` raises a Forbidden ProviderError, never
    an empty cache (which would read as 'no workloads')."""
    config = kube_api.configuration
    anonymous = k.Configuration()
    anonymous.host, anonymous.verify_ssl = config.host, config.verify_ssl
    anonymous.ssl_ca_cert = config.ssl_ca_cert
    apps = k.AppsV1Api(k.ApiClient(anonymous))  # no credentials: system:anonymous
    informer = Informer(apps.list_namespaced_deployment, kube_namespace, "Deployments",
                        backoff=(0.1, 0.2)).start()  # fmt: skip
    try:
        with pytest.raises(Exception) as raised:
            informer.items(wait=5)
        assert getattr(raised.value, "code", "") == "Forbidden", raised.value
        assert "Deployments" in str(raised.value) and "hold" in str(raised.value)
    finally:
        informer.stop()


def test_under_a_controller_ticks_read_the_watch_and_see_changes_by_others(
    kube_api: Any, apps_v1: Any, kube_namespace: str
) -> None:
    provider = WorkloadProvider(Labels(INSTALLATION, PREFIX), api=kube_api)
    names = [f"w{i}" for i in range(5)]
    for name in names:
        apps_v1.create_namespaced_deployment(kube_namespace, workload(name, 0))
    pools = [workload_pool("deployment", kube_namespace, n) for n in names]
    try:
        for _ in range(3):
            provider.begin_tick()
            assert [provider.describe(p).desired for p in pools] == [0] * 5
        apps_v1.patch_namespaced_deployment_scale("w3", kube_namespace, {"spec": {"replicas": 4}})

        def seen() -> bool:
            provider.begin_tick()
            return provider.describe(pools[3]).desired == 4

        wait_for(seen, timeout=10, what="a tick to see the scale made by someone else")
        provider.scale(pools[1], 2, "req-1")  # our own write: seen by a later tick
        wait_for(
            lambda: (provider.begin_tick(), provider.describe(pools[1]).desired)[1] == 2,
            timeout=10,
            what="a tick to see our own scale-up",
        )
        informers = provider.snapshots._informers
        assert sorted(informers) == [(kube_namespace, "deployment"), (kube_namespace, "pod")]
        assert all(i.lists == 1 for i in informers.values()), "one list, then the watch"
    finally:
        provider.close()
    assert provider.snapshots._informers == {}, "closing stops the watches"
