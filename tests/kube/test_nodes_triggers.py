"""An evaluation trigger's GPU Jobs get their capacity from the node provisioner, and the
capacity goes when they finish (issue #18), end to end: the real API server, scheduler, Job
controller and kwok, moto's EC2 over HTTP, and the node shim playing booting instances.

One configuration file holds `nodes:` (g5.xlarge, one GPU, for the trigger's namespace) and
a trigger whose evaluation Job asks for `nvidia.com/gpu: 1`. The condition fires -> the
evaluation pod is Unschedulable -> exactly one g5.xlarge is launched in moto -> the shim's
Node appears and the pod is scheduled there -> the pod finishes with the verdict "no
retrain" -> the run ends `passed` -> the empty node is drained and its instance terminated.

kwok completes a Job's pod on its own (exit 0, no termination message) as soon as it runs;
the test writes the termination message the evaluation container would have left, as the
kubelet would, before the trigger reads the verdict.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k

from autoscaler.clients.aws import Ownership
from autoscaler.config import ControllerSettings
from autoscaler.config.file_settings import load_settings
from autoscaler.kube.events import EventRecorder
from autoscaler.nodes import NodeProvisioner
from autoscaler.providers.aws_ec2 import Ec2Provider
from autoscaler.triggers.chore import TriggerChore
from tests.cluster import nodes
from tests.cluster.wait import wait_for
from tests.kube.test_nodes_provisioning import POOL_LABEL, PREFIX, Rig, an_image, rig, start_shim

pytestmark = pytest.mark.kube

__all__ = ["rig"]  # the fixture, by name

TTL = 30.0  # empty_node_ttl: the fake clock is advanced past it
VERDICT = {"retrain": False, "accuracy": 0.93}


def evaluate_job(owner: str) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "terminationGracePeriodSeconds": 0,
                    "nodeSelector": {POOL_LABEL: owner},
                    "containers": [
                        {
                            "name": "evaluate",
                            "image": "registry.k8s.io/pause:3.10",
                            "resources": {
                                "requests": {"cpu": "1", "memory": "1Gi"},
                                "limits": {nodes.GPU_RESOURCE: "1"},
                            },
                        }
                    ],
                }
            },
        },
    }


def write_config(path: Path, r: Rig) -> Path:
    """The configuration file: installation, `nodes:` and one trigger (no pools)."""
    config = {
        "installation": {"id": r.owner, "tag_prefix": PREFIX},
        "nodes": {
            "region": "us-east-1",
            "image_id": an_image(r.ec2),
            "api": "run-instances",
            "instance_types": ["g5.xlarge"],
            "max_nodes": 2,
            "empty_node_ttl": TTL,
            "registration_timeout": 24 * 3600,
            "labels": {POOL_LABEL: r.owner},
            "namespaces": [r.ns],
        },
        "triggers": [
            {
                "name": "quality",
                "namespace": r.ns,
                "condition": {"source": {"type": "static", "value": 0.5}, "below": 0.9},
                "cooldown": "1h",
                "pipeline": {
                    "evaluate": {"verdict": "message", "template": evaluate_job(r.owner)},
                    "retrain": {"template": evaluate_job(r.owner)},
                },
            }
        ],
    }
    path.write_text(json.dumps(config), encoding="utf-8")
    return path


def finish(r: Rig, pod: str, message: str) -> None:
    """End the evaluation pod with exit 0 and `message`, as its kubelet would; kwok may have
    marked it Succeeded already (without a message), so write until the message is there."""

    def written() -> bool:
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        terminated = {"exitCode": 0, "reason": "Completed", "message": message,
                      "startedAt": now, "finishedAt": now}  # fmt: skip
        status = {
            "phase": "Succeeded",
            "containerStatuses": [{
                "name": "evaluate", "image": "registry.k8s.io/pause:3.10", "imageID": "",
                "ready": False, "restartCount": 0, "state": {"terminated": terminated},
            }],
        }  # fmt: skip
        current = r.core.read_namespaced_pod(pod, r.ns)
        done = [s.state.terminated for s in current.status.container_statuses or []
                if s.state and s.state.terminated]  # fmt: skip
        if current.status.phase == "Succeeded" and done and done[0].message == message:
            return True
        r.core.patch_namespaced_pod_status(pod, r.ns, {"status": status})
        return False

    wait_for(written, timeout=30, what=f"pod {pod} Succeeded with its message", interval=0.3)


def test_a_trigger_s_gpu_job_gets_a_node_that_goes_when_the_job_is_done(
    rig: Rig, kube_api: Any, tmp_path: Path
) -> None:
    r = rig
    settings = load_settings(str(write_config(tmp_path / "autoscaler.yaml", r)), True)
    assert settings.nodes is not None and len(settings.triggers) == 1
    trigger = settings.triggers[0]
    provider = Ec2Provider(
        Ownership(settings.installation.id, settings.installation.tag_prefix), r.clock
    )
    # The rig's own provisioner (test_nodes_provisioning's types) is replaced by the file's.
    r.provisioner = NodeProvisioner(settings.nodes, kube_api, provider, r.clock)
    chore = TriggerChore(
        [trigger], settings.installation, ControllerSettings(interval=60), kube_api,
        r.clock, events=EventRecorder(kube_api, instance="test", clock=r.clock),
    )  # fmt: skip
    batch = k.BatchV1Api(kube_api)
    start_shim(r)
    assert not r.instances() and not r.tick().launched  # nothing pending, nothing launched

    chore.run_round(first=True)  # 0.5 < 0.9, `for` 0: fires
    job = "quality-0001-evaluate"
    assert [j.metadata.name for j in batch.list_namespaced_job(r.ns).items] == [job]
    r.unschedulable(1, f"job-name={job}")
    [pod] = r.pods(f"job-name={job}")
    assert pod.spec.node_name is None and pod.status.phase == "Pending"

    launched = r.tick()
    assert launched.pending == 1 and launched.launched == {"g5.xlarge": 1}, launched
    [(iid, inst)] = r.instances().items()
    assert inst["InstanceType"] == "g5.xlarge"
    assert inst["_tags"][f"{PREFIX}/owner"] == r.owner
    assert inst["_tags"][f"{PREFIX}/pool"] == "gpu-nodes.g5.xlarge"

    wait_for(lambda: iid in r.node_names(), timeout=30, what=f"the shim's Node {iid}")
    assert r.core.read_node(iid).metadata.labels[f"{PREFIX}/node-shim"]

    def scheduled() -> str | None:
        r.tick_without_launch()
        return r.core.read_namespaced_pod(pod.metadata.name, r.ns).spec.node_name

    assert wait_for(scheduled, timeout=30, what="the evaluation pod scheduled") == iid
    chore.run_round(first=False)  # the run is in progress: nothing new
    assert [j.metadata.name for j in batch.list_namespaced_job(r.ns).items] == [job]

    finish(r, pod.metadata.name, json.dumps(VERDICT))

    def job_complete() -> bool:
        status = batch.read_namespaced_job(job, r.ns).status
        return any(c.type == "Complete" and c.status == "True" for c in status.conditions or ())

    wait_for(job_complete, timeout=30, what=f"the Job controller to complete {job}")
    chore.run_round(first=False)
    [run] = chore.store.runs(trigger)
    assert run.outcome == "passed" and run.retrain is None, run
    assert [j.metadata.name for j in batch.list_namespaced_job(r.ns).items] == [job]
    assert chore.verdicts[trigger.name].state == "cooldown"

    # The node's only pod is done: empty from now, drained and terminated past the TTL.
    quiet = r.tick_without_launch()
    assert quiet.ready == [iid] and not quiet.cordoned
    r.clock.advance(TTL - 1)
    assert not r.tick_without_launch().cordoned, "cordoned before the TTL"
    r.clock.advance(2)
    assert r.tick_without_launch().cordoned == [iid]
    gone = r.tick_without_launch()
    assert gone.terminated == [iid], gone
    ended = r.instances(("shutting-down", "terminated"))
    assert list(ended) == [iid]
    assert not r.instances(), "an instance is still running"
    wait_for(lambda: iid not in r.node_names(), timeout=30, what=f"Node {iid} gone")

    # Nothing else was ever launched, and nothing is launched now.
    every = r.instances(("pending", "running", "shutting-down", "terminated", "stopped"))
    assert list(every) == [iid]
    chore.run_round(first=False)
    assert not r.tick().launched
