"""The `redis` source: queue lengths in Redis (Celery, RQ, arq and custom LLM job queues).

Kinds: `list` (LLEN), `zset` (ZCARD), `stream` (XLEN), `stream-pending` (the XPENDING
summary count of a consumer group: delivered, not yet acknowledged) and `stream-lag`
(XINFO GROUPS `lag`: entries not yet delivered to the group; Redis >= 7.0, an error naming
the server's version before that). Each server (URL, password, TLS options, timeout) has
one connection pool, and all its signals are read in one pipeline with each key's TYPE, so
a wrong key type is an error that names the type found. Servers are read concurrently;
one that is down or slow fails only its own signals, within its timeout.

A missing list or sorted set reads 0: Redis deletes them when they become empty, so absence
*is* an empty queue. A missing stream is an error (streams stay when emptied, so absence
means a wrong key or db). This module must never turn a failed read into a number, and
never raise for one signal's failure.
"""

from __future__ import annotations

import concurrent.futures as cf
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from autoscaler.clock import SystemClock
from autoscaler.deadlines import Late, wait_all
from autoscaler.types import Reading

from ._common import budget_seconds, checked_value, failed, group_by, where
from .base import SignalKey, SignalRequest

_TYPE_OF_KIND = {
    "list": "list",
    "zset": "zset",
    "stream": "stream",
    "stream-pending": "stream",
    "stream-lag": "stream",
}
_EMPTY_WHEN_MISSING = {"list", "zset"}
"""Kinds whose key Redis deletes when it becomes empty (so a missing key is 0 items)."""

_MONOTONIC = SystemClock().monotonic


