"""Offerings — instance type x subnet x market — in the order a pool tries them, and the
cache of offerings that recently ran out of capacity.

Karpenter's unavailable-offerings cache is the model: after InsufficientInstanceCapacity
an offering is hidden for a few minutes, so the next launch goes straight to one that may
work instead of asking for the same empty pool every tick. Some errors say more than "this
offering": a full subnet hides that subnet for every type, an instance-count limit hides
that type in every subnet, the account's spot limit hides the whole spot market.

Pure ordering and a clock-based cache: this module must never call AWS and never read the
wall clock (the cache takes the injected Clock, so tests move time with FakeClock).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

from autoscaler.clock import Clock
from autoscaler.config.targets import Ec2Target

ANY = "*"

SCOPES = {
    "InsufficientFreeAddressesInSubnet": "subnet",
    "InstanceLimitExceeded": "type",
    "VcpuLimitExceeded": "type",
    "MaxSpotInstanceCountExceeded": "market",
}
"""What a capacity error hides besides the offering itself; others hide only the offering."""


@dataclass(frozen=True, slots=True)
class Offering:
    """One place an instance can be launched: a type, a subnet (None: any) and a market."""

    region: str | None
    instance_type: str
    subnet: str | None
    market: str  # "spot" or "on-demand"

    def __str__(self) -> str:
        return f"{self.instance_type}/{self.subnet or 'any-subnet'}/{self.market}"


def markets(target: Ec2Target) -> list[str]:
    """The markets a target launches in, in the order tried."""
    return {"spot": ["spot"], "on-demand": ["on-demand"]}.get(target.market, ["spot", "on-demand"])


def offerings(target: Ec2Target) -> list[Offering]:
    """Every offering of an EC2 target, in the order tried.

    Markets outermost (spot-then-on-demand tries every spot offering before paying for
    on-demand), then instance types (a type's priority matters more than its subnet's),
    then subnets. With `order: cheapest` the types of each market are sorted by that
    market's configured price; ties keep the configured order.
    """
    subnets: Sequence[str | None] = target.subnets or [None]
    out: list[Offering] = []
    for market in markets(target):
        types = list(enumerate(target.type_options))
        if target.order == "cheapest":
            field = "spot_price" if market == "spot" else "price"
            types.sort(key=lambda it: (getattr(it[1], field), it[0]))
        for _, option in types:
            out.extend(Offering(target.region, option.type, s, market) for s in subnets)
    return out


def _keys(offering: Offering) -> tuple[tuple[str | None, str, str, str], ...]:
    region, kind, subnet, market = (
        offering.region,
        offering.instance_type,
        offering.subnet or ANY,
        offering.market,
    )
    return (
        (region, kind, subnet, market),
        (region, ANY, subnet, ANY),
        (region, kind, ANY, market),
        (region, ANY, ANY, market),
    )


def _key_for(offering: Offering, code: str) -> tuple[str | None, str, str, str]:
    scope = SCOPES.get(code, "offering")
    index = {"offering": 0, "subnet": 1, "type": 2, "market": 3}[scope]
    return _keys(offering)[index]


@dataclass(frozen=True, slots=True)
class Unavailable:
    """Why an offering is skipped, and until when (clock seconds)."""

    code: str
    until: float


class UnavailableOfferings:
    """Offerings that failed for capacity, hidden until their time is up. Thread-safe."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._entries: dict[tuple[str | None, str, str, str], Unavailable] = {}
        self._lock = threading.Lock()

    def mark(self, offering: Offering, code: str, seconds: float) -> None:
        """Hide `offering` (or the wider scope `code` implies) for `seconds`."""
        if seconds <= 0:
            return
        entry = Unavailable(code, self._clock.now() + seconds)
        with self._lock:
            self._entries[_key_for(offering, code)] = entry

    def get(self, offering: Offering) -> Unavailable | None:
        """Why `offering` is hidden now, or None if it may be tried."""
        now = self._clock.now()
        with self._lock:
            for key in _keys(offering):
                entry = self._entries.get(key)
                if entry is None:
                    continue
                if entry.until <= now:
                    del self._entries[key]
                    continue
                return entry
        return None

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
