"""Fixtures for tests/kube: the shared cluster plugin, and moto's EC2 served over HTTP."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from tests.cluster.binaries import Binaries, MissingBinariesError, find_binaries
from tests.cluster.session import in_ci


def pytest_configure(config: pytest.Config) -> None:
    # Idempotent: a no-op when tests/conftest.py already lists the plugin in pytest_plugins.
    config.pluginmanager.import_plugin("tests.cluster.pytest_plugin")


@pytest.fixture
def moto_endpoint() -> Iterator[str]:
    """moto's AWS APIs on a free port of 127.0.0.1; its state is reset afterwards."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    try:
        yield url
    finally:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        opener.open(urllib.request.Request(f"{url}/moto-api/reset", method="POST"), timeout=10)
        server.stop()


@pytest.fixture
def ec2(moto_endpoint: str) -> Any:
    """A boto3 EC2 client aimed at the moto server (dummy credentials)."""
    return boto3.client(
        "ec2",
        endpoint_url=moto_endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture(scope="session")
def local_binaries() -> Binaries:
    """The built cluster binaries; tests of the harness itself need them even with KUBECONFIG."""
    try:
        return find_binaries()
    except MissingBinariesError as e:
        problem = str(e)
    if in_ci():
        pytest.fail(f"CI=true and {problem}", pytrace=False)
    pytest.skip(problem)
