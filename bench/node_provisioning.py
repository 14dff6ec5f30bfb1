"""Benchmark: GPU node provisioning for 2,000 unschedulable GPU pods.

Target (issue 6): seconds per decision (cluster-autoscaler documents <= 60 s of scale-up
latency for 1,000-node clusters). Pods mix 1-, 2-, 4- and 8-GPU requests over six allowed
instance types. Measured:
- decide: reading the pending pods into plain values and `plan_nodes` (grouping, bin
  packing and every decision; no API calls), for the first tick (nothing launched yet)
  and a later tick (every node in flight, the in-flight accounting path that must launch
  nothing);
- tick: the whole tick against moto's EC2 server over HTTP (DescribeInstances per type,
  RunInstances, tags), with a fake Kubernetes API answering the pod and node lists; the
  time spent inside the EC2 calls is shown beside it, and the target applies to the rest.

    python bench/node_provisioning.py [--pods 2000] [--repeat 5] [--json ...]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kubernetes import client as k

from autoscaler.clients.aws import AwsClients, Ownership
from autoscaler.clock import SystemClock
from autoscaler.config.nodes import NodeProvisioning
from autoscaler.nodes import NodeProvisioner, Observed, plan_nodes
from autoscaler.nodes.commands import Launch, Unplaced
from autoscaler.nodes.inventory import OurInstance
from autoscaler.nodes.observe import pod_views
from autoscaler.providers.aws_ec2 import Ec2Provider

TYPES = ["g6.xlarge", "g6.2xlarge", "g6.12xlarge", "g6.48xlarge", "g5.xlarge", "g5.12xlarge"]
# (GPUs, vCPUs, memory, share of the pods)
SHAPES = [
    (1, "2", "8Gi", 0.5),
    (2, "8", "32Gi", 0.3),
    (4, "16", "64Gi", 0.15),
    (8, "32", "128Gi", 0.05),
]
TARGET_S = 60.0


def pending_pod(name: str, gpus: int, cpu: str, memory: str) -> Any:
    resources = k.V1ResourceRequirements(
        requests={"cpu": cpu, "memory": memory}, limits={"nvidia.com/gpu": str(gpus)}
    )
    unschedulable = k.V1PodCondition(type="PodScheduled", status="False", reason="Unschedulable")
    return k.V1Pod(
        metadata=k.V1ObjectMeta(name=name, namespace="bench", uid=name),
        spec=k.V1PodSpec(containers=[k.V1Container(name="m", resources=resources)]),
        status=k.V1PodStatus(phase="Pending", conditions=[unschedulable]),
    )


def pending_pods(count: int) -> list[Any]:
    return [
        pending_pod(f"llm-{gpus}g-{i}", gpus, cpu, memory)
        for gpus, cpu, memory, share in SHAPES
        for i in range(round(count * share))
    ]


class FakeCore:
    """The two lists the tick reads, answered from memory; writes are accepted and dropped."""

    def __init__(self, pods: list[Any]) -> None:
        self.pods = pods

    def list_node(self) -> Any:
        return SimpleNamespace(items=[])

    def list_pod_for_all_namespaces(self, field_selector: str = "") -> Any:
        return SimpleNamespace(items=self.pods)

    def patch_node(self, *args: Any) -> None:
        return None


def provisioner(pods: list[Any], image: str = "ami-12345678") -> NodeProvisioner:
    # moto answers DescribeInstances over 1,700 instances in tens of seconds: wait for it.
    config = NodeProvisioning(
        region="us-east-1",
        image_id=image,
        api="run-instances",
        instance_types=TYPES,
        max_nodes=10_000,
        namespaces=["bench"],
    )
    provider = Ec2Provider(Ownership("bench"), SystemClock(), AwsClients(timeout_seconds=600))
    p = NodeProvisioner(config, k.ApiClient(), provider, SystemClock())
    p.core = FakeCore(pods)
    p.drainer.core = p.core
    return p


def decide(count: int, repeat: int) -> dict[str, Any]:
    """Reading the pods into plain values plus `plan_nodes`: the tick's work between its
    API reads and its API calls."""
    pods = pending_pods(count)
    p = provisioner(pods)
    first: list[float] = []
    later: list[float] = []
    for _ in range(repeat):
        started = time.perf_counter()
        seen = Observed(p.config, 0.0, pods=pod_views(pods, set(), p.labels))
        plan = plan_nodes(seen)
        first.append(time.perf_counter() - started)
    packing = plan.packing
    assert packing is not None
    in_flight = tuple(
        OurInstance(f"i-{n}", node.instance_type, False, 0.0)
        for n, node in enumerate(packing.new_nodes)
    )
    for _ in range(repeat):
        started = time.perf_counter()
        seen = Observed(p.config, 0.0, in_flight, pods=pod_views(pods, set(), p.labels))
        again = plan_nodes(seen)
        later.append(time.perf_counter() - started)
    launches = [c for c in again.commands if isinstance(c, Launch)]
    assert not launches and again.covered == len(pods), "in-flight accounting failed"
    return {
        "pods": len(pods),
        "nodes_planned": len(packing.new_nodes),
        "launches": dict(sorted(packing.launches().items())),
        "price_per_hour": round(packing.price_per_hour, 2),
        "unplaced": sum(isinstance(c, Unplaced) for c in plan.commands),
        "decide_first_s": statistics.median(first),
        "decide_in_flight_s": statistics.median(later),
    }


def timed_cloud_calls(provider: Any) -> list[float]:
    """Wrap the provider's calls to add their wall time to the returned one-item list."""
    spent = [0.0]
    for name in ("describe", "scale", "remove"):
        call = getattr(provider, name)

        def timed(*args: Any, _call: Any = call) -> Any:
            started = time.perf_counter()
            try:
                return _call(*args)
            finally:
                spent[-1] += time.perf_counter() - started

        setattr(provider, name, timed)
    return spent


