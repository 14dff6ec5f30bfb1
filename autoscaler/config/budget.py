"""Spending caps: a pool's or the installation's budget, and what one replica costs.

Configuration only (no I/O). The controller enforces budgets with `autoscaler.budgets`:
a budget caps scale-ups, never scales anything down (see docs/budgets.md).

A replica's price (dollars per hour) is the pool's `cost_per_hour`; else, for an `ec2`
target, the dearest of its instance types (a configured `price` or `spot_price`, else the
built-in catalog's); else the simulator's `simulation.cost_per_hour`. Its GPUs likewise:
`gpus_per_replica`, else the most GPUs of its catalog instance types, else the simulator's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from .catalog import CATALOG
from .formats import MAX_COST_PER_HOUR, MAX_GPUS, MAX_REPLICAS, real_number, whole_number

if TYPE_CHECKING:
    from .models import Pool

MAX_PRIORITY = 1_000_000_000
"""Priorities run from -1e9 to 1e9, as Kubernetes PriorityClass values for users do."""
MAX_BUDGET_PER_HOUR = MAX_COST_PER_HOUR * MAX_REPLICAS
"""The most a budget may allow per hour: every replica of a pool at the dearest price."""
MAX_GPU_HOURS_PER_DAY = float(MAX_GPUS * MAX_REPLICAS * 24)
"""The most GPU-hours a day a budget may allow: every GPU of a full pool all day."""
MAX_GPU_HOURS_TOTAL = MAX_GPU_HOURS_PER_DAY * 3660
"""The most GPU-hours a lifetime budget may allow: ten years of a full pool."""

DollarsPerHour = Annotated[float, Field(ge=0, le=MAX_BUDGET_PER_HOUR), BeforeValidator(real_number)]
GpuHours = Annotated[float, Field(ge=0, le=MAX_GPU_HOURS_PER_DAY), BeforeValidator(real_number)]
GpuHoursTotal = Annotated[float, Field(ge=0, le=MAX_GPU_HOURS_TOTAL), BeforeValidator(real_number)]
ReplicaPrice = Annotated[float, Field(ge=0, le=MAX_COST_PER_HOUR), BeforeValidator(real_number)]
ReplicaGpus = Annotated[int, Field(ge=0, le=MAX_GPUS), BeforeValidator(whole_number)]
Priority = Annotated[int, Field(ge=-MAX_PRIORITY, le=MAX_PRIORITY), BeforeValidator(whole_number)]


class Budget(BaseModel):
    """A cap on spending: dollars per hour of the capacity running (or asked for) now,
    GPU-hours per UTC day, and GPU-hours ever (an experiment's budget). Scale-ups stop
    at it; nothing is scaled down for it."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    dollars_per_hour: DollarsPerHour | None = Field(
        None,
        description="most dollars (in the currency of `cost_per_hour`) per hour, summed "
        "over replicas x their price",
    )
    gpu_hours_per_day: GpuHours | None = Field(
        None,
        description="most GPU-hours per UTC day; a scale-up is allowed while the GPU-hours "
        "left today cover the new capacity for the next hour (or until midnight)",
    )
    gpu_hours_total: GpuHoursTotal | None = Field(
        None,
        description="most GPU-hours ever (an experiment's budget; never resets, kept in the "
        "pool's persisted memory across restarts); a scale-up is allowed while the GPU-hours "
        "left cover the new capacity for the next hour; once spent, nothing new starts",
    )

    @model_validator(mode="after")
    def _something(self) -> Budget:
        if (
            self.dollars_per_hour is None
            and self.gpu_hours_per_day is None
            and self.gpu_hours_total is None
        ):
            raise ValueError(
                "set at least one of `dollars_per_hour`, `gpu_hours_per_day` and `gpu_hours_total`"
            )
        return self


def replica_price(pool: Pool) -> float | None:
    """Dollars per hour of one replica of `pool`; None when nothing says."""
    if pool.cost_per_hour is not None:
        return pool.cost_per_hour
    target = pool.target
    if target.kind == "ec2":
        prices = []
        for option in target.type_options:
            if target.market == "spot" and option.spot_price is not None:
                prices.append(option.spot_price)
            elif option.price is not None:
                prices.append(option.price)
            elif option.type in CATALOG:
                prices.append(CATALOG[option.type][3])
            else:
                return None  # one type of unknown price: the dearest is unknown
        return max(prices)
    if pool.simulation is not None:
        return pool.simulation.cost_per_hour
    return None


def replica_gpus(pool: Pool) -> int | None:
    """GPUs one replica of `pool` holds; None when nothing says."""
    if pool.gpus_per_replica is not None:
        return pool.gpus_per_replica
    target = pool.target
    if target.kind == "ec2":
        gpus = [CATALOG[o.type][0] for o in target.type_options if o.type in CATALOG]
        if len(gpus) == len(target.type_options):
            return max(gpus)
        return None
    if pool.simulation is not None:
        return pool.simulation.gpus_per_replica
    return None
