"""Objectives the experiment tests run through examples/experiments/worker.py.

`flaky_quadratic` fails its study's first trial (number 0) once: the retry Optuna enqueues
has another number and succeeds, so a test sees exactly one failure and one retry.
"""

from __future__ import annotations

import optuna


def quadratic(trial: optuna.Trial) -> float:
    x = trial.suggest_float("x", -10.0, 10.0)
    return (x - 2.0) ** 2


def flaky_quadratic(trial: optuna.Trial) -> float:
    value = quadratic(trial)
    if trial.number == 0:
        raise RuntimeError("trial 0 fails once, on purpose (its retry succeeds)")
    return value


def always_fails(trial: optuna.Trial) -> float:
    quadratic(trial)
    raise RuntimeError("this objective always fails")
