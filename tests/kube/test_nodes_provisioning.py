"""GPU node provisioning end to end: the real API server, scheduler and kwok, moto's EC2 over
HTTP, and the node shim playing the part of booting instances.

Pending GPU pods -> tagged instances in moto -> Nodes -> pods Running; the Deployment gone ->
nodes empty past the TTL -> cordoned, drained, terminated. Foreign instances and Nodes stay;
a do-not-disrupt pod keeps its node; a PodDisruptionBudget holds eviction until it allows it;
a GPU node that does not advertise its GPUs yet is in flight, not capacity.
"""

from __future__ import annotations

import time
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
from tests.cluster import nodes
from tests.cluster.node_shim import INSTANCE_TYPES, InstanceType, NodeShim
from tests.cluster.wait import wait_for

pytestmark = pytest.mark.kube

PREFIX = "elastic-autoscaler.io"
POOL_LABEL = "autoscaler-test/gpu-pool"
TTL = 120.0


class Rig:
    """One test's world: a namespace, EC2 in moto, the shim, and the provisioner."""

    def __init__(self, core: Any, apps: Any, policy: Any, ec2: Any, ns: str, owner: str) -> None:
        self.core, self.apps, self.policy, self.ec2 = core, apps, policy, ec2
        self.ns, self.owner = ns, owner
        self.clock = FakeClock(time.time())
        self.shim: NodeShim | None = None
        self.provisioner: NodeProvisioner | None = None

    def tick(self) -> NodeTickResult:
        assert self.provisioner is not None
        result = self.provisioner.tick()
        assert not result.errors, result.errors
        return result

    def pods(self, selector: str = "") -> list[Any]:
        return list(self.core.list_namespaced_pod(self.ns, label_selector=selector).items)

    def unschedulable(self, count: int, selector: str = "") -> None:
        def check() -> bool:
            found = [
                p
                for p in self.pods(selector)
                if any(
                    c.type == "PodScheduled" and c.reason == "Unschedulable"
                    for c in p.status.conditions or ()
                )
            ]
            return len(found) == count

        wait_for(check, timeout=30, what=f"{count} pod(s) Unschedulable", describe=self.describe)

    def running(self, count: int, selector: str = "") -> list[Any]:
        def check() -> list[Any]:
            self.tick_without_launch()
            found = [p for p in self.pods(selector) if p.status.phase == "Running"]
            return found if len(found) == count else []

        return wait_for(check, timeout=60, what=f"{count} pod(s) Running", describe=self.describe)

    def tick_without_launch(self) -> NodeTickResult:
        result = self.tick()
        assert not result.launched, f"a second launch for the same pods: {result}"
        return result

    def instances(self, states: tuple[str, ...] = ("pending", "running")) -> dict[str, Any]:
        found = {}
        pages = self.ec2.get_paginator("describe_instances").paginate(
            Filters=[{"Name": "instance-state-name", "Values": list(states)}]
        )
        for page in pages:
            for reservation in page["Reservations"]:
                for inst in reservation["Instances"]:
                    inst["_tags"] = {t["Key"]: t["Value"] for t in inst.get("Tags", [])}
                    found[inst["InstanceId"]] = inst
        return found

    def node_names(self) -> set[str]:
        return {n.metadata.name for n in self.core.list_node().items}

    def describe(self) -> str:
        pods = [(p.metadata.name, p.status.phase, p.spec.node_name) for p in self.pods()]
        return f"pods {pods}; instances {sorted(self.instances())}"


def gpu_pod_spec(owner: str, gpus: int = 1) -> dict[str, Any]:
    return {
        "nodeSelector": {POOL_LABEL: owner},
        "terminationGracePeriodSeconds": 0,
        "containers": [
            {
                "name": "model",
                "image": "registry.k8s.io/pause:3.10",
                "resources": {
                    "requests": {"cpu": "1", "memory": "1Gi"},
                    "limits": {nodes.GPU_RESOURCE: str(gpus)},
                },
            }
        ],
    }


def deployment(name: str, owner: str, replicas: int) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": gpu_pod_spec(owner)},
        },
    }


