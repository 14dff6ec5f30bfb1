"""The chart's part of evaluation triggers (helm template, offline): the AutoscalingTrigger
CRD as generated, RBAC for the objects and their status, `patch` on exactly the rollout
Deployments (none by default), and the Job admission policy taking a trigger's Jobs (the
trigger label instead of the pool label, the images of its templates)."""

from __future__ import annotations

from pathlib import Path

import yaml

from autoscaler.kube import crd
from tests.kube.test_chart import helm_template, kinds, rbac_rules

EXAMPLE = Path(__file__).parents[2] / "examples" / "triggers.yaml"


def _crds(objs: list[dict]) -> dict[str, dict]:
    return {o["metadata"]["name"]: o for o in kinds(objs)["CustomResourceDefinition"]}


def test_the_default_render_installs_the_trigger_crd_and_may_not_patch_deployments(tmp_path):
    objs = helm_template(tmp_path)
    assert _crds(objs)[crd.TRIGGER_CRD_NAME]["spec"] == crd.trigger_crd()["spec"]
    rules = rbac_rules(objs)
    granted = {(r["resources"][0], v) for r in rules for v in r["verbs"]}
    assert {("autoscalingtriggers", "list"), ("autoscalingtriggers/status", "patch")} <= granted
    assert not [r for r in rules if "deployments" in r["resources"] and "patch" in r["verbs"]]


def test_triggers_in_the_file_grant_their_rollout_deployment_and_images_only(tmp_path):
    config = yaml.safe_load(EXAMPLE.read_text())
    del config["installation"]  # the chart sets it (installationId)
    objs = helm_template(tmp_path, {"config": {"file": config},
                                    "rbac": {"rolloutDeployments": ["extra"]}})  # fmt: skip
    [patch] = [r for r in rbac_rules(objs) if "deployments" in r["resources"]
               and "patch" in r["verbs"]]  # fmt: skip
    assert patch["verbs"] == ["patch"] and patch["resourceNames"] == ["extra", "llm-chat"]
    policies = {o["metadata"]["name"]: o for o in kinds(objs)["ValidatingAdmissionPolicy"]}
    jobs = policies["autoscaler-ea-autoscaler-jobs"]["spec"]
    variables = {v["name"]: v["expression"] for v in jobs["variables"]}
    assert variables["trigger"] == '"elastic-autoscaler.io/trigger"'
    images = yaml.safe_load(variables["images"])
    assert {"ghcr.io/example/evaluate:1.4", "ghcr.io/example/retrain:1.4"} <= set(images)
    assert "variables.trigger in variables.labels" in jobs["validations"][0]["expression"]
