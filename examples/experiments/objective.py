"""An example objective for examples/experiments/worker.py: a quadratic, fast to run.

Replace it with your training function: take an `optuna.Trial`, suggest parameters, train,
return the metric to minimize (or raise `optuna.TrialPruned` to prune). The worker finds it
through `EXPERIMENT_OBJECTIVE=objective:quadratic` (with this folder on PYTHONPATH).
"""

from __future__ import annotations

import optuna


def quadratic(trial: optuna.Trial) -> float:
    x = trial.suggest_float("x", -10.0, 10.0)
    y = trial.suggest_int("y", -3, 3)
    return (x - 2.0) ** 2 + (y + 1) ** 2
