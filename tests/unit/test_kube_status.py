"""AutoscalingPool status and Events built from a tick: pure parts, and the writer's patches."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

from autoscaler.config import ConfigIssue
from autoscaler.kube.crd import GROUP, VERSION
from autoscaler.kube.events import event_message, event_reason, involved_object
from autoscaler.kube.status import StatusWriter, decision_status, problem_status, stamp
from autoscaler.pool_sources import LoadedPools, PoolProblem, PoolRef
from autoscaler.types import ActionResult, Decision, Reading
from tests.fakes.kube_api import FakeKube
from tests.unit.conftest import config_from

UP = Decision("chat", 1000.0, 2, 5, 4, "queue 40 / 10 per replica; rate limit 2 pods")
READINGS = {
    ("chat", "queue"): Reading(40.0, 999.0),
    ("chat", "gpu"): Reading(None, 999.0, "timeout: 5s"),
    ("other", "queue"): Reading(1.0, 999.0),
}


def test_a_decided_pool_reports_its_decision_signals_and_conditions():
    action = ActionResult("chat", "id-1", 4, applied=True)
    status = decision_status(UP, action, READINGS, generation=3)
    assert (status["current"], status["desired"], status["recommended"]) == (2, 4, 5)
    assert status["direction"] == "up"
    assert status["reason"] == UP.reason
    assert status["lastDecisionTime"] == "1970-01-01T00:16:40Z"
    assert status["signals"] == {"queue": 40.0}
    assert status["staleSignals"] == {"gpu": "timeout: 5s"}
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Valid"]["status"] == "True"
    assert conditions["Scaling"] == {
        "type": "Scaling",
        "status": "True",
        "reason": "Decided",
        "message": UP.reason,
        "observedGeneration": 3,
    }


def test_a_failed_action_turns_scaling_false_with_the_error():
    action = ActionResult("chat", "id-1", 4, False, "quota exceeded", "Forbidden")
    status = decision_status(UP, action, READINGS, generation=1)
    scaling = status["conditions"][1]
    assert (scaling["status"], scaling["reason"]) == ("False", "ActionFailed")
    assert scaling["message"] == "Forbidden: quota exceeded"
    assert status["lastActionError"] == "quota exceeded"


def test_an_invalid_object_gets_valid_false_with_what_to_fix():
    problem = PoolProblem(PoolRef("ns", "bad", 7), (ConfigIssue("max", "must be >= 1"),))
    status = problem_status(problem)
    [valid] = status["conditions"]
    assert (valid["type"], valid["status"], valid["reason"]) == ("Valid", "False", "InvalidSpec")
    assert valid["message"] == "spec.max: must be >= 1"
    assert valid["observedGeneration"] == 7


def test_a_condition_keeps_its_transition_time_until_its_status_changes():
    first = {"conditions": [{"type": "Valid", "status": "True"}]}
    stamp(first, [], now=0.0)
    again = {"conditions": [{"type": "Valid", "status": "True"}]}
    stamp(again, first["conditions"], now=100.0)
    assert again["conditions"][0]["lastTransitionTime"] == "1970-01-01T00:00:00Z"
    flipped = {"conditions": [{"type": "Valid", "status": "False"}]}
    stamp(flipped, again["conditions"], now=100.0)
    assert flipped["conditions"][0]["lastTransitionTime"] == "1970-01-01T00:01:40Z"


def pool_object(name: str = "chat", namespace: str = "ns") -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "AutoscalingPool",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {},
    }


def writer_on(kube: FakeKube) -> StatusWriter:
    writer = StatusWriter(None)
    writer.api = kube.custom
    return writer


def test_a_signal_that_went_stale_is_removed_from_signals_by_the_merge_patch():
    kube = FakeKube()
    kube.add(pool_object())
    writer = writer_on(kube)
    ref = PoolRef("ns", "chat", 1)
    assert writer.patch(ref, {"signals": {"queue": 1.0, "gpu": 0.5}}, 0.0)
    assert writer.patch(ref, {"signals": {"queue": 2.0}}, 1.0)
    assert kube.get("AutoscalingPool", "chat", "ns")["status"]["signals"] == {"queue": 2.0}


def test_the_planner_memory_is_written_whole_as_a_string_and_never_in_a_dry_run():
    kube = FakeKube()
    kube.add(pool_object())
    writer = writer_on(kube)
    loaded = LoadedPools(None, refs={"chat": PoolRef("ns", "chat", 1)})
    result = SimpleNamespace(decisions=[UP], actions=[], readings=READINGS, skipped={})
    memory = {"chat": {"recommendations": [[990.0, 5]], "actions": 7, "policy": {"hpa": {}}}}
    writer.write_tick(loaded, result, 1000.0, memory)
    written = kube.get("AutoscalingPool", "chat", "ns")["status"]["plannerMemory"]
    assert isinstance(written, str) and json.loads(written) == memory["chat"]
    writer.write_tick(loaded, result, 1001.0, None)  # a dry run passes no memory
    (_, dry_run) = kube.calls_to("patch_namespaced_custom_object_status")
    assert "plannerMemory" not in dry_run.args[-1]["status"]
    # what the acting controller remembers stays for the next leader
    assert kube.get("AutoscalingPool", "chat", "ns")["status"]["plannerMemory"] == written


def test_a_failed_status_write_is_logged_and_never_raised():
    kube = FakeKube()  # the object was deleted since it was listed: 404
    assert writer_on(kube).patch(PoolRef("ns", "chat", 1), {"signals": {}}, 0.0) is False
    kube.add(pool_object())
    kube.inject("patch_namespaced_custom_object_status", error=ConnectionError("reset"))
    assert writer_on(kube).patch(PoolRef("ns", "chat", 1), {"signals": {}}, 0.0) is False


def test_events_say_what_was_done_and_why():
    done = ActionResult("chat", "id", 4, applied=True)
    assert event_reason(UP, done) == ("Normal", "ScaledUp")
    assert event_reason(UP, ActionResult("chat", "id", 4, applied=False)) == (
        "Normal",
        "DryRunScaledUp",
    )
    failed = ActionResult("chat", "id", 4, False, "boom", "Conflict")
    assert event_reason(UP, failed) == ("Warning", "ScaleFailed")
    assert event_message(UP, failed) == (f"pool chat: 2 -> 4: {UP.reason} [failed Conflict: boom]")


def test_an_event_goes_on_the_deployment_else_on_the_autoscalingpool():
    config = config_from("""
        installation: {id: test}
        pools:
          - name: chat
            target: {kind: deployment, name: web, namespace: serving}
            max: 3
            policy: {type: queue-depth, target_per_replica: 5}
            signals: {queue: {source: {type: static, value: 1}}}
          - name: sim
            target: {kind: simulated}
            max: 3
            policy: {type: queue-depth, target_per_replica: 5}
            signals: {queue: {source: {type: static, value: 1}}}
    """)
    refs = {"sim": PoolRef("ns", "sim", 1, "uid-1")}
    assert involved_object(config, refs, "chat") == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "web",
        "namespace": "serving",
    }
    on_pool = involved_object(config, refs, "sim")
    assert on_pool is not None
    assert (on_pool["kind"], on_pool["name"], on_pool["uid"]) == ("AutoscalingPool", "sim", "uid-1")
    assert involved_object(config, {}, "sim") is None
