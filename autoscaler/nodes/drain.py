"""The Kubernetes calls of scale-down: cordon (with our taint as the marker), label, evict,
un-cordon and delete Nodes.

Draining goes through the Eviction API only, so PodDisruptionBudgets hold: a 429 means the
budget allows no disruption now, and the node waits for the next tick. Nothing is ever
deleted by force. Which node to cordon or drain, and which pods to evict, is decided by
`plan_nodes`; this module only carries it out.

This module must never touch a node the caller has not matched to an instance we own.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from autoscaler.clients.kube import Labels, translated

log = logging.getLogger("autoscaler.nodes")

Eviction = Literal["evicted", "blocked", "gone"]


class Drainer:
    """The node and eviction calls, each safe to repeat (the next tick may retry it)."""

    def __init__(self, core_v1: Any, labels: Labels) -> None:
        self.core = core_v1
        self.labels = labels

    @property
    def taint_key(self) -> str:
        """Our NoSchedule taint on a node being drained; it marks the cordon as ours."""
        return self.labels.key("disrupting")

    def cordon(self, name: str, reason: str = "") -> None:
        """Unschedulable, with our taint; its value is `reason` ("true" when empty: a node
        empty past its TTL), replacing the value an earlier cordon of ours left."""
        ours = {"key": self.taint_key, "value": reason or "true", "effect": "NoSchedule"}
        self.update_taints(name, "cordon", add=[ours], remove=self.taint_key, unschedulable=True)
        log.info("node %s: cordoned (%s)", name, reason or "empty past its TTL")

    def uncordon(self, name: str, why: str) -> None:
        self.update_taints(name, "un-cordon", remove=self.taint_key, unschedulable=False)
        log.info("node %s: drain called off: %s", name, why)

    def label(self, name: str, labels: Mapping[str, str], add: Sequence[Mapping[str, str]]) -> None:
        """Merge `labels` into the node's and add the taints `add`."""
        if add:
            self.update_taints(name, "label", add=add, labels=labels)
            return
        with translated(f"node {name}: label"):  # labels merge key by key: no read needed
            self.core.patch_node(name, {"metadata": {"labels": dict(labels)}})

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

    def evict(self, pod: str) -> Eviction:
        """Ask the Eviction API to remove `pod` (namespace/name); `blocked` when a PDB says
        not now, `gone` when it no longer exists."""
        from kubernetes import client as k
        from kubernetes.client.exceptions import ApiException

        namespace, name = pod.split("/", 1)
        body = k.V1Eviction(metadata=k.V1ObjectMeta(name=name, namespace=namespace))
        with translated(f"pod {pod}: eviction"):
            try:
                self.core.create_namespaced_pod_eviction(name, namespace, body)
            except ApiException as exc:
                if exc.status == 429:
                    return "blocked"
                if exc.status == 404:
                    return "gone"
                raise
        log.info("evicted %s", pod)
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
