"""The Redis reader's interpretation of replies, in a table, and its configuration errors.

Replies are what redis-py returns for TYPE and each command (decode_responses=True);
the real-server behaviour is in test_servers_redis.py.
"""

from __future__ import annotations

from typing import Any

import pytest
import redis

from autoscaler.config.sources import RedisSource as RedisModel
from autoscaler.signals.redis import RedisFailed, RedisReader, _safe_url, value_of
from tests.signals.helpers import code_of, req

URL = "redis://127.0.0.1:6379/0"


def model(kind: str = "list", group: str | None = None) -> RedisModel:
    return RedisModel(url=URL, key="jobs", kind=kind, group=group)  # type: ignore[arg-type]


def groups(**lag: Any) -> list[dict[str, Any]]:
    entry: dict[str, Any] = {"name": "workers", "consumers": 1, "pending": 2}
    entry.update(lag)
    return [entry]


VALUES: list[tuple[str, str, str | None, Any, Any, float]] = [
    ("list length", "list", None, "list", 7, 7.0),
    ("drained list (key deleted)", "list", None, "none", 0, 0.0),
    ("sorted set", "zset", None, "zset", 3, 3.0),
    ("missing sorted set", "zset", None, "none", 0, 0.0),
    ("stream length", "stream", None, "stream", 12, 12.0),
    ("pending", "stream-pending", "workers", "stream", {"pending": 4}, 4.0),
    ("lag", "stream-lag", "workers", "stream", groups(lag=9), 9.0),
    ("lag zero", "stream-lag", "workers", "stream", groups(lag=0), 0.0),
]


@pytest.mark.parametrize(
    ("case", "kind", "group", "key_type", "reply", "value"), VALUES, ids=[v[0] for v in VALUES]
)
def test_a_reply_means_its_number(
    case: str, kind: str, group: str | None, key_type: Any, reply: Any, value: float
) -> None:
    assert value_of(model(kind, group), key_type, reply) == value


ERRORS: list[tuple[str, str, str | None, Any, Any, str, str]] = [
    ("missing stream", "stream", None, "none", 0, "no_stream", "does not exist"),
    ("missing stream, pending", "stream-pending", "workers", "none", None, "no_stream", "key"),
    ("list read as stream", "stream", None, "list", 0, "wrongtype", "is a list"),
    ("hash read as list", "list", None, "hash", None, "wrongtype", "kind list needs a list"),
    (
        "no such group (XPENDING)",
        "stream-pending",
        "workers",
        "stream",
        redis.ResponseError("NOGROUP No such key 'jobs' or consumer group 'workers'"),
        "no_group",
        "'workers'",
    ),
    ("no such group (XINFO)", "stream-lag", "other", "stream", groups(lag=1), "no_group", "has:"),
    ("lag unknown", "stream-lag", "workers", "stream", groups(lag=None), "lag_unknown", "trimmed"),
    ("Redis 6: no lag field", "stream-lag", "workers", "stream", groups(), "unsupported", "7.0"),
    (
        "auth needed",
        "list",
        None,
        redis.ResponseError("NOAUTH Authentication required."),
        None,
        "auth",
        "password_env",
    ),
    (
        "other error",
        "list",
        None,
        "list",
        redis.ResponseError("LOADING Redis is loading"),
        "redis_error",
        "LOADING",
    ),
    ("connection lost", "list", None, redis.ConnectionError("reset"), None, "connect", "reset"),
]


@pytest.mark.parametrize(
    ("case", "kind", "group", "key_type", "reply", "code", "says"),
    ERRORS,
    ids=[e[0] for e in ERRORS],
)
def test_a_reply_that_is_no_number_fails_with_a_code(
    case: str, kind: str, group: str | None, key_type: Any, reply: Any, code: str, says: str
) -> None:
    with pytest.raises(RedisFailed) as info:
        value_of(model(kind, group), key_type, reply)
    assert info.value.code == code
    assert says in info.value.message


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:pw@h:6379/0", "redis://***@h:6379/0"),
        ("rediss://user:pw@h:6380", "rediss://user:***@h:6380"),
        ("redis://h:6379/0", "redis://h:6379/0"),
    ],
)
def test_messages_never_show_a_password_from_the_url(url: str, shown: str) -> None:
    assert _safe_url(url) == shown


def test_an_unset_password_env_var_fails_every_signal_of_that_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("TEST_REDIS_UNSET", raising=False)
    source = RedisReader()
    try:
        r = req("redis", url=URL, key="q", password_env="TEST_REDIS_UNSET")
        reading = source.read([r], now=1.0)[r.key]
    finally:
        source.close()
    assert code_of(reading.error) == "auth_config"
    assert "TEST_REDIS_UNSET" in (reading.error or "")


def test_a_refused_connection_is_stale_with_connect_and_the_server() -> None:
    source = RedisReader()
    try:
        r = req("redis", pool="batch", url="redis://127.0.0.1:1/0", key="q")
        reading = source.read([r], now=1.0)[r.key]
    finally:
        source.close()
    assert code_of(reading.error) == "connect"
    assert "pool batch signal signal: redis redis://127.0.0.1:1/0" in (reading.error or "")
