"""Spot interruptions end to end: the real API server, scheduler and kwok, moto's EC2 and
SQS over HTTP, and the node shim playing the part of booting instances.

A GPU pod runs on a spot node; EventBridge's "EC2 Spot Instance Interruption Warning" for
that instance (its real format, tests/fixtures/eventbridge) lands on the interruption
queue, with a warning about an instance that is not ours and a message that is no event.
One tick later a replacement instance is launching (on-demand: the spot offering of the
type was marked short), the node is cordoned with the notice's kind and its pod evicted,
and the three messages are gone from the queue. The pod's successor runs on the
replacement; the drained instance is terminated; the foreign instance and Node stay as
they were.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from kubernetes import client as k

from autoscaler.clients.aws import Ownership
from autoscaler.clock import FakeClock
from autoscaler.config.nodes import NodeProvisioning
from autoscaler.nodes import NodeProvisioner, NodeTickResult
from autoscaler.providers.aws_ec2 import Ec2Provider
from tests.cluster import nodes
from tests.cluster.node_shim import NodeShim
from tests.cluster.wait import wait_for
from tests.fixtures import eventbridge_event

pytestmark = pytest.mark.kube

PREFIX = "elastic-autoscaler.io"
POOL_LABEL = "autoscaler-test/gpu-pool"
SAMPLE_TIME = "2024-05-06T12:34:56Z"


class SpotRig:
    """One test's world: a namespace, EC2 and SQS in moto, the shim, the provisioner."""

    def __init__(self, core: Any, apps: Any, ec2: Any, sqs: Any, ns: str, owner: str) -> None:
        self.core, self.apps, self.ec2, self.sqs = core, apps, ec2, sqs
        self.ns, self.owner = ns, owner
        self.clock = FakeClock(time.time())
        self.queue = ""
        self.shim: NodeShim | None = None
        self.provisioner: NodeProvisioner | None = None

    def tick(self) -> NodeTickResult:
        assert self.provisioner is not None
        result = self.provisioner.tick()
        assert not result.errors, result.errors
        return result

    def pods(self, selector: str = "") -> list[Any]:
        return list(self.core.list_namespaced_pod(self.ns, label_selector=selector).items)

    def instances(self, states: tuple[str, ...] = ("pending", "running")) -> dict[str, Any]:
        found = {}
        pages = self.ec2.get_paginator("describe_instances").paginate(
            Filters=[{"Name": "instance-state-name", "Values": list(states)}]
        )
        for page in pages:
            for reservation in page["Reservations"]:
                for inst in reservation["Instances"]:
                    found[inst["InstanceId"]] = inst
        return found

    def send(self, body: str) -> None:
        self.sqs.send_message(QueueUrl=self.queue, MessageBody=body)

    def messages_left(self) -> int:
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.queue,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return sum(int(v) for v in attributes.values())

    def describe(self) -> str:
        pods = [(p.metadata.name, p.status.phase, p.spec.node_name) for p in self.pods()]
        return f"pods {pods}; instances {sorted(self.instances())}"


def gpu_deployment(name: str, owner: str) -> dict[str, Any]:
    labels = {"app": name}
    spec = {
        "nodeSelector": {POOL_LABEL: owner},
        "terminationGracePeriodSeconds": 0,
        "containers": [
            {
                "name": "model",
                "image": "registry.k8s.io/pause:3.10",
                "resources": {
                    "requests": {"cpu": "1", "memory": "1Gi"},
                    "limits": {nodes.GPU_RESOURCE: "1"},
                },
            }
        ],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": spec},
        },
    }


