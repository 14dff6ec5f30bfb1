"""Cordon, drain and un-cordon our nodes; which pods count as workload and which forbid it.

Draining goes through the Eviction API only, so PodDisruptionBudgets hold: a 429 means the
budget allows no disruption now, and the node waits for the next tick. Nothing is ever
deleted by force. DaemonSet pods and mirror (static) pods are not workload: they belong
to the node and go with it. A pod annotated `<prefix>/do-not-disrupt: "true"` keeps its
node: the drain is called off and the node un-cordoned.

This module must never touch a node the caller has not matched to an instance we own.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from autoscaler.clients.kube import Labels, is_finished_pod, translated

log = logging.getLogger("autoscaler.nodes")

MIRROR_ANNOTATION = "kubernetes.io/config.mirror"

Eviction = Literal["evicted", "blocked", "gone"]


def is_workload(pod: Any) -> bool:
    """A pod that keeps a node busy: not finished, not a DaemonSet's, not a mirror pod."""
    if is_finished_pod(pod):
        return False
    if MIRROR_ANNOTATION in (pod.metadata.annotations or {}):
        return False
    return not any(ref.kind == "DaemonSet" for ref in pod.metadata.owner_references or ())


def forbids_disruption(pod: Any, labels: Labels) -> bool:
    """True for a live pod annotated `<prefix>/do-not-disrupt: "true"`."""
    value = (pod.metadata.annotations or {}).get(labels.do_not_disrupt_key, "")
    return not is_finished_pod(pod) and value.strip().lower() == "true"


class Drainer:
    """The API calls of scale-down: cordon (with our taint as the marker), evict, release."""

    def __init__(self, core_v1: Any, labels: Labels) -> None:
        self.core = core_v1
        self.labels = labels

    @property
    def taint_key(self) -> str:
        """Our NoSchedule taint on a node being drained; it marks the cordon as ours."""
        return self.labels.key("disrupting")

    def is_ours_cordoned(self, node: Any) -> bool:
        return any(t.key == self.taint_key for t in (node.spec.taints or ()))

    def cordon(self, node: Any) -> None:
        ours = {"key": self.taint_key, "value": "true", "effect": "NoSchedule"}
        self.update_taints(node.metadata.name, "cordon", add=[ours], unschedulable=True)
        log.info("node %s: cordoned (empty past its TTL)", node.metadata.name)

    def uncordon(self, node: Any, why: str) -> None:
        self.update_taints(
            node.metadata.name, "un-cordon", remove=self.taint_key, unschedulable=False
        )
        log.info("node %s: drain called off: %s", node.metadata.name, why)

    def update_taints(
        self,
        name: str,
        what: str,
        *,
        add: Sequence[Mapping[str, str]] = (),
        remove: str | None = None,
        unschedulable: bool | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> None:
        """Read-modify-write of a node's taints, guarded by its resourceVersion.

        The taint list is replaced as a whole, so a change made meanwhile (the node
        controller lifting its not-ready taint) must not be undone: a conflict re-reads
        the node and tries again, a few times, before it becomes an error.
        """
        from kubernetes.client.exceptions import ApiException

        with translated(f"node {name}: {what}"):
            for attempt in range(_ATTEMPTS):
                node = self.core.read_node(name)
                taints = [
                    _taint_dict(t)
                    for t in node.spec.taints or ()
                    if remove is None or t.key != remove
                ]
                taints += [dict(t) for t in add if not _has(taints, t)]
                spec: dict[str, Any] = {"taints": taints}
                if unschedulable is not None:
                    spec["unschedulable"] = unschedulable
                meta: dict[str, Any] = {"resourceVersion": node.metadata.resource_version}
                if labels:
                    meta["labels"] = dict(labels)
                try:
                    self.core.patch_node(name, {"metadata": meta, "spec": spec})
                    return
                except ApiException as exc:
                    if exc.status != 409 or attempt == _ATTEMPTS - 1:
                        raise

    def evict(self, pod: Any) -> Eviction:
        """Ask the Eviction API to remove `pod`; `blocked` when a PDB says not now."""
        from kubernetes import client as k
        from kubernetes.client.exceptions import ApiException

        meta = pod.metadata
        body = k.V1Eviction(metadata=k.V1ObjectMeta(name=meta.name, namespace=meta.namespace))
        with translated(f"pod {meta.namespace}/{meta.name}: eviction"):
            try:
                self.core.create_namespaced_pod_eviction(meta.name, meta.namespace, body)
            except ApiException as exc:
                if exc.status == 429:
                    return "blocked"
                if exc.status == 404:
                    return "gone"
                raise
        log.info("evicted %s/%s", meta.namespace, meta.name)
        return "evicted"

    def delete_node(self, name: str) -> None:
        from kubernetes.client.exceptions import ApiException

        with translated(f"node {name}: delete"):
            try:
                self.core.delete_node(name)
            except ApiException as exc:
                if exc.status != 404:
                    raise


_ATTEMPTS = 4


def _has(taints: Sequence[Mapping[str, str]], taint: Mapping[str, str]) -> bool:
    return any(t["key"] == taint["key"] and t["effect"] == taint["effect"] for t in taints)


def _taint_dict(taint: Any) -> dict[str, str]:
    out = {"key": taint.key, "effect": taint.effect}
    if taint.value:
        out["value"] = taint.value
    return out
