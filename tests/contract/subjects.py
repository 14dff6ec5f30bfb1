"""The registry of providers under the contract: `Subject`, `Traits` and `@subject`.

A factory registered with `@subject(name, marks=..., traits=...)` yields a `Subject` (the
provider, a pool it may scale between 0 and 5, and the steps only its world can take).
`Traits` declare, at registration and so at collection time, where a kind of pool cannot
meet a clause as written and what the contract checks for it instead; every departure from
the defaults is explained by a comment where the subject is registered. Nothing in the suite
is skipped for a kind: a clause either runs for it, or its declared counterpart does.
Test-only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from autoscaler.config import Pool
from autoscaler.providers.base import CapacityProvider


@dataclass(frozen=True)
class Traits:
    """How a kind of pool meets the contract. The defaults are the contract as written."""

    outlives_provider: bool = True
    """Its world (instances, groups, workloads) outlives the provider, so a restarted
    provider can be built on it (`Subject.restart`) and must not repeat applied requests."""

    ready_when_settled: bool = True
    """Its members become ready and stay members once `settle` has run. False: a member that
    runs finishes by itself and stops being capacity, so the contract's world keeps members
    from running, and checks the count without readiness."""

    scale_in_ends_members: bool = True
    """Scale-in ends members. False: scale-in only stops creating, running members are never
    ended; the pool comes down as they finish by themselves (`Subject.finish`)."""

    removes_members: bool = True
    """`remove` takes named members (those `Subject.removable` picks) and lowers the count."""

    refuses_some_removals: bool = False
    """Some members must not be removed (`Subject.unremovable` names one): `remove` refuses
    them with code Unsupported and removes nothing."""


def _middle(members: Sequence[str], count: int) -> list[str]:
    """Members to remove where any may go: neither the first nor the last."""
    return list(members[1 : 1 + count])


@dataclass
class Subject:
    """A provider under the contract, with a pool it may scale between 0 and 5.

    `settle()` lets starting members start (advances a fake clock, waits for pods) and
    scale-in finish; `restart()` builds a fresh provider on the same world, as a restarted
    controller would; `finish()` lets every member finish by itself and waits until it has
    (kinds whose scale-in ends no member); `removable(ids, n)` picks `n` members that
    `remove` may take; `unremovable(ids)` names members it must refuse."""

    provider: CapacityProvider
    pool: Pool
    settle: Callable[[], None] = lambda: None
    restart: Callable[[], CapacityProvider] | None = None
    finish: Callable[[], None] | None = None
    removable: Callable[[Sequence[str], int], list[str]] = _middle
    unremovable: Callable[[Sequence[str]], list[str]] | None = None
    traits: Traits = field(default_factory=Traits)


Factory = Callable[[pytest.FixtureRequest], Iterator[Subject]]


@dataclass(frozen=True)
class Registered:
    factory: Factory
    marks: tuple[Any, ...]
    traits: Traits


SUBJECTS: dict[str, Registered] = {}


def subject(
    name: str, marks: list[Any] | None = None, traits: Traits | None = None
) -> Callable[[Factory], Factory]:
    """Register a provider factory under `name` for the contract suite."""
    declared = traits or Traits()
    if not (declared.removes_members or declared.refuses_some_removals):
        raise ValueError(f"subject {name}: no remove clause would run for it; declare one")

    def register(factory: Factory) -> Factory:
        SUBJECTS[name] = Registered(factory, tuple(marks or ()), declared)
        return factory

    return register


def params(where: Callable[[Traits], bool] = lambda t: True) -> list[Any]:
    """The registered subjects whose traits satisfy `where`, as fixture params."""
    return [
        pytest.param(name, marks=r.marks, id=name)
        for name, r in SUBJECTS.items()
        if where(r.traits)
    ]


def build(request: pytest.FixtureRequest) -> Iterator[Subject]:
    """Run the factory registered under `request.param`; check the Subject can take the
    steps its traits promise, and stamp the traits on it."""
    registered = SUBJECTS[request.param]
    traits = registered.traits
    for made in registered.factory(request):
        missing = [
            step
            for step, needed, given in (
                ("restart", traits.outlives_provider, made.restart),
                ("finish", not traits.scale_in_ends_members, made.finish),
                ("unremovable", traits.refuses_some_removals, made.unremovable),
            )
            if needed and given is None
        ]
        if missing:
            raise AssertionError(
                f"subject {request.param}: its traits need {', '.join(missing)}, not given"
            )
        made.traits = traits
        yield made
