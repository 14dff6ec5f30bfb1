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
    """No usable Kubernetes configuration; the message starts "no Kubernetes credentials"."""


def own_namespace() -> str:
    """This pod's namespace (POD_NAMESPACE, the service account's), else `default`."""
    if os.environ.get("POD_NAMESPACE"):
        return os.environ["POD_NAMESPACE"]
    try:
        return _NAMESPACE_FILE.read_text().strip() or "default"
    except OSError:
        return "default"


def _configuration(retries: bool) -> Any:
    cfg = k.Configuration()
    cfg.connection_pool_maxsize = CONNECTIONS
    if not retries:
        cfg.retries = False  # a reader with a deadline: a retry would spend its budget
    return cfg


def _from_file(path: str | None, what: str, retries: bool) -> Any:
    if path is not None and not Path(path).is_file():
        raise NoCredentials(f"no Kubernetes credentials: {what}: {path}: no such file")
    cfg = _configuration(retries)
    try:
        kconfig.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=path, client_configuration=cfg, persist_config=False
        )
    except (kconfig.ConfigException, OSError, TypeError, ValueError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else repr(exc)
        raise NoCredentials(f"no Kubernetes credentials: {what}: {first}") from None
    return k.ApiClient(cfg)


def connect(kubeconfig: str | None = None, *, retries: bool = True) -> Any:
    """An ApiClient: `kubeconfig` if given, else in-cluster, else KUBECONFIG/~/.kube/config
    (KUBECONFIG as it is now, not as the client library saw it when imported).
    `retries=False` for readers that have their own deadline."""
    if kubeconfig:
        return _from_file(kubeconfig, "--kubeconfig", retries)
    cfg = _configuration(retries)
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
    if env is None:
        return _from_file(str(default), str(default), retries)
    # Several files (a:b) are merged by the client itself, from the environment.
    path = None if os.pathsep in env else env
    return _from_file(path, f"KUBECONFIG={env}", retries)


def error_code(exc: BaseException) -> str:
    """`http_<status>` for an API answer, else the exception's class name."""
    status = getattr(exc, "status", None)
    return f"http_{status}" if isinstance(status, int) and status else type(exc).__name__
