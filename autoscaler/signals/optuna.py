"""The `optuna` source: an Optuna study read as an experiment queue (the `optuna` extra).

Each study (one storage, one name) is read once per tick, however many signals ask for it,
and turned into a `StudyCounts`: its trials waiting, running, complete, pruned and failed,
how many failures were retried (Optuna's `RetryHeartbeatStaleTrialCallback`, formerly
`RetryFailedTrialCallback`, marks a retry with the system attribute `failed_trial`), and
whether the study is done. Studies are read concurrently, each within its budget; a slow
or broken storage fails only its own signals.

This module only reads: it never creates tables, files or studies (a missing sqlite or
journal file is an error, not an empty study), and it must never turn a failed read into a
number: a storage that cannot be read is stale, so the pool holds instead of scaling down.
"""

from __future__ import annotations

import concurrent.futures as cf
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Only this module imports optuna, and the registry loads it only for a pool that uses it;
# without the extra, the registry says: pip install 'elastic-autoscaler[optuna]'.
import optuna
from optuna.trial import TrialState

from autoscaler.clock import SystemClock
from autoscaler.deadlines import Late, wait_all
from autoscaler.types import Reading

from ._common import budget_seconds, failed, group_by, where
from .base import SignalKey, SignalRequest

_MONOTONIC = SystemClock().monotonic
_TRUE_TEXT = {"1", "true", "yes", "on"}


@dataclass(frozen=True, slots=True)
class StudyCounts:
    """One study's trials by state, in trials, and what an experiment of `n_trials` needs."""

    waiting: int
    running: int
    complete: int
    pruned: int
    failed: int
    retried: int
    """Retries enqueued for failed trials (trials carrying `failed_trial`)."""
    failed_final: int
    """Failed trials with no retry: given up (past `max_retry`, or nobody retries)."""
    n_trials: int
    marked_done: bool = False
    """The study's done attribute is set."""

    @property
    def finished(self) -> int:
        """Trials that count toward `n_trials`: complete, pruned, or failed for good."""
        return self.complete + self.pruned + self.failed_final

    @property
    def done(self) -> bool:
        return self.marked_done or self.finished >= self.n_trials

    @property
    def runnable(self) -> int:
        """Trials that still need a worker: the waiting ones and those not yet asked for,
        up to `n_trials`; 0 once the study is done."""
        if self.done:
            return 0
        fresh = self.n_trials - self.finished - self.running - self.waiting
        return self.waiting + max(0, fresh)

    @property
    def workers(self) -> int:
        """Trials that hold or need a worker now: an experiment pool's demand."""
        return 0 if self.done else self.running + self.runnable

    def value(self, metric: str) -> float:
        if metric == "done":
            return 1.0 if self.done else 0.0
        return float(getattr(self, metric))


def count_trials(
    trials: Iterable[Any], n_trials: int, user_attrs: Mapping[str, Any], done_attribute: str
) -> StudyCounts:
    """The counts of a study's (frozen) trials; pure, for tests and the reader alike."""
    by_state: dict[TrialState, int] = {}
    failed_numbers: set[int] = set()
    retried_numbers: set[int] = set()
    retries = 0
    for t in trials:
        by_state[t.state] = by_state.get(t.state, 0) + 1
        if t.state == TrialState.FAIL:
            failed_numbers.add(t.number)
        attrs = t.system_attrs or {}
        if "failed_trial" in attrs:
            retries += 1
            # The last entry of `retry_history` is the trial this one retries.
            history = attrs.get("retry_history") or [attrs["failed_trial"]]
            retried_numbers.update(int(n) for n in history)
    return StudyCounts(
        waiting=by_state.get(TrialState.WAITING, 0),
        running=by_state.get(TrialState.RUNNING, 0),
        complete=by_state.get(TrialState.COMPLETE, 0),
        pruned=by_state.get(TrialState.PRUNED, 0),
        failed=by_state.get(TrialState.FAIL, 0),
        retried=retries,
        failed_final=len(failed_numbers - retried_numbers),
        n_trials=n_trials,
        marked_done=_truthy(user_attrs.get(done_attribute)),
    )


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in _TRUE_TEXT
    return bool(value)


