"""End to end: an LLM-serving pool from SQS backlog to GPU nodes and back to nothing, and a
batch pool from a backlog to Jobs and back to zero.

The chart is `helm install`ed into the test cluster; `autoscaler run` then runs on the host
as a subprocess with the chart's ServiceAccount token (so the chart's RBAC is what is
tested) and AWS pointed at moto server. The node shim plays the kubelets of the launched
instances. The path:

    SQS backlog rises -> Deployment scales up -> its GPU pods are Pending -> EC2 GPU instances
    launch (tagged) -> Nodes join -> pods Running; backlog drains -> scale-in after
    stabilization -> empty nodes drained -> instances terminated

and at the end nothing owned is left and nothing foreign (an untagged-for-us instance, a
Node of someone else's, an unlabelled Deployment) was touched. The batch pool: a backlog of
N items -> Jobs created up to the pool's max -> running Jobs kept while the backlog is gone
-> completed Jobs cleaned up -> no Jobs left.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from tests.cluster import nodes
from tests.cluster.node_shim import NodeShim
from tests.cluster.session import KubeCluster
from tests.kube.test_chart import CHART, ok, run_tool
from tests.kube.test_kube_jobs import job_template, open_gate
from tests.kube.test_nodes_provisioning import an_image, gpu_pod_spec

pytestmark = [pytest.mark.kube, pytest.mark.aws]

PREFIX = "elastic-autoscaler.io"
POOL_LABEL = "autoscaler-test/gpu-pool"


def wait_until(check: Callable[[], Any], timeout: float, what: str, log: Path) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.3)
    tail = "\n".join(log.read_text(errors="replace").splitlines()[-40:]) if log.exists() else ""
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}; controller log:\n{tail}")


def token_kubeconfig(admin: Any, token: str, path: Path) -> Path:
    """A kubeconfig that authenticates as the ServiceAccount (its token, the cluster's CA)."""
    cfg = admin.configuration
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "sa",
        "clusters": [{"name": "c", "cluster": {
            "server": cfg.host, "certificate-authority": cfg.ssl_ca_cert}}],
        "users": [{"name": "sa", "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": "c", "user": "sa"}}],
    }))  # fmt: skip
    return path


def instances(ec2: Any, owner: str | None = None) -> dict[str, str]:
    """Instance id -> state, of every instance (or those tagged owner=`owner`)."""
    found = {}
    for reservation in ec2.describe_instances()["Reservations"]:
        for inst in reservation["Instances"]:
            tags = {t["Key"]: t["Value"] for t in inst.get("Tags", [])}
            if owner is None or tags.get(f"{PREFIX}/owner") == owner:
                found[inst["InstanceId"]] = inst["State"]["Name"]
    return found


@pytest.fixture
def chart_token(kube_cluster: KubeCluster, core_v1: Any, kube_namespace: str,
                tmp_path: Path) -> Iterator[tuple[str, str]]:  # fmt: skip
    """(installation id, ServiceAccount token) of the chart installed into the namespace,
    with node provisioning's cluster-wide grants; uninstalled afterwards."""
    ns, owner = kube_namespace, f"e2e-{uuid.uuid4().hex[:8]}"
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({
        "installationId": owner,
        "rbac": {"watchNamespaces": [ns], "nodeProvisioning": True},
        # the batch pool's Jobs run this image; the chart's admission policy allows no other
        "admissionPolicy": {"jobs": {"images": ["registry.k8s.io/pause:*"]}},
    }))  # fmt: skip
    env = kube_cluster.tool_env()
    helm_home = tmp_path / "helm"
    ok(run_tool("helm", "install", "e2e", str(CHART), "--namespace", ns,
                "--values", str(values), home=helm_home, env=env))  # fmt: skip
    try:
        token = core_v1.create_namespaced_service_account_token(
            "e2e-autoscaler", ns, {"spec": {"expirationSeconds": 1800}}
        ).status.token
        yield owner, token
    finally:
        ok(run_tool("helm", "uninstall", "e2e", "--namespace", ns, home=helm_home, env=env))