def an_image(ec2: Any) -> str:
    return str(ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"])


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
) -> Iterator[Rig]:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    owner = f"test-{uuid.uuid4().hex[:8]}"
    r = Rig(core_v1, apps_v1, k.PolicyV1Api(kube_api), ec2, kube_namespace, owner)
    config = NodeProvisioning(
        region="us-east-1",
        image_id=an_image(ec2),
        api="run-instances",
        instance_types=["g6.xlarge", "g6.12xlarge", "g5.xlarge"],
        max_nodes=6,
        empty_node_ttl=TTL,
        registration_timeout=24 * 3600,
        labels={POOL_LABEL: owner},
        namespaces=[kube_namespace],
    )
    provider = Ec2Provider(Ownership(owner, PREFIX), r.clock)
    r.provisioner = NodeProvisioner(config, kube_api, provider, r.clock)
    yield r
    if r.shim is not None:
        r.shim.stop(delete_nodes=True)
        assert not r.shim.errors, f"the node shim hit errors: {r.shim.errors!r}"


def start_shim(r: Rig, types: dict[str, InstanceType] | None = None) -> NodeShim:
    r.shim = NodeShim(
        r.core,
        r.ec2,
        installation_id=r.owner,
        join_delay=1.0,
        poll_interval=0.2,
        instance_types=types,
    ).start()
    return r.shim


def test_pending_gpu_pods_get_nodes_once_and_empty_nodes_are_drained_and_terminated(
    rig: Rig,
) -> None:
    r = rig
    # Someone else's instance and Node, idle the whole time: never to be touched.
    foreign = r.ec2.run_instances(
        ImageId=an_image(r.ec2),
        InstanceType="g6.xlarge",
        MinCount=1,
        MaxCount=1,
        Placement={"AvailabilityZone": "us-east-1a"},
        TagSpecifications=[
            {"ResourceType": "instance", "Tags": [{"Key": f"{PREFIX}/owner", "Value": "other"}]}
        ],
    )["Instances"][0]["InstanceId"]
    foreign_node = f"foreign-{r.owner}"
    nodes.create_fake_node(
        r.core,
        foreign_node,
        gpus=1,
        labels={POOL_LABEL: "other"},
        provider_id=f"aws:///us-east-1a/{foreign}",
    )
    try:
        start_shim(r)
        r.apps.create_namespaced_deployment(r.ns, deployment("llm", r.owner, 3))
        r.unschedulable(3)

        first = r.tick()
        assert first.pending == 3
        assert first.launched == {"g6.xlarge": 3}, first
        ours = {
            i: v for i, v in r.instances().items() if v["_tags"].get(f"{PREFIX}/owner") == r.owner
        }
        assert len(ours) == 3
        assert all(v["InstanceType"] == "g6.xlarge" for v in ours.values())
        assert {v["_tags"][f"{PREFIX}/pool"] for v in ours.values()} == {"gpu-nodes.g6.xlarge"}

        again = r.tick_without_launch()
        assert again.covered == 3 and len(again.in_flight) == 3

        running = r.running(3, "app=llm")
        assert {p.spec.node_name for p in running} == set(ours)

        r.apps.delete_namespaced_deployment(
            "llm", r.ns, body=k.V1DeleteOptions(propagation_policy="Foreground")
        )
        wait_for(lambda: not r.pods(), timeout=60, what="the Deployment's pods gone")

        quiet = r.tick_without_launch()
        assert not quiet.cordoned and len(quiet.ready) == 3
        r.clock.advance(TTL - 1)
        assert not r.tick_without_launch().cordoned, "cordoned before the TTL"
        r.clock.advance(2)
        cordoned = r.tick_without_launch()
        assert sorted(cordoned.cordoned) == sorted(ours)
        for name in ours:
            node = r.core.read_node(name)
            assert node.spec.unschedulable
            assert any(t.key == f"{PREFIX}/disrupting" for t in node.spec.taints)

        gone = r.tick_without_launch()
        assert sorted(gone.terminated) == sorted(ours)
        states = {
            i: v["State"]["Name"] for i, v in r.instances(("shutting-down", "terminated")).items()
        }
        assert set(ours) <= set(states)
        assert not set(ours) & r.node_names()

        # The foreign instance and Node are exactly as they were.
        assert r.instances()[foreign]["State"]["Name"] in ("pending", "running")
        assert not r.core.read_node(foreign_node).spec.unschedulable
    finally:
        nodes.delete_node(r.core, foreign_node)


def bound_pod(name: str, node: str, labels: dict[str, str], annotations: dict[str, str]) -> Any:
    spec = {
        "nodeName": node,
        "terminationGracePeriodSeconds": 0,
        "tolerations": [{"operator": "Exists"}],
        "containers": [{"name": "main", "image": "registry.k8s.io/pause:3.10"}],
    }
    return {"metadata": {"name": name, "labels": labels, "annotations": annotations}, "spec": spec}


