"""The contract's Kubernetes worlds: a Deployment, a StatefulSet or a Job pool in a fresh
namespace of the test cluster, with kwok running the pods, and the waits that settle them.

Settling reads the cluster directly (the workload's status and pods, the Jobs), not through
the provider under test, so that a provider which misreports cannot settle its own test.
Test-only.
"""

from __future__ import annotations

import uuid
from typing import Any

from autoscaler.clients.kube import Labels
from autoscaler.config import Pool
from tests.aws.helpers import config, pool_dict
from tests.cluster import nodes
from tests.cluster.wait import wait_for
from tests.kube.test_kube_jobs import GATE
from tests.kube.test_kube_workload import workload

INSTALLATION = "contract-test"
PREFIX = "elastic-autoscaler.io"
LABELS = Labels(INSTALLATION, PREFIX)
NAME = "contract"
SETTLE_SECONDS = 90.0
_FINISHED = {"Complete", "Failed", "FailureTarget", "SuccessCriteriaMet"}


def kube_pool(target: dict[str, Any]) -> Pool:
    return config(pool_dict(NAME, target, max=5), installation=INSTALLATION).pools[0]


def workload_manifest(kind: str) -> dict[str, Any]:
    """A Deployment or StatefulSet of zero pause pods, labelled as ours; its pods run on the
    cluster's kwok system node and go at once when deleted."""
    return workload(NAME, 0, kind=kind, labels={LABELS.owner_key: INSTALLATION})


def new_gate() -> str:
    return f"g-{uuid.uuid4().hex[:8]}"


def _pod_ready(pod: Any) -> bool:
    conditions = (pod.status.conditions if pod.status else None) or []
    return any(c.type == "Ready" and c.status == "True" for c in conditions)


def _live(pod: Any) -> bool:
    phase = pod.status.phase if pod.status else None
    return pod.metadata.deletion_timestamp is None and phase not in ("Succeeded", "Failed")


class WorkloadWorld:
    """A Deployment or StatefulSet named `contract` in `namespace`."""

    def __init__(self, apps_v1: Any, core_v1: Any, namespace: str, kind: str) -> None:
        self.apps, self.core, self.namespace, self.kind = apps_v1, core_v1, namespace, kind
        if kind == "Deployment":
            apps_v1.create_namespaced_deployment(namespace, workload_manifest(kind))
        else:
            apps_v1.create_namespaced_stateful_set(namespace, workload_manifest(kind))

    def _read(self) -> Any:
        if self.kind == "Deployment":
            return self.apps.read_namespaced_deployment(NAME, self.namespace)
        return self.apps.read_namespaced_stateful_set(NAME, self.namespace)

    def state(self) -> str:
        obj = self._read()
        st = obj.status
        pods = self.core.list_namespaced_pod(self.namespace, label_selector=f"app={NAME}").items
        shown = ", ".join(
            f"{p.metadata.name}({p.status.phase if p.status else '?'}"
            f"{' ready' if _pod_ready(p) else ''}"
            f"{' deleting' if p.metadata.deletion_timestamp else ''})"
            for p in pods
        )
        return (
            f"{self.kind} replicas={obj.spec.replicas} generation={obj.metadata.generation} "
            f"observed={st.observed_generation if st else None} "
            f"status.replicas={st.replicas if st else None} "
            f"ready={st.ready_replicas if st else None}; pods: {shown or 'none'}"
        )

    def settled(self) -> bool:
        """The controller has caught up with the requested count: that many live pods, all
        Ready, and the workload's status says so."""
        obj = self._read()
        want, st = obj.spec.replicas or 0, obj.status
        if st is None or (st.observed_generation or 0) < (obj.metadata.generation or 0):
            return False
        if (st.replicas or 0) != want or (st.ready_replicas or 0) != want:
            return False
        pods = self.core.list_namespaced_pod(self.namespace, label_selector=f"app={NAME}").items
        live = [p for p in pods if _live(p)]
        return len(live) == want and all(_pod_ready(p) for p in live)

    def settle(self) -> None:
        wait_for(
            self.settled,
            timeout=SETTLE_SECONDS,
            what=f"{self.kind} {self.namespace}/{NAME} to settle",
            describe=self.state,
        )


def ordinal(pod: str) -> int:
    return int(pod.rsplit("-", 1)[1])


class JobWorld:
    """Jobs of the pool `contract` in `namespace`, their pods held Pending behind a gate."""

    def __init__(self, batch_v1: Any, core_v1: Any, namespace: str) -> None:
        self.batch, self.core, self.namespace = batch_v1, core_v1, namespace
        self.gate = new_gate()
        self.node = f"gate-{self.gate}"

    def _active(self) -> list[Any]:
        jobs = self.batch.list_namespaced_job(
            self.namespace, label_selector=LABELS.selector(NAME)
        ).items
        return [
            j
            for j in jobs
            if j.metadata.deletion_timestamp is None
            and not any(
                c.type in _FINISHED and c.status == "True"
                for c in ((j.status.conditions if j.status else None) or [])
            )
        ]

    def state(self) -> str:
        jobs = self.batch.list_namespaced_job(self.namespace).items
        return (
            "; ".join(
                f"{j.metadata.name} active={j.status.active} ready={j.status.ready} "
                f"succeeded={j.status.succeeded} "
                f"conditions={[(c.type, c.status) for c in (j.status.conditions or [])]}"
                for j in jobs
            )
            or "no Jobs"
        )

    def settle(self) -> None:
        """Every active Job has its pod (Pending behind the gate): nothing more will move."""
        wait_for(
            lambda: all((j.status.active or 0) >= 1 for j in self._active()),
            timeout=SETTLE_SECONDS,
            what=f"a pod for every active Job in {self.namespace}",
            describe=self.state,
        )

    def finish(self) -> None:
        """Open the gate until every active Job has run and finished, then close it again
        (Jobs created afterwards stay Pending, as before)."""
        nodes.create_fake_node(
            self.core, self.node, cpu="16", memory="64Gi", labels={GATE: self.gate}
        )
        try:
            nodes.wait_node_ready(self.core, self.node)
            wait_for(
                lambda: not self._active(),
                timeout=SETTLE_SECONDS,
                what=f"every active Job in {self.namespace} to finish",
                describe=self.state,
            )
        finally:
            self.close_gate()

    def close_gate(self) -> None:
        nodes.delete_node(self.core, self.node)
        wait_for(
            lambda: not _node_exists(self.core, self.node),
            timeout=30,
            what=f"node {self.node} to be gone",
        )


def _node_exists(core_v1: Any, name: str) -> bool:
    from kubernetes.client.exceptions import ApiException

    try:
        core_v1.read_node(name)
    except ApiException as e:
        if e.status == 404:
            return False
        raise
    return True