def aws_env(moto_endpoint: str) -> dict[str, str]:
    env = {**os.environ, "AWS_ENDPOINT_URL": moto_endpoint, "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}  # fmt: skip
    env.pop("KUBECONFIG", None)
    return env


def start_controller(config: Path, kubeconfig: Path, env: dict[str, str],
                     log: Path, *args: str) -> subprocess.Popen[bytes]:  # fmt: skip
    """`autoscaler run` as its own process, output to `log`; `args` added to the command."""
    with log.open("w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "autoscaler", "run", "--config", str(config),
             "--kubeconfig", str(kubeconfig), *args],
            env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip


def sqs_client(moto_endpoint: str) -> Any:
    return boto3.client("sqs", endpoint_url=moto_endpoint, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")  # fmt: skip


def send(sqs: Any, queue: str, count: int) -> None:
    """`count` messages, in batches of 10 (SQS's most per call)."""
    for first in range(0, count, 10):
        sqs.send_message_batch(QueueUrl=queue, Entries=[
            {"Id": str(i), "MessageBody": f"item {i}"}
            for i in range(first, min(count, first + 10))])  # fmt: skip


def chat_deployment(apps_v1: Any, ns: str, owner: str) -> None:
    """Ours: a Deployment of GPU pods (app=chat) at 0 replicas, labelled for `owner`."""
    labels = {"app": "chat"}
    apps_v1.create_namespaced_deployment(ns, {
        "metadata": {"name": "chat", "labels": {f"{PREFIX}/owner": owner}},
        "spec": {"replicas": 0, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels}, "spec": gpu_pod_spec(owner)}},
    })  # fmt: skip


