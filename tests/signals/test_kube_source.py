"""The Kubernetes reader against the in-memory API (tests/fakes/kube_api.py), which answers
`list_namespaced_pod` / `list_namespaced_job` as the API server does: by namespace, label and
field selector, page by page. A real API server is used in test_kube_cluster.py.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from kubernetes import client as k

from autoscaler.signals.kube import KubePendingReader, job_backlog
from tests.fakes.kube_api import FakeKube, api_error
from tests.signals.helpers import code_of, req


def pod(
    name: str,
    namespace: str = "llm",
    labels: dict[str, str] | None = None,
    phase: str = "Pending",
    gpus: str | None = None,
    in_init: bool = False,
    unschedulable: bool = False,
    deleting: bool = False,
) -> k.V1Pod:
    resources = k.V1ResourceRequirements(limits={"nvidia.com/gpu": gpus} if gpus else None)
    container = k.V1Container(name="c", resources=resources)
    plain = k.V1Container(name="c")
    spec = k.V1PodSpec(
        containers=[plain] if in_init else [container],
        init_containers=[container] if in_init else None,
    )
    conditions = (
        [k.V1PodCondition(type="PodScheduled", status="False", reason="Unschedulable")]
        if unschedulable
        else None
    )
    meta = k.V1ObjectMeta(
        name=name,
        namespace=namespace,
        labels=labels or {"app": "vllm"},
        deletion_timestamp="2024-01-01T00:00:00Z" if deleting else None,
    )
    return k.V1Pod(
        metadata=meta, spec=spec, status=k.V1PodStatus(phase=phase, conditions=conditions)
    )


def job(
    name: str,
    completions: int | None = None,
    parallelism: int | None = None,
    succeeded: int | None = None,
    active: int | None = None,
    finished: str | None = None,
    labels: dict[str, str] | None = None,
) -> k.V1Job:
    conditions = [k.V1JobCondition(type=finished, status="True")] if finished else None
    return k.V1Job(
        metadata=k.V1ObjectMeta(name=name, namespace="batch", labels=labels or {"q": "gpu"}),
        spec=k.V1JobSpec(
            template=k.V1PodTemplateSpec(), completions=completions, parallelism=parallelism
        ),
        status=k.V1JobStatus(succeeded=succeeded, active=active, conditions=conditions),
    )


def cluster(*objects: Any) -> FakeKube:
    kube = FakeKube()
    kube.add(*objects)
    return kube


def read(kube: FakeKube, *reqs: Any) -> dict[Any, Any]:
    return KubePendingReader(core=kube.core, batch=kube.batch).read(list(reqs), now=1.0)


def test_pending_pods_matching_the_selector_are_counted() -> None:
    kube = cluster(
        pod("a"),
        pod("b"),
        pod("running", phase="Running"),
        pod("other-app", labels={"app": "web"}),
        pod("other-ns", namespace="default"),
        pod("deleting", deleting=True),
    )
    r = req("kube-pending-pods", namespace="llm", selector="app=vllm")
    assert read(kube, r)[r.key].value == 2.0
    (call,) = kube.calls
    assert call.kwargs["field_selector"] == "status.phase=Pending"
    assert call.kwargs["label_selector"] == "app=vllm"


def test_gpu_only_counts_pods_requesting_gpus_in_any_container() -> None:
    kube = cluster(
        pod("gpu", gpus="1"), pod("init-gpu", gpus="2", in_init=True), pod("cpu"),
        pod("zero", gpus="0"),
    )  # fmt: skip
    gpu = req("kube-pending-pods", signal="gpu", namespace="llm", gpu_only=True)
    every = req("kube-pending-pods", signal="all", namespace="llm")
    got = read(kube, gpu, every)
    assert (got[gpu.key].value, got[every.key].value) == (2.0, 4.0)
    assert len(kube.calls) == 1, "one list serves both signals"


def test_unschedulable_only_counts_pods_the_scheduler_could_not_place() -> None:
    kube = cluster(pod("stuck", unschedulable=True), pod("pulling"))
    r = req("kube-pending-pods", namespace="llm", unschedulable_only=True)
    assert read(kube, r)[r.key].value == 1.0


def test_an_empty_namespace_reads_zero_pending_pods() -> None:
    # An empty list is an answer from the API server (nothing pending), not a failure.
    r = req("kube-pending-pods", namespace="llm")
    reading = read(cluster(), r)[r.key]
    assert (reading.value, reading.error) == (0.0, None)


def test_every_page_of_a_long_list_is_counted() -> None:
    kube = cluster(*(pod(f"p{i}") for i in range(1203)))
    r = req("kube-pending-pods", namespace="llm")
    assert read(kube, r)[r.key].value == 1203.0
    assert len(kube.calls) == 3


BACKLOG: list[tuple[str, k.V1Job, int]] = [
    ("one pod, not started", job("a"), 1),
    ("completions left", job("a", completions=10, succeeded=4, active=2), 6),
    ("complete", job("a", completions=3, succeeded=3, finished="Complete"), 0),
    ("failed", job("a", completions=3, succeeded=1, finished="Failed"), 0),
    ("about to fail", job("a", completions=3, finished="FailureTarget"), 0),
    ("work queue, none done", job("a", parallelism=4, active=4), 4),
    ("work queue, one done", job("a", parallelism=4, succeeded=1, active=2), 2),
    ("more succeeded than asked", job("a", completions=2, succeeded=3), 0),
]


@pytest.mark.parametrize(("case", "the_job", "backlog"), BACKLOG, ids=[b[0] for b in BACKLOG])
def test_a_jobs_backlog_is_what_it_still_needs(case: str, the_job: k.V1Job, backlog: int) -> None:
    assert job_backlog(the_job) == backlog


def test_job_backlog_sums_unfinished_jobs_matching_the_selector() -> None:
    kube = cluster(
        job("a", completions=5, succeeded=1),
        job("b", parallelism=2),
        job("done", completions=1, succeeded=1, finished="Complete"),
        job("other", completions=9, labels={"q": "cpu"}),
    )
    r = req("kube-pending-pods", kind="job-backlog", namespace="batch", selector="q=gpu")
    assert read(kube, r)[r.key].value == 6.0


API_ERRORS = [
    (api_error(403, "Forbidden"), "kube_403", "needs `list` on pods"),
    (api_error(400, "Bad Request"), "kube_400", "selector"),
    (api_error(500, "Internal Server Error"), "kube_500", "500"),
    (ConnectionRefusedError("refused"), "connect", "cannot reach"),
    (TimeoutError("read timed out"), "timeout", "did not answer"),
]


@pytest.mark.parametrize(("exc", "code", "says"), API_ERRORS, ids=[e[1] for e in API_ERRORS])
def test_an_api_failure_is_stale_never_zero(exc: Exception, code: str, says: str) -> None:
    kube = cluster(pod("a"))
    kube.inject("list_namespaced_pod", error=exc)
    r = req("kube-pending-pods", pool="gpu-nodes", namespace="llm", selector="app=vllm")
    reading = read(kube, r)[r.key]
    assert reading.value is None
    assert code_of(reading.error) == code
    assert says in (reading.error or "")
    assert "pool gpu-nodes" in (reading.error or "") and "namespace llm" in (reading.error or "")


def test_a_hung_list_times_out_within_the_signals_timeout() -> None:
    kube, answer = cluster(pod("a")), threading.Event()
    kube.inject("list_namespaced_pod", hold=answer)
    r = req("kube-pending-pods", namespace="llm", timeout=0.3)
    try:
        reading = read(kube, r)[r.key]
    finally:
        answer.set()
    assert code_of(reading.error) == "timeout"


def test_without_credentials_every_signal_is_stale_with_kube_config(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-such-kubeconfig"))
    monkeypatch.setenv("HOME", str(tmp_path))
    r = req("kube-pending-pods", namespace="llm")
    reading = KubePendingReader().read([r], now=1.0)[r.key]
    assert code_of(reading.error) == "kube_config"
