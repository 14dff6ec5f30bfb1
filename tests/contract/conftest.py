"""The providers the contract suite runs against, one factory each: simulated, EC2 and Auto
Scaling (moto), Deployment, StatefulSet and Job (the test cluster, kwok running the pods).

To put another provider under the contract, register a factory that yields a `Subject`
(tests/contract/subjects.py):

    @subject("deployment", marks=[pytest.mark.kube], traits=Traits(...))
    def deployment(request: pytest.FixtureRequest) -> Iterator[Subject]:
        cluster = request.getfixturevalue("kube_cluster")   # any fixture it needs
        ...
        yield Subject(provider, pool, settle=..., restart=...)

Where a kind cannot meet a clause as written, its `Traits` say so and a comment here says
why; the clause's declared counterpart runs for it instead (nothing is skipped).
Test-only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pytest
from moto import mock_aws

from autoscaler.clients.aws import Ownership
from autoscaler.clock import FakeClock
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
from tests.kube.test_kube_jobs import job_template

from .kube_world import LABELS, NAME, JobWorld, WorkloadWorld, kube_pool, ordinal
from .subjects import Subject, Traits, build, params, subject


# The simulated provider's pools live in the provider object: there is no world to restart
# on, so the restart clause does not apply (a "restart" returning the same object would
# pass it without testing anything).
@subject("simulated", traits=Traits(outlives_provider=False))
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


class _Made:
    """Providers a kube factory built (the first and any restarts): closed afterwards, as
    they may hold watches."""

    def __init__(self, make: Callable[[], CapacityProvider]) -> None:
        self._make = make
        self.built: list[CapacityProvider] = []

    def __call__(self) -> CapacityProvider:
        self.built.append(self._make())
        return self.built[-1]

    def close(self) -> None:
        for provider in self.built:
            close = getattr(provider, "close", None)  # the contract checks it is there
            if callable(close):
                close()


def _kube(request: pytest.FixtureRequest) -> tuple[Any, Any, str]:
    """The cluster's ApiClient, CoreV1Api and a fresh namespace (kwok must run pods)."""
    request.getfixturevalue("kwok_cluster")
    return (
        request.getfixturevalue("kube_api"),
        request.getfixturevalue("core_v1"),
        request.getfixturevalue("kube_namespace"),
    )


def _workload(request: pytest.FixtureRequest, kind: str, traits: Traits) -> Iterator[Subject]:
    from autoscaler.providers.kube_workload import WorkloadProvider

    api, core_v1, namespace = _kube(request)
    world = WorkloadWorld(request.getfixturevalue("apps_v1"), core_v1, namespace, kind)
    made = _Made(lambda: WorkloadProvider(LABELS, api=api))
    target = {"kind": kind.lower(), "namespace": namespace, "name": NAME}
    ordinals: dict[str, Any] = {}
    if traits.refuses_some_removals:
        ordinals = {"removable": _highest_ordinals, "unremovable": _lowest_ordinal}
    try:
        yield Subject(made(), kube_pool(target), settle=world.settle, restart=made, **ordinals)
    finally:
        made.close()


@subject("deployment", marks=[pytest.mark.kube])
def deployment(request: pytest.FixtureRequest) -> Iterator[Subject]:
    yield from _workload(request, "Deployment", Traits())


def _highest_ordinals(members: Sequence[str], count: int) -> list[str]:
    return sorted(members, key=ordinal)[-count:]


def _lowest_ordinal(members: Sequence[str]) -> list[str]:
    return sorted(members, key=ordinal)[:1]


# A StatefulSet removes only its highest ordinals (its controller cannot delete a pod out of
# order and keep the rest): `remove` takes those, and refuses any other member.
STATEFULSET = Traits(refuses_some_removals=True)


@subject("statefulset", marks=[pytest.mark.kube], traits=STATEFULSET)
def statefulset(request: pytest.FixtureRequest) -> Iterator[Subject]:
    yield from _workload(request, "StatefulSet", STATEFULSET)


# A Job pool's members are active Jobs, which finish by themselves: kwok completes a Job's
# pod as soon as it runs, so a ready Job stops being capacity at once. Its world keeps pods
# Pending behind a gate node (members active, never ready), and `finish` opens the gate.
# Scale-in only stops creating: a running Job is never deleted, so the pool comes down as
# its Jobs finish; for the same reason `remove` refuses every member (a finished Job, the
# only kind it deletes, is no member).
JOB = Traits(
    ready_when_settled=False,
    scale_in_ends_members=False,
    removes_members=False,
    refuses_some_removals=True,
)


@subject("job", marks=[pytest.mark.kube], traits=JOB)
def job(request: pytest.FixtureRequest) -> Iterator[Subject]:
    from kubernetes import client

    from autoscaler.providers.kube_jobs import JobProvider

    api, core_v1, namespace = _kube(request)
    world = JobWorld(client.BatchV1Api(api), core_v1, namespace)
    made = _Made(lambda: JobProvider(LABELS, api=api))
    target = {"kind": "job", "namespace": namespace, "template": job_template(world.gate)}
    try:
        yield Subject(
            made(),
            kube_pool(target),
            settle=world.settle,
            restart=made,
            finish=world.finish,
            unremovable=lambda members: list(members[:1]),
        )
    finally:
        made.close()
        world.close_gate()


@pytest.fixture(params=params())
def contract_subject(request: pytest.FixtureRequest) -> Iterator[Subject]:
    """Every provider."""
    yield from build(request)


@pytest.fixture(params=params(lambda t: t.outlives_provider))
def restartable_subject(request: pytest.FixtureRequest) -> Iterator[Subject]:
    """Providers whose world outlives them."""
    yield from build(request)


@pytest.fixture(params=params(lambda t: t.removes_members))
def removing_subject(request: pytest.FixtureRequest) -> Iterator[Subject]:
    """Providers whose `remove` takes named members."""
    yield from build(request)


@pytest.fixture(params=params(lambda t: t.refuses_some_removals))
def refusing_subject(request: pytest.FixtureRequest) -> Iterator[Subject]:
    """Providers that must refuse to remove some members."""
    yield from build(request)
