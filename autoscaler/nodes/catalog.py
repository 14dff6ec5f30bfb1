"""What an EC2 GPU instance type offers, in the units packing uses (millicores, bytes).

The built-in table (`CATALOG`, in autoscaler.config.catalog so that validating a config
needs nothing from this package) has the usual NVIDIA types; a config entry's fields
override it. The configuration refuses a type the table lacks unless it is written as EC2
names types and the entry gives its fields, offering the closest known type
(`did_you_mean`). Pure data: this module must never call AWS.
"""

from __future__ import annotations

from dataclasses import dataclass

from autoscaler.config.formats import did_you_mean
from autoscaler.config.nodes import CATALOG, NodeInstanceType, instance_type_fields

GIB = 1024**3


@dataclass(frozen=True, slots=True)
class InstanceSpec:
    """One instance type as the packer sees it."""

    name: str
    gpus: int
    cpu_millis: int
    memory_bytes: int
    price: float
    """USD per hour."""

    @property
    def price_per_gpu(self) -> float:
        return self.price / self.gpus if self.gpus else float("inf")


def resolve(entry: str | NodeInstanceType) -> InstanceSpec:
    """The spec of a config entry: the catalog's, with the entry's fields on top.

    Raises ValueError naming the type and the missing fields when neither gives them.
    """
    name, gpus, cpu, memory_gib, price = instance_type_fields(entry)
    return InstanceSpec(name, gpus, round(cpu * 1000), round(memory_gib * GIB), price)


__all__ = ["CATALOG", "GIB", "InstanceSpec", "did_you_mean", "resolve"]
