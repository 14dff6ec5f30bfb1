"""pytest fixtures that start real Prometheus and Redis servers on 127.0.0.1.

Import the fixtures into a conftest.py (`from tests.servers.fixtures import *`-style, by
name). The rule for a missing binary: in CI (`CI=true`) it FAILS the test; elsewhere the
test is skipped with a message saying that `make servers` installs them. A server that is
installed but does not start always fails, with its log tail.

Session fixtures (`redis_server`, `exporter`, `prometheus`) are shared and must not be
stopped by tests; tests that stop and restart a server use the function-scoped
`own_redis` and `own_prometheus`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from .processes import (
    MetricsExporter,
    MissingServer,
    PrometheusServer,
    RedisServer,
    SlowPrometheus,
)

T = TypeVar("T")


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def build_server(make: Callable[[], T]) -> T:
    """`make()`, turning a missing binary into a CI failure or a local skip."""
    try:
        return make()
    except MissingServer as exc:
        if in_ci():
            pytest.fail(f"CI=true and a test server is missing: {exc}", pytrace=False)
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = build_server(lambda: RedisServer(tmp_path_factory.mktemp("redis")))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis for this test alone: it may stop and restart it (same port)."""
    server = build_server(lambda: RedisServer(tmp_path / "redis"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def exporter() -> Iterator[MetricsExporter]:
    """DCGM-/vLLM-like gauges for Prometheus to scrape; tests set values with unique labels."""
    server = MetricsExporter()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def prometheus(
    tmp_path_factory: pytest.TempPathFactory, exporter: MetricsExporter
) -> Iterator[PrometheusServer]:
    """A real Prometheus scraping `exporter` every second."""
    server = build_server(
        lambda: PrometheusServer(tmp_path_factory.mktemp("prom"), [exporter.address])
    )
    server.start()
    try:
        exporter.set("autoscaler_test_up", 1)
        server.wait_for("autoscaler_test_up", 1.0, timeout=30)  # first scrape has happened
        yield server
    finally:
        server.stop()


@pytest.fixture
def own_prometheus(tmp_path: Path, exporter: MetricsExporter) -> Iterator[PrometheusServer]:
    """A Prometheus for this test alone (scraping the shared exporter); it may be stopped."""
    server = build_server(lambda: PrometheusServer(tmp_path / "prom", [exporter.address]))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def slow_prometheus() -> Iterator[SlowPrometheus]:
    """A Prometheus-protocol stub that answers every query after 5 seconds."""
    server = SlowPrometheus(delay=5.0)
    try:
        yield server
    finally:
        server.stop()


__all__ = [
    "build_server",
    "exporter",
    "in_ci",
    "own_prometheus",
    "own_redis",
    "prometheus",
    "redis_server",
    "slow_prometheus",
]
