"""The runs of a trigger, kept as the Jobs they start: listing, creating and pruning them.

Every Job of a run is named `<trigger>-<sequence>-<step>` and labelled with this
installation's owner, the trigger, the run's sequence and request id and its step; the
firing's value is an annotation written when the evaluate Job is created. Nothing is
written to a Job after that (the chart's admission policy allows no such change): where a
run stands, and how it ended, is read from its Jobs' states, exit codes and termination
messages, and whether its rollout landed from the Deployment's request-id annotation. So
a restarted controller reads back everything a run did, and a second replica or a retry
that creates the same Job gets "already exists" and changes nothing. Only Jobs with this
installation's owner label are listed or deleted.
"""

from __future__ import annotations

import copy
import logging
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client as k
from kubernetes.client.exceptions import ApiException

from autoscaler.clients.kube import Labels, label_value, timestamp
from autoscaler.config.triggers import JobStep, Trigger

from .pipeline import Phase, Run, StepJob, concluded

log = logging.getLogger("autoscaler.triggers")
_SUCCEEDED = {"Complete", "SuccessCriteriaMet"}
_FAILED = {"Failed", "FailureTarget"}


def job_name(trigger: str, sequence: int, step: str) -> str:
    """The Job of one step of one run (<= 63 characters: trigger names are <= 40)."""
    return f"{trigger}-{sequence:04d}-{step}"


def run_id(installation: str, trigger: str, sequence: int) -> str:
    """The request id of a run: the trigger and its firing's sequence number."""
    return re.sub(r"[^A-Za-z0-9-]", "-", f"{installation}-{trigger}") + f"-{sequence:04d}"


def finished_at(job: Any) -> float | None:
    """When a finished Job completed or failed."""
    status = job.status
    if status is not None and status.completion_time is not None:
        return timestamp(status.completion_time)
    for cond in (status.conditions if status else None) or []:
        if cond.status == "True" and cond.type in _SUCCEEDED | _FAILED:
            return timestamp(cond.last_transition_time) or None
    return None


def job_phase(job: Any) -> Phase:
    for cond in (job.status.conditions if job.status else None) or []:
        if cond.status == "True" and cond.type in _SUCCEEDED:
            return "succeeded"
        if cond.status == "True" and cond.type in _FAILED:
            return "failed"
    return "active"


