"""Capacity providers by target kind; AWS and Kubernetes ones register as they are added."""

from .base import CapacityProvider, CapacityUnavailable, NotFound, ProviderError, Throttled
from .simulated import SimulatedProvider

__all__ = [
    "CapacityProvider",
    "CapacityUnavailable",
    "NotFound",
    "ProviderError",
    "SimulatedProvider",
    "Throttled",
]
