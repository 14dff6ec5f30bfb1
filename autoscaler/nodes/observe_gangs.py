"""The observe step's part for gangs: which gang each pod is in, and the gang's size.

Read from the API objects (gangs.py says what a gang is): an Indexed Job's pods form its
gang, sized by the Job's parallelism (at most its completions); a JobSet's pods form one
gang, sized by the parallelism of all its Jobs; pods with the same value of `gang_label`
form one, sized by the annotation `<prefix>/gang-size` (else by how many such pods live).
Jobs are read only for gangs with an unschedulable member, and for gang admission
(admission.py): Jobs labelled `<prefix>/gang-admission: "true"`, the suspended ones as
gangs whose pods do not exist yet, the others to know whether all their pods are bound.

Every live member of such a gang is kept as a PodView, bound to any node: the planner
counts a gang's members to know whether all of them exist.

A failed read raises a ProviderError (the tick then does nothing); never writes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import Any

from kubernetes.client.exceptions import ApiException

from autoscaler.clients.kube import Labels, translated
from autoscaler.config.nodes import NodeProvisioning
from autoscaler.errors import ProviderError

from .admission import ADMISSION_LABEL, GangAdmission, SuspendedGang
from .gangs import JOB_INDEX_LABEL, JOB_NAME_LABEL, JOBSET_LABEL
from .inventory import PodView
from .pending import PendingPod

log = logging.getLogger("autoscaler.nodes")


def gang_key(pod: Any, config: NodeProvisioning) -> tuple[str, str, str] | None:
    """(gang id, kind, name) of a pod's gang; None for a pod in none."""
    meta = pod.metadata
    labels = meta.labels or {}
    ns = meta.namespace
    if labels.get(JOBSET_LABEL):
        name = labels[JOBSET_LABEL]
        return f"{ns}/jobset/{name}", "jobset", name
    job = labels.get(JOB_NAME_LABEL)
    if job and JOB_INDEX_LABEL in labels:
        return f"{ns}/job/{job}", "job", job
    group = labels.get(config.gang_label)
    if group:
        return f"{ns}/group/{group}", "group", group
    return None


def _job_size(job: Any) -> int:
    """Pods of the Job that run at once: its parallelism, at most the completions left."""
    spec = job.spec
    parallelism = spec.parallelism if spec.parallelism is not None else 1
    if spec.completions is not None:
        done = (job.status.succeeded or 0) if job.status is not None else 0
        parallelism = min(parallelism, spec.completions - done)
    return max(0, int(parallelism))


def gang_sizes(
    core: Any,
    raw_pods: Sequence[Any],
    config: NodeProvisioning,
    labels: Labels,
    wanted: set[str],
) -> dict[str, int]:
    """The size of each gang in `wanted` (ids)."""
    from kubernetes import client as k

    sizes: dict[str, int] = {}
    counts: dict[str, int] = {}
    annotated: dict[str, int] = {}
    jobs: dict[str, tuple[str, str, str]] = {}
    size_key = labels.key("gang-size")
    for pod in raw_pods:
        key = gang_key(pod, config)
        if key is None or key[0] not in wanted:
            continue
        gid, kind, name = key
        counts[gid] = counts.get(gid, 0) + 1
        jobs[gid] = (pod.metadata.namespace, kind, name)
        value = (pod.metadata.annotations or {}).get(size_key, "")
        if value.strip().isdigit():
            annotated[gid] = max(annotated.get(gid, 0), int(value))
    batch: Any = None
    for gid, (ns, kind, name) in jobs.items():
        if gid in annotated:
            sizes[gid] = annotated[gid]
        elif kind == "group":
            sizes[gid] = counts[gid]
        else:
            if batch is None:
                batch = k.BatchV1Api(core.api_client)
            with translated(f"node provisioning: read the Job(s) of gang {gid}"):
                if kind == "job":
                    try:
                        sizes[gid] = _job_size(batch.read_namespaced_job(name, ns))
                    except ApiException as exc:
                        if exc.status != 404:
                            raise
                        sizes[gid] = counts[gid]  # the Job is gone; its pods go too
                else:
                    found = batch.list_namespaced_job(
                        ns, label_selector=f"{JOBSET_LABEL}={name}"
                    ).items
                    sizes[gid] = sum(_job_size(j) for j in found) or counts[gid]
    return sizes


