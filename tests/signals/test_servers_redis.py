"""The Redis reader against a real redis-server (7.x): every kind, errors, password, TLS."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from autoscaler.signals.redis import RedisReader
from tests.servers.fixtures import build_server
from tests.servers.processes import RedisServer
from tests.servers.tls import make_tls_files
from tests.signals.helpers import code_of, req

pytestmark = pytest.mark.servers


@pytest.fixture
def source() -> Iterator[RedisReader]:
    s = RedisReader()
    yield s
    s.close()


@pytest.fixture
def prefix() -> str:
    return f"t{uuid.uuid4().hex[:8]}:"


@pytest.fixture
def client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    c = redis.Redis.from_url(redis_server.url, decode_responses=True)
    yield c
    c.close()


def test_list_sorted_set_stream_pending_and_lag_values_arrive(
    redis_server: RedisServer, client: redis.Redis, source: RedisReader, prefix: str
) -> None:
    client.rpush(f"{prefix}celery", *range(7))
    client.zadd(f"{prefix}arq", {"a": 1, "b": 2})
    for i in range(5):
        client.xadd(f"{prefix}jobs", {"n": i})
    client.xgroup_create(f"{prefix}jobs", "workers", id="0")
    client.xreadgroup("workers", "w1", {f"{prefix}jobs": ">"}, count=2)  # 2 delivered, unacked

    url = redis_server.url
    reqs = [
        req("redis", signal="list", url=url, key=f"{prefix}celery"),
        req("redis", signal="zset", url=url, key=f"{prefix}arq", kind="zset"),
        req("redis", signal="stream", url=url, key=f"{prefix}jobs", kind="stream"),
        req("redis", signal="pending", url=url, key=f"{prefix}jobs", kind="stream-pending",
            group="workers"),
        req("redis", signal="lag", url=url, key=f"{prefix}jobs", kind="stream-lag",
            group="workers"),
    ]  # fmt: skip
    got = source.read(reqs, now=7.0)
    values = {r.signal: got[r.key].value for r in reqs}
    assert values == {"list": 7.0, "zset": 2.0, "stream": 5.0, "pending": 2.0, "lag": 3.0}


def test_a_drained_list_reads_zero_but_a_missing_stream_is_stale(
    redis_server: RedisServer, source: RedisReader, prefix: str
) -> None:
    drained = req("redis", signal="list", url=redis_server.url, key=f"{prefix}gone")
    stream = req("redis", signal="stream", url=redis_server.url, key=f"{prefix}gone", kind="stream")
    got = source.read([drained, stream], now=1.0)
    assert got[drained.key].value == 0.0
    assert code_of(got[stream.key].error) == "no_stream"


def test_a_wrong_key_type_or_group_fails_only_its_own_signal(
    redis_server: RedisServer, client: redis.Redis, source: RedisReader, prefix: str
) -> None:
    client.hset(f"{prefix}hash", "a", 1)
    client.xadd(f"{prefix}s", {"n": 1})
    url = redis_server.url
    wrong = req("redis", signal="wrong", url=url, key=f"{prefix}hash")
    nogroup = req("redis", signal="nogroup", url=url, key=f"{prefix}s", kind="stream-lag",
                  group="nobody")  # fmt: skip
    fine = req("redis", signal="fine", url=url, key=f"{prefix}s", kind="stream")
    got = source.read([wrong, nogroup, fine], now=1.0)
    assert code_of(got[wrong.key].error) == "wrongtype"
    assert code_of(got[nogroup.key].error) == "no_group"
    assert got[fine.key].value == 1.0


def test_lag_after_a_deletion_is_stale_with_lag_unknown(
    redis_server: RedisServer, client: redis.Redis, source: RedisReader, prefix: str
) -> None:
    ids = [client.xadd(f"{prefix}s", {"n": i}) for i in range(3)]
    client.xgroup_create(f"{prefix}s", "workers", id="0")
    client.xdel(f"{prefix}s", ids[1])  # Redis can no longer count what the group has not read
    r = req("redis", url=redis_server.url, key=f"{prefix}s", kind="stream-lag", group="workers")
    assert code_of(source.read([r], now=1.0)[r.key].error) == "lag_unknown"


def test_a_password_comes_from_the_named_env_var_and_a_wrong_one_is_auth(
    tmp_path: Path, source: RedisReader, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = build_server(lambda: RedisServer(tmp_path / "redis", password="s3cret"))
    server.start()
    try:
        monkeypatch.setenv("TEST_REDIS_GOOD", "s3cret")
        monkeypatch.setenv("TEST_REDIS_BAD", "nope")
        good = req("redis", signal="good", url=server.url, key="q", password_env="TEST_REDIS_GOOD")
        bad = req("redis", signal="bad", url=server.url, key="q", password_env="TEST_REDIS_BAD")
        none = req("redis", signal="none", url=server.url, key="q")
        got = source.read([good, bad, none], now=1.0)
    finally:
        server.stop()
    assert got[good.key].value == 0.0
    assert code_of(got[bad.key].error) == "auth"
    assert code_of(got[none.key].error) == "auth"
    assert "s3cret" not in (got[bad.key].error or "")


def test_rediss_verifies_the_server_against_the_configured_ca(
    tmp_path: Path, source: RedisReader
) -> None:
    tls = make_tls_files(tmp_path / "tls")
    server = build_server(lambda: RedisServer(tmp_path / "redis", tls=tls))
    server.start()
    try:
        client = redis.Redis.from_url(server.url, ssl_ca_certs=str(tls.ca))
        client.rpush("q", 1, 2)
        client.close()
        trusted = req("redis", signal="ca", url=server.url, key="q", ca_file=str(tls.ca))
        skipped = req("redis", signal="skip", url=server.url, key="q", insecure_skip_verify=True)
        default = req("redis", signal="default", url=server.url, key="q")
        got = source.read([trusted, skipped, default], now=1.0)
    finally:
        server.stop()
    assert got[trusted.key].value == 2.0
    assert got[skipped.key].value == 2.0
    assert code_of(got[default.key].error) == "tls"