def test_do_not_disrupt_keeps_a_node_and_a_pdb_holds_eviction_until_it_allows(rig: Rig) -> None:
    r = rig
    start_shim(r)
    r.apps.create_namespaced_deployment(r.ns, deployment("warm", r.owner, 2))
    r.unschedulable(2)
    assert r.tick().launched == {"g6.xlarge": 2}
    running = r.running(2, "app=warm")
    guarded_node, budget_node = sorted(p.spec.node_name for p in running)
    r.apps.patch_namespaced_deployment_scale("warm", r.ns, {"spec": {"replicas": 0}})
    wait_for(lambda: not r.pods(), timeout=60, what="the pods gone")
    r.tick_without_launch()
    r.clock.advance(TTL + 1)
    assert sorted(r.tick_without_launch().cordoned) == sorted([budget_node, guarded_node])

    # Pods that reached the nodes between the cordon and the drain (bound directly).
    key = f"{PREFIX}/do-not-disrupt"
    r.core.create_namespaced_pod(r.ns, bound_pod("guarded", guarded_node, {}, {key: "true"}))
    r.core.create_namespaced_pod(r.ns, bound_pod("budgeted", budget_node, {"app": "b"}, {}))
    pdb = {
        "metadata": {"name": "b"},
        "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "b"}}},
    }
    r.policy.create_namespaced_pod_disruption_budget(r.ns, pdb)

    def pdb_settled(allowed: int) -> bool:
        got = r.policy.read_namespaced_pod_disruption_budget("b", r.ns)
        s = got.status
        return bool(
            s
            and s.observed_generation == got.metadata.generation
            and s.current_healthy == 1
            and s.disruptions_allowed == allowed
        )

    wait_for(lambda: pdb_settled(0), timeout=60, what="the PDB to allow no disruption")

    held = r.tick_without_launch()
    assert "do-not-disrupt" in held.held[guarded_node]
    for attempt in range(2):  # held, and held again: never forced
        if attempt:
            held = r.tick_without_launch()
        assert "PodDisruptionBudget" in held.held[budget_node]
        assert not held.terminated and not held.evicted
        assert budget_node in r.instances() and guarded_node in r.instances()
    guarded = r.core.read_node(guarded_node)
    assert not guarded.spec.unschedulable, "the do-not-disrupt pod's node stays cordoned"
    assert not any(t.key == f"{PREFIX}/disrupting" for t in guarded.spec.taints or ())

    r.policy.patch_namespaced_pod_disruption_budget("b", r.ns, {"spec": {"minAvailable": 0}})
    wait_for(lambda: pdb_settled(1), timeout=60, what="the PDB to allow a disruption")
    evicting = r.tick_without_launch()
    assert evicting.evicted == [f"{r.ns}/budgeted"]
    wait_for(
        lambda: not r.pods("app=b"), timeout=60, what="the evicted pod gone", describe=r.describe
    )
    done = r.tick_without_launch()
    assert done.terminated == [budget_node]
    assert guarded_node in r.instances(), "the do-not-disrupt pod's instance was terminated"


def test_a_gpu_node_without_its_gpus_yet_is_in_flight_not_capacity(rig: Rig) -> None:
    r = rig
    # The shim registers g6.xlarge Nodes before the device plugin has advertised any GPU.
    types = {**INSTANCE_TYPES, "g6.xlarge": InstanceType(4, 16, 0)}
    start_shim(r, types)
    r.core.create_namespaced_pod(
        r.ns, {"metadata": {"name": "solo"}, "spec": gpu_pod_spec(r.owner)}
    )
    r.unschedulable(1)
    assert r.tick().launched == {"g6.xlarge": 1}
    iid = next(iter(r.instances()))
    wait_for(lambda: nodes.node_ready(r.core, iid), timeout=30, what=f"node {iid} Ready")
    for _ in range(3):
        result = r.tick_without_launch()
        assert result.in_flight == [iid] and not result.ready
        time.sleep(0.5)
    assert r.pods()[0].status.phase == "Pending"

    # The device plugin reports in: now it is capacity and the pod lands there.
    gpus = {nodes.GPU_RESOURCE: "1"}
    r.core.patch_node_status(iid, {"status": {"capacity": gpus, "allocatable": gpus}})
    pod = r.running(1)[0]
    assert pod.spec.node_name == iid
    assert r.tick_without_launch().ready == [iid]
