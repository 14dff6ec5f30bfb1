"""Policies: pure modules that turn an observation into a recommendation, by name.

Each module holds a pydantic config model (selected by its `type` field) and a decider.
`AnyPolicyConfig` is the discriminated union the pool configuration uses; `REGISTRY` maps
each `type` to its config model. Policies import nothing from `autoscaler` but its pure
modules (`types`, `units`, `scaling`): never I/O, a clock, the config or the controller.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from .base import Policy, PolicyConfig
from .composite import CompositeConfig
from .gpu_utilization import GpuUtilizationConfig
from .hpa import HpaConfig
from .keda import KedaConfig
from .kpa import KpaConfig
from .packing import PackingConfig
from .queue_depth import QueueDepthConfig
from .queueing import QueueingConfig

AnyPolicyConfig = Annotated[
    QueueDepthConfig
    | GpuUtilizationConfig
    | CompositeConfig
    | QueueingConfig
    | HpaConfig
    | KedaConfig
    | KpaConfig
    | PackingConfig,
    Field(discriminator="type"),
]

CompositeConfig.model_rebuild(_types_namespace={"AnyPolicyConfig": AnyPolicyConfig})

REGISTRY: dict[str, type[PolicyConfig]] = {
    "queue-depth": QueueDepthConfig,
    "gpu-utilization": GpuUtilizationConfig,
    "composite": CompositeConfig,
    "queueing": QueueingConfig,
    "hpa": HpaConfig,
    "keda": KedaConfig,
    "kpa": KpaConfig,
    "packing": PackingConfig,
}

__all__ = ["REGISTRY", "AnyPolicyConfig", "Policy", "PolicyConfig"]
