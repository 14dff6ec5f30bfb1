"""End to end: an Optuna study run as an experiment pool of Kubernetes Jobs, to completion.

The real API server, scheduler and Job controller; the real controller ticking with the
`optuna` source and the `job` provider; a real sqlite Optuna study of a quadratic whose
first trial fails once. Each Job the autoscaler creates runs examples/experiments/worker.py
(one trial per Job) as a host process through tests/cluster/pod_runner.py, which marks the
pod Succeeded or Failed with the worker's exit code, so the Job controller completes or
fails the Job. The study finishes its n_trials (the failed trial retried by Optuna's
callback and counted), no more than `max` Jobs ever run at once, the pool returns to zero
saying the experiment is done, and no Job or pod of ours is left running.
"""

from __future__ import annotations

import json
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from prometheus_client import generate_latest

from autoscaler import telemetry
from autoscaler.clients.kube import Labels
from autoscaler.clock import FakeClock
from autoscaler.config import parse_config
from autoscaler.controller import Controller
from autoscaler.providers.kube_jobs import JobProvider, is_finished
from autoscaler.types import Decision
from tests.cluster.pod_runner import PodRunner
from tests.cluster.wait import wait_for

pytestmark = [
    pytest.mark.kube,
    pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning"),
]

ROOT = Path(__file__).resolve().parents[2]
INSTALLATION = "exp-e2e"
PREFIX = "elastic-autoscaler.io"
N_TRIALS = 4
MAX_JOBS = 2


def job_template(
    url: str, node_selector: dict[str, str], objective: str = "flaky_quadratic"
) -> dict[str, Any]:
    env = {
        "OPTUNA_STORAGE": url,
        "OPTUNA_STUDY": "quadratic",
        "OPTUNA_N_TRIALS": str(N_TRIALS),
        "EXPERIMENT_OBJECTIVE": f"tests.kube.experiment_objective:{objective}",
        "WORKER_MODE": "one",
        "MAX_RETRY": "2",
        "PYTHONPATH": str(ROOT),
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "spec": {
            "backoffLimit": 0,  # Optuna retries failed trials; Kubernetes does not
            "template": {
                "metadata": {"labels": {"app": "trial"}},
                "spec": {
                    "restartPolicy": "Never",
                    "terminationGracePeriodSeconds": 0,
                    "nodeSelector": node_selector,
                    "containers": [
                        {
                            "name": "worker",
                            "image": "python:3.11-slim",
                            "command": [sys.executable, "examples/experiments/worker.py"],
                            "env": [{"name": k, "value": v} for k, v in env.items()],
                            "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
                        }
                    ],
                },
            },
        },
    }


def experiment_config(
    namespace: str, url: str, template: dict[str, Any], gpu_hours_total: float = 50
) -> str:
    def study(metric: str) -> str:
        source = {"type": "optuna", "storage": url, "study": "quadratic",
                  "n_trials": N_TRIALS, "metric": metric}  # fmt: skip
        return yaml.safe_dump({"source": source}, default_flow_style=True).strip()

    return textwrap.dedent(
        f"""
        installation: {{id: {INSTALLATION}, tag_prefix: {PREFIX}}}
        controller: {{interval: 1s, observe_deadline: 5s, source_timeout: 4s}}
        pools:
          - name: experiment
            target:
              kind: job
              namespace: {namespace}
              keep_finished: 20
              template: {yaml.safe_dump(template, default_flow_style=True).strip()}
            max: {MAX_JOBS}
            gpus_per_replica: 1
            budget: {{gpu_hours_total: {gpu_hours_total}}}
            signals:
              trials: {study("workers")}
              done: {study("done")}
              failed: {study("failed")}
              retried: {study("retried")}
            policy: {{type: queue-depth, target_per_replica: 1, signal: trials}}
            behavior: {{scale_down: {{stabilization_window: 0}}, scale_to_zero_after: 0}}
        """
    )


def our_jobs(batch_v1: Any, ns: str) -> list[Any]:
    return list(
        batch_v1.list_namespaced_job(ns, label_selector=f"{PREFIX}/owner={INSTALLATION}").items
    )


