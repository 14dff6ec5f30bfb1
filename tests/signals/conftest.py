"""Fixtures for the signal tests: the real servers of tests/servers, and the test cluster."""

from __future__ import annotations

import pytest

from tests.servers.fixtures import (  # noqa: F401  (pytest finds fixtures by name)
    exporter,
    own_prometheus,
    own_redis,
    prometheus,
    redis_server,
    slow_prometheus,
)


def pytest_configure(config: pytest.Config) -> None:
    # The real-cluster test uses the shared cluster fixtures; registering is idempotent.
    config.pluginmanager.import_plugin("tests.cluster.pytest_plugin")
