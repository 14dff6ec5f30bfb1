"""Gangs end to end: the real API server, controller manager (the Job controller), scheduler
and kwok; EC2 in moto behind the fault-injecting proxy; the node shim booting instances.

A 4-pod x 8-GPU Indexed Job gets four nodes in one zone from one all-or-nothing CreateFleet
and runs; with capacity cut short, no instance is left behind and the gang waits whole,
then runs when capacity returns; of two gangs beyond max_nodes one runs whole while the
other waits whole, and gets its nodes once the first is done. kwok runs a Job's pods and
marks them Succeeded soon after, so "runs" is: every pod was bound to one of the gang's
nodes and started.
"""

from __future__ import annotations

import time
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client as k

from autoscaler.clients.aws import Ownership
from autoscaler.clock import FakeClock
from autoscaler.config.nodes import NodeProvisioning
from autoscaler.nodes import NodeProvisioner, NodeTickResult
from autoscaler.providers.aws_ec2 import Ec2Provider
from tests.aws.faults import Fault, FaultyMotoServer
from tests.cluster import nodes
from tests.cluster.node_shim import NodeShim
from tests.cluster.wait import wait_for

pytestmark = pytest.mark.kube

PREFIX = "elastic-autoscaler.io"
POOL_LABEL = "autoscaler-test/gpu-pool"
TYPE_LABEL = "node.kubernetes.io/instance-type"
TTL = 120.0
BIG = "g5.48xlarge"  # 8 GPUs
OTHER = "p5.48xlarge"  # 8 GPUs


@pytest.fixture
def faulty() -> Iterator[FaultyMotoServer]:
    server = FaultyMotoServer()
    server.start()
    try:
        yield server
    finally:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        reset = urllib.request.Request(f"{server.url}/moto-api/reset", method="POST")
        opener.open(reset, timeout=10)
        server.stop()


@pytest.fixture
def moto_endpoint(faulty: FaultyMotoServer) -> str:
    """Overrides the plain moto server: this one sits behind the fault injector."""
    return faulty.url


class Rig:
    def __init__(self, core: Any, batch: Any, ec2: Any, faults: FaultyMotoServer) -> None:
        self.core, self.batch, self.ec2, self.faults = core, batch, ec2, faults
        self.ns = ""
        self.owner = f"test-{uuid.uuid4().hex[:8]}"
        self.clock = FakeClock(time.time())
        self.provisioner: NodeProvisioner | None = None
        self.shim: NodeShim | None = None
        self.subnets: list[str] = []

    def tick(self, *, errors_ok: bool = False) -> NodeTickResult:
        assert self.provisioner is not None
        result = self.provisioner.tick()
        if not errors_ok:
            assert not result.errors, result.errors
        return result

    def pods(self, job: str) -> list[Any]:
        return list(
            self.core.list_namespaced_pod(
                self.ns, label_selector=f"batch.kubernetes.io/job-name={job}"
            ).items
        )

    def unschedulable(self, job: str, count: int) -> None:
        def check() -> bool:
            return (
                sum(
                    1
                    for p in self.pods(job)
                    if any(
                        c.type == "PodScheduled" and c.reason == "Unschedulable"
                        for c in p.status.conditions or ()
                    )
                )
                == count
            )

        wait_for(check, timeout=30, what=f"{count} pod(s) of {job} Unschedulable")

    def running(self, job: str, count: int) -> list[Any]:
        def check() -> list[Any]:
            result = self.tick()
            assert not result.launched, f"a second launch for the same pods: {result}"
            # kwok runs a Job's pods and then marks them Succeeded: either says it ran.
            found = [p for p in self.pods(job) if p.status.phase in ("Running", "Succeeded")]
            return found if len(found) == count else []

        return wait_for(
            check, timeout=60, what=f"{count} pod(s) of {job} Running", describe=self.describe
        )

    def describe(self) -> str:
        pods = [
            (p.metadata.name, p.status.phase, p.spec.node_name)
            for p in self.core.list_namespaced_pod(self.ns).items
        ]
        found = [
            (n.metadata.name, n.metadata.labels, n.status.allocatable, n.spec.taints)
            for n in self.core.list_node().items
        ]
        return f"pods {pods}; nodes {found}; shim errors {self.shim and self.shim.errors}"

    def instances(self, states: tuple[str, ...] = ("pending", "running")) -> list[dict[str, Any]]:
        out = []
        pages = self.ec2.get_paginator("describe_instances").paginate(
            Filters=[
                {"Name": "instance-state-name", "Values": list(states)},
                {"Name": f"tag:{PREFIX}/owner", "Values": [self.owner]},
            ]
        )
        for page in pages:
            for reservation in page["Reservations"]:
                out.extend(reservation["Instances"])
        return out


def indexed_job(name: str, owner: str, size: int, gpus: int = 8, kind: str = BIG) -> Any:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "completionMode": "Indexed",
            "completions": size,
            "parallelism": size,
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "nodeSelector": {POOL_LABEL: owner, TYPE_LABEL: kind},
                    "terminationGracePeriodSeconds": 0,
                    "containers": [
                        {
                            "name": "worker",
                            "image": "registry.k8s.io/pause:3.10",
                            "resources": {
                                "requests": {"cpu": "1", "memory": "1Gi"},
                                "limits": {nodes.GPU_RESOURCE: str(gpus)},
                            },
                        }
                    ],
                }
            },
        },
    }


