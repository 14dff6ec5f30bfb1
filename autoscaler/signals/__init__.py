"""Signal sources by type. Readers for other types register here as they are added."""

from __future__ import annotations

from collections.abc import Callable

from .base import SignalKey, SignalRequest, SignalSource, SourceUnavailable
from .static import StaticSource

FACTORIES: dict[str, Callable[[], SignalSource]] = {"static": StaticSource}


def build_source(source_type: str, where: str) -> SignalSource:
    """A reader for `source_type`, or SourceUnavailable naming the config path."""
    factory = FACTORIES.get(source_type)
    if factory is None:
        have = ", ".join(sorted(FACTORIES))
        raise SourceUnavailable(
            f"{where}: signal source {source_type!r} has no reader in this version "
            f"(available: {have}); pass your own source to the Controller, or use `simulate`"
        )
    return factory()


__all__ = [
    "FACTORIES",
    "SignalKey",
    "SignalRequest",
    "SignalSource",
    "SourceUnavailable",
    "StaticSource",
    "build_source",
]