class RunStore:
    """Runs of triggers as Jobs, through one ApiClient."""

    def __init__(self, api_client: Any, labels: Labels, resolve: Any = None) -> None:
        """`resolve` turns a `template_file` into a path (default: as written)."""
        self.batch: Any = k.BatchV1Api(api_client)
        self.core: Any = k.CoreV1Api(api_client)
        self.apps: Any = k.AppsV1Api(api_client)
        self.labels = labels
        self.resolve = resolve or (lambda path: path)
        self._ended: dict[str, tuple[int | None, str]] = {}
        """Exit code and termination message of finished Jobs, by uid."""

    def key(self, name: str) -> str:
        return self.labels.key(name)

    def selector(self, trigger: str) -> str:
        return f"{self.labels.owner_key}={self.labels.owner},{self.key('trigger')}={trigger}"

    # -- reading -------------------------------------------------------------------------
    def jobs(self, trigger: Trigger) -> list[Any]:
        listed = self.batch.list_namespaced_job(
            trigger.namespace, label_selector=self.selector(trigger.name)
        )
        return [j for j in listed.items if self.labels.owns(j.metadata.labels)]

    def runs(self, trigger: Trigger) -> list[Run]:
        """Every run whose Jobs are still there, oldest first."""
        by_seq: dict[int, dict[str, Any]] = {}
        for job in self.jobs(trigger):
            labels = job.metadata.labels or {}
            seq = labels.get(self.key("run-sequence"), "")
            step = labels.get(self.key("step"), "")
            if seq.isdigit() and step in ("evaluate", "retrain"):
                by_seq.setdefault(int(seq), {})[step] = job
        last = max(by_seq, default=0)
        runs = [self._run(trigger, seq, jobs, seq < last) for seq, jobs in sorted(by_seq.items())]
        return [concluded(trigger.pipeline, run) for run in runs]

    def _run(self, trigger: Trigger, seq: int, jobs: dict[str, Any], superseded: bool) -> Run:
        evaluate = jobs.get("evaluate")
        notes = (evaluate.metadata.annotations or {}) if evaluate is not None else {}
        fired = _float(notes.get(self.key("fired-at")))
        run = Run(
            run_id=run_id(self.labels.owner, trigger.name, seq),
            sequence=seq,
            fired_at=fired
            or (timestamp(evaluate.metadata.creation_timestamp) if evaluate else 0.0),
            evaluate=self._step(trigger, evaluate) if evaluate is not None else None,
            retrain=self._step(trigger, jobs["retrain"]) if "retrain" in jobs else None,
            superseded=superseded,
        )
        retrained = run.retrain is not None and run.retrain.phase == "succeeded"
        if retrained and not superseded and trigger.pipeline.rollout is not None:
            run = replace(run, rolled_out=self.rolled_out(trigger, run.run_id))
        return run

    def _step(self, trigger: Trigger, job: Any) -> StepJob:
        phase = job_phase(job)
        if phase == "active":
            return StepJob(job.metadata.name, phase)
        # A finished Job's pods never change: read them once per Job, not every round.
        key = str(job.metadata.uid or job.metadata.name)
        if key not in self._ended:
            found = self._termination(trigger.namespace, job.metadata.name, phase)
            if found[0] is None:  # no finished pod seen (yet): ask again next round
                return StepJob(job.metadata.name, phase, None, "", finished_at(job), False)
            self._ended[key] = found
        exit_code, message = self._ended[key]
        return StepJob(job.metadata.name, phase, exit_code, message, finished_at(job))

    def rolled_out(self, trigger: Trigger, request: str) -> str | None:
        """The version run `request` rolled out, if the Deployment says it did."""
        assert trigger.pipeline.rollout is not None
        try:
            deployment = self.apps.read_namespaced_deployment(
                trigger.pipeline.rollout.deployment, trigger.namespace
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        notes = deployment.metadata.annotations or {}
        if notes.get(self.labels.request_key) != request:
            return None
        return str(notes.get(self.key("model-version"), request))

    def _termination(self, namespace: str, job: str, phase: Phase) -> tuple[int | None, str]:
        """The exit code and termination message of the Job's last finished pod."""
        pods = self.core.list_namespaced_pod(namespace, label_selector=f"job-name={job}").items
        want = "Succeeded" if phase == "succeeded" else "Failed"
        best: tuple[float, int | None, str] | None = None
        for pod in pods:
            if (pod.status.phase if pod.status else None) != want:
                continue
            for status in pod.status.container_statuses or []:
                done = status.state.terminated if status.state else None
                if done is None:
                    continue
                at = timestamp(done.finished_at)
                if best is None or at >= best[0]:
                    best = (at, done.exit_code, done.message or "")
        return (best[1], best[2]) if best is not None else (None, "")

    # -- writing -------------------------------------------------------------------------
    def create(self, trigger: Trigger, sequence: int, step: str, notes: dict[str, str]) -> bool:
        """Create one step's Job; False when it exists already (a retry or another
        replica got there first: nothing changes)."""
        spec = trigger.pipeline.evaluate if step == "evaluate" else trigger.pipeline.retrain
        assert spec is not None
        manifest = self.manifest(trigger, sequence, step, spec, notes)
        try:
            self.batch.create_namespaced_job(trigger.namespace, manifest)
        except ApiException as exc:
            if exc.status == 409:
                return False
            raise
        return True

    def manifest(
        self, trigger: Trigger, sequence: int, step: str, spec: JobStep, notes: dict[str, str]
    ) -> dict[str, Any]:
        job = copy.deepcopy(self.template(spec))
        meta = job.setdefault("metadata", {})
        for stale in ("generateName", "resourceVersion", "uid", "creationTimestamp"):
            meta.pop(stale, None)
        meta["name"] = job_name(trigger.name, sequence, step)
        meta["namespace"] = trigger.namespace
        labels = {
            self.labels.owner_key: self.labels.owner,
            self.key("trigger"): trigger.name,
            self.key("run-sequence"): f"{sequence:04d}",
            self.labels.request_key: label_value(run_id(self.labels.owner, trigger.name,
                                                        sequence)),
            self.key("step"): step,
        }  # fmt: skip
        meta["labels"] = {**(meta.get("labels") or {}), **labels}
        meta["annotations"] = {**(meta.get("annotations") or {}), **notes}
        # The run's record is its Jobs: one deleted by a TTL would take the cooldown and
        # the outcome with it. Old runs are pruned by `keep_runs` instead.
        job.setdefault("spec", {}).pop("ttlSecondsAfterFinished", None)
        pod_meta = job.setdefault("spec", {}).setdefault("template", {}).setdefault("metadata", {})
        pod_meta["labels"] = {**(pod_meta.get("labels") or {}), **labels}
        return job

    def template(self, spec: JobStep) -> dict[str, Any]:
        if spec.template is not None:
            return spec.template
        assert spec.template_file is not None
        path = Path(self.resolve(spec.template_file))
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or data.get("kind") != "Job":
            raise ValueError(f"{path}: not a batch/v1 Job manifest (kind: Job)")
        return data

    def prune(self, trigger: Trigger, runs: list[Run]) -> list[str]:
        """Delete the Jobs (and their pods) of finished runs beyond `keep_runs`, oldest
        first; the newest run is always kept, so the next sequence number stays known."""
        finished = [r for r in runs if r.finished]
        extra = finished[: max(0, len(finished) - trigger.keep_runs)]
        deleted = []
        for run in extra:
            for job in (run.evaluate, run.retrain):
                if job is None:
                    continue
                try:
                    self.batch.delete_namespaced_job(
                        job.name, trigger.namespace, propagation_policy="Background"
                    )
                except ApiException as exc:
                    if exc.status != 404:
                        raise
                deleted.append(job.name)
        if len(self._ended) > 10_000:  # pruned Jobs' entries: start the cache afresh
            self._ended.clear()
        return deleted


def _float(text: str | None) -> float:
    try:
        return float(text or 0.0)
    except ValueError:
        return 0.0