def with_gangs(
    core: Any,
    raw_pods: Sequence[Any],
    views: Iterable[PodView],
    config: NodeProvisioning,
    labels: Labels,
    view_of: Any,
) -> list[PodView]:
    """`views` with each pod's gang and gang size set, plus the gangs' members bound to
    nodes not ours (to count them); `view_of(pod)` makes a PodView."""
    views = list(views)
    keys = {}
    for pod in raw_pods:
        key = gang_key(pod, config)
        if key is not None:
            keys[f"{pod.metadata.namespace}/{pod.metadata.name}"] = (key[0], pod)
    wanted = {keys[v.name][0] for v in views if v.pending is not None and v.name in keys}
    if not wanted:
        return views
    sizes = gang_sizes(core, raw_pods, config, labels, wanted)
    seen = {v.name for v in views}
    for name, (gid, pod) in keys.items():
        if gid in wanted and name not in seen and pod.spec and pod.spec.node_name:
            views.append(view_of(pod))
    out = []
    for view in views:
        entry = keys.get(view.name)
        if entry is None or entry[0] not in wanted:
            out.append(view)
            continue
        gid, pod = entry
        created = pod.metadata.creation_timestamp
        since = created.timestamp() if created is not None else 0.0
        size = sizes.get(gid, 0)

        out.append(
            replace(
                view,
                pending=_tagged(view.pending, gid, size, since),
                placement=_tagged(view.placement, gid, size, since),
            )
        )
    return out


def _tagged(pod: PendingPod | None, gang: str, size: int, since: float) -> PendingPod | None:
    return None if pod is None else replace(pod, gang=gang, gang_size=size, since=since)


def _finished(job: Any) -> bool:
    conditions = (job.status.conditions if job.status is not None else None) or ()
    return any(c.type in ("Complete", "Failed") and c.status == "True" for c in conditions)


def gang_admission(
    core: Any,
    raw_pods: Sequence[Any],
    config: NodeProvisioning,
    labels: Labels,
    pending_of: Callable[[str, Any], PendingPod],
) -> GangAdmission:
    """The Jobs labelled for gang admission (in `config.namespaces`, else every one): the
    suspended ones as gangs of pods-to-be (`pending_of(name, pod template)`), and the
    others whose pods are not all bound yet. Jobs one may not list: none (logged)."""
    from kubernetes import client as k

    api_client = getattr(core, "api_client", None)
    if api_client is None:  # a stand-in CoreV1Api (tests, bench) with no client: no Jobs
        return GangAdmission()
    batch: Any = k.BatchV1Api(api_client)
    selector = f"{labels.key(ADMISSION_LABEL)}=true"
    jobs: Sequence[Any]
    try:
        with translated("node provisioning: list Jobs labelled for gang admission"):
            if config.namespaces:
                jobs = [
                    j
                    for ns in config.namespaces
                    for j in batch.list_namespaced_job(ns, label_selector=selector).items
                ]
            else:
                jobs = batch.list_job_for_all_namespaces(label_selector=selector).items
    except ProviderError as exc:
        if exc.code != "Forbidden":
            raise
        # Safe: a suspended Job nobody sees stays suspended, and nothing is launched for it.
        log.warning("node provisioning: no gang admission: %s", exc)
        return GangAdmission()
    bound: dict[tuple[str, str], int] = {}
    for pod in raw_pods:
        job = (pod.metadata.labels or {}).get(JOB_NAME_LABEL)
        if job and pod.spec and pod.spec.node_name and pod.metadata.deletion_timestamp is None:
            key = (pod.metadata.namespace, job)
            bound[key] = bound.get(key, 0) + 1
    suspended: list[SuspendedGang] = []
    settling: dict[str, str] = {}
    for job in jobs:
        meta, spec = job.metadata, job.spec
        if _finished(job) or meta.deletion_timestamp is not None:
            continue
        gid = f"{meta.namespace}/job/{meta.name}"
        size = _job_size(job)
        if not spec.suspend:
            have = bound.get((meta.namespace, meta.name), 0)
            if have < size:
                settling[gid] = f"Job {meta.namespace}/{meta.name}: {have} of {size} pods bound"
            continue
        created = meta.creation_timestamp
        since = created.timestamp() if created is not None else 0.0
        template = spec.template
        priority = int(getattr(template.spec, "priority", None) or 0)
        pods = tuple(
            replace(
                pending_of(f"{meta.namespace}/{meta.name}[{i}]", template),
                gang=gid,
                gang_size=size,
                since=since,
                priority=priority,
            )
            for i in range(size)
        )
        suspended.append(
            SuspendedGang(gid, meta.namespace, meta.name, meta.uid or "", pods, priority, since)
        )
    return GangAdmission(tuple(suspended), settling)
