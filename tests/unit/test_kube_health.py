"""/healthz, /readyz and /metrics over real HTTP on 127.0.0.1, and the process metrics."""

from __future__ import annotations

import urllib.error
import urllib.request

from autoscaler import telemetry
from autoscaler.health import Endpoints, Health
from autoscaler.types import ActionResult, Decision, Reading


def get(port: int, path: str) -> tuple[int, str]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def test_probes_answer_alive_then_ready_after_the_first_tick():
    health = Health()
    endpoints = Endpoints(health, "127.0.0.1", 0, None).start()
    try:
        [port] = endpoints.ports()
        assert get(port, "/healthz") == (200, "ok\n")
        code, body = get(port, "/readyz")
        assert code == 503 and "no tick completed" in body
        health.set_ready()
        assert get(port, "/readyz") == (200, "ok\n")
        assert get(port, "/metrics")[0] == 404  # metrics were not asked for on this port
    finally:
        endpoints.close()


def test_metrics_show_signals_capacity_decisions_errors_and_tick_time():
    telemetry.record_readings(
        "static", {("m-pool", "queue"): Reading(42.0, 0.0), ("m-pool", "gpu"): Reading(None, 0.0)}
    )
    decision = Decision("m-pool", 0.0, 2, 6, 5, "queue 42; rate limit 3 pods per 60s")
    telemetry.MetricsRecorder().record(
        decision, ActionResult("m-pool", "r", 5, False, "nope", "Throttled")
    )
    telemetry.record_tick(0.3, {})
    telemetry.record_error("kube_status", "http_409")
    health = Health()
    endpoints = Endpoints(health, "127.0.0.1", None, 0).start()
    try:
        [port] = endpoints.ports()
        code, text = get(port, "/metrics")
    finally:
        endpoints.close()
    assert code == 200
    for line in (
        'autoscaler_signal_value{pool="m-pool",signal="queue"} 42.0',
        'autoscaler_signal_stale{pool="m-pool",signal="gpu"} 1.0',
        'autoscaler_signal_errors_total{code="empty",source="static"}',
        'autoscaler_pool_desired_replicas{pool="m-pool"} 5.0',
        'autoscaler_pool_current_replicas{pool="m-pool"} 2.0',
        'autoscaler_decisions_total{direction="up",pool="m-pool",reason="rate_limit"} 1.0',
        'autoscaler_action_errors_total{code="Throttled",pool="m-pool"} 1.0',
        'autoscaler_errors_total{code="http_409",source="kube_status"}',
        "autoscaler_tick_seconds_count",
    ):
        assert line in text, line


def test_probes_and_metrics_can_share_one_port():
    endpoints = Endpoints(Health(), "127.0.0.1", 0, None)
    port = endpoints.ports()[0]
    endpoints.close()
    shared = Endpoints(Health(), "127.0.0.1", port, port).start()
    try:
        assert len(shared.servers) == 1
        assert get(port, "/healthz")[0] == 200
        assert get(port, "/metrics")[0] == 200
    finally:
        shared.close()


def test_gone_pools_disappear_from_the_capacity_gauges():
    telemetry.record_decision(Decision("gone-pool", 0.0, 1, 1, 1, "x"), None)
    assert telemetry.REGISTRY.get_sample_value(
        "autoscaler_pool_desired_replicas", {"pool": "gone-pool"}
    )
    telemetry.forget_pools(["gone-pool", "never-seen"])
    assert (
        telemetry.REGISTRY.get_sample_value(
            "autoscaler_pool_desired_replicas", {"pool": "gone-pool"}
        )
        is None
    )
