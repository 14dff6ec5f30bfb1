"""Fixtures for tests/chaos: the shared cluster plugin, and a moto server whose answers to
`autoscaler run` processes are delayed (tests/chaos/delays.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.aws.conftest import _reset
from tests.aws.helpers import use_dummy_credentials

from .delays import ChaosMotoServer


def pytest_configure(config: pytest.Config) -> None:
    # Idempotent: a no-op when tests/conftest.py already lists the plugin in pytest_plugins.
    config.pluginmanager.import_plugin("tests.cluster.pytest_plugin")


@pytest.fixture(scope="session")
def chaos_server() -> Iterator[ChaosMotoServer]:
    server = ChaosMotoServer()
    server.start()
    yield server
    server.chaos.clear()
    server.stop()


@pytest.fixture
def chaos_moto(
    chaos_server: ChaosMotoServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ChaosMotoServer]:
    """The delaying moto server, emptied, AWS_ENDPOINT_URL and dummy credentials set."""
    use_dummy_credentials(monkeypatch, str(tmp_path_factory.getbasetemp() / "no-aws-config"))
    monkeypatch.setenv("AWS_ENDPOINT_URL", chaos_server.url)
    yield chaos_server
    chaos_server.chaos.clear()
    _reset(chaos_server)
