"""The `optuna` source against real Optuna storages on disk (sqlite and a journal file).

Studies are built with Optuna's own API: enqueued (WAITING), asked (RUNNING), told
complete, pruned or failed, and failures retried by Optuna's RetryHeartbeatStaleTrialCallback
as the example worker does. A storage that cannot be read must read stale, never 0, and
the controller must then hold the pool instead of scaling it down.
"""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.storages.journal import JournalFileBackend, JournalStorage
from optuna.trial import TrialState

from autoscaler.clock import FakeClock
from autoscaler.config import parse_config
from autoscaler.config.sources import OptunaSource
from autoscaler.controller import Controller
from autoscaler.errors import SourceUnavailable
from autoscaler.providers import SimulatedProvider
from autoscaler.signals import build_source
from autoscaler.signals.base import SignalRequest
from autoscaler.signals.optuna import OptunaReader
from autoscaler.telemetry import reason_class
from tests.signals.helpers import code_of

optuna.logging.set_verbosity(optuna.logging.WARNING)
pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")

METRICS = ("workers", "runnable", "waiting", "running", "complete", "pruned", "failed",
           "retried", "finished", "done")  # fmt: skip


def sqlite_storage(tmp_path: Path) -> tuple[dict[str, str], Any]:
    url = f"sqlite:///{tmp_path / 'exp.db'}"
    return {"storage": url}, url


def journal_storage(tmp_path: Path) -> tuple[dict[str, str], Any]:
    path = str(tmp_path / "exp.journal")
    return {"journal": path}, JournalStorage(JournalFileBackend(path))


STORAGES = [sqlite_storage, journal_storage]


def read_all(where: dict[str, str], study: str, n_trials: int, **extra: Any) -> dict[str, Any]:
    reader = OptunaReader()
    try:
        sources = {
            m: OptunaSource(study=study, n_trials=n_trials, metric=m, **where, **extra)
            for m in METRICS
        }
        requests = [SignalRequest("exp", m, source) for m, source in sources.items()]
        readings = reader.read(requests, 100.0)
    finally:
        reader.close()
    return {m: readings[("exp", m)] for m in METRICS}


def values(readings: dict[str, Any]) -> dict[str, float | None]:
    return {m: r.value for m, r in readings.items()}


def fail_and_retry(study: optuna.Study, max_retry: int) -> None:
    """Ask a trial, fail it, and let Optuna's retry callback enqueue its retry."""
    trial = study.ask()
    frozen = study.tell(trial, state=TrialState.FAIL)
    RetryHeartbeatStaleTrialCallback(max_retry=max_retry)(study, frozen)


@pytest.mark.parametrize("make", STORAGES, ids=["sqlite", "journal"])
def test_trials_are_counted_by_state_and_runnable_fills_up_to_n_trials(
    tmp_path: Path, make: Callable[[Path], tuple[dict[str, str], Any]]
) -> None:
    where, storage = make(tmp_path)
    study = optuna.create_study(study_name="exp", storage=storage)
    study.tell(study.ask(), 1.0)  # complete
    study.tell(study.ask(), state=TrialState.PRUNED)
    fail_and_retry(study, max_retry=2)  # failed, its retry WAITING
    study.ask()  # the retry is asked first: RUNNING
    study.ask()  # a fresh trial, RUNNING
    study.enqueue_trial({"x": 1.0})  # WAITING

    got = values(read_all(where, "exp", n_trials=10))

    # 10 wanted, 2 finished (complete + pruned; the failure was retried so it is not),
    # 2 running, 1 waiting: 5 more not yet asked for.
    assert got == {
        "complete": 1, "pruned": 1, "failed": 1, "retried": 1, "finished": 2, "running": 2,
        "waiting": 1, "runnable": 6, "workers": 8, "done": 0,
    }  # fmt: skip


@pytest.mark.parametrize("make", STORAGES, ids=["sqlite", "journal"])
def test_a_study_with_n_trials_finished_is_done_and_needs_no_workers(
    tmp_path: Path, make: Callable[[Path], tuple[dict[str, str], Any]]
) -> None:
    where, storage = make(tmp_path)
    study = optuna.create_study(study_name="exp", storage=storage)
    for _ in range(3):
        study.tell(study.ask(), 0.5)
    study.enqueue_trial({"x": 2.0})  # left over: the experiment is done regardless

    got = values(read_all(where, "exp", n_trials=3))

    assert (got["done"], got["runnable"], got["workers"], got["waiting"]) == (1, 0, 0, 1)


