"""An experiment worker to copy into your training image: runs Optuna trials of one study.

The autoscaler's `job` pool starts this as the command of each Job. It loads the study,
then runs one trial (`WORKER_MODE=one`, the default: one trial per Job) or pulls trials
until the study is done (`WORKER_MODE=pull`: N long-lived workers). A trial whose
objective raises is recorded FAIL and retried, up to `MAX_RETRY` times, by Optuna's
`RetryHeartbeatStaleTrialCallback` (formerly `RetryFailedTrialCallback`): the retry is a
new WAITING trial with the same parameters, which the autoscaler counts as runnable and
starts a worker for. With an RDB storage, heartbeats also retry the trial of a worker that
died (a preempted node). In `one` mode a failed trial exits 1, so its Job shows as Failed;
give the Job template `backoffLimit: 0` and let Optuna do the retrying.

Environment:
  OPTUNA_STORAGE       RDB URL (sqlite:///..., postgresql://...), or
  OPTUNA_JOURNAL       path of a JournalStorage file (shared volume)
  OPTUNA_STUDY         the study's name
  OPTUNA_N_TRIALS      trials the experiment wants finished (the source's `n_trials`)
  EXPERIMENT_OBJECTIVE the objective, `module:function` (importable, e.g. via PYTHONPATH)
  WORKER_MODE          one (default) or pull
  MAX_RETRY            retries of a failed trial (default 2)
  HEARTBEAT_SECONDS    RDB heartbeat interval (default 60; 0 turns heartbeats off)
  DONE_ATTRIBUTE       study user attribute that ends the experiment (default experiment_done)

Exit status: 0 when the trial (or every trial pulled) finished or there was nothing left
to do, 1 when a trial failed (`one` mode), 2 for a configuration error.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
import warnings
from collections.abc import Callable
from typing import Any

import optuna
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState


def _env(name: str, default: str | None = None) -> str:
    value = os.environ.get(name, default)
    if value is None or value == "":
        raise SystemExit(f"worker: set the environment variable {name} (see the docstring)")
    return value


def open_storage(max_retry: int) -> Any:
    """The study's storage from OPTUNA_STORAGE or OPTUNA_JOURNAL."""
    journal = os.environ.get("OPTUNA_JOURNAL")
    if journal:
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        return JournalStorage(JournalFileBackend(journal))
    url = _env("OPTUNA_STORAGE")
    heartbeat = int(os.environ.get("HEARTBEAT_SECONDS", "60"))
    if heartbeat <= 0:
        return optuna.storages.RDBStorage(url)
    # The keyword was `failed_trial_callback` before Optuna 4.9.
    params = inspect.signature(optuna.storages.RDBStorage).parameters
    key = "heartbeat_stale_trial_callback"
    if key not in params:
        key = "failed_trial_callback"
    return optuna.storages.RDBStorage(
        url,
        heartbeat_interval=heartbeat,
        grace_period=2 * heartbeat,
        **{key: RetryHeartbeatStaleTrialCallback(max_retry=max_retry)},
    )


def load_objective(spec: str) -> Callable[[optuna.Trial], float]:
    module, _, name = spec.partition(":")
    if not module or not name:
        raise SystemExit(f"worker: EXPERIMENT_OBJECTIVE must be module:function, got {spec!r}")
    return getattr(importlib.import_module(module), name)  # type: ignore[no-any-return]


def work_left(study: optuna.Study, n_trials: int, done_attribute: str) -> int:
    """Trials not yet finished or running, as the autoscaler's `runnable` counts them."""
    if study.user_attrs.get(done_attribute):
        return 0
    trials = study.get_trials(deepcopy=False)
    retried = {n for t in trials for n in t.system_attrs.get("retry_history", [])}
    finished = sum(
        1
        for t in trials
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
        or (t.state == TrialState.FAIL and t.number not in retried)
    )
    if finished >= n_trials:
        return 0
    waiting = sum(1 for t in trials if t.state == TrialState.WAITING)
    running = sum(1 for t in trials if t.state == TrialState.RUNNING)
    return waiting + max(0, n_trials - finished - running - waiting)


def run_one(study: optuna.Study, objective: Any, retry: RetryHeartbeatStaleTrialCallback) -> bool:
    """Run one trial (an enqueued one first); True when it did not fail."""
    ran: list[FrozenTrial] = []
    study.optimize(
        objective, n_trials=1, catch=(Exception,), callbacks=[lambda _s, t: ran.append(t)]
    )
    trial = ran[-1]
    if trial.state == TrialState.FAIL:
        retry(study, trial)  # enqueues a WAITING copy unless past max_retry
        return False
    return True


def main() -> int:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # Heartbeats and the retry callback are marked experimental; they have been stable
    # since Optuna 2.8, and the warning would fill every trial's log.
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    max_retry = int(os.environ.get("MAX_RETRY", "2"))
    n_trials = int(_env("OPTUNA_N_TRIALS"))
    mode = os.environ.get("WORKER_MODE", "one")
    if mode not in ("one", "pull"):
        raise SystemExit(f"worker: WORKER_MODE must be one or pull, got {mode!r}")
    done_attribute = os.environ.get("DONE_ATTRIBUTE", "experiment_done")
    study = optuna.load_study(study_name=_env("OPTUNA_STUDY"), storage=open_storage(max_retry))
    objective = load_objective(_env("EXPERIMENT_OBJECTIVE"))
    retry = RetryHeartbeatStaleTrialCallback(max_retry=max_retry)
    while work_left(study, n_trials, done_attribute) > 0:
        ok = run_one(study, objective, retry)
        if mode == "one":
            return 0 if ok else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
