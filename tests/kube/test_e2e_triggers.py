"""Evaluation triggers end to end, against a real Prometheus (tests/servers) and the real
API server and Job controller (tests/cluster): a quality metric drops -> after `for` one
evaluation Job -> it fails the model -> a retraining Job -> the rollout patch lands on the
Deployment -> the metric recovers and nothing fires again during the cooldown; a
controller killed mid-pipeline is replaced by a fresh one that resumes without duplicates;
an evaluation that passes ends the run without retraining.

The Jobs' pods select a node label no node has, so they stay Pending; the test finishes
them as a kubelet would, by writing the pod's status (phase, the container's exit code and
termination message), and the real Job controller then marks the Job Complete or Failed.
Time for `for` and the cooldown is a fake clock the test advances; values are real
Prometheus answers.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from kubernetes import client as k
from kubernetes.client.exceptions import ApiException

from autoscaler import telemetry
from autoscaler.clock import FakeClock
from autoscaler.config import ControllerSettings, Installation
from autoscaler.config.triggers import Trigger
from autoscaler.kube import crd
from autoscaler.kube.events import EventRecorder
from autoscaler.triggers.chore import TriggerChore
from autoscaler.triggers.objects import TriggerObjects
from tests.cluster.wait import wait_for
from tests.servers.fixtures import exporter, prometheus  # noqa: F401  (fixtures by name)
from tests.servers.processes import MetricsExporter, PrometheusServer

pytestmark = pytest.mark.kube

INSTALLATION = Installation(id="trig-test")
OWNER = "elastic-autoscaler.io/owner"
METRIC = "model_online_accuracy"
NOWHERE = {"autoscaler-test/no-such-node": "true"}  # pods stay Pending until we finish them


def job_template(container: str) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "spec": {
            "backoffLimit": 0,
            "ttlSecondsAfterFinished": 1,  # stripped: the Jobs are the run's record
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "nodeSelector": NOWHERE,
                    "containers": [{"name": container, "image": "registry.k8s.io/pause:3.10"}],
                }
            },
        },
    }


def trigger_spec(prom: str, case: str, **pipeline: Any) -> dict[str, Any]:
    return {
        "condition": {
            "source": {"type": "prometheus", "url": prom, "query": f'{METRIC}{{case="{case}"}}'},
            "below": 0.9,
            "clear": 0.92,
            "for": "10m",
        },
        "cooldown": "1h",
        "pipeline": {
            "evaluate": {"template": job_template("evaluate")},
            "retrain": {"template": job_template("retrain")},
            **pipeline,
        },
    }


class Rig:
    """A namespace, a metric and trigger controllers driven round by round."""

    def __init__(self, api: Any, ns: str, prom: PrometheusServer, exp: MetricsExporter) -> None:
        self.api, self.ns, self.prom, self.exp = api, ns, prom, exp
        self.case = uuid.uuid4().hex[:8]
        self.batch = k.BatchV1Api(api)
        self.core = k.CoreV1Api(api)
        self.apps = k.AppsV1Api(api)
        self.clock = FakeClock(time.time())

    def accuracy(self, value: float) -> None:
        self.exp.set(METRIC, value, case=self.case)
        self.prom.wait_for(f'{METRIC}{{case="{self.case}"}}', value, timeout=30)

    def chore(self, triggers: list[Trigger], objects: bool = False) -> TriggerChore:
        return TriggerChore(
            triggers, INSTALLATION, ControllerSettings(interval=60), self.api, self.clock,
            objects=TriggerObjects(self.api, [self.ns]) if objects else None,
            events=EventRecorder(self.api, instance="test", clock=self.clock),
        )  # fmt: skip

    def jobs(self) -> dict[str, Any]:
        return {j.metadata.name: j for j in self.batch.list_namespaced_job(self.ns).items}

    def finish(self, job: str, exit_code: int, message: str = "") -> None:
        """End the Job's pod with `exit_code` and `message`, as its kubelet would, and wait
        for the Job controller to finish the Job."""
        pod = wait_for(
            lambda: next(iter(self.core.list_namespaced_pod(
                self.ns, label_selector=f"job-name={job}").items), None),
            timeout=60, what=f"the pod of Job {job}",
        )  # fmt: skip
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        container = pod.spec.containers[0]
        terminated = {"exitCode": exit_code, "reason": "Completed" if exit_code == 0 else "Error",
                      "message": message, "startedAt": now, "finishedAt": now}  # fmt: skip
        status = {
            "phase": "Succeeded" if exit_code == 0 else "Failed",
            "conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": now}],
            "containerStatuses": [{
                "name": container.name, "image": container.image, "imageID": "",
                "ready": False, "restartCount": 0, "state": {"terminated": terminated},
            }],
        }  # fmt: skip
        self.core.patch_namespaced_pod_status(pod.metadata.name, self.ns, {"status": status})

        def finished() -> bool:
            job_now = self.batch.read_namespaced_job(job, self.ns)
            conds = {c.type for c in (job_now.status.conditions or []) if c.status == "True"}
            return bool(conds & {"Complete", "Failed"})

        wait_for(finished, timeout=60, what=f"the Job controller to finish {job}")

    def rounds(self, chore: TriggerChore, n: int = 1, advance: float = 0.0) -> None:
        for _ in range(n):
            self.clock.advance(advance)
            chore.run_round(first=False)


@pytest.fixture
def rig(kube_api: Any, kube_namespace: str, prometheus: PrometheusServer,  # noqa: F811
        exporter: MetricsExporter) -> Rig:  # noqa: F811  # fmt: skip
    return Rig(kube_api, kube_namespace, prometheus, exporter)


def install_trigger_crd(api: Any, timeout: float = 60.0) -> None:
    ext = k.ApiextensionsV1Api(api)
    body = crd.trigger_crd()
    try:
        ext.create_custom_resource_definition(body)
    except ApiException as exc:
        if exc.status != 409:
            raise
        current = ext.read_custom_resource_definition(crd.TRIGGER_CRD_NAME)
        body["metadata"]["resourceVersion"] = current.metadata.resource_version
        ext.replace_custom_resource_definition(crd.TRIGGER_CRD_NAME, body)
    objects = k.CustomObjectsApi(api)

    def servable() -> bool:
        try:
            objects.list_cluster_custom_object(crd.GROUP, crd.VERSION, crd.TRIGGER_PLURAL)
        except ApiException as exc:
            if exc.status != 404:
                raise
            return False
        return True

    wait_for(servable, timeout=timeout, what="the AutoscalingTrigger resource to be served")


def serving_deployment(rig: Rig, owned: bool = True) -> None:
    labels = {"app": "llm", **({OWNER: INSTALLATION.id} if owned else {})}
    rig.apps.create_namespaced_deployment(rig.ns, {
        "metadata": {"name": "llm", "labels": labels},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": "llm"}},
            "template": {"metadata": {"labels": {"app": "llm"}}, "spec": {"containers": [
                {"name": "server", "image": "registry.k8s.io/pause:3.10"}]}},
        },
    })  # fmt: skip


def runs_counted(trigger: str, outcome: str) -> float:
    value = telemetry.REGISTRY.get_sample_value(
        "autoscaler_trigger_runs_total", {"trigger": trigger, "outcome": outcome}
    )
    return value or 0.0


def test_a_quality_drop_evaluates_retrains_rolls_out_and_then_cools_down(rig: Rig) -> None:
    install_trigger_crd(rig.api)
    serving_deployment(rig)
    name = f"quality-{rig.case}"
    spec = trigger_spec(
        rig.prom.url,
        rig.case,
        rollout={"deployment": "llm", "annotation": "models.example.com/version"},
    )
    k.CustomObjectsApi(rig.api).create_namespaced_custom_object(
        crd.GROUP, crd.VERSION, rig.ns, crd.TRIGGER_PLURAL,
        {"apiVersion": f"{crd.GROUP}/{crd.VERSION}", "kind": crd.TRIGGER_KIND,
         "metadata": {"name": name}, "spec": spec},
    )  # fmt: skip
    chore = rig.chore([], objects=True)
    key = f"{rig.ns}/{name}"
    rolled_before = runs_counted(name, "rolled-out")

    rig.accuracy(0.95)
    rig.rounds(chore)
    assert chore.verdicts[key].state == "ok" and rig.jobs() == {}

    rig.accuracy(0.80)  # the drop
    rig.rounds(chore)
    rig.rounds(chore, 9, advance=60)  # held 9 minutes of the 10
    assert chore.verdicts[key].state == "pending" and rig.jobs() == {}
    rig.rounds(chore, advance=60)
    assert list(rig.jobs()) == [f"{name}-0001-evaluate"]
    evaluate = rig.jobs()[f"{name}-0001-evaluate"]
    assert evaluate.metadata.labels[OWNER] == INSTALLATION.id
    assert evaluate.metadata.labels["elastic-autoscaler.io/request-id"] == f"trig-test-{name}-0001"
    assert evaluate.spec.ttl_seconds_after_finished is None
    rig.rounds(chore, 3, advance=60)  # still breached, run in progress: nothing new
    assert len(rig.jobs()) == 1 and chore.verdicts[key].state == "running"
    running = k.CustomObjectsApi(rig.api).get_namespaced_custom_object(
        crd.GROUP, crd.VERSION, rig.ns, crd.TRIGGER_PLURAL, name
    )["status"]
    assert running["state"] == "running" and running["threshold"] == 0.9
    assert running["value"] == 0.8 and running["heldSeconds"] >= 600
    assert [(r["sequence"], r["step"]) for r in running["runs"]] == [(1, "evaluate")]

    rig.finish(f"{name}-0001-evaluate", 0, json.dumps({"retrain": True, "accuracy": 0.8}))
    rig.rounds(chore)
    assert sorted(rig.jobs()) == [f"{name}-0001-evaluate", f"{name}-0001-retrain"]
    rig.finish(f"{name}-0001-retrain", 0, json.dumps({"version": "chat-v42"}))
    rig.rounds(chore)

    deployment = rig.apps.read_namespaced_deployment("llm", rig.ns)
    assert deployment.spec.template.metadata.annotations["models.example.com/version"] == (
        "chat-v42"
    )
    assert deployment.metadata.annotations["elastic-autoscaler.io/request-id"] == (
        f"trig-test-{name}-0001"
    )
    obj = k.CustomObjectsApi(rig.api).get_namespaced_custom_object(
        crd.GROUP, crd.VERSION, rig.ns, crd.TRIGGER_PLURAL, name
    )
    [run] = obj["status"]["runs"]
    assert run["outcome"] == "rolled-out" and run["id"] == f"trig-test-{name}-0001"
    assert "chat-v42" in run["detail"]
    assert runs_counted(name, "rolled-out") == rolled_before + 1
    reasons = [e.reason for e in rig.core.list_namespaced_event(rig.ns).items
               if e.involved_object.kind == crd.TRIGGER_KIND]  # fmt: skip
    assert {"Fired", "RetrainStarted", "RunEnded"} <= set(reasons)

    rig.accuracy(0.95)  # the new model recovers the metric
    rig.rounds(chore, advance=60)
    assert chore.verdicts[key].state == "ok"
    rig.accuracy(0.80)  # a new drop within the cooldown
    rig.rounds(chore, 12, advance=60)
    assert chore.verdicts[key].state == "cooldown" and len(rig.jobs()) == 2
    status = k.CustomObjectsApi(rig.api).get_namespaced_custom_object(
        crd.GROUP, crd.VERSION, rig.ns, crd.TRIGGER_PLURAL, name
    )["status"]
    assert status["state"] == "cooldown" and status["cooldownLeftSeconds"] > 0


def test_a_controller_killed_mid_pipeline_is_resumed_by_a_fresh_one_without_duplicates(
    rig: Rig,
) -> None:
    trigger = Trigger.model_validate(
        {"name": f"q-{rig.case}", "namespace": rig.ns, **trigger_spec(rig.prom.url, rig.case)}
    )
    rig.accuracy(0.80)
    first = rig.chore([trigger])
    rig.rounds(first)
    rig.rounds(first, advance=600)
    assert list(rig.jobs()) == [f"q-{rig.case}-0001-evaluate"]
    del first  # killed: its memory (the breach, the run) is gone

    fresh = rig.chore([trigger])
    rig.rounds(fresh, 3, advance=60)  # the breach is new to it, but the run is in the cluster
    assert list(rig.jobs()) == [f"q-{rig.case}-0001-evaluate"]
    assert fresh.verdicts[trigger.name].state == "pending"
    rig.finish(f"q-{rig.case}-0001-evaluate", 0, '{"retrain": true}')
    other = rig.chore([trigger])  # a second replica acting on the same cluster state
    # had it decided to start the same run, or the retrain, at the same moment: no change
    assert other.store.create(trigger, 1, "evaluate", {}) is False
    rig.rounds(fresh)
    rig.rounds(other)
    assert sorted(rig.jobs()) == [f"q-{rig.case}-0001-evaluate", f"q-{rig.case}-0001-retrain"]
    retrained_before = runs_counted(trigger.name, "retrained")
    rig.finish(f"q-{rig.case}-0001-retrain", 0)
    rig.rounds(fresh)
    rig.rounds(other, 12, advance=60)  # held long past `for`, but in the cooldown
    assert len(rig.jobs()) == 2
    [run] = fresh.store.runs(trigger)
    assert run.outcome == "retrained"
    assert other.verdicts[trigger.name].state == "cooldown"
    # Each controller that saw the run end counts it once, never again on later rounds
    # (with leader election only one of them acts).
    assert runs_counted(trigger.name, "retrained") == retrained_before + 2


def test_an_evaluation_that_passes_ends_the_run_without_retraining(rig: Rig) -> None:
    spec = trigger_spec(rig.prom.url, rig.case)
    spec["pipeline"]["evaluate"]["verdict"] = "exit-code"
    trigger = Trigger.model_validate({"name": f"p-{rig.case}", "namespace": rig.ns, **spec})
    rig.accuracy(0.5)
    chore = rig.chore([trigger])
    rig.rounds(chore)
    rig.rounds(chore, advance=600)
    rig.finish(f"p-{rig.case}-0001-evaluate", 0)
    rig.rounds(chore)
    rig.rounds(chore, 5, advance=60)
    assert list(rig.jobs()) == [f"p-{rig.case}-0001-evaluate"]
    [run] = chore.store.runs(trigger)
    assert run.outcome == "passed" and run.retrain is None
    assert chore.verdicts[trigger.name].state == "cooldown"


def test_a_deployment_without_the_owner_label_is_never_patched_and_the_run_waits(
    rig: Rig,
) -> None:
    serving_deployment(rig, owned=False)
    spec = trigger_spec(rig.prom.url, rig.case, rollout={"deployment": "llm", "env": "MODEL"})
    spec["condition"]["for"] = 0
    trigger = Trigger.model_validate({"name": f"o-{rig.case}", "namespace": rig.ns, **spec})
    rig.accuracy(0.5)
    chore = rig.chore([trigger])
    rig.rounds(chore)
    rig.finish(f"o-{rig.case}-0001-evaluate", 0, '{"retrain": true}')
    rig.rounds(chore)
    rig.finish(f"o-{rig.case}-0001-retrain", 0, '{"version": "v2"}')
    rig.rounds(chore, 3)
    deployment = rig.apps.read_namespaced_deployment("llm", rig.ns)
    assert not deployment.spec.template.spec.containers[0].env
    [run] = chore.store.runs(trigger)
    assert not run.finished and chore.verdicts[trigger.name].state == "running"
    [refused] = [e for e in rig.core.list_namespaced_event(rig.ns).items
                 if e.reason == "RolloutRefused"]  # fmt: skip
    assert "lacks the label elastic-autoscaler.io/owner=trig-test" in refused.message
    assert refused.count == 3  # one Event, counted each round it is retried
    # labelled, the waiting run rolls out and ends
    rig.apps.patch_namespaced_deployment(
        "llm", rig.ns, {"metadata": {"labels": {OWNER: INSTALLATION.id}}}
    )
    rig.rounds(chore)
    env = rig.apps.read_namespaced_deployment("llm", rig.ns).spec.template.spec.containers[0].env
    assert [(e.name, e.value) for e in env] == [("MODEL", "v2")]
    assert chore.store.runs(trigger)[0].outcome == "rolled-out"


def test_run_wires_the_triggers_and_a_dry_run_only_says_what_would_fire(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    from autoscaler.cli_run import ClusterOptions, build_process
    from autoscaler.config.file_settings import FileSettings
    from autoscaler.process import ProcessSettings

    spec = trigger_spec(rig.prom.url, rig.case)
    spec["condition"]["for"] = 0
    trigger = Trigger.model_validate({"name": f"d-{rig.case}", "namespace": rig.ns, **spec})
    rig.accuracy(0.5)
    settings = ProcessSettings(file=FileSettings(INSTALLATION, triggers=(trigger,)), dry_run=True)
    process = build_process(settings, ClusterOptions(), api_client=rig.api, clock=rig.clock)
    [chore] = [c for c in process.chores if isinstance(c, TriggerChore)]
    with caplog.at_level("INFO", logger="autoscaler.triggers"):
        chore.run_round(first=True)
    assert chore.verdicts[trigger.name].fire
    assert f"trigger d-{rig.case} (dry run): would FIRE: value 0.5 < 0.9" in caplog.text
    assert rig.jobs() == {}  # a dry run creates nothing


def test_a_new_leader_keeps_the_for_timer_from_the_status_and_two_never_start_a_run_twice(
    rig: Rig,
) -> None:
    install_trigger_crd(rig.api)
    name = f"lead-{rig.case}"
    k.CustomObjectsApi(rig.api).create_namespaced_custom_object(
        crd.GROUP, crd.VERSION, rig.ns, crd.TRIGGER_PLURAL,
        {"apiVersion": f"{crd.GROUP}/{crd.VERSION}", "kind": crd.TRIGGER_KIND,
         "metadata": {"name": name}, "spec": trigger_spec(rig.prom.url, rig.case)},
    )  # fmt: skip
    rig.accuracy(0.80)
    old = rig.chore([], objects=True)
    rig.rounds(old)
    rig.rounds(old, 9, advance=60)  # 9 of the 10 minutes, then the old leader is gone
    assert rig.jobs() == {}
    started = runs_counted(name, "started")
    a, b = rig.chore([], objects=True), rig.chore([], objects=True)
    rig.clock.advance(60)
    a.run_round(first=True)
    b.run_round(first=True)
    assert list(rig.jobs()) == [f"{name}-0001-evaluate"]  # held 10 min counting the old one's
    assert runs_counted(name, "started") == started + 1
    assert b.verdicts[f"{rig.ns}/{name}"].state == "running"
