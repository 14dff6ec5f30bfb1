"""The `job` provider: Kubernetes Jobs created from a template as a backlog grows.

The pool's capacity is its count of *active* Jobs (not Complete or Failed, nor about to be).
`scale` creates Jobs from the target's template until that count reaches `desired`, at most
the pool's `max`. One Job is meant for `items_per_job` items of the backlog: a pool's policy
sizes `desired` with it (queue-depth's `target_per_replica`), and each Job and its pods carry
it as the annotation `<prefix>/items-per-job`, which a worker can read through the downward
API. Every Job is labelled `<prefix>/owner`, `<prefix>/pool` and `<prefix>/request-id`, and is
named `<name_prefix>-<request hash>-<n>`, so a retried request id creates nothing new: Jobs of
the same request count toward the target, and a name that exists is not created twice.
After each scale, and in `tidy` (which the controller calls on ticks without an action,
never in a dry run), finished Jobs beyond the target's `keep_finished` are deleted, oldest
first, with their pods.

This provider must never delete or change a running Job: scale-in only stops creating,
and `remove` of an active Job is refused. It lists and deletes only Jobs labelled with
this installation's owner and the pool.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from autoscaler.clients.kube import Labels, api_client, label_value, timestamp, translated
from autoscaler.clock import Clock
from autoscaler.config import Config, Pool
from autoscaler.config.targets import JobTarget
from autoscaler.errors import NotFound, ProviderError
from autoscaler.types import Capacity, Member

from .base import CapacityProvider, target_of

log = logging.getLogger("autoscaler.kube.jobs")

# FailureTarget and SuccessCriteriaMet come before Failed/Complete (Kubernetes >= 1.31):
# the Job's pods are being terminated, so it will not take more work either.
_FINISHED = {"Complete", "Failed", "FailureTarget", "SuccessCriteriaMet"}


def is_finished(job: Any) -> bool:
    """Whether a Job is Complete or Failed, or about to be (its pods will not run again)."""
    for cond in (job.status.conditions if job.status else None) or []:
        if cond.type in _FINISHED and cond.status == "True":
            return True
    return False


def is_ready(job: Any) -> bool:
    """Whether an active Job has a ready pod (or already a succeeded one)."""
    status = job.status
    if status is None:
        return False
    return bool((status.ready or 0) > 0 or (status.succeeded or 0) > 0)


def job_name(prefix: str, request_id: str, n: int) -> str:
    """A deterministic Job name for the n-th Job of one request (<= 63 characters)."""
    digest = hashlib.sha256(request_id.encode()).hexdigest()[:10]
    return f"{prefix[:40].rstrip('-')}-{digest}-{n}"


class JobProvider(CapacityProvider):
    """Jobs of every `job` pool; one instance serves them all; thread-safe."""

    def __init__(self, labels: Labels, api: Any = None, resolve: Any = None) -> None:
        """`api` is a kubernetes ApiClient (default: in-cluster, else KUBECONFIG);
        `resolve` turns a `template_file` into a path (default: as written)."""
        self.labels = labels
        self._api = api
        self._batch: Any = None
        self._resolve = resolve or (lambda path: path)
        self._lock = threading.Lock()
        self._templates: dict[str, dict[str, Any]] = {}

    @classmethod
    def from_config(cls, config: Config, clock: Clock) -> JobProvider:
        installation = config.installation
        return cls(Labels(installation.id, installation.tag_prefix), resolve=config.resolve_path)

    @property
    def items_key(self) -> str:
        return self.labels.key("items-per-job")

    # -- the provider protocol -----------------------------------------------------------
    def describe(self, pool: Pool) -> Capacity:
        active = [j for j in self._jobs(pool) if not is_finished(j) and not _deleting(j)]
        members = tuple(_member(j) for j in active)
        ready = sum(1 for m in members if m.ready)
        return Capacity(len(members), ready, len(members) - ready, members)

    def scale(self, pool: Pool, desired: int, request_id: str) -> None:
        template = self.template(pool)  # a bad template fails before anything is listed
        jobs = self._jobs(pool)
        request = label_value(request_id)
        mine = [j for j in jobs if _labels(j).get(self.labels.request_key) == request]
        others = [j for j in jobs if j not in mine and not is_finished(j) and not _deleting(j)]
        # Jobs of this request count whether or not they have finished: a retry adds none.
        want = desired - len(others)  # the planner alone bounds `desired` by the pool's
        taken = {j.metadata.name for j in mine}
        need, index = want - len(mine), 0
        while need > 0:
            name = job_name(self._prefix(pool), request_id, index)
            index += 1
            if name not in taken:
                self._create(pool, self.manifest(pool, name, request_id, template))
                need -= 1
        active = len(others) + sum(1 for j in mine if not is_finished(j))
        if desired < active:
            log.info(
                "%s: %d Jobs active, %d wanted; running Jobs are never deleted, none created",
                pool.name,
                active,
                desired,
            )
        self._clean_finished(pool, jobs)

    has_housekeeping = True

    def tidy(self, pool: Pool) -> None:
        """Delete finished Jobs beyond `keep_finished` (a pool holding still has them)."""
        self._clean_finished(pool, self._jobs(pool))

    def remove(self, pool: Pool, members: Sequence[str], request_id: str) -> None:
        jobs = {j.metadata.name: j for j in self._jobs(pool)}
        unknown = [m for m in members if m not in jobs]
        if unknown:
            raise NotFound(
                f"pool {pool.name}: {', '.join(unknown)} not Jobs of this pool; nothing removed"
            )
        running = [m for m in members if not is_finished(jobs[m])]
        if running:
            raise ProviderError(
                f"pool {pool.name}: refusing to delete running Job(s) {', '.join(running)}: "
                "Jobs are never deleted while they run; scale-in only stops creating. "
                "Nothing was removed",
                "Unsupported",
            )
        for name in members:
            self._delete(pool, name)

    # -- reading -------------------------------------------------------------------------
    def _api_batch(self) -> Any:
        with self._lock:
            if self._batch is None:
                from kubernetes import client

                self._batch = client.BatchV1Api(self._api or api_client())
            return self._batch

    def _jobs(self, pool: Pool) -> list[Any]:
        batch = self._api_batch()
        ns = _target(pool).namespace
        with translated(f"pool {pool.name}: Jobs in namespace {ns}"):
            items = batch.list_namespaced_job(ns, label_selector=self.labels.selector(pool.name))
        return [j for j in items.items if self.labels.owns(_labels(j))]

    def _prefix(self, pool: Pool) -> str:
        return str(_target(pool).name_prefix or pool.name.replace("_", "-").replace(".", "-"))

    def template(self, pool: Pool) -> dict[str, Any]:
        """The pool's Job manifest, checked (a `template_file` is read once per path)."""
        target = _target(pool)
        if target.template is not None:
            return check_template(copy.deepcopy(target.template), pool.name, "target.template")
        path = str(self._resolve(target.template_file))
        with self._lock:
            if path not in self._templates:
                where = f"target.template_file {target.template_file}"
                self._templates[path] = check_template(_load(path, pool, where), pool.name, where)
            return self._templates[path]

    # -- changing ------------------------------------------------------------------------
    def manifest(
        self, pool: Pool, name: str, request_id: str, template: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """The Job to create: the template with our name, namespace, labels and annotations."""
        job = copy.deepcopy(dict(template if template is not None else self.template(pool)))
        ours = {**self.labels.of_pool(pool.name), self.labels.request_key: label_value(request_id)}
        items = {self.items_key: str(_target(pool).items_per_job)}
        meta = job.setdefault("metadata", {})
        for server_side in ("generateName", "resourceVersion", "uid", "creationTimestamp"):
            meta.pop(server_side, None)
        meta.update(name=name, namespace=_target(pool).namespace)
        meta["labels"] = {**(meta.get("labels") or {}), **ours}
        meta["annotations"] = {
            **(meta.get("annotations") or {}),
            **items,
            self.labels.key("request"): request_id,
        }
        pod_meta = job["spec"]["template"].setdefault("metadata", {})
        pod_meta["labels"] = {**(pod_meta.get("labels") or {}), **self.labels.of_pool(pool.name)}
        pod_meta["annotations"] = {**(pod_meta.get("annotations") or {}), **items}
        job.pop("status", None)
        job["apiVersion"] = "batch/v1"
        job["kind"] = "Job"
        return job

    def _create(self, pool: Pool, job: dict[str, Any]) -> None:
        batch = self._api_batch()
        ns, name = _target(pool).namespace, job["metadata"]["name"]
        try:
            with translated(f"pool {pool.name}: create Job {ns}/{name}"):
                batch.create_namespaced_job(ns, job)
        except ProviderError as exc:
            if exc.code != "Conflict":
                raise
            return  # it exists: an earlier attempt of this request made it
        log.info("%s: created Job %s/%s", pool.name, ns, name)

    def _clean_finished(self, pool: Pool, jobs: Sequence[Any]) -> None:
        finished = sorted(
            (j for j in jobs if is_finished(j) and not _deleting(j)),
            key=lambda j: timestamp(j.metadata.creation_timestamp),
        )
        excess = len(finished) - _target(pool).keep_finished
        for job in finished[: max(0, excess)]:
            self._delete(pool, job.metadata.name)

    def _delete(self, pool: Pool, name: str) -> None:
        batch = self._api_batch()
        ns = _target(pool).namespace
        try:
            with translated(f"pool {pool.name}: delete Job {ns}/{name}"):
                batch.delete_namespaced_job(name, ns, propagation_policy="Background")
        except NotFound:
            return
        log.info("%s: deleted finished Job %s/%s", pool.name, ns, name)


def check_template(data: object, pool: str, where: str) -> dict[str, Any]:
    """A Job manifest fit to create Jobs from, else an error naming the pool and the field."""

    def bad(problem: str) -> ProviderError:
        return ProviderError(f"pool {pool}: {where}: {problem}", "BadTemplate")

    if not isinstance(data, dict):
        raise bad("not a batch/v1 Job manifest (a mapping with `spec.template`)")
    if data.get("kind", "Job") != "Job" or data.get("apiVersion", "batch/v1") != "batch/v1":
        raise bad(f"kind {data.get('kind')!r} {data.get('apiVersion')!r} is not a batch/v1 Job")
    spec = data.get("spec")
    template = spec.get("template") if isinstance(spec, dict) else None
    pod_spec = template.get("spec") if isinstance(template, dict) else None
    if not isinstance(pod_spec, dict) or not pod_spec.get("containers"):
        raise bad("`spec.template.spec.containers` is missing: a Job needs a pod template")
    if pod_spec.get("restartPolicy") not in ("Never", "OnFailure"):
        raise bad("`spec.template.spec.restartPolicy` must be Never or OnFailure for a Job")
    return data


def _deleting(job: Any) -> bool:
    return job.metadata.deletion_timestamp is not None


def _labels(job: Any) -> dict[str, str]:
    return dict(job.metadata.labels or {})


def _member(job: Any) -> Member:
    return Member(str(job.metadata.name), is_ready(job), timestamp(job.metadata.creation_timestamp))


def _load(path: str, pool: Pool, where: str) -> object:
    try:
        return yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ProviderError(
            f"pool {pool.name}: {where}: cannot read it ({exc})", "BadTemplate"
        ) from None


def _target(pool: Pool) -> JobTarget:
    return target_of(pool, JobTarget)
