"""Searching each policy family's knobs with Optuna instead of walking their grid.

The space is the grid `--tune` walks (sweep.py): per family, the same knobs between the
lowest and highest value the grid tries (our policy's `_own_knobs`, a baseline's
`tuning_grid`, the warm floor `min` across `--floors`, a fixed keep-alive's 30 s to
30 min), searched continuously (whole numbers stay whole). One Optuna study per family,
so each sampler learns one shape of space:
- `tpe`: minimise GPU-hours, with SLO attainment >= the target as a constraint (TPE puts
  its trials where the cheapest setting that meets the SLO is);
- `nsga2`: NSGA-II on two objectives, GPU-hours (minimise) and SLO attainment (maximise),
  for the whole trade-off front.

Reproducible whatever runs the simulations: trials are asked `batch` at a time per family
(NSGA-II's population), simulated on the executor and told back in the order asked, and
each batch's sampler is seeded from `--seed`, the family and how many trials the study
already has. So the trials depend on the seed, the batch and the trace, never on the
executor, the worker count or the order jobs finish in; a study stopped between batches
and resumed from its storage asks what an unstopped one would have. Trials asked but not
told when it stopped (Ctrl-C mid-batch) are simulated again with their own parameters.

Optuna is an optional extra (`pip install 'elastic-autoscaler[optuna]'`).
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from autoscaler.config import Pool

from .baselines import FAMILIES, KEEPALIVE_GRID, default_baseline, fixed_keepalive
from .engine import SimulationError
from .front import settings_text
from .sweep import (
    Variant,
    _check,
    _dump,
    _own_knobs,
    _with_floor,
    baseline_space,
    plain_error,
    set_path,
    warm_floors,
)

METHODS = ("tpe", "nsga2")
FLOOR = "min"


class SearchError(SimulationError):
    """A search that cannot run as asked: Optuna missing, a storage or study mismatch."""


@dataclass(frozen=True)
class Knob:
    path: str
    """Where the value goes in the pool (`policy.policies.0.max_utilization`, `min`)."""
    low: float
    high: float
    integer: bool


@dataclass(frozen=True)
class Space:
    family: str
    knobs: tuple[Knob, ...]
    base: dict[str, Any]
    """The pool the knobs are set in (a baseline's: the pool with that baseline's policy)."""


def _knob(path: str, values: Sequence[Any]) -> Knob:
    integer = all(isinstance(v, int) and not isinstance(v, bool) for v in values)
    return Knob(path, min(values), max(values), integer)


def spaces(
    pool: Pool,
    slots_per_replica: int,
    batch: bool,
    floors: Sequence[int] | None = None,
    keepalive: bool = False,
) -> list[Space]:
    """Per family the knobs and bounds `tuning_variants` (and with `keepalive`,
    `keepalive_variants`) walk as a grid."""
    floors = warm_floors(pool) if floors is None else sorted(set(floors))
    floor = _knob(FLOOR, floors)
    base = _dump(pool)
    found = [Space(pool.policy.type, (*(_knob(p, v) for p, v in _own_knobs(pool)), floor), base)]
    for family in FAMILIES:
        data = {**base, "policy": default_baseline(family, slots_per_replica, batch)}
        data.pop("behavior", None)
        bounds = baseline_space(family, slots_per_replica, batch)
        knobs = tuple(_knob(p, [lo, hi]) for p, (lo, hi) in bounds.items())
        found.append(Space(family, (*knobs, floor), data))
    if keepalive:
        found.append(
            Space("keepalive", (_knob("behavior.scale_to_zero_after", KEEPALIVE_GRID),), {})
        )
    return found


def build(pool: Pool, space: Space, values: dict[str, Any]) -> Variant:
    """The variant of `space` at `values` (every knob's value, by path), validated."""
    label = f"{space.family} {settings_text(values)}"
    if space.family == "keepalive":
        try:
            data = fixed_keepalive(pool, float(values["behavior.scale_to_zero_after"]))
        except ValueError as exc:
            raise SimulationError(f"{label}: {plain_error(exc)}") from None
        data["target"] = {"kind": "simulated"}
        data["signals"] = {}
    else:
        data = copy.deepcopy(space.base)
        for path, value in values.items():
            if path != FLOOR:
                set_path(data, path, value)
        data = _with_floor(data, int(values.get(FLOOR, pool.min)))
    return Variant(space.family, label, _check(data, label), dict(values))


def _optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise SearchError(
            "--search needs Optuna: pip install 'elastic-autoscaler[optuna]' "
            "(or leave --search out for the grid)"
        ) from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # TPE's constraints are marked experimental; what they do is what is wanted here.
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return optuna


def storage_for(optuna: Any, where: str | None) -> Any:
    """Optuna storage: in memory (None), an SQL database (`sqlite:///study.db`, any URL
    with `://`) or a journal file (any other path)."""
    if where is None:
        return optuna.storages.InMemoryStorage()
    if "://" in where:
        try:
            return optuna.storages.RDBStorage(where)
        except Exception as exc:  # ImportError (no SQLAlchemy), ArgumentError, OperationalError
            raise SearchError(f"--storage {where}: cannot open the database: {exc}") from None
    journal = optuna.storages.journal
    return journal.JournalStorage(journal.JournalFileBackend(where))


def _sampler(optuna: Any, method: str, seed: int, family: int, told: int, batch: int) -> Any:
    """This batch's sampler, seeded from the search's seed, the family and how many trials
    its study has: a resumed study asks what an unstopped one would have."""
    derived = int(np.random.SeedSequence([seed, family, told]).generate_state(1)[0])
    if method == "tpe":
        if hasattr(optuna.trial.Trial, "set_constraint"):  # Optuna 5: set on each trial
            return optuna.samplers.TPESampler(seed=derived)
        return optuna.samplers.TPESampler(
            seed=derived, constraints_func=lambda t: [t.user_attrs["slo_shortfall"]]
        )
    return optuna.samplers.NSGAIISampler(population_size=batch, seed=derived)


@dataclass
class Study:
    space: Space
    study: Any
    found: int = 0
    unfinished: int = 0


def open_studies(
    optuna: Any,
    spaces_: Sequence[Space],
    method: str,
    seed: int,
    batch: int,
    storage: str | None,
    resume: bool,
    prefix: str,
) -> list[Study]:
    """One study per family, `prefix:family`, created or (with `resume`) loaded; a stored
    study made with other settings is refused rather than silently mixed."""
    store = storage_for(optuna, storage)
    directions = ["minimize"] if method == "tpe" else ["minimize", "maximize"]
    studies = []
    for space in spaces_:
        name = f"{prefix}:{space.family}"
        settings = {
            "method": method,
            "seed": seed,
            "batch": batch,
            "knobs": [[k.path, k.low, k.high] for k in space.knobs],
        }
        exists = name in {s.study_name for s in optuna.get_all_study_summaries(store)}
        if resume and not exists:
            raise SearchError(
                f"--resume: --storage {storage} holds no study {name!r}; run once without "
                "--resume to start it"
            )
        if exists and not resume:
            raise SearchError(
                f"--storage {storage} already holds study {name!r}; give --resume to carry "
                "it on, or another --storage file to start afresh"
            )
        if exists:
            study = optuna.load_study(study_name=name, storage=store)
            stored = study.user_attrs.get("settings")
            if stored != settings:
                differ = [k for k in settings if (stored or {}).get(k) != settings[k]]
                raise SearchError(
                    f"--resume: study {name!r} in {storage} was made with other "
                    f"{', '.join(differ) or 'settings'} ({stored}); give the same --search, "
                    "--seed, --batch and knobs, or another --storage"
                )
        else:
            study = optuna.create_study(study_name=name, storage=store, directions=directions)
            study.set_user_attr("settings", settings)
        states = [t.state for t in study.get_trials(deepcopy=False)]
        found = sum(s == optuna.trial.TrialState.COMPLETE for s in states)
        unfinished = sum(s == optuna.trial.TrialState.RUNNING for s in states)
        studies.append(Study(space, study, found, unfinished))
    return studies


@dataclass(frozen=True)
class Settings:
    """What `sweep --search` was asked for."""

    method: str
    trials: int
    """Finished trials each family's study should have (resumed ones included)."""
    seed: int
    batch: int
    slo_target: float
    storage: str | None
    resume: bool
    prefix: str
    """Study names: `prefix:family`."""


def search(
    pool: Pool,
    spaces_: Sequence[Space],
    settings: Settings,
    simulate: Callable[[list[Variant]], list[dict[str, Any]]],
    started: Callable[[int, int, int], None],
) -> list[dict[str, Any]]:
    """Open (or resume) the studies and run them; `started(to_run, found, unfinished)`
    once they are open: the trials left to simulate, and on resume the finished and
    unfinished trials found in the storage."""
    s = settings
    optuna = _optuna()
    studies = open_studies(
        optuna, spaces_, s.method, s.seed, s.batch, s.storage, s.resume, s.prefix
    )
    started(
        sum(max(0, s.trials - study.found) for study in studies),
        sum(study.found for study in studies),
        sum(study.unfinished for study in studies),
    )
    return run_search(pool, studies, s.method, s.trials, s.seed, s.batch, s.slo_target, simulate)


def _distributions(optuna: Any, space: Space) -> dict[str, Any]:
    dists = optuna.distributions
    return {
        k.path: dists.IntDistribution(int(k.low), int(k.high))
        if k.integer
        else dists.FloatDistribution(float(k.low), float(k.high))
        for k in space.knobs
        if k.low < k.high
    }


def run_search(
    pool: Pool,
    studies: Sequence[Study],
    method: str,
    trials: int,
    seed: int,
    batch: int,
    slo_target: float,
    simulate: Callable[[list[Variant]], list[dict[str, Any]]],
) -> list[dict[str, Any]]:
    """Run each family's study up to `trials` finished trials, `batch` per family at a
    time, the variants of one round simulated together by `simulate`. Returns every
    finished trial's results (resumed ones included), with `trial` (its number) and
    `params`."""
    optuna = _optuna()
    running = optuna.trial.TrialState.RUNNING
    while True:
        asked: list[tuple[Study, Any, Variant]] = []
        for index, s in enumerate(studies):
            all_trials = s.study.get_trials(deepcopy=False)
            fixed = {k.path: k.low for k in s.space.knobs if k.low >= k.high}
            # Asked before a stop but never told: simulated again with their parameters.
            again = [t for t in all_trials if t.state == running]
            for t in again:
                trial = optuna.trial.Trial(s.study, t._trial_id)
                asked.append((s, trial, build(pool, s.space, _values(s.space, t.params, fixed))))
            left = trials - sum(t.state.is_finished() for t in all_trials) - len(again)
            if left <= 0:
                continue
            s.study.sampler = _sampler(optuna, method, seed, index, len(all_trials), batch)
            for _ in range(min(batch, left)):
                trial = s.study.ask(_distributions(optuna, s.space))
                asked.append(
                    (s, trial, build(pool, s.space, _values(s.space, trial.params, fixed)))
                )
        if not asked:
            break
        results = simulate([v for _, _, v in asked])
        for (s, trial, _), result in zip(asked, results, strict=True):
            shortfall = slo_target - result["slo_attainment"]
            trial.set_user_attr("slo_shortfall", shortfall)
            if method == "tpe" and hasattr(trial, "set_constraint"):
                trial.set_constraint("slo_shortfall", shortfall)
            trial.set_user_attr("result", _plain(result))
            objectives = (
                [result["gpu_hours"]]
                if method == "tpe"
                else [result["gpu_hours"], result["slo_attainment"]]
            )
            s.study.tell(trial, objectives)
    return finished(studies)


def _values(space: Space, params: dict[str, Any], fixed: dict[str, Any]) -> dict[str, Any]:
    """Every knob's value, in the space's order: a trial's parameters and the fixed ones."""
    return {k.path: params.get(k.path, fixed.get(k.path)) for k in space.knobs}


def finished(studies: Sequence[Study]) -> list[dict[str, Any]]:
    """Every finished trial's results, family by family in trial order."""
    out = []
    for s in studies:
        for t in s.study.get_trials(deepcopy=False):
            if t.state.is_finished() and "result" in t.user_attrs:
                out.append({**t.user_attrs["result"], "trial": t.number, "params": t.params})
    return out


def _plain(result: dict[str, Any]) -> dict[str, Any]:
    """`result` with numpy numbers as Python's, as a storage keeps them."""
    return {k: v.item() if isinstance(v, np.generic) else v for k, v in result.items()}
