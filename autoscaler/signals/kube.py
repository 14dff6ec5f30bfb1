"""The `kube-pending-pods` source: Kubernetes backlog, by namespace and label selector.

`kind: pending-pods` counts pods in phase Pending (not being deleted), optionally only those
requesting a GPU resource (`gpu_only`, any container or init container, in requests or
limits) or only those the scheduler could not place (`unschedulable_only`). `kind:
job-backlog` counts what unfinished Jobs still need: for a Job with `completions`, the
completions not yet succeeded; for a work-queue Job (no `completions`), its `parallelism`
until a pod succeeds, then its active pods. Finished Jobs (Complete, Failed, or marked to
become so) count nothing.

The client comes from the in-cluster service account, else KUBECONFIG (or ~/.kube/config);
tests pass fake API objects. Lists are paged, identical lists in one read are made once,
and different lists run concurrently, each within its timeout. This module must never turn
a failed list into a count: an API error or a timeout is a stale reading naming the code.
"""

from __future__ import annotations

import concurrent.futures as cf
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from autoscaler.clock import SystemClock
from autoscaler.deadlines import Late, wait_all
from autoscaler.types import Reading

from ._common import budget_seconds, checked_value, failed, group_by, where
from .base import SignalKey, SignalRequest

PAGE_SIZE = 500
_FINISHED = {"Complete", "Failed", "SuccessCriteriaMet", "FailureTarget"}

_MONOTONIC = SystemClock().monotonic


class KubeFailed(Exception):
    """A list that gave no usable answer; `code` is what telemetry counts."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class ListKey:
    """One list call: requests that differ only in how they count share it."""

    kind: str
    namespace: str
    selector: str


class KubePendingReader:
    """Reads `kube-pending-pods` signals; one instance serves every pool of a controller."""

    def __init__(
        self, settings: Any = None, core: Any = None, batch: Any = None, concurrency: int = 8
    ) -> None:
        """`core` and `batch` replace CoreV1Api and BatchV1Api (fakes in tests); without
        them the client is configured on the first read."""
        self._settings = settings
        self._core = core
        self._batch = batch
        self._lock = threading.Lock()
        self._threads = cf.ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="kube")

    def read(self, requests: Sequence[SignalRequest], now: float) -> dict[SignalKey, Reading]:
        try:
            core, batch = self._apis()
        except KubeFailed as exc:
            return {r.key: failed(now, exc.code, f"{where(r)}: {exc.message}") for r in requests}
        started = _MONOTONIC()
        groups = group_by(requests, _list_key)
        jobs = []
        for key, reqs in groups.items():
            budget = min(budget_seconds(r, self._settings) for r in reqs)
            api = batch if key.kind == "job-backlog" else core
            jobs.append((key, reqs, budget, self._threads.submit(_list, api, key, budget)))
        answers = wait_all([(future, budget) for _, _, budget, future in jobs], started)
        out: dict[SignalKey, Reading] = {}
        for (key, reqs, budget, _), answer in zip(jobs, answers, strict=True):
            out.update(_readings(key, reqs, answer, budget, now))
        return out

    def _apis(self) -> tuple[Any, Any]:
        with self._lock:
            if self._core is None or self._batch is None:
                api_client = _api_client()
                from kubernetes import client

                self._core = self._core or client.CoreV1Api(api_client)
                self._batch = self._batch or client.BatchV1Api(api_client)
            return self._core, self._batch


def _list_key(req: SignalRequest) -> ListKey:
    s = req.source
    return ListKey(s.kind, s.namespace, s.selector)


def _api_client() -> Any:
    """An ApiClient as the controller connects (`autoscaler.clients.kube`), without the
    client's own retries (the read has a deadline); no credentials is `kube_config`."""
    from autoscaler.clients.kube import NoCredentials, connect

    try:
        return connect(retries=False)
    except NoCredentials as exc:
        raise KubeFailed("kube_config", str(exc)) from None


def _readings(
    key: ListKey,
    reqs: list[SignalRequest],
    items: list[Any] | BaseException,
    budget: float,
    now: float,
) -> dict[SignalKey, Reading]:
    if isinstance(items, Late):
        late = KubeFailed("timeout", f"no answer within {budget:.2f}s")
        return {r.key: _failed(r, key, now, late) for r in reqs}
    if isinstance(items, KubeFailed):
        return {r.key: _failed(r, key, now, items) for r in reqs}
    if isinstance(items, BaseException):  # a bug or unexpected client error stays here
        bug = KubeFailed("source_error", f"{type(items).__name__}: {items}")
        return {r.key: _failed(r, key, now, bug) for r in reqs}
    return {r.key: checked_value(now, _count(r.source, items), _what(r, key)) for r in reqs}


