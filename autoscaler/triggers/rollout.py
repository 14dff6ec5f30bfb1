"""The rollout step: set the serving Deployment's model version (a pod-template annotation,
an environment variable or the image tag) once retraining succeeds.

It patches only a Deployment labelled with this installation's owner label. The patch also
writes the run's request id and the version as annotations on the Deployment: that is the
record that the rollout landed (read back by `store.RunStore.rolled_out`), so a retry
after a crash sees it and patches nothing again.
"""

from __future__ import annotations

import re
from typing import Any

from kubernetes import client as k
from kubernetes.client.exceptions import ApiException

from autoscaler.clients.kube import Labels
from autoscaler.config.triggers import RolloutStep

_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


class RolloutRefused(Exception):
    """A rollout this installation may not make (the Deployment missing or not its own):
    the run waits at this step, retried each round; the message says what to change."""


def with_tag(image: str, tag: str) -> str:
    """`image` with its tag (and any digest) replaced by `tag`; a registry port stays."""
    name = image.split("@", 1)[0]
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        name = name[:colon]
    return f"{name}:{tag}"


def patch_body(
    spec: RolloutStep, deployment: Any, version: str, notes: dict[str, str]
) -> dict[str, Any]:
    """The strategic-merge patch that sets `version` where `spec` says."""
    containers = deployment.spec.template.spec.containers or []
    container = containers[0] if containers else None
    if spec.container is not None:
        container = next((c for c in containers if c.name == spec.container), None)
    meta = {"annotations": notes}
    template: dict[str, Any] = {}
    if spec.annotation is not None:
        template = {"metadata": {"annotations": {spec.annotation: version}}}
    else:
        if container is None:
            raise RolloutRefused(
                f"deployment {spec.deployment} has no container "
                f"{spec.container or '(none at all)'}; fix rollout.container"
            )
        change: dict[str, Any] = {"name": container.name}
        if spec.env is not None:
            change["env"] = [{"name": spec.env, "value": version}]
        else:
            if not _TAG.match(version):
                raise RolloutRefused(
                    f"version {version!r} is not a valid image tag; have the retrain Job "
                    "write a tag (letters, digits, '_', '.', '-') as its version"
                )
            change["image"] = with_tag(container.image or "", version)
        template = {"spec": {"containers": [change]}}
    return {"metadata": meta, "spec": {"template": template}}


def roll_out(
    api_client: Any, labels: Labels, namespace: str, spec: RolloutStep, version: str, run_id: str
) -> None:
    """Set the version; RolloutRefused when the Deployment is missing or not ours. Other
    API errors propagate (the step is retried next round)."""
    apps: Any = k.AppsV1Api(api_client)
    try:
        deployment = apps.read_namespaced_deployment(spec.deployment, namespace)
    except ApiException as exc:
        if exc.status == 404:
            raise RolloutRefused(
                f"deployment {namespace}/{spec.deployment} not found; create it or fix "
                "rollout.deployment"
            ) from None
        raise
    if not labels.owns(deployment.metadata.labels):
        raise RolloutRefused(
            f"deployment {namespace}/{spec.deployment} lacks the label "
            f"{labels.owner_key}={labels.owner}; label it so this installation may roll it out"
        )
    notes = {labels.request_key: run_id, labels.key("model-version"): version}
    if (deployment.metadata.annotations or {}).get(labels.request_key) == run_id:
        return  # this run's rollout landed already
    body = patch_body(spec, deployment, version, notes)
    apps.patch_namespaced_deployment(spec.deployment, namespace, body)
