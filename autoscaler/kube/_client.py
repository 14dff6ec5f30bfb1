"""The Kubernetes client as the kube providers and the node provisioner use it.

One `ApiClient` per provider, configured from the in-cluster service account, else
KUBECONFIG (read when the client is built, not at import); the client's connection pool
is thread-safe, so pools acting concurrently share it. API errors become the providers'
typed errors, naming the pool and the object. Ownership labels live here too.

This module must never retry on its own or swallow an error: callers decide.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from autoscaler.providers.base import NotFound, ProviderError, Throttled

DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"
CONNECTIONS = 32
"""Connections per ApiClient: as many as the controller's concurrent reads (the client's
default, 5 per CPU, makes the rest reconnect every call)."""


def api_client() -> Any:
    """An ApiClient as `autoscaler.kube.connect.connect` finds one (in-cluster, else
    KUBECONFIG or ~/.kube/config); no credentials is a ProviderError coded `KubeConfig`."""
    from autoscaler.kube.connect import NoCredentials, connect

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


@contextmanager
def translated(what: str) -> Iterator[None]:
    """Turn Kubernetes API errors inside the block into typed provider errors."""
    try:
        yield
    except ProviderError:
        raise
    except Exception as exc:
        if type(exc).__module__.startswith(("kubernetes", "urllib3")):
            raise translate(exc, what) from None
        raise


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
