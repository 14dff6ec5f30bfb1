"""What the API server does to objects, as JSON, for the fake API (kube_api.py): the kinds it
serves, errors shaped as the client raises them, JSON merge patches, identity and
generation across writes, label and field selectors, and a watch response's stream."""

from __future__ import annotations

import copy
import json
import queue
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kubernetes.client.exceptions import ApiException


@dataclass(frozen=True)
class Kind:
    kind: str
    plural: str
    api_version: str
    model: str | None  # the client's model class; None for custom resources (plain dicts)
    namespaced: bool = True

    @property
    def resource(self) -> str:
        group = self.api_version.rpartition("/")[0]
        return f"{self.plural}.{group}" if self.model is None else self.plural


BUILTIN = {  # as the client's method names spell them
    "pod": Kind("Pod", "pods", "v1", "V1Pod"),
    "node": Kind("Node", "nodes", "v1", "V1Node", namespaced=False),
    "event": Kind("Event", "events", "v1", "CoreV1Event"),
    "config_map": Kind("ConfigMap", "configmaps", "v1", "V1ConfigMap"),
    "deployment": Kind("Deployment", "deployments", "apps/v1", "V1Deployment"),
    "stateful_set": Kind("StatefulSet", "statefulsets", "apps/v1", "V1StatefulSet"),
    "job": Kind("Job", "jobs", "batch/v1", "V1Job"),
    "lease": Kind("Lease", "leases", "coordination.k8s.io/v1", "V1Lease"),
}


def api_error(status: int, reason: str, message: str = "") -> ApiException:
    """An ApiException as the client raises it: HTTP status and reason, and the server's
    Status object as the body when it said more."""
    body = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message,
            "reason": reason.replace(" ", ""), "code": status}  # fmt: skip
    return ApiException(status=status, reason=reason, body=json.dumps(body) if message else None)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: maps merge, null removes a key, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


class WatchResponse:
    """One watch response: its events as newline-delimited JSON, each split across two
    chunks (as the network splits them), until it ends or times out."""

    _END = object()

    def __init__(
        self,
        wanted: Callable[[Kind, dict[str, Any]], bool],
        timeout: float | None,
        closed: Callable[[WatchResponse], None],
    ) -> None:
        self._wanted, self._closed = wanted, closed
        self._timeout = float(timeout or 1800)
        self._queue: queue.Queue[Any] = queue.Queue()

    def offer(self, kind: Kind, happened: dict[str, Any]) -> None:
        if self._wanted(kind, happened):
            self.put(happened)

    def put(self, happened: dict[str, Any]) -> None:
        self._queue.put(copy.deepcopy(happened))

    def end(self) -> None:
        self._queue.put(self._END)

    def stream(self, amt: Any = None, decode_content: bool = False) -> Iterator[bytes]:
        deadline = time.monotonic() + self._timeout
        try:
            while True:
                try:
                    happened = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    return
                if happened is self._END:
                    return
                line = json.dumps(happened).encode() + b"\n"
                yield line[: len(line) // 2]
                yield line[len(line) // 2 :]
        finally:
            self._closed(self)

    def release_conn(self) -> None:
        self._closed(self)

    def close(self) -> None:
        self.end()


def identity(old: dict[str, Any]) -> dict[str, Any]:
    meta = old["metadata"]
    return {key: meta[key] for key in ("name", "namespace", "uid", "creationTimestamp",
                                       "generation") if key in meta}  # fmt: skip


def kept(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """`new` with the identity of `old`, its generation bumped when the spec changed."""
    meta = {**(new.get("metadata") or {}), **identity(old)}
    if old.get("spec") != new.get("spec"):
        meta["generation"] = int(meta.get("generation") or 0) + 1
    return {**new, "metadata": meta}


def check_version(kind: Kind, old: dict[str, Any], body: dict[str, Any]) -> None:
    wanted = (body.get("metadata") or {}).get("resourceVersion")
    if wanted and wanted != old["metadata"]["resourceVersion"]:
        raise api_error(409, "Conflict", f'Operation cannot be fulfilled on {kind.plural} '
                        f'"{old["metadata"]["name"]}": the object has been modified; please '
                        "apply your changes to the latest version and try again")  # fmt: skip


def scale_of(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj["metadata"]
    return {"apiVersion": "autoscaling/v1", "kind": "Scale",
            "metadata": {key: meta.get(key) for key in ("name", "namespace", "resourceVersion")},
            "spec": {"replicas": (obj.get("spec") or {}).get("replicas")},
            "status": {"replicas": (obj.get("status") or {}).get("replicas") or 0}}  # fmt: skip


def gone(message: str) -> dict[str, Any]:
    status = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Expired",
              "code": 410, "message": message}  # fmt: skip
    return {"type": "ERROR", "object": status}


def rfc3339(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- selectors -----------------------------------------------------------------------------
_REQUIREMENT = re.compile(
    r"\s*(?P<not>!)?\s*(?P<key>[\w./-]+)\s*"
    r"(?:(?P<op>==|=|!=)\s*(?P<value>[\w.-]*)|\s(?P<set>in|notin)\s*\((?P<values>[^)]*)\))?\s*"
)


def selected(obj: dict[str, Any], kwargs: dict[str, Any]) -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return (labels_match(labels, kwargs.get("label_selector"))
            and fields_match(obj, kwargs.get("field_selector")))  # fmt: skip


def labels_match(labels: Mapping[str, str], selector: str | None) -> bool:
    """Whether labels match a label selector string, as the API server reads one."""
    for part in re.findall(r"[^,(]+(?:\([^)]*\))?", selector or ""):
        if not part.strip():
            continue
        req = _REQUIREMENT.fullmatch(part)
        if req is None:
            raise api_error(400, "Bad Request", f"unable to parse requirement: {part!r}")
        key, value = req["key"], labels.get(req["key"])
        values = {v.strip() for v in (req["values"] or "").split(",") if v.strip()}
        ok = {
            "=": value == req["value"], "==": value == req["value"], "!=": value != req["value"],
            "in": value in values, "notin": value not in values,
        }.get(req["op"] or req["set"] or "", key in labels)  # fmt: skip
        if req["not"]:
            ok = key not in labels
        if not ok:
            return False
    return True


def fields_match(obj: dict[str, Any], selector: str | None) -> bool:
    """Whether an object matches a field selector (a dotted path; missing reads as "")."""
    for part in filter(None, (selector or "").split(",")):
        req = re.fullmatch(r"\s*([\w.]+)\s*(==|=|!=)\s*(.*?)\s*", part)
        if req is None:
            raise api_error(400, "Bad Request", f"invalid field selector: {part!r}")
        path, op, wanted = req.groups()
        value: Any = obj
        for step in path.split("."):
            value = value.get(step) if isinstance(value, dict) else None
        if (str(value if value is not None else "") == wanted) != (op != "!="):
            return False
    return True