def test_a_failure_past_max_retry_is_given_up_and_counts_as_finished(tmp_path: Path) -> None:
    where, url = sqlite_storage(tmp_path)
    study = optuna.create_study(study_name="exp", storage=url)
    fail_and_retry(study, max_retry=1)  # trial 0 fails; retry 1 enqueued
    fail_and_retry(study, max_retry=1)  # retry 1 fails; past max_retry: nothing enqueued

    got = values(read_all(where, "exp", n_trials=1))

    assert (got["failed"], got["retried"], got["waiting"]) == (2, 1, 0)
    assert (got["finished"], got["done"], got["workers"]) == (1, 1, 0)


def test_the_done_attribute_ends_the_experiment_before_n_trials(tmp_path: Path) -> None:
    where, url = sqlite_storage(tmp_path)
    study = optuna.create_study(study_name="exp", storage=url)
    study.tell(study.ask(), 1.0)
    assert values(read_all(where, "exp", n_trials=50))["done"] == 0

    study.set_user_attr("experiment_done", True)
    got = values(read_all(where, "exp", n_trials=50))
    assert (got["done"], got["workers"], got["finished"]) == (1, 0, 1)

    study.set_user_attr("stop", "yes")
    assert values(read_all(where, "exp", n_trials=50, done_attribute="stop"))["done"] == 1


@pytest.mark.parametrize(
    ("where", "code"),
    [
        ({"storage": "sqlite:///{tmp}/missing.db"}, "no_storage"),
        ({"journal": "{tmp}/missing.journal"}, "no_storage"),
        ({"storage": "sqlite:///{tmp}/garbage.db"}, "storage"),
        ({"storage": "sqlite:///{tmp}/empty.db"}, "storage"),
    ],
    ids=["missing-sqlite", "missing-journal", "not-a-database", "no-optuna-tables"],
)
def test_a_storage_that_cannot_be_read_is_stale_never_zero(
    tmp_path: Path, where: dict[str, str], code: str
) -> None:
    (tmp_path / "garbage.db").write_bytes(b"this is not sqlite\x00" * 100)
    (tmp_path / "empty.db").write_bytes(b"")
    where = {k: v.format(tmp=tmp_path) for k, v in where.items()}

    readings = read_all(where, "exp", n_trials=5)

    for metric, reading in readings.items():
        assert reading.stale and reading.value is None, metric
        assert code_of(reading.error) == code
        assert "pool exp signal" in str(reading.error)
    # Reading never creates what it did not find.
    assert not (tmp_path / "missing.db").exists()
    assert not (tmp_path / "missing.journal").exists()


def test_a_missing_study_is_stale_and_named(tmp_path: Path) -> None:
    where, url = sqlite_storage(tmp_path)
    optuna.create_study(study_name="other", storage=url)

    reading = read_all(where, "exp", n_trials=5)["workers"]

    assert code_of(reading.error) == "no_study"
    assert "study 'exp'" in str(reading.error)


def test_without_optuna_installed_the_error_says_which_extra_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delitem(sys.modules, "autoscaler.signals.optuna", raising=False)
    monkeypatch.setitem(sys.modules, "optuna", None)  # import optuna now fails

    with pytest.raises(SourceUnavailable) as e:
        build_source("optuna", "pools[0].signals.trials.source")

    message = str(e.value)
    assert message.startswith("pools[0].signals.trials.source: ")
    assert "pip install 'elastic-autoscaler[optuna]'" in message


# -- whole ticks: the controller over simulated capacity -------------------------------
def experiment_config(url: str) -> str:
    return textwrap.dedent(
        f"""
        installation: {{id: test}}
        controller: {{interval: 15s, observe_deadline: 5s, source_timeout: 4s}}
        pools:
          - name: exp
            target: {{kind: simulated}}
            max: 4
            signals:
              trials: {{source: {{type: optuna, storage: "{url}", study: exp, n_trials: 6}}}}
              done: {{source: {{type: optuna, storage: "{url}", study: exp, n_trials: 6,
                               metric: done}}}}
            policy: {{type: queue-depth, target_per_replica: 1, signal: trials}}
            behavior: {{scale_down: {{stabilization_window: 0}}, scale_to_zero_after: 0}}
        """
    )


