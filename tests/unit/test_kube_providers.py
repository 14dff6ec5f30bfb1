"""The kube providers' pure parts: deletion costs from busyness, label values from request
ids, Job names and manifests, template checks, and API errors as typed provider errors.
Their behaviour against a real API server is in tests/kube/test_kube_{workload,jobs}.py."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from autoscaler.clients.kube import Labels, label_value, parse_count, translate
from autoscaler.config import Config
from autoscaler.errors import NotFound, ProviderError, Throttled
from autoscaler.providers.kube_jobs import JobProvider, check_template, job_name
from autoscaler.providers.kube_workload import PodSignals, deletion_cost
from tests.fakes.kube_api import api_error

JOB: dict[str, Any] = {
    "apiVersion": "batch/v1",
    "kind": "Job",
    "metadata": {"name": "ignored", "labels": {"team": "a"}, "resourceVersion": "7"},
    "spec": {
        "template": {
            "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "x"}]}
        }
    },
}


def pool(target: dict[str, Any], name: str = "batch.work_1", max: int = 4) -> Any:
    config = Config.model_validate(
        {
            "installation": {"id": "inst", "tag_prefix": "example.io"},
            "pools": [
                {
                    "name": name,
                    "target": target,
                    "max": max,
                    "signals": {"queue": {"source": {"type": "static", "value": 0}}},
                    "policy": {"type": "queue-depth", "target_per_replica": 1},
                }
            ],
        }
    )
    return config.pools[0]


COSTS = [
    ("not ready, whatever it says", False, PodSignals(0.0, 9), -1000),
    ("says nothing: counts as busy", True, PodSignals(None, None), 1000),
    ("idle", True, PodSignals(0.0, None), 0),
    ("busy share", True, PodSignals(0.42, None), 420),
    ("no requests in flight", True, PodSignals(None, 0), 0),
    ("requests in flight", True, PodSignals(None, 3), 1003),
    ("busy share and requests", True, PodSignals(0.2, 2), 1002),
    ("in flight capped", True, PodSignals(1.0, 10**12), 1_001_000),
]


@pytest.mark.parametrize(("case", "ready", "signals", "cost"), COSTS, ids=[c[0] for c in COSTS])
def test_a_pods_deletion_cost_follows_its_busyness(
    case: str, ready: bool, signals: PodSignals, cost: int
) -> None:
    assert deletion_cost(ready, signals) == cost


def test_member_busyness_comes_from_the_busy_annotation_else_from_requests_in_flight() -> None:
    assert PodSignals(0.3, 5).share_busy == 0.3
    assert PodSignals(None, 5).share_busy == 1.0
    assert PodSignals(None, 0).share_busy == 0.0
    assert PodSignals(None, None).share_busy is None


def test_counts_parse_only_as_non_negative_integers() -> None:
    assert [parse_count(v) for v in ("3", " 0 ", "-1", "1.5", "x", None)] == [
        3,
        0,
        None,
        None,
        None,
        None,
    ]


def test_a_request_id_is_its_own_label_value_when_valid_else_a_stable_hash() -> None:
    assert label_value("inst-pool-00000001") == "inst-pool-00000001"
    long = "x" * 80
    assert label_value(long) == label_value(long)
    assert label_value(long).startswith("h-") and len(label_value(long)) <= 63
    assert label_value("-leading-dash").startswith("h-")


def test_job_names_are_deterministic_short_and_distinct_per_request() -> None:
    assert job_name("batch", "req-1", 0) == job_name("batch", "req-1", 0)
    assert job_name("batch", "req-1", 0) != job_name("batch", "req-2", 0)
    assert len(job_name("p" * 60, "req-1", 999)) <= 63
    assert not job_name("a" * 39 + "-", "r", 0).startswith("a" * 39 + "--")


def test_a_jobs_manifest_is_the_template_with_our_name_labels_and_annotations() -> None:
    p = pool({"kind": "job", "namespace": "ns", "template": JOB, "items_per_job": 8})
    provider = JobProvider(Labels("inst", "example.io"))
    job = provider.manifest(p, "batch-work-1-abc-0", "inst-batch-00000001")
    assert job["metadata"]["name"] == "batch-work-1-abc-0"
    assert job["metadata"]["namespace"] == "ns"
    assert "resourceVersion" not in job["metadata"]
    assert job["metadata"]["labels"] == {
        "team": "a",
        "example.io/owner": "inst",
        "example.io/pool": "batch.work_1",
        "example.io/request-id": "inst-batch-00000001",
    }
    assert job["metadata"]["annotations"]["example.io/items-per-job"] == "8"
    pod_meta = job["spec"]["template"]["metadata"]
    assert pod_meta["labels"]["example.io/owner"] == "inst"
    assert pod_meta["annotations"] == {"example.io/items-per-job": "8"}
    assert JOB["metadata"]["name"] == "ignored"  # the template itself is untouched
    assert provider._prefix(p) == "batch-work-1"


BAD_TEMPLATES = [
    ("not a mapping", ["a"], "not a batch/v1 Job manifest"),
    ("a Deployment", {**JOB, "kind": "Deployment"}, "is not a batch/v1 Job"),
    ("no pod template", {"kind": "Job", "spec": {}}, "spec.template.spec.containers"),
    (
        "restart Always",
        {"spec": {"template": {"spec": {"restartPolicy": "Always", "containers": [{}]}}}},
        "restartPolicy",
    ),
]


@pytest.mark.parametrize(
    ("case", "template", "problem"), BAD_TEMPLATES, ids=[b[0] for b in BAD_TEMPLATES]
)
def test_a_bad_job_template_is_refused_naming_the_pool_and_where(
    case: str, template: object, problem: str
) -> None:
    with pytest.raises(ProviderError, match=problem) as e:
        check_template(template, "batch", "target.template")
    assert str(e.value).startswith("pool batch: target.template: ")
    assert e.value.code == "BadTemplate"


def test_an_unreadable_template_file_is_a_clear_error(tmp_path: Any) -> None:
    p = pool({"kind": "job", "template_file": "missing.yaml"})
    provider = JobProvider(Labels("inst"), resolve=lambda path: str(tmp_path / path))
    with pytest.raises(ProviderError, match=r"target\.template_file missing\.yaml: cannot read it"):
        provider.template(p)
    (tmp_path / "missing.yaml").write_text(json.dumps(JOB))
    assert provider.template(p)["kind"] == "Job"


def test_api_errors_become_typed_provider_errors_with_the_servers_message() -> None:
    assert isinstance(translate(api_error(404, "Not Found"), "pool p: Deployment a/b"), NotFound)
    assert isinstance(translate(api_error(429, "Too Many Requests"), "x"), Throttled)
    forbidden = translate(api_error(403, "Forbidden", "cannot patch deployments/scale"), "x")
    assert forbidden.code == "Forbidden" and "cannot patch deployments/scale" in str(forbidden)
    invalid = translate(api_error(422, "Unprocessable Entity", "spec.replicas: Invalid"), "y")
    assert invalid.code == "Kube422" and "spec.replicas: Invalid" in str(invalid)
    unreachable = translate(ConnectionError("refused"), "z")
    assert unreachable.code == "Unreachable"


def test_a_workload_target_needs_a_name_and_the_owner_label_unless_told_otherwise() -> None:
    assert pool({"kind": "deployment", "name": "d"}).target.require_owner_label is True
    with pytest.raises(ValidationError, match="name"):
        pool({"kind": "statefulset", "name": ""})


def test_a_job_name_prefix_must_be_a_valid_kubernetes_name() -> None:
    job = {"kind": "job", "template": JOB}
    pool({**job, "name_prefix": "train"})  # accepted
    with pytest.raises(ValidationError, match="name_prefix"):
        pool({**job, "name_prefix": "Bad_Prefix"})
