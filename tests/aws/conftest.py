"""Fixtures for tests/aws: dummy credentials, in-process moto, and the fault-injecting
moto server that the real `autoscaler run` subprocess talks to over HTTP."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator

import pytest
from moto import mock_aws

from .faults import FaultyMotoServer
from .helpers import World, make_world, use_dummy_credentials


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Dummy credentials and a region; no real account or local AWS profile can leak in."""
    use_dummy_credentials(monkeypatch, str(tmp_path_factory.getbasetemp() / "no-aws-config"))


@pytest.fixture
def mocked(aws_env: None) -> Iterator[None]:
    """In-process moto: every boto3 call in the test goes to moto's backends."""
    with mock_aws():
        yield


@pytest.fixture
def world(mocked: None) -> World:
    return make_world()


@pytest.fixture(scope="session")
def moto_server() -> Iterator[FaultyMotoServer]:
    server = FaultyMotoServer()
    server.start()
    yield server
    server.injector.reset()
    server.stop()


@pytest.fixture
def server(
    moto_server: FaultyMotoServer, aws_env: None, monkeypatch: pytest.MonkeyPatch
) -> Iterator[FaultyMotoServer]:
    """The moto server, emptied, with no faults, and AWS_ENDPOINT_URL pointing at it."""
    _reset(moto_server)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.url)
    yield moto_server
    _reset(moto_server)


@pytest.fixture
def server_world(server: FaultyMotoServer) -> World:
    world = make_world()
    server.injector.calls.clear()
    return world


def _reset(server: FaultyMotoServer) -> None:
    server.injector.reset()
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    request = urllib.request.Request(f"{server.url}/moto-api/reset", method="POST")
    opener.open(request, timeout=10).read()
