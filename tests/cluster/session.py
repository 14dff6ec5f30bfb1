"""Getting a cluster for a test session: an existing one from KUBECONFIG, or a local one.

``open_cluster()`` decides, in this order:

1. ``KUBECONFIG`` is set and names an existing file: use that cluster as it is (a cluster
   from ``python -m tests.cluster up``, kind, EKS...). Nothing is started or stopped. kwok
   (fake nodes) is assumed only where it is evidently there: the harness's marker ConfigMap
   ``kube-system/autoscaler-test-cluster``, a ``kwok-controller`` Deployment in
   ``kube-system``, or ``AUTOSCALER_TEST_KWOK=1`` (``=0`` forces it off).
2. Otherwise start a ``LocalCluster`` from the built binaries (``make cluster-build``).

The caller decides what a problem means (see pytest_plugin: in CI a missing binary or a
failed start is a failure, elsewhere missing binaries are a skip).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.cluster.binaries import bin_dir
from tests.cluster.harness import MARKER_CONFIGMAP, MARKER_NAMESPACE, LocalCluster


class ExternalClusterError(RuntimeError):
    """KUBECONFIG names a cluster that cannot be used."""


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes", "on"}


def external_kubeconfig() -> Path | None:
    """The first file named by KUBECONFIG, when the variable is set (None when unset)."""
    value = os.environ.get("KUBECONFIG", "").strip()
    if not value:
        return None
    first = Path(value.split(os.pathsep)[0]).expanduser()
    if not first.is_file():
        raise ExternalClusterError(
            f"KUBECONFIG={value} but {first} does not exist; unset KUBECONFIG to let the tests "
            "start their own cluster, or point it at a reachable cluster"
        )
    return first


@dataclass
class KubeCluster:
    """A cluster the tests can use, however it was obtained."""

    kubeconfig: Path
    local: LocalCluster | None  # None: an existing cluster from KUBECONFIG
    kwok: bool  # kwok manages Nodes annotated kwok.x-k8s.io/node=fake
    helm: Path | None
    kubectl: Path | None

    @property
    def description(self) -> str:
        if self.local is not None:
            return f"local test cluster in {self.local.workdir}"
        return f"existing cluster from KUBECONFIG={self.kubeconfig}"

    def api_client(self) -> Any:
        from kubernetes import config as kconfig

        return kconfig.new_client_from_config(config_file=str(self.kubeconfig))

    def tool_env(self) -> dict[str, str]:
        """Environment for kubectl/helm subprocesses aimed at this cluster."""
        env = dict(os.environ)
        env["KUBECONFIG"] = str(self.kubeconfig)
        return env


def _tool(name: str) -> Path | None:
    built = bin_dir() / name
    if built.is_file() and os.access(built, os.X_OK):
        return built
    found = shutil.which(name)
    return Path(found) if found else None


def detect_kwok(api_client: Any) -> bool:
    override = os.environ.get("AUTOSCALER_TEST_KWOK", "").strip()
    if override:
        return override.lower() in {"1", "true", "yes", "on"}
    from kubernetes import client as k
    from kubernetes.client.exceptions import ApiException

    try:
        k.CoreV1Api(api_client).read_namespaced_config_map(MARKER_CONFIGMAP, MARKER_NAMESPACE)
        return True
    except ApiException as e:
        if e.status not in (403, 404):
            raise
    try:
        k.AppsV1Api(api_client).read_namespaced_deployment("kwok-controller", MARKER_NAMESPACE)
        return True
    except ApiException as e:
        if e.status not in (403, 404):
            raise
    return False


def open_cluster(ready_timeout: float = 90.0) -> KubeCluster:
    """An existing cluster (KUBECONFIG) or a freshly started local one. Raises
    MissingBinariesError, ClusterStartError or ExternalClusterError."""
    kubeconfig = external_kubeconfig()
    if kubeconfig is not None:
        from kubernetes import client as k

        cluster = KubeCluster(kubeconfig, None, False, _tool("helm"), _tool("kubectl"))
        try:
            api = cluster.api_client()
        except Exception as e:
            raise ExternalClusterError(f"cannot load KUBECONFIG {kubeconfig}: {e}") from e
        try:
            k.VersionApi(api).get_code(_request_timeout=10)
            cluster.kwok = detect_kwok(api)
        except Exception as e:
            raise ExternalClusterError(
                f"the cluster in KUBECONFIG={kubeconfig} is not reachable: {e}"
            ) from e
        finally:
            api.close()
        return cluster

    local = LocalCluster(ready_timeout=ready_timeout).start()
    assert local.kubeconfig is not None and local.binaries is not None
    return KubeCluster(local.kubeconfig, local, True, local.binaries.helm, local.binaries.kubectl)
