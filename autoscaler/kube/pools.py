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
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client as k
from pydantic import ValidationError

from autoscaler.config import Config, ConfigIssue, Pool
from autoscaler.config.loader import issues_from

from .crd import GROUP, PLURAL, VERSION
from .settings import FileSettings

_NAMESPACED_KINDS = {"deployment", "statefulset", "job"}
log = logging.getLogger("autoscaler.kube.pools")


@dataclass(frozen=True)
class PoolRef:
    """Where a pool came from: an AutoscalingPool object."""

    namespace: str
    name: str
    generation: int = 0
    uid: str = ""

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class PoolProblem:
    """Why one object was not turned into a pool; `issues` name the spec paths."""

    ref: PoolRef
    issues: tuple[ConfigIssue, ...]

    @property
    def message(self) -> str:
        return "; ".join(f"{_where(i.path)}: {i.message}" for i in self.issues)


def _where(path: str) -> str:
    """The object's path of a Pool field: the name is metadata.name, the rest is spec."""
    return "metadata.name" if path == "name" else f"spec.{path}" if path else "spec"


@dataclass
class LoadedPools:
    """The combined configuration (None when there is no pool at all), the object each CRD
    pool came from, and the objects that were left out."""

    config: Config | None
    refs: dict[str, PoolRef] = field(default_factory=dict)
    problems: list[PoolProblem] = field(default_factory=list)
    memory: dict[str, dict[str, Any]] = field(default_factory=dict)
    """The planner memory each CRD pool's status holds (written by the last controller)."""

    def key(self) -> tuple[Any, ...]:
        """Changes when the set of pools or any pool's spec changes."""
        pools = self.config.pools if self.config is not None else []
        return tuple(p.model_dump_json() for p in pools)


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
    if isinstance(target, dict) and target.get("kind") in _NAMESPACED_KINDS:
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
    if pools:
        out.config = Config.model_validate({**file.settings(), "pools": pools})
        out.config._base_dir = file.base_dir
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
