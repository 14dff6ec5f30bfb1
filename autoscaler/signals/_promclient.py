"""One Prometheus server as the `prometheus` source sees it: a pooled client, its threads,
its credentials and TLS options, and batching of queries into one request.

A batch is `label_replace(q0, "autoscaler_query", "0", "", "") or ...`, split apart on
return. A batch that fails for a reason one query could cause (bad PromQL, a scalar or
range result, an execution limit) is retried query by query, and the queries that broke
it are sent alone from then on (`solo`), so one bad query never fails its neighbours.
This module must never swallow a failure: each becomes a QueryFailed with a code.
"""

from __future__ import annotations

import concurrent.futures as cf
import os
import ssl
import threading
from collections.abc import Generator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from ._promql import (
    BATCH_SAFE_FAILURES,
    PromResult,
    QueryFailed,
    batch_query,
    parse_response,
    split_batch,
)

Answers = Mapping[str, PromResult | QueryFailed]
"""Each query's result, or the failure of its own."""


@dataclass(frozen=True, slots=True)
class ServerKey:
    """What makes two signals share a client: same server, same credentials, same TLS."""

    url: str
    bearer_token_file: str | None
    username: str | None
    password_env: str | None
    ca_file: str | None
    insecure_skip_verify: bool
    headers: tuple[tuple[str, str], ...]

    @classmethod
    def of(cls, source: Any) -> ServerKey:
        return cls(
            source.url.rstrip("/"),
            source.bearer_token_file,
            source.username,
            source.password_env,
            source.ca_file,
            source.insecure_skip_verify,
            tuple(sorted(source.headers.items())),
        )


class PrometheusServer:
    """A pooled client of one server and the threads that use it; thread-safe."""

    def __init__(
        self, key: ServerKey, transport: httpx.BaseTransport | None, concurrency: int
    ) -> None:
        """QueryFailed (`auth_config`, `tls_config`) when the credentials or CA cannot be
        loaded; the caller retries on its next read."""
        self.url = key.url
        self.client = httpx.Client(
            base_url=key.url,
            auth=_auth(key),
            verify=_verify(key),
            headers=dict(key.headers),
            transport=transport,
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
        )
        self._threads = cf.ThreadPoolExecutor(
            max_workers=concurrency, thread_name_prefix=f"prometheus {key.url}"
        )
        self.solo: set[str] = set()
        """Queries that broke a batch: from then on they are sent alone."""

    def submit(self, queries: list[str], timeout: float) -> cf.Future[Answers]:
        """Ask for `queries` in one request (seconds of `timeout`), on this server's threads."""
        return self._threads.submit(self.answer, queries, timeout)

    def answer(self, queries: list[str], timeout: float) -> Answers:
        """Each query's answer; raises QueryFailed for a failure every query shares
        (connection, timeout, auth, HTTP 5xx)."""
        if len(queries) == 1:
            return {queries[0]: self._alone(queries[0], timeout)}
        try:
            described = f"a batch of {len(queries)} queries"
            return split_batch(self.query(batch_query(queries), timeout, described), queries)
        except QueryFailed as exc:
            if exc.code not in BATCH_SAFE_FAILURES:
                raise
        answers = {q: self._alone(q, timeout) for q in queries}
        # A scalar answers alone but breaks label_replace; an unexplained failure (a sample
        # limit the batch hit together) sends the whole batch alone from now on.
        culprits = {q for q, a in answers.items() if isinstance(a, QueryFailed) or a.scalar}
        self.solo.update(culprits or queries)
        return answers

    def _alone(self, query: str, timeout: float) -> PromResult | QueryFailed:
        try:
            return self.query(query, timeout)
        except QueryFailed as exc:
            if exc.code in BATCH_SAFE_FAILURES:
                return exc  # this query's own failure
            raise

    def query(self, query: str, timeout: float, described: str | None = None) -> PromResult:
        """The instant query's result, or QueryFailed naming the code. `described` names
        the query in messages (a batch's text is too long to show)."""
        try:
            response = self.client.post(
                "/api/v1/query",
                data={"query": query, "timeout": f"{timeout:.3f}"},
                timeout=timeout,
            )
        except httpx.HTTPError as exc:
            raise _transport_error(exc, timeout) from None
        return parse_response(described or query, response.status_code, response.content)

    def close(self) -> None:
        self._threads.shutdown(wait=False, cancel_futures=True)
        self.client.close()


def _transport_error(exc: httpx.HTTPError, timeout: float) -> QueryFailed:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.TimeoutException):
        return QueryFailed("timeout", f"no answer within {timeout:.2f}s ({type(exc).__name__})")
    if "CERTIFICATE" in text.upper() or "SSL" in text.upper():
        return QueryFailed(
            "tls", f"TLS failed: {text} (check `ca_file`, or `insecure_skip_verify` for tests)"
        )
    if isinstance(exc, httpx.ConnectError):
        return QueryFailed("connect", f"cannot connect: {text}")
    return QueryFailed("network", f"{type(exc).__name__}: {text}")


def _auth(key: ServerKey) -> httpx.Auth | None:
    if key.bearer_token_file:
        return BearerTokenFile(key.bearer_token_file)
    if key.username and key.password_env:
        password = os.environ.get(key.password_env)
        if password is None:
            raise QueryFailed(
                "auth_config",
                f"environment variable {key.password_env} (password_env) is not set",
            )
        return httpx.BasicAuth(key.username, password)
    return None


def _verify(key: ServerKey) -> ssl.SSLContext | bool:
    if key.insecure_skip_verify:
        return False
    if key.ca_file:
        try:
            return ssl.create_default_context(cafile=key.ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise QueryFailed("tls_config", f"cannot load ca_file {key.ca_file}: {exc}") from None
    return True


class BearerTokenFile(httpx.Auth):
    """`Authorization: Bearer <token>` from a file, re-read when the file changes (Kubernetes
    rotates projected service-account tokens in place)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._mtime: float | None = None
        self._token = ""

    def token(self) -> str:
        try:
            mtime = os.stat(self.path).st_mtime
            with self._lock:
                if mtime != self._mtime:
                    with open(self.path, encoding="utf-8") as f:
                        self._token = f.read().strip()
                    self._mtime = mtime
                return self._token
        except OSError as exc:
            raise QueryFailed(
                "auth_config", f"cannot read bearer_token_file {self.path}: {exc.strerror}"
            ) from None

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self.token()}"
        yield request
