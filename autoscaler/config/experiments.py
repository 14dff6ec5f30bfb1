"""Experiment queues: the `type: optuna` signal source's configuration.

Configuration only (no I/O, no optuna import): the reader is `autoscaler.signals.optuna`,
loaded only when a pool uses it, so that optuna stays an optional extra. The model lives
here rather than in `sources.py` to keep that module small; `sources.py` puts it in the
`type`-discriminated union with the others.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from .formats import Timeout, whole_number

_RDB_SCHEMES = ("sqlite://", "postgresql", "mysql", "oracle", "mssql")

OptunaMetric = Literal[
    "workers",
    "runnable",
    "waiting",
    "running",
    "complete",
    "pruned",
    "failed",
    "retried",
    "finished",
    "done",
]


class OptunaSource(BaseModel):
    """An Optuna study as an experiment queue: its trials waiting, running and finished,
    read from its RDB storage (`storage`) or journal file (`journal`); the `optuna` extra.

    A storage that cannot be read, or a study that does not exist, is a failed (stale)
    reading, never 0 (docs/experiments.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    type: Literal["optuna"] = Field("optuna", description="selects this source")
    timeout: Timeout | None = Field(None, description="per-read timeout; default controller's")
    storage: str | None = Field(
        None,
        description="the study's RDB storage URL, e.g. sqlite:///studies/exp.db or "
        "postgresql://user@db/optuna (set this or `journal`)",
    )
    journal: str | None = Field(
        None,
        description="path of the study's JournalStorage file (JournalFileBackend); set this "
        "or `storage`",
    )
    study: str = Field(min_length=1, description="the study's name (optuna.load_study)")
    n_trials: Annotated[int, Field(ge=1, le=10_000_000), BeforeValidator(whole_number)] = Field(
        description="trials the experiment wants finished (complete, pruned, or failed past "
        "their retries); the study is done once that many have"
    )
    metric: OptunaMetric = Field(
        "workers",
        description="what to read, in trials: workers (running + runnable: the demand of an "
        "experiment pool; the default), runnable (waiting + not yet asked for, up to "
        "n_trials), waiting, running, complete, pruned, failed, retried, finished; done "
        "reads 1 once the study is done, else 0",
    )
    done_attribute: str = Field(
        "experiment_done",
        min_length=1,
        description="a study user attribute that, set to a true value, marks the study done "
        "before n_trials (default: experiment_done)",
    )

    @model_validator(mode="after")
    def _one_storage(self) -> OptunaSource:
        if (self.storage is None) == (self.journal is None):
            raise ValueError(
                "set exactly one of `storage` (an RDB URL such as sqlite:///exp.db) and "
                "`journal` (a JournalStorage file path)"
            )
        if self.storage is not None and not self.storage.startswith(_RDB_SCHEMES):
            raise ValueError(
                f"`storage` must be an RDB URL (sqlite:///path, postgresql://..., "
                f"mysql://...), got {self.storage!r}; for a journal file use `journal`"
            )
        return self
