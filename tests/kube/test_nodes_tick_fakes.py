"""The provisioner's tick against moto's EC2 server and an in-memory Kubernetes API: the fast
companion of test_nodes_provisioning.py (which runs the real API server and scheduler).
Here the fake API lets a test script the cluster exactly: a failed list, a 429 eviction."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client as k

from autoscaler.clients.aws import Ownership
from autoscaler.clock import FakeClock
from autoscaler.config.nodes import NodeProvisioning
from autoscaler.nodes import NodeProvisioner
from autoscaler.providers.aws_ec2 import Ec2Provider
from tests.fakes.kube_api import FakeKube, api_error

OWNER = "fake-test"
PREFIX = "elastic-autoscaler.io"


def register(kube: FakeKube, instance_id: str, gpus: str | None = "1") -> None:
    alloc = {"cpu": "4", "memory": "16Gi", **({"nvidia.com/gpu": gpus} if gpus else {})}
    kube.add(k.V1Node(
        metadata=k.V1ObjectMeta(name=instance_id, labels={}),
        spec=k.V1NodeSpec(provider_id=f"aws:///us-east-1a/{instance_id}"),
        status=k.V1NodeStatus(
            allocatable=alloc, conditions=[k.V1NodeCondition(type="Ready", status="True")]
        ),
    ))


def set_pods(kube: FakeKube, *pods: Any) -> None:
    for name in kube.names("Pod", "ns"):
        kube.remove("Pod", name, "ns")
    kube.add(*pods)


def gpu_pod(name: str, node: str | None = None, annotations: dict[str, str] | None = None) -> Any:
    resources = k.V1ResourceRequirements(
        requests={"cpu": "1", "memory": "1Gi"}, limits={"nvidia.com/gpu": "1"}
    )
    pending = node is None
    return k.V1Pod(
        metadata=k.V1ObjectMeta(name=name, namespace="ns", annotations=annotations),
        spec=k.V1PodSpec(containers=[k.V1Container(name="m", resources=resources)], node_name=node),
        status=k.V1PodStatus(
            phase="Pending" if pending else "Running",
            conditions=[
                k.V1PodCondition(
                    type="PodScheduled",
                    status="False" if pending else "True",
                    reason="Unschedulable" if pending else None,
                )
            ],
        ),
    )


@pytest.fixture
def world(
    moto_endpoint: str, ec2: Any, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[NodeProvisioner, FakeKube, FakeClock, Any]]:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    clock = FakeClock(time.time())
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    config = NodeProvisioning(
        region="us-east-1",
        image_id=image,
        api="run-instances",
        instance_types=["g6.xlarge", "g6.12xlarge"],
        max_nodes=3,
        empty_node_ttl=60,
    )
    provisioner = NodeProvisioner(
        config, k.ApiClient(), Ec2Provider(Ownership(OWNER, PREFIX), clock), clock
    )
    kube = FakeKube(clock)
    provisioner.core = kube.core
    provisioner.drainer.core = kube.core
    yield provisioner, kube, clock, ec2


def live(ec2: Any) -> list[str]:
    found = ec2.describe_instances(
        Filters=[{"Name": "instance-state-name", "Values": ["pending", "running"]}]
    )
    return [i["InstanceId"] for r in found["Reservations"] for i in r["Instances"]]


def test_launches_once_counts_gpu_less_nodes_in_flight_and_respects_max_nodes(world: Any) -> None:
    provisioner, kube, clock, ec2 = world
    set_pods(kube, *(gpu_pod(f"p{i}") for i in range(5)))
    first = provisioner.tick()
    assert first.launched == {"g6.xlarge": 3}
    assert len(first.unplaced) == 2 and all("max_nodes" in w for w in first.unplaced.values())
    ids = live(ec2)
    assert len(ids) == 3
    # One registers without its GPUs yet: still in flight, and nothing more is launched.
    register(kube, ids[0], gpus=None)
    second = provisioner.tick()
    assert not second.launched and ids[0] in second.in_flight and not second.ready
    assert second.covered == 3


def test_a_failed_read_launches_and_drains_nothing(world: Any) -> None:
    provisioner, kube, clock, ec2 = world
    set_pods(kube, gpu_pod("p0"))
    kube.inject("list_node", error=api_error(500, "etcd is sad"))
    result = provisioner.tick()
    assert result.errors and "nothing launched or drained" in result.errors[0]
    assert not live(ec2)


def test_empty_node_is_drained_past_ttl_and_a_pdb_429_holds_it(world: Any) -> None:
    provisioner, kube, clock, ec2 = world
    set_pods(kube, gpu_pod("p0"))
    assert provisioner.tick().launched == {"g6.xlarge": 1}
    (iid,) = live(ec2)
    register(kube, iid)
    set_pods(kube)
    provisioner.tick()
    clock.advance(61)
    assert provisioner.tick().cordoned == [iid]
    set_pods(kube, gpu_pod("late", node=iid))  # bound before the cordon took effect
    blocked = api_error(429, "Too Many Requests")
    kube.inject("create_namespaced_pod_eviction", name="late", error=blocked)
    held = provisioner.tick()
    assert "PodDisruptionBudget" in held.held[iid] and not held.terminated
    assert live(ec2) == [iid]
    kube.clear_faults()
    assert provisioner.tick().evicted == ["ns/late"]
    assert provisioner.tick().terminated == [iid]
    assert not live(ec2) and iid not in kube.names("Node")


def test_do_not_disrupt_blocks_the_cordon(world: Any) -> None:
    provisioner, kube, clock, ec2 = world
    set_pods(kube, gpu_pod("p0"))
    provisioner.tick()
    (iid,) = live(ec2)
    register(kube, iid)
    # A DaemonSet pod is no workload, but its annotation still says "leave my node".
    keeper = gpu_pod("keeper", node=iid, annotations={f"{PREFIX}/do-not-disrupt": "true"})
    keeper.status.phase = "Running"
    keeper.metadata.owner_references = [
        k.V1OwnerReference(api_version="apps/v1", kind="DaemonSet", name="ds", uid="u")
    ]
    set_pods(kube, keeper)
    provisioner.tick()
    clock.advance(3600)
    result = provisioner.tick()
    assert not result.cordoned and "do-not-disrupt" in result.held[iid]
    assert live(ec2) == [iid]


def test_foreign_instances_and_nodes_are_never_touched(world: Any) -> None:
    provisioner, kube, clock, ec2 = world
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    foreign = ec2.run_instances(
        ImageId=image,
        InstanceType="g6.xlarge",
        MinCount=1,
        MaxCount=1,
        TagSpecifications=[
            {
                "ResourceType": "instance",
                "Tags": [
                    {"Key": f"{PREFIX}/owner", "Value": "someone-else"},
                    {"Key": f"{PREFIX}/pool", "Value": "gpu-nodes.g6.xlarge"},
                ],
            }
        ],
    )["Instances"][0]["InstanceId"]
    register(kube, foreign)
    for _ in range(3):
        result = provisioner.tick()
        clock.advance(600)
        assert not result.in_flight and not result.ready and not result.cordoned
    assert live(ec2) == [foreign]
    node = kube.get("Node", foreign)
    assert not node["spec"].get("unschedulable") and node["metadata"]["labels"] == {}


def test_an_instance_that_never_registers_is_terminated_but_a_flapping_node_is_not(
    world: Any,
) -> None:
    provisioner, kube, clock, ec2 = world
    set_pods(kube, gpu_pod("p0"), gpu_pod("p1"))
    provisioner.tick()
    stuck, flapping = live(ec2)
    register(kube, flapping)
    set_pods(kube, gpu_pod("w", node=flapping))
    assert provisioner.tick().ready == [flapping]
    not_ready = {"status": {"conditions": [{"type": "Ready", "status": "False"}]}}
    kube.edit("Node", flapping, not_ready)  # the kubelet restarts
    clock.advance(1200)  # past registration_timeout (900 s) counted from EC2's LaunchTime
    result = provisioner.tick()
    assert result.terminated == [stuck]
    assert live(ec2) == [flapping]
