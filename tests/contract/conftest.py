"""The providers the contract suite runs against, one factory each.

To put another provider under the contract, register a factory that yields a `Subject`:

    @subject("deployment", marks=[pytest.mark.kube])
    def deployment(request: pytest.FixtureRequest) -> Iterator[Subject]:
        cluster = request.getfixturevalue("kube_cluster")   # any fixture it needs
        ...
        yield Subject(provider, pool, settle=..., restart=...)

`settle()` lets starting members become ready (advance a fake clock, wait for pods);
`restart()`, where the provider's world outlives it, builds a fresh provider on the same
world, as a restarted controller would. Test-only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from moto import mock_aws

from autoscaler.clients.aws import Ownership
from autoscaler.clock import FakeClock
from autoscaler.config import Pool
from autoscaler.providers.aws_asg import AsgProvider
from autoscaler.providers.aws_ec2 import Ec2Provider
from autoscaler.providers.base import CapacityProvider
from autoscaler.providers.simulated import SimulatedProvider
from tests.aws.helpers import (
    INSTALLATION,
    PREFIX,
    REGION,
    config,
    ec2_pool,
    make_group,
    make_world,
    pool_dict,
    use_dummy_credentials,
)


@dataclass
class Subject:
    """A provider under the contract, with a pool it may scale between 0 and 5."""

    provider: CapacityProvider
    pool: Pool
    settle: Callable[[], None] = lambda: None
    restart: Callable[[], CapacityProvider] | None = None


Factory = Callable[[pytest.FixtureRequest], Iterator[Subject]]


@dataclass(frozen=True)
class _Registered:
    factory: Factory
    marks: tuple[Any, ...]


SUBJECTS: dict[str, _Registered] = {}


def subject(name: str, marks: list[Any] | None = None) -> Callable[[Factory], Factory]:
    """Register a provider factory under `name` for the contract suite."""

    def register(factory: Factory) -> Factory:
        SUBJECTS[name] = _Registered(factory, tuple(marks or ()))
        return factory

    return register


@subject("simulated")
def simulated(request: pytest.FixtureRequest) -> Iterator[Subject]:
    clock = FakeClock(0.0)
    pool = config(pool_dict("sim", {"kind": "simulated"}, max=5)).pools[0]
    pool = pool.model_copy(update={"startup": 30.0})
    yield Subject(SimulatedProvider(clock), pool, settle=lambda: clock.advance(30.0))


@contextmanager
def _aws(request: pytest.FixtureRequest) -> Iterator[None]:
    monkeypatch = request.getfixturevalue("monkeypatch")
    base = request.getfixturevalue("tmp_path")
    use_dummy_credentials(monkeypatch, str(base / "no-aws-config"))
    with mock_aws():
        yield


@subject("ec2", marks=[pytest.mark.aws])
def ec2(request: pytest.FixtureRequest) -> Iterator[Subject]:
    with _aws(request):
        pool = ec2_pool("gpu", make_world(), max=5)
        ownership = Ownership(INSTALLATION, PREFIX)
        yield Subject(
            Ec2Provider(ownership, FakeClock()),
            pool,
            restart=lambda: Ec2Provider(ownership, FakeClock()),
        )


@subject("asg", marks=[pytest.mark.aws])
def asg(request: pytest.FixtureRequest) -> Iterator[Subject]:
    with _aws(request):
        make_group("contract-asg", make_world(), max=5)
        target = {"kind": "asg", "name": "contract-asg", "region": REGION}
        pool = config(pool_dict("workers", target, max=5)).pools[0]
        ownership = Ownership(INSTALLATION, PREFIX)
        yield Subject(
            AsgProvider(ownership, FakeClock()),
            pool,
            restart=lambda: AsgProvider(ownership, FakeClock()),
        )


@pytest.fixture(params=[pytest.param(name, marks=r.marks) for name, r in SUBJECTS.items()])
def contract_subject(request: pytest.FixtureRequest) -> Iterator[Subject]:
    yield from SUBJECTS[request.param].factory(request)