def _count(source: Any, items: list[Any]) -> float:
    if source.kind == "job-backlog":
        return float(sum(job_backlog(job) for job in items))
    return float(sum(1 for pod in items if counts_as_pending(pod, source)))


def _failed(req: SignalRequest, key: ListKey, now: float, exc: KubeFailed) -> Reading:
    return failed(now, exc.code, f"{_what(req, key)}: {exc.message}")


def _what(req: SignalRequest, key: ListKey) -> str:
    things = "jobs" if key.kind == "job-backlog" else "pods"
    selector = f" selector {key.selector!r}" if key.selector else ""
    return f"{where(req)}: kube {things} in namespace {key.namespace}{selector}"


# -- listing -----------------------------------------------------------------------------


def _list(api: Any, key: ListKey, timeout: float) -> list[Any]:
    """Every item of the list, page by page; KubeFailed naming the code on failure."""
    if key.kind == "job-backlog":
        call, options = api.list_namespaced_job, {}
    else:
        call, options = api.list_namespaced_pod, {"field_selector": "status.phase=Pending"}
    items: list[Any] = []
    token: str | None = None
    while True:
        try:
            page = call(
                key.namespace,
                label_selector=key.selector or None,
                limit=PAGE_SIZE,
                _continue=token,
                _request_timeout=timeout,
                **options,
            )
        except Exception as exc:
            raise _api_error(exc, key) from None
        items.extend(page.items or [])
        token = getattr(page.metadata, "_continue", None) if page.metadata else None
        if not token:
            return items


def _api_error(exc: Exception, key: ListKey) -> KubeFailed:
    status = getattr(exc, "status", None)
    resource = "jobs.batch" if key.kind == "job-backlog" else "pods"
    if isinstance(status, int) and status:
        reason = getattr(exc, "reason", "") or ""
        if status == 403:
            return KubeFailed(
                "kube_403",
                f"forbidden: the autoscaler's service account needs `list` on {resource} "
                f"in namespace {key.namespace} ({reason})",
            )
        if status == 400 and key.selector:
            return KubeFailed("kube_400", f"bad request (is the selector valid?): {reason}")
        return KubeFailed(f"kube_{status}", f"API answered {status} {reason}".rstrip())
    text = str(exc) or type(exc).__name__
    if "timed out" in text.lower() or "timeout" in type(exc).__name__.lower():
        return KubeFailed("timeout", f"the API server did not answer in time: {text}")
    return KubeFailed("connect", f"cannot reach the API server: {type(exc).__name__}: {text}")


# -- counting ----------------------------------------------------------------------------


def counts_as_pending(pod: Any, source: Any) -> bool:
    """Whether a Pending pod counts for `source` (being deleted, it never does)."""
    if pod.metadata is not None and pod.metadata.deletion_timestamp is not None:
        return False
    if source.gpu_only and not requests_resource(pod, source.gpu_resource):
        return False
    return not (source.unschedulable_only and not is_unschedulable(pod))


def requests_resource(pod: Any, resource: str) -> bool:
    """Whether any container or init container requests or limits `resource` above 0."""
    spec = pod.spec
    if spec is None:
        return False
    containers = list(spec.containers or []) + list(spec.init_containers or [])
    for c in containers:
        res = c.resources
        if res is None:
            continue
        for amounts in (res.requests or {}, res.limits or {}):
            if _positive(amounts.get(resource)):
                return True
    return False


def _positive(quantity: Any) -> bool:
    if quantity is None:
        return False
    try:
        return float(str(quantity)) > 0
    except ValueError:
        return str(quantity).strip() not in ("", "0")  # e.g. "1k": any non-zero quantity


def is_unschedulable(pod: Any) -> bool:
    for cond in (pod.status.conditions if pod.status else None) or []:
        if cond.type == "PodScheduled" and cond.status == "False":
            return bool(cond.reason == "Unschedulable")
    return False


def job_backlog(job: Any) -> int:
    """Pods an unfinished Job still needs, running ones included; 0 when it finished."""
    status = job.status
    for cond in (status.conditions if status else None) or []:
        if cond.type in _FINISHED and cond.status == "True":
            return 0
    succeeded = (status.succeeded if status else None) or 0
    active = (status.active if status else None) or 0
    spec = job.spec
    completions = spec.completions if spec else None
    if completions is not None:
        return max(0, int(completions) - int(succeeded))
    # Work-queue Job: no new pods start once one has succeeded; the active ones finish.
    if succeeded > 0:
        return int(active)
    return max(1, (spec.parallelism if spec else None) or 1)


__all__ = [
    "KubeFailed",
    "KubePendingReader",
    "counts_as_pending",
    "is_unschedulable",
    "job_backlog",
    "requests_resource",
]
