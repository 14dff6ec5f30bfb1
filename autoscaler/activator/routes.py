"""Which pool a request belongs to: Host, path prefix and the OpenAI `model` field.

Pure functions over the pools' `activator` sections, in file order: the first pool whose
`hosts` (if any) has the request's host, whose `paths` (if any) prefix its path and whose
`models` (if any) has its body's `model` wins. The body is read only when it can change the
answer (the first pool left by host and path lists models); `bodies.read_model` reads it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from autoscaler.config.activator import ActivatorSpec


@dataclass(frozen=True)
class Route:
    pool: str
    hosts: frozenset[str]
    paths: tuple[str, ...]
    models: frozenset[str]

    @classmethod
    def of(cls, pool: str, spec: ActivatorSpec) -> Route:
        return cls(pool, frozenset(spec.hosts), tuple(spec.paths), frozenset(spec.models))

    def takes(self, host: str, path: str) -> bool:
        if self.hosts and host not in self.hosts:
            return False
        return not self.paths or path.startswith(self.paths)

    def describe(self) -> str:
        parts = [
            f"{name} {', '.join(sorted(values) if name != 'paths' else values)}"
            for name, values in (("hosts", self.hosts), ("paths", self.paths),
                                 ("models", self.models))
            if values
        ]  # fmt: skip
        return f"{self.pool} ({'; '.join(parts) or 'everything'})"


class Router:
    def __init__(self, routes: Sequence[Route]) -> None:
        self.routes = list(routes)

    def candidates(self, host: str, path: str) -> list[Route]:
        """The pools that take this host and path, in file order."""
        return [r for r in self.routes if r.takes(host, path)]

    @staticmethod
    def needs_model(candidates: Sequence[Route]) -> bool:
        """Whether the body's `model` decides: the first candidate lists models (a first
        candidate without `models` wins whatever the body says)."""
        return bool(candidates) and bool(candidates[0].models)

    @staticmethod
    def choose(candidates: Sequence[Route], model: str | None) -> Route | None:
        for route in candidates:
            if not route.models or model in route.models:
                return route
        return None

    def unrouted(self, host: str, path: str, model: str | None, model_read: bool) -> str:
        """Why no pool takes the request, naming what was tried."""
        what = f"host {host!r}, path {path!r}"
        if model_read:
            what += f", model {model!r}" if model is not None else ", no `model` in the body"
        if not self.routes:
            return (
                f"no pool takes this request ({what}): no pool is fronted yet (none has an "
                "`activator` section); this activator picks up new ones as they appear"
            )
        tried = "; ".join(r.describe() for r in self.routes)
        return f"no pool takes this request ({what}); pools tried: {tried}"


def host_of(header: str | None) -> str:
    """The Host header's name, without port or trailing dot, in lower case."""
    host = (header or "").strip().lower()
    if host.startswith("["):  # [::1]:8080
        end = host.find("]")
        return host[: end + 1] if end > 0 else host
    name, colon, port = host.rpartition(":")
    if colon and (port.isdigit() or not port) and ":" not in name:
        host = name
    return host.rstrip(".")
