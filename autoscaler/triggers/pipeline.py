"""A trigger run as the cluster shows it, and its next step.

A run is one firing: its evaluate Job, then maybe its retrain Job, then maybe a rollout.
`next_step` reads only what was observed (the Jobs' states, exit codes and termination
messages, and the outcome already recorded) and says what to do next, so the same answer
comes back after any crash. Pure: no clock, no I/O.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Literal

from autoscaler.config.triggers import Pipeline

Phase = Literal["active", "succeeded", "failed"]
OUTCOMES = (
    "passed",
    "retrained",
    "rolled-out",
    "retrain-needed",
    "evaluation-failed",
    "retrain-failed",
)
"""How a run ends: the evaluation passed (nothing retrained); retrained (no rollout step);
rolled out; the evaluation asked for a retrain but the trigger has no retrain step; or the
step that failed. A rollout that cannot be made (the Deployment missing, or not this
installation's) does not end the run: it is retried each round until fixed."""


@dataclass(frozen=True)
class StepJob:
    """One of a run's Jobs: its phase and, once finished, what its container said."""

    name: str
    phase: Phase
    exit_code: int | None = None
    message: str | None = None
    """The container's termination message (what it wrote to /dev/termination-log)."""
    finished_at: float | None = None
    """When the Job completed or failed (seconds since the epoch)."""
    readable: bool = True
    """False for a finished Job none of whose pods shows a terminated container (yet)."""


@dataclass(frozen=True)
class Run:
    """One firing of a trigger, recovered from its Jobs."""

    run_id: str
    sequence: int
    fired_at: float
    evaluate: StepJob | None
    retrain: StepJob | None = None
    rolled_out: str | None = None
    """The version its rollout set, read from the Deployment (None: not rolled out)."""
    superseded: bool = False
    """A later run exists: this one ended (a run starts only after the last one ended)."""
    outcome: str | None = None
    """Filled in by `concluded` once `next_step` says the run is over."""
    detail: str = ""
    ended_at: float | None = None
    """When its last Job finished: the cooldown counts from here."""

    @property
    def finished(self) -> bool:
        return self.outcome is not None


@dataclass(frozen=True)
class Wait:
    why: str


@dataclass(frozen=True)
class StartJob:
    step: Literal["evaluate", "retrain"]
    why: str


@dataclass(frozen=True)
class RollOut:
    version: str


@dataclass(frozen=True)
class Finish:
    outcome: str
    detail: str


Step = Wait | StartJob | RollOut | Finish


def evaluation_says_retrain(pipeline: Pipeline, job: StepJob) -> bool | str:
    """True (retrain), False (the model passes), or why the evaluation gave no verdict."""
    spec = pipeline.evaluate
    if spec.verdict == "exit-code":
        if job.phase == "succeeded":
            return False
        if job.exit_code in spec.retrain_exit_codes:
            return True
        return f"evaluation Job {job.name} failed with exit code {job.exit_code}"
    if job.phase == "failed":
        return f"evaluation Job {job.name} failed (exit code {job.exit_code})"
    verdict = message_field(job.message, "retrain")
    if isinstance(verdict, bool):
        return verdict
    return (
        f"evaluation Job {job.name} succeeded but its termination message {job.message!r} "
        'is not JSON with a boolean "retrain" (write e.g. {"retrain": true} to '
        "/dev/termination-log)"
    )


def message_field(message: str | None, key: str) -> object:
    """`key` of a JSON-object termination message; None when absent or unreadable."""
    try:
        data = json.loads(message or "")
    except ValueError:
        return None
    return data.get(key) if isinstance(data, dict) else None


def rollout_version(pipeline: Pipeline, run: Run) -> str:
    """The version to roll out: the retrain Job's message `version_key`, else the run id."""
    assert pipeline.rollout is not None and run.retrain is not None
    value = message_field(run.retrain.message, pipeline.rollout.version_key)
    if isinstance(value, str | int | float) and not isinstance(value, bool) and str(value):
        return str(value)
    return run.run_id


def next_step(pipeline: Pipeline, run: Run) -> Step:
    """What to do next for an unfinished run."""
    evaluate = run.evaluate
    if evaluate is None:
        return StartJob("evaluate", "the run has no evaluation Job yet")
    if evaluate.phase == "active":
        return Wait(f"evaluation Job {evaluate.name} running")
    if not evaluate.readable and not run.superseded:
        return Wait(f"evaluation Job {evaluate.name} finished; its pod's result not read yet")
    verdict = evaluation_says_retrain(pipeline, evaluate)
    if isinstance(verdict, str):
        return Finish("evaluation-failed", verdict)
    if not verdict:
        return Finish("passed", f"evaluation Job {evaluate.name}: the model passes")
    if pipeline.retrain is None:
        return Finish("retrain-needed", "the evaluation asks for a retrain; no retrain step")
    retrain = run.retrain
    if retrain is None:
        return StartJob("retrain", f"evaluation Job {evaluate.name}: the model fails")
    if retrain.phase == "active":
        return Wait(f"retrain Job {retrain.name} running")
    if pipeline.rollout is not None and not retrain.readable and not run.superseded:
        return Wait(f"retrain Job {retrain.name} finished; its pod's result not read yet")
    if retrain.phase == "failed":
        return Finish("retrain-failed", f"retrain Job {retrain.name} failed "
                      f"(exit code {retrain.exit_code})")  # fmt: skip
    if pipeline.rollout is None:
        return Finish("retrained", f"retrain Job {retrain.name} succeeded")
    if run.superseded:
        return Finish("rolled-out", f"deployment {pipeline.rollout.deployment} rolled out "
                      "(a later run has rolled out since)")  # fmt: skip
    if run.rolled_out is not None:
        return Finish("rolled-out", f"deployment {pipeline.rollout.deployment} now at "
                      f"version {run.rolled_out}")  # fmt: skip
    return RollOut(rollout_version(pipeline, run))


def concluded(pipeline: Pipeline, run: Run) -> Run:
    """`run` with its outcome, detail and end time when `next_step` says it is over."""
    step = next_step(pipeline, run)
    if not isinstance(step, Finish):
        return run
    ends = [j.finished_at for j in (run.evaluate, run.retrain) if j and j.finished_at]
    return replace(run, outcome=step.outcome, detail=step.detail,
                   ended_at=max(ends) if ends else run.fired_at)  # fmt: skip
