"""The provisioner's tick against moto's EC2 server and an in-memory Kubernetes API: the fast
companion of test_nodes_provisioning.py (which runs the real API server and scheduler).
Here the fake API lets a test script the cluster exactly: a failed list, a 429 eviction."""

from __future__ import annotations

import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from kubernetes import client as k
from kubernetes.client.exceptions import ApiException

from autoscaler.clients.aws import Ownership
from autoscaler.clock import FakeClock
from autoscaler.config.nodes import NodeProvisioning
from autoscaler.nodes import NodeProvisioner
from autoscaler.providers.aws_ec2 import Ec2Provider

OWNER = "fake-test"
PREFIX = "elastic-autoscaler.io"


class FakeCore:
    """Nodes and pods in memory, with the calls the provisioner makes."""

    def __init__(self) -> None:
        self.nodes: dict[str, Any] = {}
        self.pods: list[Any] = []
        self.fail_lists = False
        self.evictions: list[str] = []
        self.pdb_blocks: set[str] = set()

    def list_node(self) -> Any:
        if self.fail_lists:
            raise ApiException(status=500, reason="etcd is sad")
        return SimpleNamespace(items=list(self.nodes.values()))

    def list_pod_for_all_namespaces(self, field_selector: str = "") -> Any:
        return SimpleNamespace(items=list(self.pods))

    def read_node(self, name: str) -> Any:
        return self.nodes[name]

    def patch_node(self, name: str, body: dict[str, Any]) -> None:
        node = self.nodes[name]
        labels = body.get("metadata", {}).get("labels")
        if labels:
            node.metadata.labels = {**(node.metadata.labels or {}), **labels}
        spec = body.get("spec", {})
        if "unschedulable" in spec:
            node.spec.unschedulable = spec["unschedulable"]
        if "taints" in spec:
            node.spec.taints = [k.V1Taint(**t) for t in spec["taints"]] or None

    def create_namespaced_pod_eviction(self, name: str, namespace: str, body: Any) -> None:
        if name in self.pdb_blocks:
            raise ApiException(status=429, reason="Too Many Requests")
        self.evictions.append(name)
        self.pods = [p for p in self.pods if p.metadata.name != name]

    def delete_node(self, name: str) -> None:
        self.nodes.pop(name, None)

    # -- test helpers --
    def register(self, instance_id: str, gpus: str | None = "1") -> None:
        alloc = {"cpu": "4", "memory": "16Gi", **({"nvidia.com/gpu": gpus} if gpus else {})}
        self.nodes[instance_id] = k.V1Node(
            metadata=k.V1ObjectMeta(name=instance_id, labels={}),
            spec=k.V1NodeSpec(provider_id=f"aws:///us-east-1a/{instance_id}"),
            status=k.V1NodeStatus(
                allocatable=alloc, conditions=[k.V1NodeCondition(type="Ready", status="True")]
            ),
        )


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
) -> Iterator[tuple[NodeProvisioner, FakeCore, FakeClock, Any]]:
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
    core = FakeCore()
    provisioner.core = core
    provisioner.drainer.core = core
    yield provisioner, core, clock, ec2


def live(ec2: Any) -> list[str]:
    found = ec2.describe_instances(
        Filters=[{"Name": "instance-state-name", "Values": ["pending", "running"]}]
    )
    return [i["InstanceId"] for r in found["Reservations"] for i in r["Instances"]]


def test_launches_once_counts_gpu_less_nodes_in_flight_and_respects_max_nodes(world: Any) -> None:
    provisioner, core, clock, ec2 = world
    core.pods = [gpu_pod(f"p{i}") for i in range(5)]
    first = provisioner.tick()
    assert first.launched == {"g6.xlarge": 3}
    assert len(first.unplaced) == 2 and all("max_nodes" in w for w in first.unplaced.values())
    ids = live(ec2)
    assert len(ids) == 3
    # One registers without its GPUs yet: still in flight, and nothing more is launched.
    core.register(ids[0], gpus=None)
    second = provisioner.tick()
    assert not second.launched and ids[0] in second.in_flight and not second.ready
    assert second.covered == 3


def test_a_failed_read_launches_and_drains_nothing(world: Any) -> None:
    provisioner, core, clock, ec2 = world
    core.pods = [gpu_pod("p0")]
    core.fail_lists = True
    result = provisioner.tick()
    assert result.errors and "nothing launched or drained" in result.errors[0]
    assert not live(ec2)


def test_empty_node_is_drained_past_ttl_and_a_pdb_429_holds_it(world: Any) -> None:
    provisioner, core, clock, ec2 = world
    core.pods = [gpu_pod("p0")]
    assert provisioner.tick().launched == {"g6.xlarge": 1}
    (iid,) = live(ec2)
    core.register(iid)
    core.pods = []
    provisioner.tick()
    clock.advance(61)
    assert provisioner.tick().cordoned == [iid]
    core.pods = [gpu_pod("late", node=iid)]  # bound before the cordon took effect
    core.pdb_blocks.add("late")
    held = provisioner.tick()
    assert "PodDisruptionBudget" in held.held[iid] and not held.terminated
    assert live(ec2) == [iid]
    core.pdb_blocks.clear()
    assert provisioner.tick().evicted == ["ns/late"]
    assert provisioner.tick().terminated == [iid]
    assert not live(ec2) and iid not in core.nodes


def test_do_not_disrupt_blocks_the_cordon(world: Any) -> None:
    provisioner, core, clock, ec2 = world
    core.pods = [gpu_pod("p0")]
    provisioner.tick()
    (iid,) = live(ec2)
    core.register(iid)
    # A DaemonSet pod is no workload, but its annotation still says "leave my node".
    keeper = gpu_pod("keeper", node=iid, annotations={f"{PREFIX}/do-not-disrupt": "true"})
    keeper.status.phase = "Running"
    keeper.metadata.owner_references = [
        k.V1OwnerReference(api_version="apps/v1", kind="DaemonSet", name="ds", uid="u")
    ]
    core.pods = [keeper]
    provisioner.tick()
    clock.advance(3600)
    result = provisioner.tick()
    assert not result.cordoned and "do-not-disrupt" in result.held[iid]
    assert live(ec2) == [iid]


def test_foreign_instances_and_nodes_are_never_touched(world: Any) -> None:
    provisioner, core, clock, ec2 = world
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
    core.register(foreign)
    for _ in range(3):
        result = provisioner.tick()
        clock.advance(600)
        assert not result.in_flight and not result.ready and not result.cordoned
    assert live(ec2) == [foreign]
    assert not core.nodes[foreign].spec.unschedulable
    assert core.nodes[foreign].metadata.labels == {}


def test_an_instance_that_never_registers_is_terminated_but_a_flapping_node_is_not(
    world: Any,
) -> None:
    provisioner, core, clock, ec2 = world
    core.pods = [gpu_pod("p0"), gpu_pod("p1")]
    provisioner.tick()
    stuck, flapping = live(ec2)
    core.register(flapping)
    core.pods = [gpu_pod("w", node=flapping)]
    assert provisioner.tick().ready == [flapping]
    core.nodes[flapping].status.conditions[0].status = "False"  # the kubelet restarts
    clock.advance(1200)  # past registration_timeout (900 s) counted from EC2's LaunchTime
    result = provisioner.tick()
    assert result.terminated == [stuck]
    assert live(ec2) == [flapping]
