"""Signal sources by type, loaded lazily so optional dependencies stay optional.

Each source module exposes a class constructed with no arguments (or with the controller
settings, if its __init__ takes `settings`); see `base.SignalSource` for the protocol.
The readers are named `*Reader`; the config models of their sources (`*Source`) live in
autoscaler/config/sources.py.

This package must never import a provider, the kube plug-ins, the node provisioner, the
controller or the process loop; shared clients and errors come from autoscaler/clients and
autoscaler/errors.py.
"""

from __future__ import annotations

import inspect
from typing import Any

from autoscaler.errors import SourceUnavailable
from autoscaler.registry import NotAvailable, load

from .base import SignalKey, SignalRequest, SignalSource
from .static import StaticReader

SOURCES: dict[str, str] = {
    "static": "autoscaler.signals.static:StaticReader",
    "prometheus": "autoscaler.signals.prometheus:PrometheusReader",
    "redis": "autoscaler.signals.redis:RedisReader",
    "sqs": "autoscaler.signals.sqs:SqsReader",
    "cloudwatch": "autoscaler.signals.cloudwatch:CloudWatchReader",
    "kube-pending-pods": "autoscaler.signals.kube:KubePendingReader",
    "nvml": "autoscaler.signals.nvml:NvmlReader",
    "activator": "autoscaler.signals.activator:ActivatorReader",
    "optuna": "autoscaler.signals.optuna:OptunaReader",
}


def build_source(source_type: str, where: str, settings: Any = None) -> SignalSource:
    """A reader for `source_type`, or SourceUnavailable naming the config path."""
    spec = SOURCES.get(source_type)
    if spec is None:
        raise SourceUnavailable(f"{where}: unknown signal source type {source_type!r}")
    try:
        cls = load(spec, f"signal source {source_type!r}")
    except NotAvailable as exc:
        raise SourceUnavailable(f"{where}: {exc}") from None
    if "settings" in inspect.signature(cls).parameters:
        return cls(settings=settings)  # type: ignore[no-any-return]
    return cls()  # type: ignore[no-any-return]


__all__ = [
    "SOURCES",
    "SignalKey",
    "SignalRequest",
    "SignalSource",
    "StaticReader",
    "build_source",
]