@pytest.fixture
def rig(
    kwok_cluster: Any,
    kube_api: Any,
    core_v1: Any,
    kube_namespace: str,
    faulty: FaultyMotoServer,
    ec2: Any,
    moto_endpoint: str,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Rig]:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    r = Rig(core_v1, k.BatchV1Api(kube_api), ec2, faulty)
    r.ns = kube_namespace
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    for n, zone in enumerate(("us-east-1a", "us-east-1b")):
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{n}.0/24", AvailabilityZone=zone)
        r.subnets.append(subnet["Subnet"]["SubnetId"])
    ec2.create_launch_template(LaunchTemplateName="gpu-node", LaunchTemplateData={"ImageId": image})
    config = NodeProvisioning(
        region="us-east-1",
        launch_template="gpu-node",
        api="fleet",
        subnets=r.subnets,
        instance_types=[BIG, OTHER],
        max_nodes=6,
        empty_node_ttl=TTL,
        registration_timeout=24 * 3600,
        labels={POOL_LABEL: r.owner},
        namespaces=[kube_namespace],
        unavailable_for=180,
    )
    provider = Ec2Provider(Ownership(r.owner, PREFIX), r.clock)
    r.provisioner = NodeProvisioner(config, kube_api, provider, r.clock)
    r.shim = NodeShim(
        core_v1, ec2, installation_id=r.owner, join_delay=1.0, poll_interval=0.2
    ).start()
    yield r
    r.shim.stop(delete_nodes=True)
    assert not r.shim.errors, f"the node shim hit errors: {r.shim.errors!r}"


def zones(instances: list[dict[str, Any]]) -> set[str]:
    return {i["Placement"]["AvailabilityZone"] for i in instances}


def test_an_indexed_job_of_four_8_gpu_pods_gets_four_nodes_in_one_zone_and_runs(rig: Rig) -> None:
    r = rig
    r.batch.create_namespaced_job(r.ns, indexed_job("train", r.owner, 4))
    r.unschedulable("train", 4)
    first = r.tick()
    gang = f"{r.ns}/job/train"
    assert first.gangs_launched == {gang: 4}, first
    launched = r.instances()
    assert len(launched) == 4 and zones(launched) == {"us-east-1a"}
    assert {i["InstanceType"] for i in launched} == {BIG}
    [fleet] = r.faults.injector.calls_to("CreateFleet")
    assert fleet.params["OnDemandOptions.MinTargetCapacity"] == "4"
    running = r.running("train", 4)
    assert {p.spec.node_name for p in running} <= {i["InstanceId"] for i in launched}


def test_capacity_cut_short_leaves_nothing_behind_and_the_gang_runs_when_it_returns(
    rig: Rig,
) -> None:
    r = rig
    short = r.faults.injector.add(Fault("CreateFleet", instance_type=BIG, room=3))
    r.batch.create_namespaced_job(r.ns, indexed_job("train", r.owner, 4))
    r.unschedulable("train", 4)
    first = r.tick(errors_ok=True)
    assert first.gangs_launched == {}
    assert any("all or nothing" in e for e in first.errors), first.errors
    assert r.instances() == []  # the three that came back were terminated at once
    assert len(r.instances(("shutting-down", "terminated"))) == 3
    # While the type is short, the gang waits whole: nothing launched, all unplaced.
    waiting = r.tick()
    assert waiting.launched == {} and len(waiting.unplaced) == 4, waiting
    time.sleep(2)
    assert all(p.status.phase == "Pending" for p in r.pods("train"))
    # Past gang_timeout (600 s) it is reported: in the result, and as an Event on a pod.
    # (Its pods were created after the fake clock was set: a margin for that.)
    r.clock.advance(700)
    late = r.tick(errors_ok=True)  # the offerings' time is up: retried, short again
    gang = f"{r.ns}/job/train"
    assert set(late.gangs_timed_out) == {gang}, late
    assert late.gangs_launched == {} and r.instances() == []
    reasons = [e.reason for e in r.core.list_namespaced_event(r.ns).items]
    assert "GangTimedOut" in reasons
    # Capacity returns.
    r.faults.injector.faults.remove(short)
    r.clock.advance(181)
    back = r.tick()
    assert back.gangs_launched == {f"{r.ns}/job/train": 4}, back
    assert len(r.instances()) == 4 and len(zones(r.instances())) == 1
    r.running("train", 4)


def test_two_gangs_beyond_max_nodes_one_runs_whole_the_other_waits_whole(rig: Rig) -> None:
    r = rig
    r.batch.create_namespaced_job(r.ns, indexed_job("first", r.owner, 4, kind=BIG))
    r.unschedulable("first", 4)
    r.batch.create_namespaced_job(r.ns, indexed_job("second", r.owner, 4, kind=OTHER))
    r.unschedulable("second", 4)
    tick = r.tick()
    assert tick.gangs_launched == {f"{r.ns}/job/first": 4}, tick
    waits = {p for p, why in tick.unplaced.items() if "waits whole" in why}
    assert waits == {f"{r.ns}/{p.metadata.name}" for p in r.pods("second")}
    r.running("first", 4)
    assert len(r.instances()) == 4  # not one node for the second gang
    assert all(p.status.phase == "Pending" for p in r.pods("second"))
    # The first is done: its nodes empty, go after the TTL, and the second gets its four.
    r.batch.delete_namespaced_job(
        "first", r.ns, body=k.V1DeleteOptions(propagation_policy="Foreground")
    )
    wait_for(lambda: not r.pods("first"), timeout=60, what="the first gang's pods gone")
    r.tick()
    r.clock.advance(TTL + 1)
    assert len(r.tick().cordoned) == 4
    assert len(r.tick().terminated) == 4
    after = r.tick()
    assert after.gangs_launched == {f"{r.ns}/job/second": 4}, after
    r.running("second", 4)
