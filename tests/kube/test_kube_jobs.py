"""The `job` provider against the real API server and Job controller, with kwok running the
pods: Jobs created from a template up to the pool's max, a retried request creating nothing,
running Jobs never deleted on scale-in, and finished Jobs cleaned up beyond `keep_finished`.

A Job's pods select the label of a "gate" node: until the test creates that kwok node, they
stay Pending and the Job stays active; once it exists, kwok runs them and marks them
Succeeded, and the Job controller marks the Job Complete."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from autoscaler.clients.kube import Labels
from autoscaler.config import Config, Pool
from autoscaler.errors import NotFound, ProviderError
from autoscaler.providers.kube_jobs import JobProvider, is_finished, job_name
from tests.cluster import nodes
from tests.cluster.wait import wait_for

pytestmark = pytest.mark.kube

INSTALLATION = "kube-test"
PREFIX = "elastic-autoscaler.io"
GATE = "autoscaler-test/job-gate"


def job_template(gate: str) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"labels": {"team": "research"}},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"labels": {"app": "worker"}},
                "spec": {
                    "restartPolicy": "Never",
                    "terminationGracePeriodSeconds": 0,
                    "nodeSelector": {GATE: gate},
                    "containers": [
                        {
                            "name": "work",
                            "image": "registry.k8s.io/pause:3.10",
                            "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
                        }
                    ],
                },
            },
        },
    }


def job_pool(namespace: str, gate: str, *, max: int = 3, keep_finished: int = 10) -> Pool:
    config = Config.model_validate(
        {
            "installation": {"id": INSTALLATION, "tag_prefix": PREFIX},
            "pools": [
                {
                    "name": "batch_work",
                    "target": {
                        "kind": "job",
                        "namespace": namespace,
                        "template": job_template(gate),
                        "items_per_job": 5,
                        "keep_finished": keep_finished,
                    },
                    "max": max,
                    "signals": {"queue": {"source": {"type": "static", "value": 0}}},
                    "policy": {"type": "queue-depth", "target_per_replica": 5},
                }
            ],
        }
    )
    return config.pools[0]


@pytest.fixture
def provider(kube_api: Any) -> JobProvider:
    return JobProvider(Labels(INSTALLATION, PREFIX), api=kube_api)


@pytest.fixture
def batch_v1(kube_api: Any) -> Any:
    from kubernetes import client

    return client.BatchV1Api(kube_api)


@pytest.fixture
def gate(kwok_cluster: Any, core_v1: Any) -> Iterator[str]:
    """A gate value no node has yet; `open_gate` creates the kwok node that lets pods run."""
    value = f"g-{uuid.uuid4().hex[:8]}"
    yield value
    nodes.delete_node(core_v1, f"gate-{value}")


def open_gate(core_v1: Any, gate: str) -> None:
    name = f"gate-{gate}"
    nodes.create_fake_node(core_v1, name, cpu="16", memory="64Gi", labels={GATE: gate})
    nodes.wait_node_ready(core_v1, name)


def our_jobs(batch_v1: Any, ns: str) -> list[Any]:
    jobs = batch_v1.list_namespaced_job(ns, label_selector=f"{PREFIX}/pool=batch_work").items
    return [j for j in jobs if j.metadata.deletion_timestamp is None]


def test_jobs_are_created_as_many_as_asked_labelled_as_ours(
    provider: JobProvider, batch_v1: Any, core_v1: Any, kube_namespace: str, gate: str
) -> None:
    pool = job_pool(kube_namespace, gate, max=3)
    assert provider.describe(pool).desired == 0

    # The planner alone bounds a pool (max 3 here); the provider creates what it is asked.
    provider.scale(pool, 3, "kube-test-batch-work-00000001")

    jobs = our_jobs(batch_v1, kube_namespace)
    assert len(jobs) == 3
    for job in jobs:
        labels = job.metadata.labels
        assert labels[f"{PREFIX}/owner"] == INSTALLATION
        assert labels[f"{PREFIX}/pool"] == "batch_work"
        assert labels[f"{PREFIX}/request-id"] == "kube-test-batch-work-00000001"
        assert labels["team"] == "research"  # the template's own labels stay
        assert job.metadata.annotations[f"{PREFIX}/items-per-job"] == "5"
        assert job.metadata.name.startswith("batch-work-")
    capacity = provider.describe(pool)
    assert (capacity.desired, capacity.ready, capacity.pending) == (3, 0, 3)
    assert sorted(m.id for m in capacity.members) == sorted(j.metadata.name for j in jobs)

    def pods_labelled() -> list[Any]:
        pods = core_v1.list_namespaced_pod(
            kube_namespace, label_selector=f"{PREFIX}/pool=batch_work,app=worker"
        ).items
        return pods if len(pods) == 3 else []

    pods = wait_for(pods_labelled, timeout=30, what="3 pods of our Jobs")
    assert all(p.metadata.annotations[f"{PREFIX}/items-per-job"] == "5" for p in pods)


def test_a_retried_request_creates_no_more_jobs_even_after_a_restart(
    provider: JobProvider, batch_v1: Any, kube_api: Any, kube_namespace: str, gate: str
) -> None:
    pool = job_pool(kube_namespace, gate, max=5)
    provider.scale(pool, 2, "req-1")
    first = sorted(j.metadata.name for j in our_jobs(batch_v1, kube_namespace))

    provider.scale(pool, 2, "req-1")
    restarted = JobProvider(Labels(INSTALLATION, PREFIX), api=kube_api)
    restarted.scale(pool, 2, "req-1")

    assert sorted(j.metadata.name for j in our_jobs(batch_v1, kube_namespace)) == first
    provider.scale(pool, 4, "req-2")  # a new request tops up to the new count
    assert len(our_jobs(batch_v1, kube_namespace)) == 4


def test_a_request_cut_short_by_a_crash_is_completed_not_repeated(
    provider: JobProvider, batch_v1: Any, kube_namespace: str, gate: str
) -> None:
    pool = job_pool(kube_namespace, gate, max=5)
    # The first attempt created one Job of three, then the controller died.
    first = job_name("batch-work", "req-9", 0)
    batch_v1.create_namespaced_job(kube_namespace, provider.manifest(pool, first, "req-9"))

    provider.scale(pool, 3, "req-9")

    names = sorted(j.metadata.name for j in our_jobs(batch_v1, kube_namespace))
    assert names == [job_name("batch-work", "req-9", n) for n in range(3)]


def test_running_jobs_are_never_deleted_on_scale_in(
    provider: JobProvider, batch_v1: Any, kube_namespace: str, gate: str
) -> None:
    pool = job_pool(kube_namespace, gate, max=3)
    provider.scale(pool, 3, "req-1")
    names = sorted(j.metadata.name for j in our_jobs(batch_v1, kube_namespace))

    provider.scale(pool, 0, "req-2")
    provider.scale(pool, 1, "req-3")

    assert sorted(j.metadata.name for j in our_jobs(batch_v1, kube_namespace)) == names
    assert provider.describe(pool).desired == 3
    with pytest.raises(ProviderError, match="refusing to delete running Job") as e:
        provider.remove(pool, names[:1], "req-4")
    assert e.value.code == "Unsupported"
    with pytest.raises(NotFound, match="not-a-job"):
        provider.remove(pool, ["not-a-job"], "req-5")
    assert len(our_jobs(batch_v1, kube_namespace)) == 3


def test_finished_jobs_beyond_keep_finished_are_cleaned_oldest_first(
    provider: JobProvider, batch_v1: Any, core_v1: Any, kube_namespace: str, gate: str
) -> None:
    pool = job_pool(kube_namespace, gate, max=4, keep_finished=1)
    provider.scale(pool, 3, "req-1")
    open_gate(core_v1, gate)

    def all_succeeded() -> list[Any]:
        # Finished (SuccessCriteriaMet comes first) and counted: the Job controller may
        # write `succeeded` in a later status update than the condition.
        jobs = our_jobs(batch_v1, kube_namespace)
        done = [j for j in jobs if is_finished(j) and j.status.succeeded == 1]
        return jobs if len(jobs) == 3 and len(done) == 3 else []

    finished = wait_for(all_succeeded, timeout=90, what="3 Jobs succeeded (kwok runs their pods)")
    newest = max(finished, key=lambda j: (j.metadata.creation_timestamp, j.metadata.name))
    assert provider.describe(pool).desired == 0  # finished Jobs are not capacity

    provider.scale(pool, 1, "req-2")

    left = our_jobs(batch_v1, kube_namespace)
    kept = [j for j in left if is_finished(j)]
    assert len(kept) == 1
    created = [j for j in left if j.metadata.labels[f"{PREFIX}/request-id"] == "req-2"]
    assert len(created) == 1
    # Jobs created in the same second tie on creationTimestamp; any one of them may stay.
    same_second = [
        j for j in finished if j.metadata.creation_timestamp == newest.metadata.creation_timestamp
    ]
    assert kept[0].metadata.name in {j.metadata.name for j in same_second}


def test_a_foreign_job_in_the_namespace_is_neither_counted_nor_cleaned(
    provider: JobProvider, batch_v1: Any, kube_namespace: str, gate: str
) -> None:
    foreign = job_template(gate)
    foreign["metadata"] = {
        "name": "theirs",
        "labels": {f"{PREFIX}/owner": "someone-else", f"{PREFIX}/pool": "batch_work"},
    }
    batch_v1.create_namespaced_job(kube_namespace, foreign)
    pool = job_pool(kube_namespace, gate, max=2, keep_finished=0)

    assert provider.describe(pool).desired == 0
    provider.scale(pool, 2, "req-1")

    names = {j.metadata.name for j in our_jobs(batch_v1, kube_namespace)}
    assert "theirs" in names and len(names) == 3
    with pytest.raises(NotFound):
        provider.remove(pool, ["theirs"], "req-2")


def test_a_bad_template_is_refused_naming_the_pool_and_field(
    provider: JobProvider, batch_v1: Any, kube_namespace: str, gate: str
) -> None:
    pool = job_pool(kube_namespace, gate)
    template = job_template(gate)
    template["spec"]["template"]["spec"]["restartPolicy"] = "Always"
    bad = pool.model_copy(update={"target": pool.target.model_copy(update={"template": template})})
    with pytest.raises(ProviderError, match=r"pool batch_work: target\.template: .*restartPolicy"):
        provider.scale(bad, 1, "req-1")
    assert our_jobs(batch_v1, kube_namespace) == []
