"""Writing AutoscalingPool status: after each tick, the decision (current, desired, reason),
the signal values, the conditions `Valid` and `Scaling` and the planner's memory (read back
by a restarted or newly elected controller, see `pools.planner_memory`); for an object left
out, `Valid` False with the validation errors.

Building the status is pure (`decision_status`, `problem_status`); `StatusWriter` only
patches the status subresource. A failed write is logged and never raised: status is a
report, and a broken report must not stop scaling.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from kubernetes import client as k
from kubernetes.client.exceptions import ApiException

from autoscaler import telemetry
from autoscaler.clients.kube import error_code
from autoscaler.pool_sources import LoadedPools, PoolProblem, PoolRef
from autoscaler.types import ActionResult, Decision, Reading

from .crd import GROUP, PLURAL, VERSION

log = logging.getLogger("autoscaler.kube.status")


def timestamp(seconds: float) -> str:
    """RFC 3339 UTC, as Kubernetes writes times."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def condition(kind: str, ok: bool, reason: str, message: str, generation: int) -> dict[str, Any]:
    return {
        "type": kind,
        "status": "True" if ok else "False",
        "reason": reason,
        "message": message[:1000],
        "observedGeneration": generation,
    }


def signal_fields(pool: str, readings: Mapping[tuple[str, str], Reading]) -> dict[str, Any]:
    values: dict[str, float] = {}
    stale: dict[str, str] = {}
    for (owner, name), reading in readings.items():
        if owner != pool:
            continue
        if reading.stale or reading.value is None or not math.isfinite(reading.value):
            stale[name] = reading.why_stale() or "unusable"
        else:
            values[name] = reading.value
    return {"signals": values, "staleSignals": stale}


def decision_status(
    decision: Decision,
    action: ActionResult | None,
    readings: Mapping[tuple[str, str], Reading],
    generation: int,
) -> dict[str, Any]:
    """The status for a pool decided this tick."""
    failed = action is not None and bool(action.error)
    scaling = condition(
        "Scaling",
        not failed,
        "ActionFailed" if failed else "Decided",
        f"{action.error_code}: {action.error}" if failed and action else decision.reason,
        generation,
    )
    return {
        "observedGeneration": generation,
        "current": decision.current,
        "desired": decision.desired,
        "recommended": decision.recommended,
        "direction": decision.direction,
        "reason": decision.reason,
        "stale": decision.stale,
        "lastDecisionTime": timestamp(decision.at),
        "lastActionError": (action.error or "") if action is not None else "",
        **signal_fields(decision.pool, readings),
        "conditions": [condition("Valid", True, "Accepted", "spec is valid", generation), scaling],
    }


def skipped_status(why: str, generation: int) -> dict[str, Any]:
    """The status for a pool not decided this tick (capacity unknown, action running)."""
    return {
        "observedGeneration": generation,
        "conditions": [
            condition("Valid", True, "Accepted", "spec is valid", generation),
            condition("Scaling", False, "Skipped", why, generation),
        ],
    }


def problem_status(problem: PoolProblem) -> dict[str, Any]:
    """The status for an object left out: Valid False, saying what to fix."""
    generation = problem.ref.generation
    return {
        "observedGeneration": generation,
        "conditions": [condition("Valid", False, "InvalidSpec", problem.message, generation)],
    }


def stamp(status: dict[str, Any], previous: list[dict[str, Any]], now: float) -> None:
    """Give each condition its lastTransitionTime: kept while its status is unchanged."""
    before = {c.get("type"): c for c in previous}
    for cond in status.get("conditions", []):
        old = before.get(cond["type"])
        same = old is not None and old.get("status") == cond["status"]
        kept = old.get("lastTransitionTime") if same and old is not None else None
        cond["lastTransitionTime"] = kept or timestamp(now)


class StatusWriter:
    """Patches the status subresource of AutoscalingPool objects."""

    def __init__(self, api_client: Any) -> None:
        self.api = k.CustomObjectsApi(api_client)
        self._conditions: dict[PoolRef, list[dict[str, Any]]] = {}
        self._signals: dict[tuple[PoolRef, str], set[str]] = {}

    def patch(self, ref: PoolRef, status: dict[str, Any], now: float) -> bool:
        """Merge-patch one object's status; False (logged) when the write failed."""
        key = PoolRef(ref.namespace, ref.name, 0, ref.uid)
        stamp(status, self._conditions.get(key, []), now)
        for field in ("signals", "staleSignals"):
            if field in status:  # a merge patch keeps old map keys unless nulled
                gone = self._signals.get((key, field), set())
                fresh = set(status[field])
                status[field] = {**dict.fromkeys(gone - fresh), **status[field]}
                self._signals[(key, field)] = fresh
        try:
            self.api.patch_namespaced_custom_object_status(
                GROUP, VERSION, ref.namespace, PLURAL, ref.name, {"status": status}
            )
        except ApiException as exc:
            telemetry.record_error("kube_status", error_code(exc))
            log.warning(
                "status of AutoscalingPool %s not written: %s %s", ref, exc.status, exc.reason
            )
            return False
        except Exception as exc:  # network errors: report and carry on
            telemetry.record_error("kube_status", error_code(exc))
            log.warning("status of AutoscalingPool %s not written: %s", ref, exc)
            return False
        self._conditions[key] = status.get("conditions", [])
        return True

    def write_tick(
        self,
        loaded: LoadedPools,
        result: Any,
        now: float,
        memory: Mapping[str, Any] | None = None,
    ) -> None:
        """Status for every CRD pool after a tick (`result` is a controller TickResult);
        `memory`, the planner's memory by pool, is kept on each object (not in a dry run:
        a shadow controller must not overwrite what the acting one remembers)."""
        actions = {a.pool: a for a in result.actions}
        for decision in result.decisions:
            ref = loaded.refs.get(decision.pool)
            if ref is not None:
                status = decision_status(
                    decision, actions.get(decision.pool), result.readings, ref.generation
                )
                if memory is not None and decision.pool in memory:
                    # A string, not an object: a merge patch would keep keys the memory no
                    # longer has (a policy changed type), a string is replaced whole.
                    status["plannerMemory"] = json.dumps(
                        memory[decision.pool], separators=(",", ":"), sort_keys=True
                    )
                self.patch(ref, status, now)
        for pool, why in result.skipped.items():
            ref = loaded.refs.get(pool)
            if ref is not None:
                self.patch(ref, skipped_status(why, ref.generation), now)

    # -- as a reporter of the process loop ----------------------------------------------
    keeps_memory = True
    """Planner memory goes into each pool's status, for the next leader."""

    def report_problems(self, loaded: LoadedPools, now: float) -> None:
        self.write_problems(loaded, now)

    def report_tick(
        self, loaded: LoadedPools, result: Any, now: float, memory: dict[str, Any] | None
    ) -> None:
        self.write_tick(loaded, result, now, memory)

    def write_problems(self, loaded: LoadedPools, now: float) -> None:
        for problem in loaded.problems:
            self.patch(problem.ref, problem_status(problem), now)
