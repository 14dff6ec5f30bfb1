"""Pools from AutoscalingPool objects: list them in the watched namespaces and turn them,
together with the pools of an optional configuration file, into one `Config`.

Every object is validated with pydantic on its own; a bad object is left out with a clear
error (`PoolProblem`) for the status writer to put on the object, never an exception that
stops the controller or drops the other pools. A pool's name is the object's metadata.name;
Kubernetes targets without a namespace default to the object's namespace.

This module must never write to the cluster (status and Events are written elsewhere).
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Iterable, Sequence
from typing import Any

from kubernetes import client as k
from pydantic import ValidationError

from autoscaler import telemetry
from autoscaler.clients.kube import error_code
from autoscaler.config import ConfigIssue, Pool
from autoscaler.config.file_settings import FileSettings
from autoscaler.config.loader import issues_from
from autoscaler.pool_sources import LoadedPools, PoolProblem, PoolRef, config_of

from .crd import GROUP, PLURAL, VERSION

_NAMESPACED_KINDS = {"deployment", "statefulset", "job"}
log = logging.getLogger("autoscaler.kube.pools")


def ref_of(obj: dict[str, Any]) -> PoolRef:
    meta = obj.get("metadata") or {}
    return PoolRef(
        str(meta.get("namespace", "")),
        str(meta.get("name", "")),
        int(meta.get("generation") or 0),
        str(meta.get("uid", "")),
    )


def pool_data(obj: dict[str, Any]) -> dict[str, Any]:
    """The Pool fields of an object: its spec, named after the object, with Kubernetes
    targets in the object's namespace unless they name one."""
    ref = ref_of(obj)
    data = copy.deepcopy(obj.get("spec") or {})
    data["name"] = ref.name
    target = data.get("target")
    if isinstance(target, dict) and str(target.get("kind")) in _NAMESPACED_KINDS:
        target.setdefault("namespace", ref.namespace)
    return data


def planner_memory(obj: dict[str, Any]) -> dict[str, Any] | None:
    """The planner memory kept in an object's status, or None. Unreadable memory is
    dropped with a warning: the planner then starts afresh, which is safe (its scale-down
    window is seeded with the capacity it finds)."""
    text = (obj.get("status") or {}).get("plannerMemory")
    if not text:
        return None
    try:
        memory = json.loads(text)
    except ValueError as exc:
        log.warning("AutoscalingPool %s: status.plannerMemory unreadable (%s); starting "
                    "afresh", ref_of(obj), exc)  # fmt: skip
        return None
    return memory if isinstance(memory, dict) else None


def parse_pool(obj: dict[str, Any]) -> Pool | PoolProblem:
    """One object as a validated Pool, or the problem with it."""
    try:
        return Pool.model_validate(pool_data(obj))
    except ValidationError as exc:
        return PoolProblem(ref_of(obj), tuple(issues_from(exc, {})))


def combine(file: FileSettings, objects: Iterable[dict[str, Any]]) -> LoadedPools:
    """The file's pools (if any) plus every valid object's pool; a name used twice keeps the
    first (file pools first, then objects by namespace and name)."""
    pools = list(file.pools)
    taken = {p.name: "the configuration file" for p in pools}
    out = LoadedPools(None)
    for obj in sorted(objects, key=lambda o: (ref_of(o).namespace, ref_of(o).name)):
        ref = ref_of(obj)
        parsed = parse_pool(obj)
        if isinstance(parsed, PoolProblem):
            out.problems.append(parsed)
            continue
        if parsed.name in taken:
            issue = ConfigIssue(
                "name",
                f"pool name {parsed.name!r} is already used by {taken[parsed.name]}; "
                "rename this object",
            )
            out.problems.append(PoolProblem(ref, (issue,)))
            continue
        taken[parsed.name] = f"AutoscalingPool {ref}"
        out.refs[parsed.name] = ref
        memory = planner_memory(obj)
        if memory is not None:
            out.memory[parsed.name] = memory
        pools.append(parsed)
    out.config = config_of(file, pools)
    return out


class PoolLister:
    """Lists AutoscalingPool objects in the given namespaces (empty: all namespaces)."""

    def __init__(self, api_client: Any, namespaces: Sequence[str] = ()) -> None:
        self.api = k.CustomObjectsApi(api_client)
        self.namespaces = list(namespaces)

    def list(self) -> list[dict[str, Any]]:
        if not self.namespaces:
            found: Any = self.api.list_cluster_custom_object(GROUP, VERSION, PLURAL)
            return list(found.get("items", []))
        items: list[dict[str, Any]] = []
        for ns in self.namespaces:
            listed: Any = self.api.list_namespaced_custom_object(GROUP, VERSION, ns, PLURAL)
            items.extend(listed.get("items", []))
        return items


class CrdPools:
    """The process loop's pool source with `--crd-pools`: the file's pools plus every
    valid AutoscalingPool object in the watched namespaces."""

    def __init__(self, lister: Any, file: FileSettings) -> None:
        """`lister` has `list() -> [object JSON]` (a PoolLister)."""
        self.lister = lister
        self.file = file
        self._listed_once = False

    def load(self) -> LoadedPools | None:
        """None when listing fails after an earlier success: the process keeps the pools
        it has (never drops them on a blip); before any success, the file's pools."""
        objects: list[dict[str, Any]] = []
        try:
            objects = self.lister.list()
        except Exception as exc:
            telemetry.record_error("kube_list", error_code(exc))
            log.warning("listing AutoscalingPool objects failed: %s", _why_list(exc))
            if self._listed_once:
                return None
        else:
            self._listed_once = True
        return combine(self.file, objects)


def _why_list(exc: BaseException) -> str:
    status = getattr(exc, "status", None)
    if status == 404:
        return (
            "404: the AutoscalingPool CRD is not installed; install it with "
            "`autoscaler crd | kubectl apply -f -`"
        )
    if status == 403:
        return "403: forbidden; grant the service account list on autoscalingpools"
    reason = getattr(exc, "reason", None)
    return f"{status} {reason}" if status else f"{type(exc).__name__}: {exc}"
