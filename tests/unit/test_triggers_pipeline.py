"""The next step of a trigger run from what the cluster shows (autoscaler/triggers/
pipeline.py), the rollout patch, and the `triggers:` configuration."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from autoscaler.config import ConfigError, parse_config
from autoscaler.config.triggers import Pipeline, RolloutStep
from autoscaler.triggers.pipeline import (
    Finish,
    RollOut,
    Run,
    StartJob,
    StepJob,
    Wait,
    concluded,
    next_step,
)
from autoscaler.triggers.rollout import RolloutRefused, patch_body, with_tag

JOB = {"apiVersion": "batch/v1", "kind": "Job", "spec": {"template": {"spec": {}}}}


def pipeline(**kw: object) -> Pipeline:
    data: dict[str, object] = {"evaluate": {"template": JOB}, "retrain": {"template": JOB}}
    data.update(kw)
    return Pipeline.model_validate({k: v for k, v in data.items() if v is not None})


def run(evaluate: StepJob | None = None, retrain: StepJob | None = None, **kw: object) -> Run:
    return Run("inst-q-0001", 1, 0.0, evaluate, retrain, **kw)  # type: ignore[arg-type]


def done(phase: str, message: str = "", code: int | None = None, name: str = "q-0001-evaluate"):
    return StepJob(name, phase, code if code is not None else (0 if phase == "succeeded" else 1),
                   message)  # type: ignore[arg-type]  # fmt: skip


def test_a_run_without_jobs_starts_its_evaluation():
    assert next_step(pipeline(), run()) == StartJob("evaluate", "the run has no evaluation Job yet")


def test_waits_while_the_evaluation_runs():
    assert isinstance(next_step(pipeline(), run(StepJob("e", "active"))), Wait)


def test_a_passing_evaluation_ends_the_run_without_retraining():
    step = next_step(pipeline(), run(done("succeeded", '{"retrain": false}')))
    assert isinstance(step, Finish) and step.outcome == "passed"


def test_a_failing_model_starts_the_retrain_then_the_rollout_then_ends_rolled_out():
    p = pipeline(rollout={"deployment": "llm", "annotation": "model/version"})
    evaluated = done("succeeded", '{"retrain": true, "accuracy": 0.8}')
    assert isinstance(next_step(p, run(evaluated)), StartJob)
    assert isinstance(next_step(p, run(evaluated, StepJob("r", "active"))), Wait)
    trained = done("succeeded", '{"version": "v42"}', name="q-0001-retrain")
    assert next_step(p, run(evaluated, trained)) == RollOut("v42")
    end = next_step(p, run(evaluated, trained, rolled_out="v42"))
    assert isinstance(end, Finish) and end.outcome == "rolled-out" and "v42" in end.detail
    older = next_step(p, run(evaluated, trained, superseded=True))
    assert isinstance(older, Finish) and older.outcome == "rolled-out"  # never rolled back


def test_a_concluded_run_ends_when_its_last_job_finished():
    evaluated = StepJob("e", "succeeded", 0, '{"retrain": true}', finished_at=100.0)
    trained = StepJob("r", "failed", 1, "", finished_at=250.0)
    ended = concluded(pipeline(), run(evaluated, trained))
    assert (ended.outcome, ended.ended_at, ended.finished) == ("retrain-failed", 250.0, True)
    assert not concluded(pipeline(), run(evaluated)).finished


def test_the_run_id_is_the_version_when_the_retrain_writes_none():
    p = pipeline(rollout={"deployment": "llm", "env": "MODEL_VERSION"})
    step = next_step(p, run(done("succeeded", '{"retrain": true}'), done("succeeded", "")))
    assert step == RollOut("inst-q-0001")


def test_exit_code_verdicts():
    p = pipeline(evaluate={"template": JOB, "verdict": "exit-code", "retrain_exit_codes": [3]})
    assert next_step(p, run(done("succeeded"))).outcome == "passed"  # type: ignore[union-attr]
    assert isinstance(next_step(p, run(done("failed", code=3))), StartJob)
    crashed = next_step(p, run(done("failed", code=137)))
    assert isinstance(crashed, Finish) and crashed.outcome == "evaluation-failed"
    assert "exit code 137" in crashed.detail


@pytest.mark.parametrize("message", ["", "not json", '{"retrain": "yes"}', "[true]"])
def test_an_unreadable_verdict_ends_the_run_saying_what_to_write(message):
    step = next_step(pipeline(), run(done("succeeded", message)))
    assert isinstance(step, Finish) and step.outcome == "evaluation-failed"
    assert '{"retrain": true}' in step.detail


def test_failures_and_missing_steps_end_the_run_with_their_outcome():
    assert next_step(pipeline(), run(done("failed"))).outcome == "evaluation-failed"  # type: ignore[union-attr]
    no_retrain = pipeline(retrain=None)
    assert next_step(no_retrain, run(done("succeeded", '{"retrain": true}'))).outcome == (  # type: ignore[union-attr]
        "retrain-needed"
    )
    failed = next_step(pipeline(), run(done("succeeded", '{"retrain": true}'), done("failed")))
    assert failed.outcome == "retrain-failed"  # type: ignore[union-attr]
    ok = next_step(pipeline(), run(done("succeeded", '{"retrain": true}'), done("succeeded")))
    assert ok.outcome == "retrained"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("image", "tag", "expected"),
    [
        ("vllm/vllm-openai:v0.6", "v42", "vllm/vllm-openai:v42"),
        ("registry:5000/llm", "v1", "registry:5000/llm:v1"),
        ("registry:5000/llm:old@sha256:abc", "v2", "registry:5000/llm:v2"),
    ],
)
def test_image_tags_are_replaced_keeping_the_registry_port(image, tag, expected):
    assert with_tag(image, tag) == expected


def _deployment(*containers: tuple[str, str]) -> SimpleNamespace:
    cs = [SimpleNamespace(name=n, image=i) for n, i in containers]
    return SimpleNamespace(spec=SimpleNamespace(template=SimpleNamespace(spec=SimpleNamespace(
        containers=cs))))  # fmt: skip


def test_rollout_patches_name_the_container_and_the_run():
    d = _deployment(("sidecar", "envoy:1"), ("server", "llm:v1"))
    spec = RolloutStep(deployment="llm", image_tag=True, container="server")
    body = patch_body(spec, d, "v9", {"p/request-id": "run-1"})
    assert body["metadata"]["annotations"] == {"p/request-id": "run-1"}
    assert body["spec"]["template"]["spec"]["containers"] == [{"name": "server", "image": "llm:v9"}]
    env = patch_body(RolloutStep(deployment="llm", env="MODEL"), d, "v9", {})
    assert env["spec"]["template"]["spec"]["containers"][0]["env"] == [
        {"name": "MODEL", "value": "v9"}
    ]
    with pytest.raises(RolloutRefused, match="not a valid image tag"):
        patch_body(spec, d, "bad tag!", {})
    with pytest.raises(RolloutRefused, match="no container nope"):
        patch_body(RolloutStep(deployment="llm", env="M", container="nope"), d, "v", {})


CONFIG = """
installation: {id: test}
pools:
  - name: web
    target: {kind: simulated}
    max: 3
    policy: {type: queue-depth, target_per_replica: 1}
    signals: {queue: {source: {type: static, value: 0}}}
