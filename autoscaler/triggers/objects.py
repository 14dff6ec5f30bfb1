"""AutoscalingTrigger objects: listing and validating them, writing their status (the
condition's verdict and the latest runs) and the Events of their runs.

Every object is validated with pydantic on its own; a bad one is reported on itself
(`Valid` False, a Warning Event) and never stops the other triggers. A failed status or
Event write is logged and dropped: they are reports, and must not stop a run.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kubernetes import client as k
from pydantic import ValidationError

from autoscaler import telemetry
from autoscaler.clients.kube import error_code
from autoscaler.config.loader import issues_from
from autoscaler.config.triggers import Trigger
from autoscaler.kube.crd import GROUP, TRIGGER_KIND, TRIGGER_PLURAL, VERSION
from autoscaler.kube.status import condition, timestamp

from .condition import Verdict
from .pipeline import Run, next_step

log = logging.getLogger("autoscaler.triggers")


@dataclass(frozen=True)
class TriggerRef:
    """The AutoscalingTrigger object a trigger came from."""

    namespace: str
    name: str
    generation: int = 0
    uid: str = ""

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"

    def involved(self) -> dict[str, Any]:
        return {"apiVersion": f"{GROUP}/{VERSION}", "kind": TRIGGER_KIND, "name": self.name,
                "namespace": self.namespace, "uid": self.uid or None}  # fmt: skip


@dataclass(frozen=True)
class Listed:
    """A valid object's trigger, where it came from and the breach its status remembers."""

    trigger: Trigger
    ref: TriggerRef
    breached_since: float | None


def ref_of(obj: dict[str, Any]) -> TriggerRef:
    meta = obj.get("metadata") or {}
    return TriggerRef(str(meta.get("namespace", "")), str(meta.get("name", "")),
                      int(meta.get("generation") or 0), str(meta.get("uid", "")))  # fmt: skip


def parse(obj: dict[str, Any]) -> Listed | str:
    """One object as a trigger, or what is wrong with it (paths as on the object)."""
    ref = ref_of(obj)
    data = copy.deepcopy(obj.get("spec") or {})
    data["name"] = ref.name
    data.setdefault("namespace", ref.namespace)
    try:
        trigger = Trigger.model_validate(data)
    except ValidationError as exc:
        return "; ".join(
            f"{'metadata.name' if i.path == 'name' else 'spec.' + i.path}: {i.message}"
            for i in issues_from(exc, {})
        )
    since = (obj.get("status") or {}).get("breachedSince")
    return Listed(trigger, ref, float(since) if isinstance(since, int | float) else None)


def current_step(run: Run) -> str:
    """Where a run stands: done, evaluate, retrain or rollout."""
    if run.finished:
        return "done"
    if run.retrain is None:
        return "evaluate"
    return "retrain" if run.retrain.phase == "active" else "rollout"


def run_status(trigger: Trigger, run: Run) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": run.run_id,
        "sequence": run.sequence,
        "firedTime": timestamp(run.fired_at),
        "step": current_step(run),
    }
    if run.finished:
        out.update(outcome=run.outcome, detail=run.detail[:500])
        if run.ended_at is not None:
            out["endedTime"] = timestamp(run.ended_at)
    else:
        step = next_step(trigger.pipeline, run)
        out["detail"] = str(
            getattr(step, "why", "") or f"rolling out {getattr(step, 'version', '')}"
        )[:500]
    return out


def trigger_status(
    trigger: Trigger, ref: TriggerRef, verdict: Verdict, runs: Sequence[Run],
    breached_since: float | None,
) -> dict[str, Any]:  # fmt: skip
    """The status after one round: the verdict's numbers and the latest runs."""
    gen = ref.generation
    return {
        "observedGeneration": gen,
        "state": verdict.state,
        "reason": verdict.reason,
        "value": verdict.value,
        "threshold": verdict.threshold,
        "heldSeconds": round(verdict.held_seconds, 3),
        "cooldownLeftSeconds": round(verdict.cooldown_left_seconds, 3),
        "breachedSince": breached_since,
        "runs": [run_status(trigger, r) for r in list(runs)[-trigger.keep_runs :]],
        "conditions": [condition("Valid", True, "Accepted", "spec is valid", gen)],
    }


def problem_status(ref: TriggerRef, message: str) -> dict[str, Any]:
    gen = ref.generation
    return {"observedGeneration": gen,
            "conditions": [condition("Valid", False, "InvalidSpec", message, gen)]}  # fmt: skip


class TriggerObjects:
    """AutoscalingTrigger objects in the watched namespaces (empty: all)."""

    def __init__(self, api_client: Any, namespaces: Sequence[str] = ()) -> None:
        self.api = k.CustomObjectsApi(api_client)
        self.namespaces = list(namespaces)

    def list_objects(self) -> list[dict[str, Any]]:
        if not self.namespaces:
            found: Any = self.api.list_cluster_custom_object(GROUP, VERSION, TRIGGER_PLURAL)
            return list(found.get("items", []))
        items: list[dict[str, Any]] = []
        for ns in self.namespaces:
            listed: Any = self.api.list_namespaced_custom_object(GROUP, VERSION, ns, TRIGGER_PLURAL)
            items.extend(listed.get("items", []))
        return items

    def load(self) -> tuple[list[Listed], list[tuple[TriggerRef, str]]]:
        """The valid triggers and the invalid objects with what is wrong."""
        good: list[Listed] = []
        bad: list[tuple[TriggerRef, str]] = []
        for obj in self.list_objects():
            parsed = parse(obj)
            if isinstance(parsed, str):
                bad.append((ref_of(obj), parsed))
            else:
                good.append(parsed)
        return good, bad

    def write_status(self, ref: TriggerRef, status: dict[str, Any]) -> None:
        try:
            self.api.patch_namespaced_custom_object_status(
                GROUP, VERSION, ref.namespace, TRIGGER_PLURAL, ref.name, {"status": status}
            )
        except Exception as exc:  # a report: never stops a run
            telemetry.record_error("kube_status", error_code(exc))
            log.warning("status of AutoscalingTrigger %s not written: %s", ref, exc)
