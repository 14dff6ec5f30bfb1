"""Lazy lookup of implementations by name ("package.module:attribute").

Signal sources and capacity providers are registered by name here, so that importing the
core never imports boto3 or the Kubernetes client, and a reader that is missing (an
optional extra not installed) is reported by name instead of failing at import time.
"""

from __future__ import annotations

import importlib
from typing import Any


class NotAvailable(Exception):
    """The named implementation cannot be loaded; the message says why and what to do."""


def load(spec: str, what: str) -> Any:
    module_name, _, attribute = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            raise NotAvailable(f"{what} is not implemented in this version") from None
        raise NotAvailable(
            f"{what} needs the Python package {exc.name!r}, which is not installed "
            f"(pip install 'elastic-autoscaler[{_extra(exc.name)}]')"
        ) from None
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise NotAvailable(f"{what}: {spec} does not exist") from None


def _extra(package: str | None) -> str:
    return {"pynvml": "nvml", "optuna": "optuna"}.get(package or "", "all")
