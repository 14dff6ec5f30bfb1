"""A pool's EC2 instances as plain values, and the order in which scale-in picks them.

Scale-in order (documented in docs/aws.md, shared in spirit with the simulated provider):
1. instances not yet running (`pending`): no work has reached them yet;
2. then by idleness where the workload reports it (the `<prefix>/busy` tag, 0..1): the
   least busy first; an instance without the tag counts as fully busy;
3. then the newest first: the oldest have warm caches and the longest-running work.

Pure: parses DescribeInstances items and sorts; it must never call AWS.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from autoscaler.clients.aws import Ownership, tags_of
from autoscaler.types import Member

from .aws_offerings import Offering
from .base import parse_busy

ACTIVE_STATES = ("pending", "running")
WARM_STATES = ("stopping", "stopped")
GONE_STATES = ("shutting-down", "terminated")



@dataclass(frozen=True, slots=True)
class Instance:
    """One EC2 instance as the provider needs it."""

    id: str
    state: str
    instance_type: str
    subnet: str | None
    market: str  # "spot" or "on-demand"
    launched_at: float
    tags: Mapping[str, str] = field(default_factory=dict)
    busy: float | None = None

    @classmethod
    def from_api(cls, item: Mapping[str, Any], ownership: Ownership) -> Instance:
        tags = tags_of(item)
        launched = item.get("LaunchTime")
        return cls(
            id=str(item["InstanceId"]),
            state=str(item.get("State", {}).get("Name", "unknown")),
            instance_type=str(item.get("InstanceType", "")),
            subnet=item.get("SubnetId"),
            market="spot" if item.get("InstanceLifecycle") == "spot" else "on-demand",
            launched_at=launched.timestamp() if isinstance(launched, datetime) else 0.0,
            tags=tags,
            busy=parse_busy(tags.get(ownership.busy_key)),
        )

    def offering(self, region: str | None) -> Offering:
        return Offering(region, self.instance_type, self.subnet, self.market)

    def member(self) -> Member:
        return Member(self.id, self.state == "running", self.launched_at, self.busy)


def scale_in_order(instances: Iterable[Instance]) -> list[Instance]:
    """Instances in the order scale-in removes them (see the module docstring)."""

    def key(instance: Instance) -> tuple[int, float, float]:
        started = 0 if instance.state == "pending" else 1
        busy = 1.0 if instance.busy is None else instance.busy
        return (started, busy, -instance.launched_at)

    return sorted(instances, key=key)


@dataclass(frozen=True, slots=True)
class Inventory:
    """A pool's owned instances by what they mean for capacity."""

    active: tuple[Instance, ...] = ()
    """pending or running: the pool's members."""
    stopped: tuple[Instance, ...] = ()
    """the warm pool: started again before anything new is launched."""
    stopping: tuple[Instance, ...] = ()

    @classmethod
    def of(cls, instances: Sequence[Instance]) -> Inventory:
        return cls(
            active=tuple(i for i in instances if i.state in ACTIVE_STATES),
            stopped=tuple(i for i in instances if i.state == "stopped"),
            stopping=tuple(i for i in instances if i.state == "stopping"),
        )

    @property
    def everything(self) -> tuple[Instance, ...]:
        return self.active + self.stopped + self.stopping
