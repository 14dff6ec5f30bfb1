"""The AutoscalingPool CRD on a real kube-apiserver: accepted and Established; valid pools
stored as written; what the schema can express rejected by the server; the rest rejected by
our pydantic parsing and reported on the object (status condition and Warning Event)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from kubernetes import client as k
from kubernetes.client.exceptions import ApiException

from autoscaler.cli_run import ClusterOptions, build_process
from autoscaler.kube import crd
from autoscaler.process import ProcessSettings

pytestmark = pytest.mark.usefixtures("kube_cluster")


def install_crd(api: Any, timeout: float = 60.0) -> None:
    """Create the CRD (or bring an existing one up to date) and wait until Established."""
    ext = k.ApiextensionsV1Api(api)
    body = crd.crd()
    try:
        ext.create_custom_resource_definition(body)
    except ApiException as exc:
        if exc.status != 409:
            raise
        current = ext.read_custom_resource_definition(crd.CRD_NAME)
        body["metadata"]["resourceVersion"] = current.metadata.resource_version
        ext.replace_custom_resource_definition(crd.CRD_NAME, body)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = ext.read_custom_resource_definition(crd.CRD_NAME)
        conditions = {c.type: c.status for c in (got.status.conditions or [])}
        if conditions.get("Established") == "True":
            break
        assert conditions.get("NamesAccepted") != "False", got.status.conditions
        time.sleep(0.2)
    else:
        pytest.fail(f"CRD not Established after {timeout:g}s: {conditions}")
    # Established can precede the discovery of the new resource by a moment.
    objects = k.CustomObjectsApi(api)
    while time.monotonic() < deadline:
        try:
            objects.list_cluster_custom_object(crd.GROUP, crd.VERSION, crd.PLURAL)
            return
        except ApiException as exc:
            if exc.status != 404:
                raise
            time.sleep(0.2)
    pytest.fail("the AutoscalingPool resource never became servable")


def pool_object(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": f"{crd.GROUP}/{crd.VERSION}",
        "kind": crd.KIND,
        "metadata": {"name": name},
        "spec": spec,
    }


VALID = {
    "target": {"kind": "deployment", "name": "chat"},
    "min": 1,
    "max": 8,
    "startup": "90s",
    "signals": {"queue": {"source": {"type": "static", "value": 12}, "max_age": 30}},
    "policy": {"type": "queue-depth", "target_per_replica": 4},
    "behavior": {"scale_down": {"stabilization_window": "2m"}, "cooldown": 30},
}


@pytest.fixture
def objects(kube_api: Any) -> Any:
    install_crd(kube_api)
    return k.CustomObjectsApi(kube_api)


def create(objects: Any, namespace: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return objects.create_namespaced_custom_object(  # type: ignore[no-any-return]
        crd.GROUP, crd.VERSION, namespace, crd.PLURAL, pool_object(name, spec)
    )


def test_a_valid_pool_is_stored_as_written(objects, kube_namespace):
    created = create(objects, kube_namespace, "chat", VALID)
    assert created["spec"] == VALID
    got = objects.get_namespaced_custom_object(
        crd.GROUP, crd.VERSION, kube_namespace, crd.PLURAL, "chat"
    )
    assert got["spec"] == VALID
    assert got["metadata"]["generation"] == 1


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"max": 0}, "spec.max"),
        ({"max": "lots"}, "spec.max"),
        ({"min": 9}, "min must not exceed max"),
        ({"target": {"kind": "pod", "name": "x"}}, "spec.target.kind"),
        ({"policy": {"target_per_replica": 4}}, "spec.policy.type"),
        ({"behavior": {"scale_up": {"select": "most"}}}, "spec.behavior.scale_up.select"),
    ],
)
def test_the_server_rejects_what_the_schema_expresses(objects, kube_namespace, change, complaint):
    with pytest.raises(ApiException) as err:
        create(objects, kube_namespace, "bad", {**VALID, **change})
    assert err.value.status == 422
    assert complaint in str(err.value.body)


def test_a_pool_without_policy_is_rejected_as_missing(objects, kube_namespace):
    spec = {key: value for key, value in VALID.items() if key != "policy"}
    with pytest.raises(ApiException) as err:
        create(objects, kube_namespace, "bad", spec)
    assert err.value.status == 422
    assert "spec.policy: Required value" in str(err.value.body)


def test_what_only_pydantic_checks_is_reported_on_the_object(
    objects, kube_namespace, kube_api, core_v1
):
    wrong = {
        **VALID,
        "behaviour": {"cooldown": 30},  # misspelt: kept by the server, named by pydantic
        "policy": {"type": "queue-depth", "target_per_replica": 0},
    }
    created = create(objects, kube_namespace, "odd", wrong)
    assert created["spec"]["behaviour"] == {"cooldown": 30}  # not pruned
    create(objects, kube_namespace, "fine", VALID)
    process = build_process(
        ProcessSettings(),
        ClusterOptions(crd_pools=True, namespaces=[kube_namespace]),
        api_client=kube_api,
    )
    process.load()
    assert process.loaded.config is not None
    assert [p.name for p in process.loaded.config.pools] == ["fine"]
    got = objects.get_namespaced_custom_object(
        crd.GROUP, crd.VERSION, kube_namespace, crd.PLURAL, "odd"
    )
    [valid] = got["status"]["conditions"]
    assert (valid["type"], valid["status"], valid["reason"]) == ("Valid", "False", "InvalidSpec")
    assert "spec.behaviour:" in valid["message"]
    assert "spec.policy.target_per_replica:" in valid["message"]
    assert valid["observedGeneration"] == 1
    assert valid["lastTransitionTime"].endswith("Z")
    events = core_v1.list_namespaced_event(
        kube_namespace, field_selector="involvedObject.name=odd"
    ).items
    [event] = [e for e in events if e.reason == "InvalidSpec"]
    assert event.type == "Warning"
    assert event.involved_object.kind == crd.KIND
    assert "spec.policy.target_per_replica" in event.message
    process.load()  # the same problem again: no second Event
    events = core_v1.list_namespaced_event(
        kube_namespace, field_selector="involvedObject.name=odd"
    ).items
    assert len([e for e in events if e.reason == "InvalidSpec"]) == 1
    process.close()
