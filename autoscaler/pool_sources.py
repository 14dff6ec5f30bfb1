"""Where the process loop's pools come from: the configuration file, and plug-ins that add
pools found elsewhere (AutoscalingPool objects in a cluster: autoscaler.kube.pools).

A source answers each round with `LoadedPools`: the combined configuration, where each
plugged-in pool came from (`refs`), the objects that were left out and why (`problems`),
and planner memory remembered outside this process. It answers None when it could not
look this round: the process then keeps the pools it has, never drops them on a blip.

This module must never talk to a cluster or a cloud.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from autoscaler.config import Config, ConfigIssue, Pool
from autoscaler.config.file_settings import FileSettings


@dataclass(frozen=True)
class PoolRef:
    """Where a plugged-in pool came from: an AutoscalingPool object."""

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
    """The combined configuration (None when there is no pool at all), the object each
    plugged-in pool came from, and the objects that were left out."""

    config: Config | None
    refs: dict[str, PoolRef] = field(default_factory=dict)
    problems: list[PoolProblem] = field(default_factory=list)
    memory: dict[str, dict[str, Any]] = field(default_factory=dict)
    """The planner memory each plugged-in pool's status holds (written by the last
    controller)."""

    def key(self) -> tuple[Any, ...]:
        """Changes when the set of pools or any pool's spec changes."""
        pools = self.config.pools if self.config is not None else []
        return tuple(p.model_dump_json() for p in pools)


def config_of(file: FileSettings, pools: Sequence[Pool]) -> Config | None:
    """The file's settings with these pools; None without any pool."""
    if not pools:
        return None
    config = Config.model_validate({**file.settings(), "pools": list(pools)})
    config._base_dir = file.base_dir
    return config


class PoolSource(Protocol):
    """Gives the process its pools once per round."""

    def load(self) -> LoadedPools | None:
        """The pools now; None when they could not be read (keep the ones you have)."""
        ...


class FilePools:
    """The configuration file's pools, the same every round."""

    def __init__(self, file: FileSettings) -> None:
        self.file = file

    def load(self) -> LoadedPools:
        return LoadedPools(config_of(self.file, self.file.pools))
