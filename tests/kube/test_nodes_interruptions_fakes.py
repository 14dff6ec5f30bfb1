"""Interruption notices through the provisioner's tick against moto's EC2 and SQS server and
an in-memory Kubernetes API: the fast companion of test_nodes_interruptions.py, where the
fake API lets a test fail the cordon, refuse an eviction, or restart the provisioner.

At least once: a notice whose action failed stays on the queue and is acted on when it
comes back, and a notice delivered twice does nothing more the second time."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from kubernetes import client as k

from autoscaler.clients.aws import Ownership
from autoscaler.clock import FakeClock
from autoscaler.config.nodes import NodeProvisioning
from autoscaler.nodes import NodeProvisioner, NodeTickResult
from autoscaler.providers.aws_ec2 import Ec2Provider
from tests.fakes.kube_api import FakeKube, api_error
from tests.fixtures import eventbridge_event

from .test_nodes_tick_fakes import gpu_pod, live, register, set_pods

OWNER = "fake-test"
PREFIX = "elastic-autoscaler.io"
VISIBILITY = 1  # seconds a received message stays hidden (moto keeps real time)


@dataclass
class World:
    kube: FakeKube
    clock: FakeClock
    ec2: Any
    sqs: Any
    queue: str
    config: NodeProvisioning
    api: Any
    provisioner: NodeProvisioner

    def restart(self) -> None:
        """A new process: same cluster, EC2 and queue, no memory."""
        provider = Ec2Provider(Ownership(OWNER, PREFIX), self.clock)
        self.provisioner = NodeProvisioner(self.config, self.api, provider, self.clock)
        self.provisioner.core = self.kube.core
        self.provisioner.drainer.core = self.kube.core

    def tick(self) -> NodeTickResult:
        return self.provisioner.tick()

    def send(self, name: str, instance: str) -> None:
        self.sqs.send_message(QueueUrl=self.queue, MessageBody=eventbridge_event(name, instance))

    def on_queue(self) -> tuple[int, int]:
        """(visible, received and not deleted) messages."""
        got = self.sqs.get_queue_attributes(
            QueueUrl=self.queue,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(got["ApproximateNumberOfMessages"]), int(
            got["ApproximateNumberOfMessagesNotVisible"]
        )

    def lifecycle(self, instance: str) -> str:
        found = self.ec2.describe_instances(InstanceIds=[instance])["Reservations"][0]
        return str(found["Instances"][0].get("InstanceLifecycle", "on-demand"))

    def taint(self, node: str) -> str | None:
        taints = self.kube.get("Node", node)["spec"].get("taints") or []
        return next((t.get("value") for t in taints if t["key"] == f"{PREFIX}/disrupting"), None)


@pytest.fixture
def world(moto_endpoint: str, ec2: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    sqs = boto3.client(
        "sqs",
        endpoint_url=moto_endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    queue = sqs.create_queue(
        QueueName="gpu-interruptions", Attributes={"VisibilityTimeout": str(VISIBILITY)}
    )["QueueUrl"]
    config = NodeProvisioning(
        region="us-east-1",
        image_id=ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"],
        api="run-instances",
        market="spot-then-on-demand",
        instance_types=["g6.xlarge", "g6.12xlarge"],
        max_nodes=3,
        empty_node_ttl=60,
        # By name: the queue's URL is looked up (GetQueueUrl).
        interruptions={"queue": "gpu-interruptions", "wait_seconds": 0, "rebalance": "drain"},
    )
    clock = FakeClock(time.time())
    kube = FakeKube(clock)
    w = World(kube, clock, ec2, sqs, queue, config, k.ApiClient(), None)  # type: ignore[arg-type]
    w.restart()
    yield w


def spot_node_with_a_pod(w: World, annotations: dict[str, str] | None = None) -> str:
    set_pods(w.kube, gpu_pod("p0"))
    assert w.tick().launched == {"g6.xlarge": 1}
    (iid,) = live(w.ec2)
    assert w.lifecycle(iid) == "spot"
    register(w.kube, iid)
    set_pods(w.kube, gpu_pod("p0", node=iid, annotations=annotations))
    assert w.tick().ready == [iid]
    return iid


def test_a_notice_whose_cordon_failed_comes_back_and_a_second_delivery_does_nothing_more(
    world: World,
) -> None:
    w = world
    iid = spot_node_with_a_pod(w)
    w.send("spot-interruption-warning", iid)
    w.kube.inject("patch_node", error=api_error(500, "etcd is sad"))
    failed = w.tick()
    assert failed.interruptions == {"spot-interruption": 1}
    assert failed.launched == {"g6.xlarge": 1}, "the replacement does not wait for the cordon"
    assert any(iid in e for e in failed.errors) and not failed.cordoned
    assert not failed.evicted, "no eviction from a node that could take the pods back"
    assert w.on_queue() == (0, 1), "not deleted: the action is not recorded"
    (replacement,) = [i for i in live(w.ec2) if i != iid]
    assert w.lifecycle(replacement) == "on-demand"

    w.kube.clear_faults()
    time.sleep(VISIBILITY + 0.2)  # the message becomes visible again
    again = w.tick()
    assert again.interruptions == {"spot-interruption": 1}
    assert not again.launched, "the replacement in flight already covers the pod"
    assert again.cordoned == [iid] and again.evicted == ["ns/p0"]
    assert w.on_queue() == (0, 0)
    assert w.taint(iid) == "spot-interruption"

    # EventBridge delivers at least once: the same notice again changes nothing.
    w.send("spot-interruption-warning", iid)
    twice = w.tick()
    assert twice.interruptions == {"spot-interruption": 1}
    assert not twice.launched and not twice.cordoned and not twice.evicted
    assert twice.terminated == [iid], "drained: the instance goes before EC2 takes it"
    assert w.on_queue() == (0, 0)
    assert live(w.ec2) == [replacement]


def test_after_a_restart_the_node_still_leaves_and_pdbs_and_do_not_disrupt_hold_the_drain(
    world: World,
) -> None:
    w = world
    keep = {f"{PREFIX}/do-not-disrupt": "true"}
    iid = spot_node_with_a_pod(w, annotations=keep)
    set_pods(w.kube, gpu_pod("p0", node=iid, annotations=keep), gpu_pod("p1", node=iid))
    w.kube.inject("create_namespaced_pod_eviction", name="p1", error=api_error(429, "PDB"))
    w.send("health-scheduled-change", iid)
    first = w.tick()
    assert first.interruptions == {"scheduled-change": 1}
    assert first.cordoned == [iid] and not first.evicted and not first.terminated
    assert "do-not-disrupt" in first.held[iid]
    assert w.on_queue() == (0, 0), "recorded on the Node: deleted"
    assert w.taint(iid) == "scheduled-change"

    w.restart()  # the memory is gone; the taint is not
    after = w.tick()
    assert list(after.leaving) == [iid] and after.leaving[iid] == "scheduled change"
    assert w.kube.get("Node", iid)["spec"]["unschedulable"], "never un-cordoned"
    assert not after.terminated and not after.launched

    w.kube.clear_faults()
    set_pods(w.kube, gpu_pod("p1", node=iid))  # the do-not-disrupt pod finished
    assert w.tick().evicted == ["ns/p1"]
    assert w.tick().terminated == [iid]


def test_rebalance_with_drain_foreign_and_unreadable_messages_and_a_queue_that_fails(
    world: World,
) -> None:
    w = world
    iid = spot_node_with_a_pod(w)
    w.send("rebalance-recommendation", "i-0ffffffffffffffff")  # not ours
    w.sqs.send_message(QueueUrl=w.queue, MessageBody="<html>not an event</html>")
    w.send("state-change-running", iid)
    quiet = w.tick()
    assert quiet.interruptions == {"rebalance-recommendation": 1, "malformed": 1, "ignored": 1}
    assert not quiet.leaving and not quiet.cordoned and not quiet.launched
    assert w.on_queue() == (0, 0)

    w.send("rebalance-recommendation", iid)  # rebalance: drain
    drained = w.tick()
    assert drained.cordoned == [iid] and drained.evicted == ["ns/p0"]
    assert drained.launched == {"g6.xlarge": 1}
    assert w.taint(iid) == "rebalance-recommendation"

    w.sqs.delete_queue(QueueUrl=w.queue)
    broken = w.tick()
    assert broken.errors and "no interruption notice read this tick" in broken.errors[0]
    assert broken.terminated == [iid], "the tick goes on without the queue"
