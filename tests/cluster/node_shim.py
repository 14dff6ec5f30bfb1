"""Node shim: one kwok Node per running EC2 instance the autoscaler owns (EC2 served by moto).

On a real cluster a launched GPU instance boots, its kubelet registers a Node, and the
scheduler places pending pods there. In the tests EC2 is moto and there is no kubelet, so
this shim plays that part: it polls EC2 (boto3, any endpoint URL) for instances in state
``pending``/``running`` that carry the ownership tag ``<tag_prefix>/owner = <installation
id>``, and once an instance has been running for ``join_delay`` seconds (a simulated boot) it
creates a kwok-managed Node named after the instance id, with ``spec.providerID
aws:///<az>/<instance-id>``, instance-type/zone/region labels and capacity taken from
``INSTANCE_TYPES`` (``nvidia.com/gpu`` included). When the instance stops running (or
disappears) the Node is deleted. Instances without the tag, or owned by another
installation, get no Node. Nodes the shim created carry the label ``<tag_prefix>/node-shim``.

Usage::

    shim = NodeShim(core_v1, ec2_client, installation_id="test", join_delay=2.0)
    shim.start()        # background thread; or call shim.sync_once() yourself
    ...
    shim.stop()         # stops the thread (and, with delete_nodes=True, removes its Nodes)
"""

from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass
from typing import Any

from kubernetes.client.exceptions import ApiException

from tests.cluster import nodes

log = logging.getLogger(__name__)

DEFAULT_TAG_PREFIX = "elastic-autoscaler.io"


@dataclass(frozen=True)
class InstanceType:
    """What a Node of this instance type offers to the scheduler."""

    cpu: int
    memory_gib: int
    gpus: int = 0
    gpu_product: str | None = None
    pods: int = 110


# A small table of the instance types the tests use (vCPU, GiB, GPUs as AWS documents them;
# GPU product names as NVIDIA GPU feature discovery labels them).
INSTANCE_TYPES: dict[str, InstanceType] = {
    "t3.medium": InstanceType(2, 4),
    "m5.large": InstanceType(2, 8),
    "m5.xlarge": InstanceType(4, 16),
    "m5.2xlarge": InstanceType(8, 32),
    "c5.xlarge": InstanceType(4, 8),
    "g5.xlarge": InstanceType(4, 16, 1, "NVIDIA-A10G"),
    "g5.2xlarge": InstanceType(8, 32, 1, "NVIDIA-A10G"),
    "g5.4xlarge": InstanceType(16, 64, 1, "NVIDIA-A10G"),
    "g5.12xlarge": InstanceType(48, 192, 4, "NVIDIA-A10G"),
    "g5.48xlarge": InstanceType(192, 768, 8, "NVIDIA-A10G"),
    "g6.xlarge": InstanceType(4, 16, 1, "NVIDIA-L4"),
    "g6.12xlarge": InstanceType(48, 192, 4, "NVIDIA-L4"),
    "g6e.xlarge": InstanceType(4, 32, 1, "NVIDIA-L40S"),
    "p4d.24xlarge": InstanceType(96, 1152, 8, "NVIDIA-A100-SXM4-40GB"),
    "p5.48xlarge": InstanceType(192, 2048, 8, "NVIDIA-H100-80GB-HBM3"),
}
UNKNOWN_INSTANCE_TYPE = InstanceType(2, 8)

_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def _label_value_ok(value: str) -> bool:
    return len(value) <= 63 and bool(_LABEL_VALUE.match(value))