class OptunaFailed(Exception):
    """A study that gave no counts; `code` is what telemetry counts."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class StudyKey:
    """Signals of one study are answered from one read per tick."""

    storage: str | None
    journal: str | None
    study: str
    n_trials: int
    done_attribute: str
    timeout: float

    @property
    def shown(self) -> str:
        where_ = f"journal {self.journal}" if self.journal else f"storage {_safe(self.storage)}"
        return f"study {self.study!r} in {where_}"


class OptunaReader:
    """Reads `optuna` signals; one instance serves every pool of a controller."""

    def __init__(self, settings: Any = None, max_studies_in_flight: int = 8) -> None:
        self._settings = settings
        self._storages: dict[tuple[str | None, str | None], Any] = {}
        self._lock = threading.Lock()
        self._threads = cf.ThreadPoolExecutor(
            max_workers=max_studies_in_flight, thread_name_prefix="optuna"
        )

    def close(self) -> None:
        self._threads.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            storages, self._storages = list(self._storages.values()), {}
        for storage in storages:
            engine = getattr(storage, "engine", None)
            if engine is not None:
                engine.dispose()

    def read(self, requests: Sequence[SignalRequest], now: float) -> dict[SignalKey, Reading]:
        started = _MONOTONIC()
        groups = group_by(requests, self._study_key)
        keys = list(groups)
        work: list[tuple[cf.Future[StudyCounts], float]] = [
            (self._threads.submit(self.counts, key), key.timeout) for key in keys
        ]
        answers = wait_all(work, started)
        out: dict[SignalKey, Reading] = {}
        for key, answer in zip(keys, answers, strict=True):
            for r in groups[key]:
                out[r.key] = _reading(r, key, answer, now)
        return out

    def _study_key(self, req: SignalRequest) -> StudyKey:
        s = req.source
        budget = round(budget_seconds(req, self._settings), 3)
        return StudyKey(s.storage, s.journal, s.study, s.n_trials, s.done_attribute, budget)

    def counts(self, key: StudyKey) -> StudyCounts:
        """The study's counts now, or OptunaFailed saying why there are none."""
        storage = self._storage(key)
        try:
            study_id = storage.get_study_id_from_name(key.study)
        except KeyError:
            raise OptunaFailed(
                "no_study", f"{key.shown} does not exist (check `study` and the storage)"
            ) from None
        except Exception as exc:
            raise OptunaFailed("storage", f"{key.shown}: {type(exc).__name__}: {exc}") from None
        try:
            trials = storage.get_all_trials(study_id, deepcopy=False)
            attrs = storage.get_study_user_attrs(study_id)
        except Exception as exc:
            raise OptunaFailed("storage", f"{key.shown}: {type(exc).__name__}: {exc}") from None
        return count_trials(trials, key.n_trials, attrs, key.done_attribute)

    def _storage(self, key: StudyKey) -> Any:
        ident = (key.storage, key.journal)
        with self._lock:
            storage = self._storages.get(ident)
        if storage is not None:
            return storage
        storage = _open(key)
        with self._lock:
            return self._storages.setdefault(ident, storage)


def _open(key: StudyKey) -> Any:
    """A storage to read from; never creates a file or a table."""
    try:
        if key.journal is not None:
            if not Path(key.journal).is_file():
                raise OptunaFailed(
                    "no_storage", f"journal file {key.journal} does not exist (check `journal`)"
                )
            from optuna.storages.journal import JournalFileBackend, JournalStorage

            return JournalStorage(JournalFileBackend(key.journal))
        assert key.storage is not None
        path = _sqlite_path(key.storage)
        if path is not None and not Path(path).is_file():
            raise OptunaFailed("no_storage", f"sqlite file {path} does not exist (check `storage`)")
        return optuna.storages.RDBStorage(
            key.storage,
            engine_kwargs=_engine_options(key),
            skip_table_creation=True,
            skip_compatibility_check=True,
        )
    except OptunaFailed:
        raise
    except Exception as exc:
        raise OptunaFailed("storage", f"{key.shown}: {type(exc).__name__}: {exc}") from None


def _sqlite_path(url: str) -> str | None:
    if not url.startswith("sqlite:///"):
        return None
    path = url[len("sqlite:///") :].split("?", 1)[0]
    return None if path in ("", ":memory:") else path


def _engine_options(key: StudyKey) -> dict[str, Any]:
    assert key.storage is not None
    seconds = max(1, int(key.timeout))
    if key.storage.startswith("sqlite"):
        return {"connect_args": {"timeout": key.timeout}}
    if key.storage.startswith("postgresql"):
        return {"connect_args": {"connect_timeout": seconds}, "pool_pre_ping": True}
    if key.storage.startswith("mysql"):
        return {"connect_args": {"connect_timeout": seconds}, "pool_pre_ping": True}
    return {"pool_pre_ping": True}


def _reading(
    req: SignalRequest, key: StudyKey, answer: StudyCounts | BaseException, now: float
) -> Reading:
    if isinstance(answer, StudyCounts):
        return Reading(answer.value(req.source.metric), now)
    if isinstance(answer, OptunaFailed):
        return failed(now, answer.code, f"{where(req)}: {answer.message}")
    if isinstance(answer, Late):
        return failed(now, "timeout", f"{where(req)}: {key.shown}: no answer in {key.timeout:g}s")
    return failed(now, "source_error", f"{where(req)}: {type(answer).__name__}: {answer}")


def _safe(url: str | None) -> str:
    """A storage URL without its password."""
    if url is None or "@" not in url or "://" not in url:
        return str(url)
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in creds else url
