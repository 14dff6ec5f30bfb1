"""Configuration: pydantic models for pools, loading from YAML, and the JSON Schema.

Plain validated values every layer may read. This package must never import an adapter,
the controller, the planner or the process loop, and never talk to a cloud or cluster.
"""

from .loader import ConfigError, ConfigIssue, config_schema, load_config, parse_config
from .models import (
    SIMULATED_SIGNALS,
    Behavior,
    Config,
    ControllerSettings,
    DirectionBehavior,
    Installation,
    Pool,
    RateLimit,
    StaleBehavior,
)

__all__ = [
    "SIMULATED_SIGNALS",
    "Behavior",
    "Config",
    "ConfigError",
    "ConfigIssue",
    "ControllerSettings",
    "DirectionBehavior",
    "Installation",
    "Pool",
    "RateLimit",
    "StaleBehavior",
    "config_schema",
    "load_config",
    "parse_config",
]