class RedisFailed(Exception):
    """A read that gave no usable value; `code` is what telemetry counts."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class ServerKey:
    """Signals with the same key share one connection pool and one pipeline per read."""

    url: str
    password_env: str | None
    ca_file: str | None
    insecure_skip_verify: bool
    timeout: float


class RedisReader:
    """Reads `redis` signals; one instance serves every pool of a controller."""

    def __init__(self, settings: Any = None, max_servers_in_flight: int = 32) -> None:
        self._settings = settings
        self._pools: dict[ServerKey, redis.ConnectionPool] = {}
        self._lock = threading.Lock()
        self._threads = cf.ThreadPoolExecutor(
            max_workers=max_servers_in_flight, thread_name_prefix="redis"
        )

    def close(self) -> None:
        self._threads.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            pool.disconnect()

    def read(self, requests: Sequence[SignalRequest], now: float) -> dict[SignalKey, Reading]:
        started = _MONOTONIC()
        groups = group_by(requests, self._server_key)
        keys = list(groups)
        work = [
            (self._threads.submit(self._read_server, key, groups[key], now), key.timeout)
            for key in keys
        ]
        out: dict[SignalKey, Reading] = {}
        answers = wait_all(work, started)
        for key, answer in zip(keys, answers, strict=True):
            out.update(self._collect(key, groups[key], answer, now))
        return out

    def _server_key(self, req: SignalRequest) -> ServerKey:
        s = req.source
        budget = round(budget_seconds(req, self._settings), 3)
        return ServerKey(s.url, s.password_env, s.ca_file, s.insecure_skip_verify, budget)

    def _collect(
        self,
        key: ServerKey,
        reqs: list[SignalRequest],
        answer: dict[SignalKey, Reading] | BaseException,
        now: float,
    ) -> dict[SignalKey, Reading]:
        if not isinstance(answer, BaseException):
            return answer
        if isinstance(answer, Late):
            exc = RedisFailed("timeout", f"no answer within {key.timeout:.2f}s")
        else:  # a bug here must still stay within this server's signals
            exc = RedisFailed("source_error", f"{type(answer).__name__}: {answer}")
        return {r.key: _failed(r, now, exc) for r in reqs}

    def _read_server(
        self, key: ServerKey, reqs: list[SignalRequest], now: float
    ) -> dict[SignalKey, Reading]:
        """One pipeline for every signal of one server."""
        try:
            client = redis.Redis(connection_pool=self._pool(key))
            pipe = client.pipeline(transaction=False)
            for r in reqs:
                pipe.type(r.source.key)
                _queue(pipe, r.source)
            replies = pipe.execute(raise_on_error=False)
        except RedisFailed as exc:
            return {r.key: _failed(r, now, exc) for r in reqs}
        except redis.RedisError as exc:
            failure = _connection_error(exc, key)
            return {r.key: _failed(r, now, failure) for r in reqs}
        return {
            r.key: _reading(r, replies[2 * i], replies[2 * i + 1], now) for i, r in enumerate(reqs)
        }

    def _pool(self, key: ServerKey) -> redis.ConnectionPool:
        with self._lock:
            pool = self._pools.get(key)
            if pool is None:
                pool = redis.ConnectionPool.from_url(key.url, **_pool_options(key))
                self._pools[key] = pool
            return pool


def _pool_options(key: ServerKey) -> dict[str, Any]:
    options: dict[str, Any] = {
        "socket_timeout": key.timeout,
        "socket_connect_timeout": key.timeout,
        # No retries: a retry would spend the tick's budget on a server that is down.
        "retry": Retry(NoBackoff(), 0),
        "decode_responses": True,
        "max_connections": 8,
    }
    if key.password_env:
        password = os.environ.get(key.password_env)
        if password is None:
            raise RedisFailed(
                "auth_config", f"environment variable {key.password_env} (password_env) is not set"
            )
        options["password"] = password
    if key.url.startswith("rediss://"):
        if key.ca_file:
            options["ssl_ca_certs"] = key.ca_file
        if key.insecure_skip_verify:
            options["ssl_cert_reqs"] = "none"
            options["ssl_check_hostname"] = False
    return options


def _queue(pipe: Any, source: Any) -> None:
    """Queue the command that reads `source` on a pipeline."""
    if source.kind == "list":
        pipe.llen(source.key)
    elif source.kind == "zset":
        pipe.zcard(source.key)
    elif source.kind == "stream":
        pipe.xlen(source.key)
    elif source.kind == "stream-pending":
        pipe.xpending(source.key, source.group)
    else:
        pipe.xinfo_groups(source.key)


def _reading(req: SignalRequest, key_type: Any, reply: Any, now: float) -> Reading:
    try:
        value = value_of(req.source, key_type, reply)
    except RedisFailed as exc:
        return _failed(req, now, exc)
    return checked_value(now, value, f"{where(req)}: redis {_safe_url(req.source.url)}")


def value_of(source: Any, key_type: Any, reply: Any) -> float:
    """The number a reply means for `source`, or RedisFailed naming why there is none.

    `key_type` is the reply to TYPE for the same key (or the error it raised)."""
    for r in (key_type, reply):
        if isinstance(r, redis.AuthenticationError | redis.ConnectionError):
            raise RedisFailed("connect", str(r))
    if isinstance(key_type, Exception):
        raise _command_error(source, key_type)
    want = _TYPE_OF_KIND[source.kind]
    if key_type == "none":
        if source.kind in _EMPTY_WHEN_MISSING:
            return 0.0
        raise RedisFailed(
            "no_stream", f"stream {source.key!r} does not exist (check `key` and the db in `url`)"
        )
    if key_type != want:
        raise RedisFailed(
            "wrongtype", f"key {source.key!r} is a {key_type}; kind {source.kind} needs a {want}"
        )
    if isinstance(reply, Exception):
        raise _command_error(source, reply)
    if source.kind == "stream-pending":
        return float(reply["pending"])
    if source.kind == "stream-lag":
        return _lag(source, reply)
    return float(reply)


def _lag(source: Any, groups: list[dict[str, Any]]) -> float:
    for group in groups:
        if group.get("name") != source.group:
            continue
        if "lag" not in group:
            raise RedisFailed(
                "unsupported",
                "XINFO GROUPS reports no `lag` before Redis 7.0; upgrade, or read kind "
                "`stream` (XLEN) or `stream-pending` instead",
            )
        if group["lag"] is None:
            raise RedisFailed(
                "lag_unknown",
                f"Redis cannot tell the lag of group {source.group!r} on {source.key!r} "
                "(entries were deleted or trimmed past it); it is known again once the "
                "group has read past them",
            )
        return float(group["lag"])
    names = ", ".join(repr(g.get("name")) for g in groups) or "none"
    raise RedisFailed(
        "no_group", f"stream {source.key!r} has no consumer group {source.group!r} (has: {names})"
    )


def _command_error(source: Any, exc: Exception) -> RedisFailed:
    text = str(exc)
    if text.startswith("NOGROUP"):
        return RedisFailed(
            "no_group", f"stream {source.key!r} has no consumer group {source.group!r}"
        )
    if text.startswith(("NOAUTH", "WRONGPASS", "NOPERM")):
        return RedisFailed("auth", f"{text} (check `password_env` and the user in `url`)")
    if text.startswith("WRONGTYPE"):
        return RedisFailed("wrongtype", f"key {source.key!r}: {text}")
    return RedisFailed("redis_error", f"key {source.key!r}: {type(exc).__name__}: {text}")


def _connection_error(exc: redis.RedisError, key: ServerKey) -> RedisFailed:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, redis.TimeoutError):
        return RedisFailed("timeout", f"no answer within {key.timeout:.2f}s: {text}")
    if isinstance(exc, redis.AuthenticationError) or text.startswith(("NOAUTH", "WRONGPASS")):
        return RedisFailed("auth", f"{text} (check `password_env` and the user in `url`)")
    if "SSL" in text or "certificate" in text:
        return RedisFailed("tls", f"{text} (check `ca_file`, or `insecure_skip_verify` for tests)")
    if isinstance(exc, redis.ConnectionError):
        return RedisFailed("connect", text)
    return RedisFailed("redis_error", f"{type(exc).__name__}: {text}")


def _failed(req: SignalRequest, now: float, exc: RedisFailed) -> Reading:
    return failed(now, exc.code, f"{where(req)}: redis {_safe_url(req.source.url)}: {exc.message}")


def _safe_url(url: str) -> str:
    """The URL without a password, for messages and logs."""
    scheme, sep, rest = url.partition("://")
    if "@" not in rest:
        return url
    creds, _, host = rest.rpartition("@")
    user = creds.split(":", 1)[0]
    return f"{scheme}{sep}{user + ':***@' if user else '***@'}{host}"


__all__ = ["RedisFailed", "RedisReader", "ServerKey", "value_of"]
