"""Evaluation triggers: a condition on a signal that, held for a time, starts a pipeline of
Kubernetes Jobs (evaluate -> retrain if the evaluation says so -> optional rollout).

Configuration only: the condition logic is autoscaler/triggers/condition.py and the Jobs
are made by autoscaler/triggers/. A trigger comes from the file's `triggers:` list or from
an AutoscalingTrigger object (its spec is a `Trigger` without `name`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from .formats import LongWindow, Namespace, Whole, Window, at, dns_subdomain, real_number
from .sources import AnySource

_NAME = r"^[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?$"
Threshold = Annotated[float, Field(ge=-1e15, le=1e15), BeforeValidator(real_number)]
"""A finite value a signal is compared with."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class TriggerCondition(_Model):
    """`value < below` (or `value > above`) held for `for` seconds fires the trigger; it
    stays breached until the value crosses `clear` (hysteresis)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False,
                              populate_by_name=True)  # fmt: skip
    source: AnySource = Field(
        description="where the value is read: any signal source (`type: prometheus`, "
        "`redis`, `sqs`, ...), as a pool's signal is"
    )
    below: Threshold | None = Field(
        None,
        description="breached while the value is below this (a quality metric such as "
        "accuracy); set exactly one of `below` and `above`",
    )
    above: Threshold | None = Field(
        None,
        description="breached while the value is above this (a drift score, rows waiting "
        "in a queue); set exactly one of `below` and `above`",
    )
    clear: Threshold | None = Field(
        None,
        description="a breach ends only when the value crosses this (at or above it for "
        "`below`, at or below it for `above`); default: the threshold itself (no hysteresis)",
    )
    hold: Window = Field(
        0.0,
        alias="for",
        description="seconds the breach must last before the trigger fires (`for: 10m`); "
        "default 0: the first breaching reading fires",
    )
    max_age: Window | None = Field(
        None,
        description="a reading older than this is stale and neither fires nor clears; "
        "default: 3 controller ticks",
    )

    @model_validator(mode="after")
    def _one_threshold(self) -> TriggerCondition:
        if (self.below is None) == (self.above is None):
            raise ValueError("set exactly one of `below` and `above`")
        if self.clear is not None:
            if self.below is not None and self.clear < self.below:
                raise at("clear", f"must be >= below ({self.below:g}), got {self.clear:g}")
            if self.above is not None and self.clear > self.above:
                raise at("clear", f"must be <= above ({self.above:g}), got {self.clear:g}")
        return self

    @property
    def threshold(self) -> float:
        value = self.below if self.below is not None else self.above
        assert value is not None
        return value

    @property
    def direction(self) -> Literal["below", "above"]:
        return "below" if self.below is not None else "above"

    @property
    def clear_at(self) -> float:
        return self.clear if self.clear is not None else self.threshold


class JobStep(_Model):
    """One Job of the pipeline, made from a batch/v1 Job manifest."""

    template: dict[str, Any] | None = Field(
        None, description="a batch/v1 Job manifest (its name is set by the autoscaler)"
    )
    template_file: str | None = Field(
        None, description="path to a Job manifest (YAML), relative to the configuration file"
    )

    @model_validator(mode="after")
    def _one_template(self) -> JobStep:
        if (self.template is None) == (self.template_file is None):
            raise ValueError("set exactly one of `template` and `template_file`")
        return self


class EvaluateStep(JobStep):
    """The evaluation Job and how its verdict is read."""

    verdict: Literal["exit-code", "message"] = Field(
        "message",
        description="`message`: the Job must succeed and its container's termination "
        'message is JSON such as {"retrain": true}; `exit-code`: exit 0 means the model '
        "passes, an exit code in `retrain_exit_codes` means retrain, any other failure ends "
        "the run as `evaluation-failed`",
    )
    retrain_exit_codes: list[Whole] = Field(
        default_factory=lambda: [1],
        min_length=1,
        description='with `verdict: exit-code`, the exit codes that mean "retrain" '
        "(default [1]); give the Job `backoffLimit: 0` so the first verdict stands",
    )


class RolloutStep(_Model):
    """Patch the serving Deployment's model version once retraining succeeds.

    The Deployment must carry this installation's owner label; the version is the key
    `version_key` of the retrain Job's termination message (JSON), else the run's id."""

    deployment: str = Field(
        description="the serving Deployment, in the trigger's namespace",
        json_schema_extra={"format": "dns-subdomain"},
    )
    annotation: str | None = Field(
        None,
        description="set this pod-template annotation to the new version (one of "
        "`annotation`, `env`, `image_tag`)",
    )
    env: str | None = Field(
        None, description="set this environment variable of `container` to the new version"
    )
    image_tag: bool = Field(
        False, description="set the tag of `container`'s image to the new version"
    )
    container: str | None = Field(
        None, description="the container for `env` and `image_tag` (default: the first)"
    )
    version_key: str = Field(
        "version",
        description="key of the retrain Job's JSON termination message holding the new "
        "model version; default `version` (absent: the run id is the version)",
    )

    @model_validator(mode="after")
    def _one_place(self) -> RolloutStep:
        dns_subdomain(self.deployment, "deployment")
        chosen = [self.annotation is not None, self.env is not None, self.image_tag]
        if sum(chosen) != 1:
            raise ValueError("set exactly one of `annotation`, `env` and `image_tag: true`")
        return self


class Pipeline(_Model):
    """evaluate, then retrain only if the evaluation says so, then an optional rollout."""

    evaluate: EvaluateStep = Field(description="the evaluation Job; always runs first")
    retrain: JobStep | None = Field(
        None,
        description="the retraining Job, run only when the evaluation says so; without it "
        "a failing evaluation ends the run as `retrain-needed`",
    )
    rollout: RolloutStep | None = Field(
        None, description="after a successful retrain, patch the serving Deployment"
    )

    @model_validator(mode="after")
    def _rollout_after_retrain(self) -> Pipeline:
        if self.rollout is not None and self.retrain is None:
            raise at("rollout", "a rollout needs a `retrain` step to roll out")
        return self


class Trigger(_Model):
    """A condition on a signal that starts an evaluation (and maybe retraining) pipeline."""

    name: str = Field(
        pattern=_NAME,
        description="unique trigger name (lower case, digits, '-'; at most 40 characters): "
        "it names the runs' Jobs",
    )
    namespace: Namespace = Field(
        "default", description="where the pipeline's Jobs run and the Deployment lives"
    )
    condition: TriggerCondition = Field(description="what fires the trigger")
    pipeline: Pipeline = Field(description="the Jobs a firing starts")
    cooldown: LongWindow = Field(
        3600.0,
        description="seconds after a run ends before the trigger may fire again (default "
        "1h); a breach that lasts through it fires again",
    )
    keep_runs: Whole = Field(
        5,
        ge=1,
        le=100,
        description="finished runs whose Jobs are kept (older runs' Jobs are deleted); default 5",
    )


def unique_trigger_names(triggers: list[Trigger]) -> list[Trigger]:
    """The triggers, or an error naming the second use of a name."""
    seen: dict[str, int] = {}
    for i, trigger in enumerate(triggers):
        if trigger.name in seen:
            raise at(
                f"[{i}].name",
                f"trigger name {trigger.name!r} is already used by triggers[{seen[trigger.name]}]",
            )
        seen[trigger.name] = i
    return triggers


__all__ = [
    "EvaluateStep",
    "JobStep",
    "Pipeline",
    "RolloutStep",
    "Trigger",
    "TriggerCondition",
    "unique_trigger_names",
]
