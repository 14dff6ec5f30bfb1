"""Gang admission end to end (docs/nodes.md, Gangs): the real API server, controller
manager (the Job controller) and scheduler, kwok nodes; EC2 in moto behind the
fault-injecting proxy; the node shim booting instances (test_nodes_gangs.py's rig).

Two suspended 4-pod x 8-GPU Indexed Jobs of the same instance type, labelled for gang
admission, with max_nodes 4: the first gets four nodes and is unsuspended once they are
Ready, and runs whole; the second stays suspended (no pods, no node, nothing partial) until
the first is done and its nodes are free, then is unsuspended onto them and runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from autoscaler.nodes import NodeProvisioner
from autoscaler.providers.aws_ec2 import Ec2Provider
from tests.cluster.wait import wait_for
from tests.kube.test_nodes_gangs import (  # noqa: F401  (fixtures)
    BIG,
    PREFIX,
    Rig,
    faulty,
    indexed_job,
    moto_endpoint,
    rig,
)

pytestmark = pytest.mark.kube

ADMISSION = f"{PREFIX}/gang-admission"


def suspended_job(name: str, owner: str) -> Any:
    body = indexed_job(name, owner, 4, kind=BIG)
    body["metadata"]["labels"] = {ADMISSION: "true"}
    body["spec"]["suspend"] = True
    return body


@pytest.fixture
def four(rig: Rig, kube_api: Any) -> Iterator[Rig]:  # noqa: F811
    """The rig with max_nodes 4: room for one gang of four 8-GPU pods at a time."""
    assert rig.provisioner is not None
    config = rig.provisioner.config.model_copy(update={"max_nodes": 4})
    provider = Ec2Provider(rig.provisioner.ec2.ownership, rig.clock)
    rig.provisioner = NodeProvisioner(config, kube_api, provider, rig.clock)
    yield rig


def suspended(r: Rig, name: str) -> bool:
    return bool(r.batch.read_namespaced_job(name, r.ns).spec.suspend)


def test_two_suspended_gangs_of_one_type_are_admitted_one_after_the_other(four: Rig) -> None:
    r = four
    r.batch.create_namespaced_job(r.ns, suspended_job("first", r.owner))
    r.batch.create_namespaced_job(r.ns, suspended_job("second", r.owner))
    first, second = f"{r.ns}/job/first", f"{r.ns}/job/second"
    tick = r.tick()
    # The first gang's nodes, all or nothing; nothing for the second (max_nodes is reached).
    assert tick.gangs_launched == {first: 4}, tick
    assert tick.gangs_admitted == []
    waits = {p for p, why in tick.unplaced.items() if "waits whole" in why}
    assert waits == {f"{r.ns}/second[{i}]" for i in range(4)}, tick.unplaced
    launched = {i["InstanceId"] for i in r.instances()}
    assert len(launched) == 4

    # Admitted once the four nodes are Ready; never a second launch meanwhile.
    def admitted() -> bool:
        result = r.tick()
        assert not result.launched, f"a second launch: {result}"
        assert second not in result.gangs_admitted
        assert not r.pods("first") or not suspended(r, "first")
        return first in result.gangs_admitted

    wait_for(admitted, timeout=60, what="the first gang admitted", describe=r.describe)
    assert not suspended(r, "first") and suspended(r, "second")
    assert r.pods("second") == []
    running = r.running("first", 4)
    assert {p.spec.node_name for p in running} <= launched

    # The second stays suspended, without a pod, until the first is done; then it is
    # admitted onto the same four nodes.
    def second_admitted() -> bool:
        result = r.tick()
        assert not result.launched, f"a launch for the second: {result}"
        if second not in result.gangs_admitted:
            assert suspended(r, "second") and r.pods("second") == []
            return False
        done = [p for p in r.pods("first") if p.status.phase == "Succeeded"]
        assert len(done) == 4, "admitted while the first still held its nodes"
        return True

    wait_for(second_admitted, timeout=90, what="the second gang admitted", describe=r.describe)
    running = r.running("second", 4)
    assert {p.spec.node_name for p in running} <= launched
    assert len(r.instances()) == 4
