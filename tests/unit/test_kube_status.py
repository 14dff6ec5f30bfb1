"""AutoscalingPool status and Events built from a tick: pure parts, and the writer's patches."""

from __future__ import annotations

from typing import Any

from autoscaler.config import ConfigIssue
from autoscaler.kube.events import event_message, event_reason, involved_object
from autoscaler.kube.pools import PoolProblem, PoolRef
from autoscaler.kube.status import StatusWriter, decision_status, problem_status, stamp
from autoscaler.types import ActionResult, Decision, Reading
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


class FakeCustomObjects:
    def __init__(self) -> None:
        self.patches: list[dict[str, Any]] = []

    def patch_namespaced_custom_object_status(self, *args: Any) -> None:
        self.patches.append(args[-1])


def test_a_signal_that_went_stale_is_removed_from_signals_by_the_merge_patch():
    writer = StatusWriter(None)
    fake = FakeCustomObjects()
    writer.api = fake
    ref = PoolRef("ns", "chat", 1)
    writer.patch(ref, {"signals": {"queue": 1.0, "gpu": 0.5}}, 0.0)
    writer.patch(ref, {"signals": {"queue": 2.0}}, 1.0)
    assert fake.patches[1]["status"]["signals"] == {"gpu": None, "queue": 2.0}


def test_the_planner_memory_is_written_whole_as_a_string_and_never_in_a_dry_run():
    import json
    from types import SimpleNamespace

    from autoscaler.kube.pools import LoadedPools

    writer = StatusWriter(None)
    fake = FakeCustomObjects()
    writer.api = fake
    loaded = LoadedPools(None, refs={"chat": PoolRef("ns", "chat", 1)})
    result = SimpleNamespace(decisions=[UP], actions=[], readings=READINGS, skipped={})
    memory = {"chat": {"recommendations": [[990.0, 5]], "actions": 7, "policy": {"hpa": {}}}}
    writer.write_tick(loaded, result, 1000.0, memory)
    written = fake.patches[-1]["status"]["plannerMemory"]
    assert isinstance(written, str) and json.loads(written) == memory["chat"]
    writer.write_tick(loaded, result, 1001.0, None)  # a dry run passes no memory
    assert "plannerMemory" not in fake.patches[-1]["status"]


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
