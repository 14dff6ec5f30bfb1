"""Capacity providers by target kind, loaded lazily (boto3 and the Kubernetes client are
imported only when a pool uses them).

A provider factory is called as `factory(config, clock)` with the whole Config (for the
installation id, tag prefix and regions) and returns one provider for all pools of its kind.
Every provider implements `base.CapacityProvider`.

This package must never import a signal reader, the kube plug-ins, the node provisioner,
the controller or the process loop; shared clients and errors come from autoscaler/clients
and autoscaler/errors.py.
"""

from __future__ import annotations

from autoscaler.clock import Clock
from autoscaler.config import Config
from autoscaler.errors import ProviderUnavailable
from autoscaler.registry import NotAvailable, load

from .base import CapacityProvider
from .simulated import SimulatedProvider

PROVIDERS: dict[str, str] = {
    "simulated": "autoscaler.providers.simulated:SimulatedProvider.from_config",
    "ec2": "autoscaler.providers.aws_ec2:Ec2Provider.from_config",
    "asg": "autoscaler.providers.aws_asg:AsgProvider.from_config",
    "deployment": "autoscaler.providers.kube_workload:WorkloadProvider.from_config",
    "statefulset": "autoscaler.providers.kube_workload:WorkloadProvider.from_config",
    "job": "autoscaler.providers.kube_jobs:JobProvider.from_config",
}



def build_providers(config: Config, clock: Clock) -> dict[str, CapacityProvider]:
    """One provider per target kind used by the configuration."""
    built: dict[str, CapacityProvider] = {}
    by_factory: dict[str, CapacityProvider] = {}
    for i, pool in enumerate(config.pools):
        kind = pool.target.kind
        if kind in built:
            continue
        spec = PROVIDERS[kind]
        if spec not in by_factory:
            module, _, attr = spec.partition(":")
            cls_name, _, method = attr.partition(".")
            try:
                cls = load(f"{module}:{cls_name}", f"target kind {kind!r}")
            except NotAvailable as exc:
                raise ProviderUnavailable(f"pools[{i}].target: {exc}") from None
            by_factory[spec] = getattr(cls, method)(config, clock)
        built[kind] = by_factory[spec]
    return built


__all__ = [
    "PROVIDERS",
    "CapacityProvider",
    "SimulatedProvider",
    "build_providers",
]
