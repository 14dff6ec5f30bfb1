"""pytest fixtures for tests that need a real Kubernetes API server.

Load it once for the whole suite with ``pytest_plugins = ["tests.cluster.pytest_plugin"]`` in
tests/conftest.py (tests/kube/conftest.py also registers it, idempotently). One cluster serves
the whole session, whichever directories use it.

The rule for problems (never a silent pass):
- in CI (``CI=true``): missing binaries, a cluster that does not start, or an unreachable
  KUBECONFIG cluster fail every test that needs the cluster, with the log tail;
- elsewhere: without the built binaries and without KUBECONFIG the tests are skipped with a
  message saying how to enable them (``make cluster-build``); a start failure still fails.

Fixtures: ``kube_cluster`` (session; a ``KubeCluster``), ``kube_api`` (session ApiClient),
``core_v1``/``apps_v1``/``rbac_v1``, ``kube_namespace`` (a fresh namespace per test, deleted
after), ``kwok_cluster`` (the cluster, skipping where kwok is not there).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.cluster.binaries import MissingBinariesError
from tests.cluster.harness import ClusterStartError
from tests.cluster.session import ExternalClusterError, KubeCluster, in_ci, open_cluster


def _report(config: pytest.Config, line: str) -> None:
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(line)


@pytest.fixture(scope="session")
def kube_cluster(request: pytest.FixtureRequest) -> Iterator[KubeCluster]:
    """The session's cluster: KUBECONFIG's, or a local one started from the built binaries."""
    missing: MissingBinariesError | None = None
    failure: str | None = None
    try:
        cluster = open_cluster()
    except MissingBinariesError as e:
        missing = e
    except ClusterStartError as e:
        failure = f"the local test cluster failed to start: {e}"
    except ExternalClusterError as e:
        failure = str(e)
    # Failing/skipping outside the except blocks keeps the report free of chained tracebacks.
    if missing is not None:
        if in_ci():
            pytest.fail(f"CI=true and the test cluster cannot start: {missing}", pytrace=False)
        pytest.skip(
            f"no Kubernetes for these tests: KUBECONFIG is unset and {missing}. "
            "Alternatively set KUBECONFIG to an existing cluster."
        )
    if failure is not None:
        pytest.fail(failure, pytrace=False)

    if cluster.local is not None:
        _report(
            request.config,
            f"\n[test-cluster] started in {cluster.local.startup_seconds:.1f}s: "
            f"{cluster.local.workdir} (logs: {cluster.local.logs_dir})",
        )
    try:
        yield cluster
    finally:
        if cluster.local is not None:
            failed = request.session.testsfailed > 0
            local = cluster.local
            survivors = local.stop(keep_workdir=failed)
            if failed:
                _report(
                    request.config, f"[test-cluster] tests failed; logs kept in {local.logs_dir}"
                )
            if survivors:
                raise RuntimeError(f"test cluster processes survived stop: {', '.join(survivors)}")


@pytest.fixture(scope="session")
def kube_api(kube_cluster: KubeCluster) -> Iterator[Any]:
    client = kube_cluster.api_client()
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(scope="session")
def core_v1(kube_api: Any) -> Any:
    from kubernetes import client as k

    return k.CoreV1Api(kube_api)


@pytest.fixture(scope="session")
def apps_v1(kube_api: Any) -> Any:
    from kubernetes import client as k

    return k.AppsV1Api(kube_api)


@pytest.fixture(scope="session")
def rbac_v1(kube_api: Any) -> Any:
    from kubernetes import client as k

    return k.RbacAuthorizationV1Api(kube_api)


@pytest.fixture
def kwok_cluster(kube_cluster: KubeCluster) -> KubeCluster:
    """The cluster, for tests that create fake (kwok) nodes; skips where kwok is absent
    (fails in CI)."""
    if not kube_cluster.kwok:
        override = os.environ.get("AUTOSCALER_TEST_KWOK", "").strip()
        why = (
            f"AUTOSCALER_TEST_KWOK={override}"
            if override
            else "no kube-system/autoscaler-test-cluster ConfigMap, no kwok-controller "
            "Deployment; set AUTOSCALER_TEST_KWOK=1 if kwok runs there anyway"
        )
        message = (
            f"this test needs kwok to manage fake nodes, and {kube_cluster.description} "
            f"does not have it ({why})"
        )
        if in_ci():  # a skipped check must never pass as a green CI
            pytest.fail(message)
        pytest.skip(message)
    return kube_cluster


@pytest.fixture
def kube_namespace(core_v1: Any, kube_cluster: KubeCluster) -> Iterator[str]:
    """A fresh namespace for one test; deleted afterwards (without waiting)."""
    from kubernetes.client.exceptions import ApiException

    name = f"t-{uuid.uuid4().hex[:10]}"
    core_v1.create_namespace({"metadata": {"name": name, "labels": {"autoscaler-test": "1"}}})
    try:
        yield name
    finally:
        try:
            core_v1.delete_namespace(name)
        except ApiException as e:
            if e.status != 404:
                raise


def fail_with_logs(cluster: KubeCluster, message: str) -> None:
    """pytest.fail with the local cluster's log tails appended (when it is a local one)."""
    if cluster.local is not None:
        message += "\n" + cluster.local.describe_logs()
    pytest.fail(message, pytrace=False)


__all__ = [
    "apps_v1",
    "core_v1",
    "fail_with_logs",
    "kube_api",
    "kube_cluster",
    "kube_namespace",
    "kwok_cluster",
    "rbac_v1",
]
