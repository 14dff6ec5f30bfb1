"""The node shim against moto's EC2 (over HTTP) and the real API server: owned instances become
Ready kwok Nodes after the join delay and leave when terminated; others never get a Node."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from tests.cluster import nodes
from tests.cluster.node_shim import NodeShim
from tests.cluster.wait import wait_for

pytestmark = pytest.mark.kube

OWNER_TAG = "elastic-autoscaler.io/owner"
JOIN_DELAY = 2.0


def an_image(ec2: Any) -> str:
    images = ec2.describe_images(Owners=["amazon"])["Images"]
    assert images, "moto serves no AMIs"
    return str(images[0]["ImageId"])


def launch(ec2: Any, instance_type: str, tags: dict[str, str], zone: str = "us-east-1b") -> str:
    spec: dict[str, Any] = {
        "ImageId": an_image(ec2),
        "InstanceType": instance_type,
        "MinCount": 1,
        "MaxCount": 1,
        "Placement": {"AvailabilityZone": zone},
    }
    if tags:
        spec["TagSpecifications"] = [
            {"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}
        ]
    return str(ec2.run_instances(**spec)["Instances"][0]["InstanceId"])


def node_exists(core_v1: Any, name: str) -> bool:
    return name in {n.metadata.name for n in core_v1.list_node().items}


@pytest.fixture
def installation() -> str:
    return f"test-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def shim(kwok_cluster: Any, core_v1: Any, ec2: Any, installation: str) -> Any:
    with NodeShim(
        core_v1, ec2, installation_id=installation, join_delay=JOIN_DELAY, poll_interval=0.2
    ) as running:
        yield running
    assert not running.errors, f"the node shim hit errors: {running.errors!r}"


def test_an_owned_instance_becomes_a_ready_gpu_node_after_the_delay_and_goes_when_terminated(
    shim: NodeShim, core_v1: Any, ec2: Any, installation: str, kube_namespace: str
) -> None:
    launched = time.monotonic()
    iid = launch(
        ec2,
        "g5.12xlarge",
        {OWNER_TAG: installation, "elastic-autoscaler.io/pool": "llm-chat"},
    )
    time.sleep(JOIN_DELAY / 4)
    assert not node_exists(core_v1, iid), "the node joined before the simulated boot time"

    node = wait_for(
        lambda: nodes.node_ready(core_v1, iid) and core_v1.read_node(iid),
        timeout=JOIN_DELAY + 20,
        what=f"node {iid} Ready",
    )
    assert time.monotonic() - launched >= JOIN_DELAY
    assert node.spec.provider_id == f"aws:///us-east-1b/{iid}"
    labels = node.metadata.labels
    assert labels[nodes.LABEL_INSTANCE_TYPE] == "g5.12xlarge"
    assert labels[nodes.LABEL_ZONE] == "us-east-1b"
    assert labels[nodes.LABEL_GPU_PRODUCT] == "NVIDIA-A10G"
    assert labels["elastic-autoscaler.io/pool"] == "llm-chat"
    assert node.status.capacity[nodes.GPU_RESOURCE] == "4"
    assert node.status.allocatable[nodes.GPU_RESOURCE] == "4"
    assert node.status.capacity["cpu"] == "48"
    assert node.status.capacity["memory"] == "192Gi"

    # The scheduler places a GPU pod on it, as it would on the real instance.
    core_v1.create_namespaced_pod(
        kube_namespace,
        {
            "metadata": {"name": "gpu-pod"},
            "spec": {
                "nodeSelector": {
                    nodes.LABEL_INSTANCE_TYPE: "g5.12xlarge",
                    "kubernetes.io/hostname": iid,
                },
                "terminationGracePeriodSeconds": 0,
                "containers": [
                    {
                        "name": "main",
                        "image": "registry.k8s.io/pause:3.10",
                        "resources": {"limits": {nodes.GPU_RESOURCE: "2"}},
                    }
                ],
            },
        },
    )

    def running_pod() -> Any:
        pod = core_v1.read_namespaced_pod("gpu-pod", kube_namespace)
        return pod if pod.status.phase == "Running" else None

    pod = wait_for(running_pod, timeout=60, what="the GPU pod Running on the instance's node")
    assert pod.spec.node_name == iid
    core_v1.delete_namespaced_pod("gpu-pod", kube_namespace, grace_period_seconds=0)

    ec2.terminate_instances(InstanceIds=[iid])
    wait_for(
        lambda: not node_exists(core_v1, iid),
        timeout=20,
        what=f"node {iid} to be deleted after its instance terminated",
    )


def test_instances_without_our_ownership_tag_never_get_a_node(
    shim: NodeShim, core_v1: Any, ec2: Any, installation: str
) -> None:
    untagged = launch(ec2, "g5.xlarge", {})
    foreign = launch(ec2, "g6.xlarge", {OWNER_TAG: "someone-else"})
    # A positive control launched last: once it has joined, the shim has seen the others too.
    owned = launch(ec2, "g6.xlarge", {OWNER_TAG: installation})
    wait_for(
        lambda: nodes.node_ready(core_v1, owned),
        timeout=JOIN_DELAY + 20,
        what=f"the owned instance's node {owned}",
    )
    time.sleep(3 * shim.poll_interval)
    assert not node_exists(core_v1, untagged)
    assert not node_exists(core_v1, foreign)
    assert shim.managed_nodes() == [owned]