class NodeShim:
    """Keeps one kwok Node per running, owned EC2 instance. Thread-safe start/stop."""

    def __init__(
        self,
        core_v1: Any,
        ec2: Any,
        *,
        installation_id: str,
        tag_prefix: str = DEFAULT_TAG_PREFIX,
        join_delay: float = 0.0,
        poll_interval: float = 0.5,
        instance_types: dict[str, InstanceType] | None = None,
        extra_labels: dict[str, str] | None = None,
        taints: list[dict[str, str]] | None = None,
    ) -> None:
        self.core = core_v1
        self.ec2 = ec2
        self.installation_id = installation_id
        self.tag_prefix = tag_prefix.rstrip("/")
        self.owner_tag = f"{self.tag_prefix}/owner"
        self.managed_label = f"{self.tag_prefix}/node-shim"
        self.join_delay = join_delay
        self.poll_interval = poll_interval
        self.instance_types = instance_types or INSTANCE_TYPES
        self.extra_labels = extra_labels or {}
        self.taints = taints or []
        self.region: str = ec2.meta.region_name
        self._first_running: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.errors: list[BaseException] = []  # sync errors seen by the thread (kept for tests)

    # -- lifecycle --

    def start(self) -> NodeShim:
        if self._thread is not None:
            raise RuntimeError("node shim already started")
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="node-shim", daemon=True)
        self._thread.start()
        return self

    def stop(self, delete_nodes: bool = False, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise RuntimeError(f"node shim thread did not stop within {timeout}s")
            self._thread = None
        if delete_nodes:
            for name in self.managed_nodes():
                nodes.delete_node(self.core, name)

    def __enter__(self) -> NodeShim:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop(delete_nodes=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.sync_once()
            except Exception as e:  # keep polling; a test can inspect self.errors
                log.warning("node shim sync failed: %r", e)
                self.errors.append(e)
            self._stop.wait(self.poll_interval)

    # -- one reconciliation pass --

    def owned_instances(self) -> dict[str, dict[str, Any]]:
        """Running/pending instances carrying our ownership tag, by instance id."""
        found: dict[str, dict[str, Any]] = {}
        paginator = self.ec2.get_paginator("describe_instances")
        filters = [
            {"Name": f"tag:{self.owner_tag}", "Values": [self.installation_id]},
            {"Name": "instance-state-name", "Values": ["pending", "running"]},
        ]
        for page in paginator.paginate(Filters=filters):
            for reservation in page.get("Reservations", []):
                for inst in reservation.get("Instances", []):
                    tags = {t["Key"]: t["Value"] for t in inst.get("Tags", [])}
                    # Check the tag again: the shim must never adopt someone else's instance.
                    if tags.get(self.owner_tag) != self.installation_id:
                        continue
                    inst["_tags"] = tags
                    found[inst["InstanceId"]] = inst
        return found

    def managed_nodes(self) -> list[str]:
        selector = f"{self.managed_label}={self.installation_id}"
        return [n.metadata.name for n in self.core.list_node(label_selector=selector).items]

    def sync_once(self) -> set[str]:
        """Create/delete Nodes to match EC2 now. Returns the names of the Nodes that exist."""
        instances = self.owned_instances()
        # Read the clock after the describe call: an instance launched while a slow call was
        # in flight must not get a first-seen time earlier than its launch.
        now = time.monotonic()
        running = {i: inst for i, inst in instances.items() if inst["State"]["Name"] == "running"}
        for iid in running:
            self._first_running.setdefault(iid, now)
        for iid in list(self._first_running):
            if iid not in running:
                del self._first_running[iid]

        existing = set(self.managed_nodes())
        for name in existing - set(running):
            log.info("node shim: instance %s is gone; deleting its Node", name)
            nodes.delete_node(self.core, name)
            existing.discard(name)
        for iid, inst in running.items():
            if iid in existing or now - self._first_running[iid] < self.join_delay:
                continue
            log.info("node shim: instance %s joined; creating its Node", iid)
            try:
                self.core.create_node(self.node_manifest(inst))
            except ApiException as e:
                if e.status != 409:  # 409: it exists already (a list that lagged); fine
                    raise
            existing.add(iid)
        return existing

    def node_manifest(self, inst: dict[str, Any]) -> dict[str, Any]:
        iid = inst["InstanceId"]
        itype = inst["InstanceType"]
        az = inst["Placement"]["AvailabilityZone"]
        spec = self.instance_types.get(itype)
        if spec is None:
            log.warning(
                "node shim: %s is not in the instance-type table; using %s",
                itype,
                UNKNOWN_INSTANCE_TYPE,
            )
            spec = UNKNOWN_INSTANCE_TYPE
        labels = {self.managed_label: self.installation_id, **self.extra_labels}
        # Copy the autoscaler's own tags (pool, ...) to labels where they are valid labels.
        for key, value in inst.get("_tags", {}).items():
            ours = key.startswith(self.tag_prefix + "/") and key != self.owner_tag
            if ours and _label_value_ok(value) and len(key.split("/", 1)[1]) <= 63:
                labels[key] = value
        return nodes.fake_node(
            iid,
            cpu=str(spec.cpu),
            memory=f"{spec.memory_gib}Gi",
            gpus=spec.gpus,
            pods=spec.pods,
            instance_type=itype,
            zone=az,
            region=self.region,
            gpu_product=spec.gpu_product,
            labels=labels,
            taints=self.taints,
            provider_id=f"aws:///{az}/{iid}",
        )