def stop_controller(proc: subprocess.Popen[bytes], log: Path) -> str:
    """SIGTERM; the controller must exit 0 without a traceback or an RBAC refusal."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    text = log.read_text()
    assert proc.returncode == 0, f"controller exit {proc.returncode}:\n{text[-3000:]}"
    assert "Traceback" not in text, text[-3000:]
    assert "Forbidden" not in text, f"the chart's RBAC refused a call:\n{text[-3000:]}"
    return text


def test_llm_serving_pool_from_backlog_to_gpu_nodes_and_back_to_nothing(
    kwok_cluster: KubeCluster,
    kube_api: Any,
    core_v1: Any,
    apps_v1: Any,
    ec2: Any,
    moto_endpoint: str,
    kube_namespace: str,
    chart_token: tuple[str, str],
    tmp_path: Path,
) -> None:
    ns = kube_namespace
    owner, token = chart_token
    sqs = sqs_client(moto_endpoint)
    queue = sqs.create_queue(QueueName=f"chat-{owner}")["QueueUrl"]
    image = an_image(ec2)

    # What is ours: a Deployment of GPU pods, labelled for this installation.
    chat_deployment(apps_v1, ns, owner)
    # What is not: another installation's instance and Node, an unlabelled Deployment.
    foreign_instance = ec2.run_instances(
        ImageId=image, InstanceType="g6.xlarge", MinCount=1, MaxCount=1,
        TagSpecifications=[{"ResourceType": "instance",
                            "Tags": [{"Key": f"{PREFIX}/owner", "Value": "someone-else"}]}],
    )["Instances"][0]["InstanceId"]  # fmt: skip
    foreign_node = f"foreign-{owner}"
    nodes.create_fake_node(core_v1, foreign_node, gpus=1)
    apps_v1.create_namespaced_deployment(ns, {
        "metadata": {"name": "not-ours"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "not-ours"}},
                 "template": {"metadata": {"labels": {"app": "not-ours"}},
                              "spec": {"containers": [{"name": "c", "image": "x"}]}}},
    })  # fmt: skip

    config = tmp_path / "autoscaler.yaml"
    config.write_text(yaml.safe_dump({
        "installation": {"id": owner, "tag_prefix": PREFIX},
        "controller": {"interval": "1s"},
        "pools": [{
            "name": "chat", "min": 0, "max": 4,
            "target": {"kind": "deployment", "namespace": ns, "name": "chat"},
            "signals": {"backlog": {"source": {"type": "sqs", "queue_url": queue}}},
            "policy": {"type": "queue-depth", "signal": "backlog", "target_per_replica": 10},
            "behavior": {"scale_down": {"stabilization_window": "3s"}, "cooldown": 0,
                         "scale_to_zero_after": "3s"},
        }],
        "nodes": {
            "region": "us-east-1", "image_id": image, "api": "run-instances",
            "instance_types": ["g6.xlarge", "g6.12xlarge"], "max_nodes": 4,
            "empty_node_ttl": "3s", "registration_timeout": "1h",
            "labels": {POOL_LABEL: owner}, "namespaces": [ns],
        },
    }))  # fmt: skip
    kubeconfig = token_kubeconfig(kube_api, token, tmp_path / "sa.kubeconfig")
    log = tmp_path / "controller.log"
    shim = NodeShim(core_v1, ec2, installation_id=owner, join_delay=1.0, poll_interval=0.2)
    shim.start()
    proc = start_controller(config, kubeconfig, aws_env(moto_endpoint), log)
    stopped = False
    try:
        replicas = lambda: apps_v1.read_namespaced_deployment_scale("chat", ns).spec.replicas or 0  # noqa: E731

        # Backlog rises: 20 messages at 10 per replica -> 2 replicas.
        send(sqs, queue, 20)
        wait_until(lambda: replicas() == 2, 30, "the Deployment to scale to 2", log)

        def running() -> list[Any]:
            pods = core_v1.list_namespaced_pod(ns, label_selector="app=chat").items
            up = [p for p in pods if p.status.phase == "Running"]
            return up if len(up) == 2 else []

        up = wait_until(running, 90, "2 GPU pods Running on launched nodes", log)
        ours = instances(ec2, owner)
        assert ours and all(state in ("pending", "running") for state in ours.values()), ours
        assert {p.spec.node_name for p in up} <= set(ours), "pods run on the launched nodes"
        for inst in ec2.describe_instances(InstanceIds=list(ours))["Reservations"]:
            for i in inst["Instances"]:
                tags = {t["Key"]: t["Value"] for t in i["Tags"]}
                assert tags[f"{PREFIX}/owner"] == owner and f"{PREFIX}/pool" in tags, tags

        # Backlog drains -> scale to zero after stabilization -> nodes drained, terminated.
        sqs.purge_queue(QueueUrl=queue)
        wait_until(lambda: replicas() == 0, 30, "the Deployment to scale to 0", log)
        wait_until(
            lambda: all(s in ("shutting-down", "terminated")
                        for s in instances(ec2, owner).values()),
            90, "every owned instance terminated", log,
        )  # fmt: skip
        wait_until(
            lambda: not (set(ours) & {n.metadata.name for n in core_v1.list_node().items}),
            30, "the launched Nodes to be gone", log,
        )  # fmt: skip
        assert proc.poll() is None, "the controller exited early"
        stopped = True
        stop_controller(proc, log)
    finally:
        if not stopped:
            proc.kill()
        shim.stop(delete_nodes=True)

    # Nothing foreign touched.
    assert instances(ec2)[foreign_instance] == "running"
    node = core_v1.read_node(foreign_node)
    assert not node.spec.unschedulable and not node.spec.taints
    assert apps_v1.read_namespaced_deployment_scale("not-ours", ns).spec.replicas == 1
    nodes.delete_node(core_v1, foreign_node)


def test_batch_pool_from_a_backlog_to_jobs_up_to_the_limit_and_back_to_zero(
    kwok_cluster: KubeCluster,
    kube_api: Any,
    core_v1: Any,
    moto_endpoint: str,
    kube_namespace: str,
    chart_token: tuple[str, str],
    tmp_path: Path,
) -> None:
    from kubernetes import client as k

    ns = kube_namespace
    owner, token = chart_token
    batch = k.BatchV1Api(kube_api)
    gate = f"g-{uuid.uuid4().hex[:8]}"
    sqs = sqs_client(moto_endpoint)
    queue = sqs.create_queue(QueueName=f"batch-{owner}")["QueueUrl"]
    config = tmp_path / "batch.yaml"
    config.write_text(yaml.safe_dump({
        "installation": {"id": owner, "tag_prefix": PREFIX},
        "controller": {"interval": "1s"},
        "pools": [{
            "name": "batch", "min": 0, "max": 3,
            "target": {"kind": "job", "namespace": ns, "template": job_template(gate),
                       "items_per_job": 2, "keep_finished": 0},
            "signals": {"backlog": {"source": {"type": "sqs", "queue_url": queue}}},
            "policy": {"type": "queue-depth", "signal": "backlog", "target_per_replica": 2},
            "behavior": {"scale_down": {"stabilization_window": 0}, "cooldown": 0,
                         "scale_to_zero_after": 0},
        }],
    }))  # fmt: skip
    log = tmp_path / "controller.log"
    kubeconfig = token_kubeconfig(kube_api, token, tmp_path / "sa.kubeconfig")

    def jobs(active: bool | None = None) -> list[Any]:
        found = batch.list_namespaced_job(ns, label_selector=f"{PREFIX}/pool=batch").items
        found = [j for j in found if j.metadata.deletion_timestamp is None]
        if active is None:
            return found
        return [j for j in found if bool(j.status.active) == active]

    # 10 items at 2 per Job want 5 Jobs; the pool allows 3.
    send(sqs, queue, 10)
    proc = start_controller(config, kubeconfig, aws_env(moto_endpoint), log)
    stopped = False
    try:
        wait_until(lambda: len(jobs()) == 3, 30, "3 Jobs (the pool's max)", log)
        time.sleep(3)  # three more ticks: still exactly the limit
        assert len(jobs()) == 3
        # The workers took the items: the backlog is gone, but running Jobs are never
        # deleted to scale in.
        sqs.purge_queue(QueueUrl=queue)
        time.sleep(3)
        assert len(jobs(active=True)) == 3, "a running Job was deleted to scale in"
        open_gate(core_v1, gate)  # kwok runs the pods to completion
        wait_until(lambda: not jobs(), 60, "completed Jobs cleaned up (keep_finished: 0)", log)
        time.sleep(2)
        assert not jobs(), "a Job was created with no backlog"
        stopped = True
        stop_controller(proc, log)
    finally:
        if not stopped:
            proc.kill()
        nodes.delete_node(core_v1, f"gate-{gate}")


def test_two_replicas_one_acts_and_a_killed_leaders_successor_converges_without_relaunching(
    kwok_cluster: KubeCluster,
    kube_api: Any,
    core_v1: Any,
    apps_v1: Any,
    ec2: Any,
    moto_endpoint: str,
    kube_namespace: str,
    chart_token: tuple[str, str],
    tmp_path: Path,
) -> None:
    from kubernetes import client as k

    ns = kube_namespace
    owner, token = chart_token
    leases = k.CoordinationV1Api(kube_api)
    sqs = sqs_client(moto_endpoint)
    queue = sqs.create_queue(QueueName=f"ha-{owner}")["QueueUrl"]
    image = an_image(ec2)
    chat_deployment(apps_v1, ns, owner)
    config = tmp_path / "ha.yaml"
    config.write_text(yaml.safe_dump({
        "installation": {"id": owner, "tag_prefix": PREFIX},
        "controller": {"interval": "1s"},
        "pools": [{
            "name": "chat", "min": 0, "max": 4,
            "target": {"kind": "deployment", "namespace": ns, "name": "chat"},
            "signals": {"backlog": {"source": {"type": "sqs", "queue_url": queue}}},
            "policy": {"type": "queue-depth", "signal": "backlog", "target_per_replica": 10},
        }],
        "nodes": {
            "region": "us-east-1", "image_id": image, "api": "run-instances",
            "instance_types": ["g6.xlarge"], "max_nodes": 4, "empty_node_ttl": "10m",
            "registration_timeout": "1h", "labels": {POOL_LABEL: owner}, "namespaces": [ns],
        },
    }))  # fmt: skip
    kubeconfig = token_kubeconfig(kube_api, token, tmp_path / "sa.kubeconfig")
    env = aws_env(moto_endpoint)
    lease = "e2e-autoscaler"  # the chart's Lease: its Role names exactly this one

    def start(identity: str) -> tuple[subprocess.Popen[bytes], Path]:
        log = tmp_path / f"controller-{identity}.log"
        proc = start_controller(
            config, kubeconfig, env, log, "--leader-elect", "--lease-name", lease,
            "--lease-namespace", ns, "--lease-duration", "3s", "--identity", identity,
        )  # fmt: skip
        return proc, log

    def holder() -> str | None:
        try:
            return leases.read_namespaced_lease(lease, ns).spec.holder_identity
        except k.exceptions.ApiException:
            return None

    # Boots are slow enough (8 s) that launched instances are still in flight at failover.
    shim = NodeShim(core_v1, ec2, installation_id=owner, join_delay=8.0, poll_interval=0.2)
    shim.start()
    a, log_a = start("a")
    procs = [a]
    try:
        wait_until(lambda: holder() == "a", 20, "replica a to lead", log_a)
        b, log_b = start("b")
        procs.append(b)
        time.sleep(3)  # b campaigns and stands by
        send(sqs, queue, 20)
        wait_until(lambda: instances(ec2, owner), 40, "a to launch instances", log_a)
        time.sleep(1.5)  # a's launch of this round is complete
        launched = instances(ec2, owner)
        assert "scale up" not in log_b.read_text(), "the standby acted while a led"
        a.kill()  # a crash: no release; b must wait out the lease, then take over
        killed = time.monotonic()
        wait_until(lambda: holder() == "b", 10, "b to take over", log_b)
        assert time.monotonic() - killed < 3.0 + 3.0, "takeover within the lease (+ a retry)"

        def running() -> bool:
            pods = core_v1.list_namespaced_pod(ns, label_selector="app=chat").items
            return len([p for p in pods if p.status.phase == "Running"]) == 2

        wait_until(running, 90, "2 pods Running under the new leader", log_b)
        after = instances(ec2, owner)
        assert set(after) == set(launched), f"launched again: before {launched}, after {after}"
        assert b.poll() is None
        stop_controller(b, log_b)
        procs.remove(b)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
        shim.stop(delete_nodes=True)
        for inst in instances(ec2, owner):
            ec2.terminate_instances(InstanceIds=[inst])
