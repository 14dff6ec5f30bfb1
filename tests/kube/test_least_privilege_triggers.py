"""Evaluation triggers under the chart's grants, against the real API server: the chart
installed with helm, the controller's calls made with its ServiceAccount's token. A whole
run (evaluate -> retrain -> rollout) works with these grants and the Job admission policy;
a Job with neither the pool nor the trigger label is refused, and so is a patch of a
Deployment that is not a trigger's rollout target."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from kubernetes import client as k

from autoscaler.clock import FakeClock
from autoscaler.config import ControllerSettings, Installation
from autoscaler.config.triggers import Trigger
from autoscaler.triggers.chore import TriggerChore
from autoscaler.triggers.objects import TriggerObjects
from tests.cluster.session import KubeCluster
from tests.cluster.wait import wait_for
from tests.kube.test_least_privilege import (
    IMAGE,
    INSTALLATION,
    VALUES,
    AsController,
    by_policy,
    by_rbac,
    deployment,
    drop_namespace,
    dry_run,
    fresh_namespace,
    install,
    job,
)

pytestmark = pytest.mark.kube
NOWHERE = {"autoscaler-test/no-such-node": "true"}


@pytest.fixture(scope="module")
def controller(
    kube_cluster: KubeCluster, kube_api: Any, core_v1: Any, apps_v1: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[AsController]:  # fmt: skip
    """The chart with `rbac.rolloutDeployments: [model]`, and Deployments `model` and
    `other`, both labelled as this installation's."""
    ns = fresh_namespace(core_v1)
    values = {**VALUES, "rbac": {**VALUES["rbac"], "rolloutDeployments": ["model"]}}
    try:
        apps_v1.create_namespaced_deployment(ns, deployment("model", INSTALLATION))
        apps_v1.create_namespaced_deployment(ns, deployment("other", INSTALLATION))
        with install(kube_cluster, kube_api, core_v1, ns, tmp_path_factory.mktemp("helm"),
                     values) as as_controller:  # fmt: skip

            def in_force() -> bool:
                answer = dry_run(as_controller.batch.create_namespaced_job, ns,
                                 job("probe", image="busybox"))  # fmt: skip
                return "ValidatingAdmissionPolicy" in answer

            wait_for(in_force, timeout=30, what="the jobs admission policy to be in force")
            yield as_controller
    finally:
        drop_namespace(core_v1, ns)


def template(name: str) -> dict[str, Any]:
    return {"apiVersion": "batch/v1", "kind": "Job", "spec": {"backoffLimit": 0, "template": {
        "spec": {"restartPolicy": "Never", "nodeSelector": NOWHERE,
                 "containers": [{"name": name, "image": IMAGE}]}}}}  # fmt: skip


def finish(core_v1: Any, batch: Any, ns: str, job_name: str, message: str) -> None:
    """Succeed the Job's pod as a kubelet would; wait for the Job controller."""
    pod = wait_for(lambda: next(iter(core_v1.list_namespaced_pod(
        ns, label_selector=f"job-name={job_name}").items), None), timeout=60,
        what=f"the pod of {job_name}")  # fmt: skip
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    c = pod.spec.containers[0]
    core_v1.patch_namespaced_pod_status(pod.metadata.name, ns, {"status": {
        "phase": "Succeeded", "containerStatuses": [{
            "name": c.name, "image": c.image, "imageID": "", "ready": False, "restartCount": 0,
            "state": {"terminated": {"exitCode": 0, "reason": "Completed", "message": message,
                                     "startedAt": now, "finishedAt": now}}}]}})  # fmt: skip

    def done() -> bool:
        conds = batch.read_namespaced_job(job_name, ns).status.conditions or []
        return any(x.type == "Complete" and x.status == "True" for x in conds)

    wait_for(done, timeout=60, what=f"the Job controller to complete {job_name}")


def test_a_whole_run_works_with_the_charts_grants(
    controller: AsController, core_v1: Any, kube_api: Any
) -> None:
    c = controller
    trigger = Trigger.model_validate({
        "name": "quality", "namespace": c.ns,
        "condition": {"source": {"type": "static", "value": 0.5}, "below": 0.9},
        "pipeline": {"evaluate": {"template": template("evaluate")},
                     "retrain": {"template": template("retrain")},
                     "rollout": {"deployment": "model", "annotation": "example.com/version"}},
    })  # fmt: skip
    chore = TriggerChore(
        [trigger], Installation(id=INSTALLATION), ControllerSettings(), c.api, FakeClock(1e9),
        objects=TriggerObjects(c.api, [c.ns]),  # lists AutoscalingTriggers as the controller
    )  # fmt: skip
    chore.run_round(first=True)
    admin_batch = k.BatchV1Api(kube_api)
    finish(core_v1, admin_batch, c.ns, "quality-0001-evaluate", json.dumps({"retrain": True}))
    chore.run_round(first=False)
    finish(core_v1, admin_batch, c.ns, "quality-0001-retrain", json.dumps({"version": "v7"}))
    chore.run_round(first=False)
    [run] = chore.store.runs(trigger)
    assert run.outcome == "rolled-out", run
    model = k.AppsV1Api(kube_api).read_namespaced_deployment("model", c.ns)
    assert model.spec.template.metadata.annotations["example.com/version"] == "v7"
    assert c.may("patch", "autoscalingtriggers", c.ns, group="autoscaling.elastic-autoscaler.io",
                 subresource="status")  # fmt: skip


def test_jobs_without_pool_or_trigger_label_and_other_deployments_are_refused(
    controller: AsController,
) -> None:
    c = controller
    bare = job("unlabelled", pool=None)
    by_policy(c.batch.create_namespaced_job, c.ns, bare)
    labelled = job("a-trigger-job", pool=None)
    labelled["metadata"]["labels"]["elastic-autoscaler.io/trigger"] = "quality"
    assert dry_run(c.batch.create_namespaced_job, c.ns, labelled) == "allowed"
    patch = {"spec": {"template": {"metadata": {"annotations": {"example.com/version": "x"}}}}}
    by_rbac(c.apps.patch_namespaced_deployment, "other", c.ns, patch)