def test_the_controller_holds_an_experiment_pool_whose_storage_breaks_then_ends_it_when_done(
    tmp_path: Path,
) -> None:
    _, url = sqlite_storage(tmp_path)
    study = optuna.create_study(study_name="exp", storage=url)
    clock = FakeClock(1000.0)
    provider = SimulatedProvider(clock)
    config = parse_config(experiment_config(url))
    controller = Controller(config, {"simulated": provider}, clock=clock)
    pool = config.pool("exp")
    try:
        clock.advance(15)
        first = controller.tick().decisions[0]
        assert first.desired == 4  # 6 trials want workers; max 4 is the parallelism cap
        provider.preset(pool, 4)

        db = tmp_path / "exp.db"
        saved = db.read_bytes()
        db.write_bytes(b"corrupt" * 1000)
        clock.advance(15)
        held = controller.tick()
        assert held.decisions[0].desired == 4 and held.decisions[0].stale
        assert code_of(held.readings[("exp", "trials")].error) == "storage"

        db.write_bytes(saved)
        for _ in range(6):
            study.tell(study.ask(), 1.0)
        clock.advance(15)
        done = controller.tick().decisions[0]
        assert done.desired == 0
        assert "experiment done: study exp" in done.reason
        assert reason_class(done.reason) == "experiment_done"  # its /metrics label
    finally:
        controller.close()


# -- the example ---------------------------------------------------------------------------
def test_the_example_experiment_queue_validates_and_its_job_template_is_fit() -> None:
    from click.testing import CliRunner

    from autoscaler.cli import cli
    from autoscaler.config import load_config
    from autoscaler.providers.kube_jobs import check_template

    example = Path(__file__).resolve().parents[2] / "examples" / "experiment-queue.yaml"
    result = CliRunner().invoke(cli, ["validate", str(example)])
    assert result.exit_code == 0, result.output
    pool = load_config(example).pools[0]
    template = yaml.safe_load(Path(load_config(example).resolve_path("experiments/job.yaml"))
                              .read_text())  # fmt: skip
    assert check_template(template, pool.name, "template_file")["spec"]["backoffLimit"] == 0
    trials = pool.signals["trials"].source
    assert (trials.type, trials.metric, pool.budget and pool.budget.gpu_hours_total) == (
        "optuna", "workers", 500
    )  # fmt: skip


def test_a_source_with_both_storages_or_a_bad_url_is_refused_naming_the_field() -> None:
    with pytest.raises(ValueError, match="set exactly one of `storage`"):
        OptunaSource(storage="sqlite:///a.db", journal="a.journal", study="s", n_trials=1)
    with pytest.raises(ValueError, match="must be an RDB URL"):
        OptunaSource(storage="/tmp/a.db", study="s", n_trials=1)
    with pytest.raises(ValueError, match=r"greater than or equal to 1|>= 1"):
        OptunaSource(storage="sqlite:///a.db", study="s", n_trials=0)


def test_a_pulling_worker_on_a_journal_file_finishes_the_study_retrying_a_failure(
    tmp_path: Path,
) -> None:
    import os
    import subprocess

    root = Path(__file__).resolve().parents[2]
    where, storage = journal_storage(tmp_path)
    optuna.create_study(study_name="exp", storage=storage)
    env = {
        **os.environ,
        "OPTUNA_JOURNAL": where["journal"],
        "OPTUNA_STUDY": "exp",
        "OPTUNA_N_TRIALS": "3",
        "EXPERIMENT_OBJECTIVE": "tests.kube.experiment_objective:flaky_quadratic",
        "WORKER_MODE": "pull",
        "PYTHONPATH": str(root),
    }
    worker = root / "examples" / "experiments" / "worker.py"
    run = subprocess.run(
        [sys.executable, str(worker)], env=env, capture_output=True, text=True, timeout=120
    )

    assert run.returncode == 0, run.stderr[-2000:]
    got = values(read_all(where, "exp", n_trials=3))
    assert (got["complete"], got["failed"], got["retried"]) == (3, 1, 1)
    assert (got["done"], got["workers"]) == (1, 0)


def test_explain_says_the_experiment_is_done(tmp_path: Path) -> None:
    from autoscaler.explain import explain

    config = parse_config(experiment_config(f"sqlite:///{tmp_path / 'exp.db'}"))
    result = explain(config.pool("exp"), {"trials": 0.0, "done": 1.0}, replicas=2, ready=2)
    assert result.decision.desired == 0
    assert result.decision.reason.endswith("; experiment done: study exp")
    running = explain(config.pool("exp"), {"trials": 3.0, "done": 0.0}, replicas=2, ready=2)
    assert "experiment done" not in running.decision.reason
