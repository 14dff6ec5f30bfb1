"""The rule for missing server binaries: a failure in CI, a skip that says how to fix it
elsewhere (never a silent pass)."""

from __future__ import annotations

import pytest

from tests.servers.fixtures import build_server
from tests.servers.processes import MissingServer, find_binary


def missing() -> None:
    find_binary("no-such-server-binary")


def test_a_missing_server_binary_fails_the_test_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception) as info:
        build_server(missing)
    assert "make servers" in str(info.value)


def test_a_missing_server_binary_skips_with_the_install_command_elsewhere(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception) as info:
        build_server(missing)
    assert "make servers" in str(info.value)


def test_find_binary_names_the_missing_binary() -> None:
    with pytest.raises(MissingServer, match="no-such-server-binary"):
        missing()