def test_a_study_runs_to_completion_as_jobs_and_the_pool_returns_to_zero(
    kwok_cluster: Any, kube_api: Any, core_v1: Any, kube_namespace: str, tmp_path: Path
) -> None:
    from kubernetes import client

    batch_v1 = client.BatchV1Api(kube_api)
    url = f"sqlite:///{tmp_path / 'study.db'}"
    optuna.create_study(study_name="quadratic", storage=url)
    runner = PodRunner(
        core_v1, namespace=kube_namespace, selector="app=trial", cwd=ROOT,
        log_dir=tmp_path / "logs",
    ).start()  # fmt: skip
    config = parse_config(
        experiment_config(kube_namespace, url, job_template(url, runner.node_selector))
    )
    provider = JobProvider(Labels(INSTALLATION, PREFIX), api=kube_api)
    controller = Controller(config, {"job": provider}, request_epoch=int(time.time()))
    pool = config.pool("experiment")
    decisions: list[Decision] = []
    most_active = ticks = 0

    def tick_until_done() -> bool:
        nonlocal most_active, ticks, controller
        ticks += 1
        if ticks == 3:  # the controller dies; a new one carries on from its state file
            memory = json.loads(json.dumps(controller.snapshot()))
            controller.close()
            restarted = JobProvider(Labels(INSTALLATION, PREFIX), api=kube_api)
            controller = Controller(config, {"job": restarted}, request_epoch=int(time.time()))
            controller.restore(memory)
        result = controller.tick()
        decisions.extend(result.decisions)
        active = [j for j in our_jobs(batch_v1, kube_namespace) if not is_finished(j)]
        most_active = max(most_active, len(active))
        done = result.readings.get(("experiment", "done"))
        return bool(done and done.value == 1 and not active and not runner.running())

    def describe() -> str:
        last = decisions[-1].reason if decisions else "no decision"
        jobs = [(j.metadata.name, j.status.succeeded, j.status.failed)
                for j in our_jobs(batch_v1, kube_namespace)]  # fmt: skip
        return f"last decision: {last}; jobs {jobs}; runner: {runner.describe()}"

    try:
        wait_for(tick_until_done, timeout=180, interval=1.0, what="the study done",
                 describe=describe)  # fmt: skip
        final = controller.tick()
    finally:
        controller.close()
        runner.stop()

    # The study: n_trials complete, trial 0 failed once and its retry succeeded.
    trials = optuna.load_study(study_name="quadratic", storage=url).get_trials()
    states = sorted(t.state.name for t in trials)
    assert states == ["COMPLETE"] * N_TRIALS + ["FAIL"], describe()
    retry = [t for t in trials if t.system_attrs.get("failed_trial") == 0]
    assert len(retry) == 1 and retry[0].state.name == "COMPLETE"

    # The Jobs: one per trial, the failed trial's Job Failed, never more than max at once.
    jobs = our_jobs(batch_v1, kube_namespace)
    assert sum(1 for j in jobs if (j.status.failed or 0) > 0) == 1, describe()
    assert sum(1 for j in jobs if (j.status.succeeded or 0) > 0) >= N_TRIALS, describe()
    assert 1 <= most_active <= MAX_JOBS
    assert sorted(runner.exit_codes.values()).count(1) == 1

    # The pool is back at zero and says why; the counts are on /metrics.
    last = final.decisions[0]
    assert (last.current, last.desired) == (0, 0)
    assert "experiment done: study quadratic" in last.reason
    assert provider.describe(pool).desired == 0
    readings = final.readings
    assert readings[("experiment", "failed")].value == 1
    assert readings[("experiment", "retried")].value == 1
    metrics = generate_latest(telemetry.REGISTRY).decode()
    assert 'autoscaler_signal_value{pool="experiment",signal="retried"} 1.0' in metrics
    assert 'autoscaler_signal_value{pool="experiment",signal="failed"} 1.0' in metrics
    assert 'autoscaler_pool_gpu_hours_total{pool="experiment"}' in metrics

    # Nothing of ours is left running.
    pods = core_v1.list_namespaced_pod(kube_namespace, label_selector="app=trial").items
    assert [p.metadata.name for p in pods if p.status.phase in ("Pending", "Running")] == []
    assert runner.running() == []


def test_an_experiment_whose_gpu_hour_budget_is_spent_starts_nothing_more_and_drains(
    kwok_cluster: Any, kube_api: Any, core_v1: Any, kube_namespace: str, tmp_path: Path
) -> None:
    """The controller's clock is a fake one moved an hour per tick, so the 1 GPU-hour
    budget is spent after one tick of one Job; the real Job finishes in seconds."""
    from kubernetes import client

    batch_v1 = client.BatchV1Api(kube_api)
    url = f"sqlite:///{tmp_path / 'study.db'}"
    optuna.create_study(study_name="quadratic", storage=url)
    runner = PodRunner(
        core_v1, namespace=kube_namespace, selector="app=trial", cwd=ROOT,
        log_dir=tmp_path / "logs",
    ).start()  # fmt: skip
    template = job_template(url, runner.node_selector, objective="quadratic")
    config = parse_config(experiment_config(kube_namespace, url, template, gpu_hours_total=1))
    clock = FakeClock(time.time())
    provider = JobProvider(Labels(INSTALLATION, PREFIX), api=kube_api)
    controller = Controller(config, {"job": provider}, clock=clock, request_epoch=1)
    decisions: list[Decision] = []

    def drained() -> bool:
        clock.advance(3600)
        decisions.extend(controller.tick().decisions)
        active = [j for j in our_jobs(batch_v1, kube_namespace) if not is_finished(j)]
        return bool(decisions[-1].current == 0 and not active and not runner.running())

    try:
        first = controller.tick().decisions[0]
        assert first.desired == 1  # 1 GPU-hour left: one 1-GPU Job for the next hour
        wait_for(drained, timeout=120, interval=1.0, what="the pool drained",
                 describe=runner.describe)  # fmt: skip
        last = controller.tick().decisions[0]
    finally:
        controller.close()
        runner.stop()

    assert len(our_jobs(batch_v1, kube_namespace)) == 1  # nothing started after the first
    assert (last.current, last.desired) == (0, 0)
    assert "budget: pool experiment 1 GPU-hours total (0.0 left) reached -> 0" in last.reason
    trials = optuna.load_study(study_name="quadratic", storage=url).get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE"]  # the study is not done: 1 of 4
