"""The one Kubernetes client module: connecting, ownership labels, typed API errors.

Every Kubernetes adapter (the kube providers, the pending-pods signal, the kube plug-ins of
the process loop, the node provisioner) reaches its cluster through here: an explicit
kubeconfig, else the pod's service account, else KUBECONFIG / ~/.kube/config (read when the
client is built, not at import). The client's connection pool is thread-safe, so pools
acting concurrently share it. API errors become typed errors (autoscaler.errors) naming the
pool and the object; `Raw` reads listed JSON with the client models' attribute names.

A missing or broken configuration is a `NoCredentials` error (a ValueError) with one line
saying what was tried and what to do. This module must never retry on its own, swallow an
error, or print a traceback's worth of client internals: callers decide.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from kubernetes import client as k
from kubernetes import config as kconfig

from autoscaler.errors import NotFound, ProviderError, Throttled, translated_by

DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"
CONNECTIONS = 32
"""Connections per ApiClient: as many as the controller's concurrent reads (the client's
default, 5 per CPU, makes the rest reconnect every call)."""


def api_client() -> Any:
    """An ApiClient as `connect` finds one (in-cluster, else KUBECONFIG or
    ~/.kube/config); no credentials is a ProviderError coded `KubeConfig`."""
    try:
        return connect()
    except NoCredentials as exc:
        raise ProviderError(str(exc), "KubeConfig") from None


@dataclass(frozen=True, slots=True)
class Labels:
    """The labels that mark a Kubernetes object as this installation's."""

    owner: str
    prefix: str = "elastic-autoscaler.io"

    def key(self, name: str) -> str:
        return f"{self.prefix.rstrip('/')}/{name}"

    @property
    def owner_key(self) -> str:
        return self.key("owner")

    @property
    def pool_key(self) -> str:
        return self.key("pool")

    @property
    def request_key(self) -> str:
        return self.key("request-id")

    @property
    def busy_key(self) -> str:
        return self.key("busy")

    @property
    def in_flight_key(self) -> str:
        return self.key("in-flight")

    @property
    def do_not_disrupt_key(self) -> str:
        return self.key("do-not-disrupt")

    def owns(self, labels: Mapping[str, str] | None) -> bool:
        return (labels or {}).get(self.owner_key) == self.owner

    def of_pool(self, pool: str) -> dict[str, str]:
        return {self.owner_key: self.owner, self.pool_key: pool}

    def selector(self, pool: str) -> str:
        return ",".join(f"{k}={v}" for k, v in self.of_pool(pool).items())


_LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")


def label_value(text: str) -> str:
    """`text` as a label value: itself when valid, else a stable hash (`h-` + 40 hex)."""
    if _LABEL_VALUE.match(text):
        return text
    return "h-" + hashlib.sha256(text.encode()).hexdigest()[:40]




def parse_count(value: str | None) -> int | None:
    """A non-negative count (requests in flight) from an annotation; None when unusable."""
    if value is None:
        return None
    text = value.strip()
    return int(text) if text.isdigit() else None


def status_of(exc: BaseException) -> int | None:
    status = getattr(exc, "status", None)
    return status if isinstance(status, int) else None


def _api_message(exc: BaseException) -> str:
    """The API server's own explanation (the Status `message`), when it sent one."""
    body = getattr(exc, "body", None)
    if not body:
        return ""
    try:
        message = json.loads(body).get("message", "")
    except (ValueError, AttributeError):
        return ""
    return str(message)[:500] if message else ""


def translate(exc: Exception, what: str) -> ProviderError:
    """A typed provider error for a failed API call on `what` (pool and object named)."""
    status = status_of(exc)
    reason = getattr(exc, "reason", "") or type(exc).__name__
    message = _api_message(exc)
    if message:
        reason = f"{reason}: {message}"
    if status == 404:
        return NotFound(f"{what}: not found; create it, or fix the pool's target", "NotFound")
    if status == 429:
        return Throttled(f"{what}: the API server asked us to slow down ({reason})", "Throttled")
    if status == 403:
        return ProviderError(
            f"{what}: forbidden ({reason}); grant the autoscaler's service account the verbs "
            "it needs (docs/kubernetes.md lists them)",
            "Forbidden",
        )
    if status == 409:
        return ProviderError(f"{what}: conflict ({reason}); retried next tick", "Conflict")
    if status:
        return ProviderError(f"{what}: API answered {status} {reason}", f"Kube{status}")
    return ProviderError(f"{what}: cannot reach the API server: {reason}: {exc}", "Unreachable")


def translated(what: str) -> AbstractContextManager[None]:
    """Turn Kubernetes API errors inside the block into typed provider errors."""

    def typed(exc: Exception) -> ProviderError | None:
        if type(exc).__module__.startswith(("kubernetes", "urllib3")):
            return translate(exc, what)
        return None

    return translated_by(typed)


def is_finished_pod(pod: Any) -> bool:
    phase = pod.status.phase if pod.status else None
    return phase in ("Succeeded", "Failed")


def is_terminating(obj: Any) -> bool:
    return obj.metadata is not None and obj.metadata.deletion_timestamp is not None


def pod_ready(pod: Any) -> bool:
    for cond in (pod.status.conditions if pod.status else None) or []:
        if cond.type == "Ready":
            return bool(cond.status == "True")
    return False


def timestamp(value: Any) -> float:
    """Seconds since the epoch of an API datetime, or of its RFC 3339 text as listed JSON
    has it (0.0 when absent)."""
    if value is None:
        return 0.0
    if isinstance(value, str):
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    return float(value.timestamp())


# -- connecting --------------------------------------------------------------------
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


# -- listed JSON --------------------------------------------------------------------
# Building the kubernetes client's models for 1,000 Deployments costs about 0.45 s of CPU;
# parsing the JSON about 0.1 s. `Raw` keeps the JSON and answers `obj.status.ready_replicas`
# as the model would, so code written against the models reads either.


@functools.cache
def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


class Raw:
    """An API object's JSON with the client models' attribute names (`ready_replicas` for
    `readyReplicas`); absent fields are None. Label and annotation maps stay plain dicts."""

    __slots__ = ("_data",)
    _PLAIN = frozenset({"labels", "annotations", "matchLabels"})

    def __init__(self, data: Mapping[str, Any]) -> None:
        self._data = data

    def __getattr__(self, name: str) -> Any:
        key = _camel(name)
        value = self._data.get(key)
        if isinstance(value, dict):
            return value if key in self._PLAIN else Raw(value)
        if isinstance(value, list):
            return [Raw(v) if isinstance(v, dict) else v for v in value]
        return value