def full_tick(count: int) -> dict[str, Any]:
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    os.environ.update(
        AWS_ENDPOINT_URL=f"http://{host}:{port}",
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION="us-east-1",
    )
    try:
        import boto3

        ec2 = boto3.client("ec2", region_name="us-east-1")
        image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
        p = provisioner(pending_pods(count), image)
        cloud = timed_cloud_calls(p.ec2)
        started = time.perf_counter()
        first = p.tick()
        first_s, first_cloud = time.perf_counter() - started, cloud.pop()
        cloud.append(0.0)
        started = time.perf_counter()
        second = p.tick()
        second_s, second_cloud = time.perf_counter() - started, cloud.pop()
    finally:
        server.stop()
    if first.errors or second.errors or second.launched:
        raise SystemExit(f"tick failed: {first.errors or second.errors or second.launched}")
    return {
        "instances_launched": sum(first.launched.values()),
        "tick_first_s": first_s,
        "tick_first_cloud_s": first_cloud,
        "tick_in_flight_s": second_s,
        "tick_in_flight_cloud_s": second_cloud,
        "tick_first_decide_s": first.decide_seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pods", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-moto", action="store_true", help="skip the full tick")
    parser.add_argument(
        "--json", default=str(Path(__file__).parent / "results" / "node_provisioning.json")
    )
    args = parser.parse_args()
    d = decide(args.pods, args.repeat)
    t = {} if args.no_moto else full_tick(args.pods)
    # The target is on our share: moto's DescribeInstances over 1,700 instances takes tens
    # of seconds (EC2 itself answers in about one), so time spent inside it is reported
    # beside the tick, not counted against the target.
    times = [d["decide_first_s"], d["decide_in_flight_s"]]
    if t:
        times += [
            t["tick_first_s"] - t["tick_first_cloud_s"],
            t["tick_in_flight_s"] - t["tick_in_flight_cloud_s"],
        ]
    rows = [
        {"measure": "decide, first tick (pack + plan)", "seconds": f"{d['decide_first_s']:.3f}"},
        {
            "measure": "decide, all in flight (no launch)",
            "seconds": f"{d['decide_in_flight_s']:.3f}",
        },
    ]
    if t:
        rows += [
            {
                "measure": f"full tick vs moto, launching {t['instances_launched']} instances",
                "seconds": f"{t['tick_first_s']:.2f} (moto {t['tick_first_cloud_s']:.2f})",
            },
            {
                "measure": "full tick vs moto, all in flight",
                "seconds": f"{t['tick_in_flight_s']:.2f} (moto {t['tick_in_flight_cloud_s']:.2f})",
            },
        ]
    result = {
        "title": f"Node provisioning, {d['pods']:,} pending GPU pods -> {d['nodes_planned']} "
        f"nodes (${d['price_per_hour']:.2f}/h); target <= {TARGET_S:.0f} s",
        "command": "python bench/node_provisioning.py",
        "rows": rows,
        **d,
        **t,
        "target_s": TARGET_S,
        "meets_target": max(times) <= TARGET_S,
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cpus",
    }
    print(result["title"])
    print(f"{'measure':<52} {'seconds':>22}")
    for row in rows:
        print(f"{row['measure']:<52} {row['seconds']:>22}")
    print(f"launches: {d['launches']}; unplaced: {d['unplaced']}")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