@pytest.fixture
def rig(
    kwok_cluster: Any,
    kube_api: Any,
    core_v1: Any,
    apps_v1: Any,
    ec2: Any,
    moto_endpoint: str,
    kube_namespace: str,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[SpotRig]:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    sqs = boto3.client(
        "sqs",
        endpoint_url=moto_endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    owner = f"test-{uuid.uuid4().hex[:8]}"
    r = SpotRig(core_v1, apps_v1, ec2, sqs, kube_namespace, owner)
    r.queue = sqs.create_queue(QueueName=f"interruptions-{owner}")["QueueUrl"]
    image = str(ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"])
    config = NodeProvisioning(
        region="us-east-1",
        image_id=image,
        api="run-instances",
        market="spot-then-on-demand",
        instance_types=["g6.xlarge", "g6.12xlarge"],
        max_nodes=4,
        empty_node_ttl=600,
        registration_timeout=24 * 3600,
        labels={POOL_LABEL: owner},
        namespaces=[kube_namespace],
        interruptions={"queue": r.queue, "wait_seconds": 0},
    )
    provider = Ec2Provider(Ownership(owner, PREFIX), r.clock)
    r.provisioner = NodeProvisioner(config, kube_api, provider, r.clock)
    r.shim = NodeShim(
        core_v1, ec2, installation_id=owner, join_delay=1.0, poll_interval=0.2
    ).start()
    yield r
    r.shim.stop(delete_nodes=True)
    assert not r.shim.errors, f"the node shim hit errors: {r.shim.errors!r}"


def test_a_spot_interruption_replaces_cordons_and_drains_the_node(
    rig: SpotRig, caplog: pytest.LogCaptureFixture
) -> None:
    r = rig
    caplog.set_level(logging.INFO, logger="autoscaler.nodes.interruptions")
    foreign = r.ec2.run_instances(
        ImageId=str(r.ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]),
        InstanceType="g6.xlarge",
        MinCount=1,
        MaxCount=1,
        TagSpecifications=[
            {"ResourceType": "instance", "Tags": [{"Key": f"{PREFIX}/owner", "Value": "other"}]}
        ],
    )["Instances"][0]["InstanceId"]
    foreign_node = f"foreign-{r.owner}"
    nodes.create_fake_node(r.core, foreign_node, gpus=1, provider_id=f"aws:///us-east-1a/{foreign}")
    try:
        # A GPU pod on a spot node of ours.
        r.apps.create_namespaced_deployment(r.ns, gpu_deployment("llm", r.owner))
        wait_for(lambda: r.tick().launched, timeout=30, what="a launch", describe=r.describe)
        ((spot, instance),) = [(i, v) for i, v in r.instances().items() if i != foreign]
        assert instance.get("InstanceLifecycle") == "spot" and instance["InstanceType"] == (
            "g6.xlarge"
        )

        def running_on(node: str) -> Any:
            r.tick()
            found = [p for p in r.pods("app=llm") if p.status.phase == "Running"]
            return found[0] if len(found) == 1 and found[0].spec.node_name == node else None

        pod = wait_for(lambda: running_on(spot), timeout=60, what="the pod Running on spot",
                       describe=r.describe)  # fmt: skip

        # EC2's two-minute warning for it, one for someone else's instance, and junk.
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        r.send(eventbridge_event("spot-interruption-warning", spot).replace(SAMPLE_TIME, now))
        r.send(eventbridge_event("spot-interruption-warning", foreign).replace(SAMPLE_TIME, now))
        r.send('{"detail-type": "EC2 Spot Instance Interruption Warning", "source": "aws.ec2"}')
        notified = r.tick()

        assert notified.interruptions == {"spot-interruption": 2, "malformed": 1}
        assert notified.launched == {"g6.xlarge": 1}, "the replacement, in the same tick"
        assert notified.cordoned == [spot]
        assert notified.evicted == [f"{r.ns}/{pod.metadata.name}"]
        assert list(notified.leaving) == [spot]
        assert notified.leaving[spot].startswith("spot interruption: EC2 takes it in ")
        assert spot not in notified.ready
        assert r.messages_left() == 0, "every message deleted: acted on, not ours, malformed"
        assert "unreadable" in caplog.text and "not an instance of ours" in caplog.text

        (replacement,) = [i for i in r.instances() if i not in (spot, foreign)]
        launched = r.instances()[replacement]
        assert launched["InstanceType"] == "g6.xlarge"
        assert "InstanceLifecycle" not in launched, "spot was marked short: on-demand"
        node = r.core.read_node(spot)
        assert node.spec.unschedulable
        assert [(t.key, t.value) for t in node.spec.taints or () if t.key.startswith(PREFIX)] == [
            (f"{PREFIX}/disrupting", "spot-interruption")
        ]

        # The Deployment's new pod lands on the replacement; the drained spot node goes.
        def moved() -> Any:
            result = r.tick()
            assert not result.launched, f"launched again: {result}"
            found = [p for p in r.pods("app=llm") if p.status.phase == "Running"]
            on = [p for p in found if p.spec.node_name == replacement]
            return on if on and spot not in r.instances() else None

        wait_for(moved, timeout=90, what="the pod on the replacement, spot gone",
                 describe=r.describe)  # fmt: skip
        gone = r.instances(("shutting-down", "terminated"))
        assert spot in gone
        wait_for(lambda: spot not in {n.metadata.name for n in r.core.list_node().items},
                 timeout=30, what="the spot Node deleted")  # fmt: skip

        # The foreign instance and Node are exactly as they were.
        assert foreign in r.instances()
        assert not r.core.read_node(foreign_node).spec.unschedulable
        quiet = r.tick()
        assert not quiet.leaving and not quiet.interruptions and quiet.ready == [replacement]
    finally:
        nodes.delete_node(r.core, foreign_node)
        r.apps.delete_namespaced_deployment(
            "llm", r.ns, body=k.V1DeleteOptions(propagation_policy="Background")
        )
