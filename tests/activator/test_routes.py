"""Routing as a pure function: host, path prefix and model, first pool in file order."""

from __future__ import annotations

import pytest

from autoscaler.activator.routes import Route, Router, host_of
from autoscaler.config.activator import ActivatorSpec


def route(name: str, **spec: object) -> Route:
    return Route.of(name, ActivatorSpec.model_validate(
        {"backend": {"urls": ["http://127.0.0.1:1"]}, **spec}))  # fmt: skip


ROUTER = Router([
    route("by-host", hosts=["Special.Example"]),
    route("chat", paths=["/v1/chat/"], models=["llama", "mistral"]),
    route("coder", models=["coder"]),
    route("rest", paths=["/v1/"]),
])  # fmt: skip


@pytest.mark.parametrize(
    ("header", "host"),
    [("Example.COM:8080", "example.com"), ("example.com", "example.com"),
     ("[::1]:8080", "[::1]"), ("a.example.", "a.example"), (None, ""), ("b:", "b")],
)  # fmt: skip
def test_the_host_header_loses_its_port_and_case(header, host):
    assert host_of(header) == host


def test_hosts_match_case_insensitively_and_win_first():
    cands = ROUTER.candidates("special.example", "/v1/chat/completions")
    assert [r.pool for r in cands] == ["by-host", "chat", "coder", "rest"]
    assert not Router.needs_model(cands)  # the first candidate takes any model
    assert Router.choose(cands, None).pool == "by-host"


def test_the_model_decides_only_when_the_first_candidate_lists_models():
    cands = ROUTER.candidates("other", "/v1/chat/completions")
    assert [r.pool for r in cands] == ["chat", "coder", "rest"]
    assert Router.needs_model(cands)
    assert Router.choose(cands, "mistral").pool == "chat"
    assert Router.choose(cands, "coder").pool == "coder"
    assert Router.choose(cands, "unknown").pool == "rest"
    assert Router.choose(cands, None).pool == "rest"


def test_path_prefixes_and_no_match():
    cands = ROUTER.candidates("other", "/metrics")
    assert [r.pool for r in cands] == ["coder"]
    assert Router.choose(cands, "llama") is None
    message = ROUTER.unrouted("other", "/metrics", "llama", True)
    assert "host 'other'" in message and "path '/metrics'" in message
    assert "model 'llama'" in message
    assert "chat (paths /v1/chat/; models llama, mistral)" in message
    assert "by-host (hosts special.example)" in message
    assert "no `model` in the body" in ROUTER.unrouted("h", "/x", None, True)
