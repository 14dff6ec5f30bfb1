"""Helpers for building pools and observations in unit tests."""

from __future__ import annotations

import textwrap

from autoscaler.config import Config, parse_config
from autoscaler.types import Observation


def config_from(yaml_text: str, env: dict[str, str] | None = None) -> Config:
    return parse_config(textwrap.dedent(yaml_text), "<test>", env or {})


def obs(now: float = 0.0, current: int = 1, ready: int | None = None, **signals: float
        ) -> Observation:
    return Observation(
        pool="p", now=now, current_replicas=current,
        ready_replicas=current if ready is None else ready, signals=signals,
    )
