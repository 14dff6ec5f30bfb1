"""How the controller process reaches its cluster: an explicit kubeconfig, else the pod's
service account, else KUBECONFIG / ~/.kube/config; which namespace it runs in; and the
short code a failed API call is counted under in metrics.

A missing or broken configuration is a `NoCredentials` error (a ValueError) with one line
saying what was tried and what to do; this module must never print a traceback's worth of
client internals.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from kubernetes import client as k
from kubernetes import config as kconfig

from autoscaler.kube._client import CONNECTIONS

_NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


class NoCredentials(ValueError):
    """No usable Kubernetes configuration."""


def own_namespace() -> str:
    """This pod's namespace (POD_NAMESPACE, the service account's), else `default`."""
    if os.environ.get("POD_NAMESPACE"):
        return os.environ["POD_NAMESPACE"]
    try:
        return _NAMESPACE_FILE.read_text().strip() or "default"
    except OSError:
        return "default"


def _from_file(path: str | None, what: str) -> Any:
    if path is not None and not Path(path).is_file():
        raise NoCredentials(f"{what}: {path}: no such file")
    cfg = k.Configuration()
    cfg.connection_pool_maxsize = CONNECTIONS
    try:
        kconfig.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=path, client_configuration=cfg, persist_config=False
        )
    except (kconfig.ConfigException, OSError, TypeError, ValueError) as exc:
        raise NoCredentials(f"{what}: {str(exc).splitlines()[0] if str(exc) else exc!r}") from None
    return k.ApiClient(cfg)


def connect(kubeconfig: str | None = None) -> Any:
    """An ApiClient: `kubeconfig` if given, else in-cluster, else KUBECONFIG/~/.kube/config."""
    if kubeconfig:
        return _from_file(kubeconfig, "--kubeconfig")
    cfg = k.Configuration()
    cfg.connection_pool_maxsize = CONNECTIONS
    try:
        kconfig.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
        return k.ApiClient(cfg)
    except kconfig.ConfigException:
        pass
    env = os.environ.get("KUBECONFIG") or None
    default = Path.home() / ".kube" / "config"
    if env is None and not default.is_file():
        raise NoCredentials(
            "no Kubernetes credentials: not in a cluster (no service account), KUBECONFIG is "
            f"unset and {default} does not exist; pass --kubeconfig FILE"
        )
    # None: the client reads KUBECONFIG itself (it may list several files).
    return _from_file(None, f"KUBECONFIG={env}" if env else str(default))


def error_code(exc: BaseException) -> str:
    """`http_<status>` for an API answer, else the exception's class name."""
    status = getattr(exc, "status", None)
    return f"http_{status}" if isinstance(status, int) and status else type(exc).__name__