triggers:
"""


def test_the_example_triggers_file_is_valid():
    from pathlib import Path

    from autoscaler.config import load_config

    config = load_config(str(Path(__file__).parents[2] / "examples" / "triggers.yaml"))
    assert [t.name for t in config.triggers] == ["model-quality", "labelled-rows"]


@pytest.mark.parametrize(
    ("triggers", "where", "what"),
    [
        (
            "  - {name: q, condition: {source: {type: static, value: 1}, below: 1}, "
            "pipeline: {evaluate: {template: {kind: Job}}, rollout: {deployment: x, env: V}}}",
            "triggers[0].pipeline.rollout",
            "needs a `retrain` step",
        ),
        (
            "  - {name: q, condition: {source: {type: static, value: 1}, below: 1}, "
            "pipeline: {evaluate: {}}}",
            "triggers[0].pipeline.evaluate",
            "exactly one of `template` and `template_file`",
        ),
        (
            "  - {name: q, condition: {source: {type: static, value: 1}, below: 1}, "
            "pipeline: {evaluate: {template: {kind: Job}}}}\n"
            "  - {name: q, condition: {source: {type: static, value: 1}, below: 1}, "
            "pipeline: {evaluate: {template: {kind: Job}}}}",
            "triggers[1].name",
            "already used by triggers[0]",
        ),
        (
            "  - {name: Q_bad, condition: {source: {type: static, value: 1}, below: 1}, "
            "pipeline: {evaluate: {template: {kind: Job}}}}",
            "triggers[0].name",
            "",
        ),
    ],
)
def test_bad_triggers_are_named_by_path(triggers, where, what):
    with pytest.raises(ConfigError) as err:
        parse_config(CONFIG + triggers + "\n", "t.yaml")
    paths = [i.path for i in err.value.issues]
    assert any(p.startswith(where) for p in paths), paths
    assert what in str(err.value)


def test_an_invalid_autoscalingtrigger_is_named_by_its_object_paths():
    from autoscaler.triggers.objects import Listed, parse

    obj = {
        "metadata": {"name": "q", "namespace": "ml", "generation": 3},
        "spec": {"condition": {"source": {"type": "static", "value": 1}}, "pipeline": {}},
    }
    problem = parse(obj)
    assert isinstance(problem, str)
    assert "spec.condition" in problem and "spec.pipeline.evaluate" in problem
    obj["spec"] = {
        "condition": {"source": {"type": "static", "value": 1}, "below": 2, "for": "5m"},
        "pipeline": {"evaluate": {"template": JOB}},
    }
    obj["status"] = {"breachedSince": 1234.5}
    listed = parse(obj)
    assert isinstance(listed, Listed)
    assert listed.trigger.name == "q" and listed.trigger.namespace == "ml"
    assert listed.breached_since == 1234.5 and listed.trigger.condition.hold == 300


def test_a_finished_job_whose_result_cannot_be_read_yet_is_waited_for():
    unread = StepJob("q-0001-evaluate", "succeeded", None, "", 10.0, readable=False)
    assert isinstance(next_step(pipeline(), run(unread)), Wait)
    p = pipeline(rollout={"deployment": "llm", "annotation": "v"})
    trained = StepJob("q-0001-retrain", "succeeded", None, "", 20.0, readable=False)
    assert isinstance(next_step(p, run(done("succeeded", '{"retrain": true}'), trained)), Wait)
    # an older run (a later one exists) is over whatever can still be read of it
    assert isinstance(next_step(pipeline(), run(unread, superseded=True)), Finish)
