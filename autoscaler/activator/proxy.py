"""Forwarding: one request from arrival to the end of its answer, streamed both ways.

Why a proxy of our own rather than a sidecar: holding a request while a pool is at zero,
routing on the body's `model` and counting what is held and in flight are the point, and
they sit between reading a request and connecting to a backend. aiohttp does the HTTP on
both sides; this module only decides: route, take an endpoint or hold, forward, and on a
connection that fails before any answer byte, pass the endpoint over and try again (another
endpoint, or hold until one is ready). Answers stream to the client chunk by chunk (SSE
token streams arrive as they are generated); request bodies stream to the backend.

Errors are OpenAI-shaped JSON (`{"error": {"message", "type", "code"}}`) so clients of an
OpenAI-compatible API show the message.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Mapping

import aiohttp
from aiohttp import hdrs, web
from multidict import CIMultiDict
from yarl import URL

from .bodies import Body, read_model
from .holding import PoolState, QueueFull, ShuttingDown
from .routes import Router, host_of

log = logging.getLogger("autoscaler.activator")

HOP_BY_HOP = frozenset(
    ("connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
     "proxy-connection", "te", "trailer", "trailers", "transfer-encoding", "upgrade")
)  # fmt: skip
"""Headers about one connection, never forwarded (RFC 9110 7.6.1), with those `Connection`
names."""


class Unreachable(Exception):
    """The endpoint failed before answering; `retryable` when the request may go again."""

    def __init__(self, message: str, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


def error(status: int, message: str, kind: str, headers: Mapping[str, str] | None = None
          ) -> web.Response:  # fmt: skip
    body = {"error": {"message": message, "type": kind, "code": status}}
    return web.json_response(body, status=status, headers=headers)


def _dropped(headers: Mapping[str, str]) -> frozenset[str]:
    named = {t.strip().lower() for v in headers.getall("Connection", [])  # type: ignore[attr-defined]
             for t in v.split(",")}  # fmt: skip
    return HOP_BY_HOP | frozenset(named)


def request_headers(request: web.Request) -> CIMultiDict[str]:
    """The client's headers less hop-by-hop ones, Host and Expect (this side answered it),
    plus X-Forwarded-For (appended), -Proto and -Host (kept when a proxy before us set them)."""
    drop = _dropped(request.headers) | {"host", "expect"}
    out = CIMultiDict((k, v) for k, v in request.headers.items() if k.lower() not in drop)
    peer = request.remote
    if peer:
        prior = ", ".join(request.headers.getall("X-Forwarded-For", []))
        out["X-Forwarded-For"] = f"{prior}, {peer}" if prior else peer
    out.setdefault("X-Forwarded-Proto", request.scheme)
    if hdrs.HOST in request.headers:
        out.setdefault("X-Forwarded-Host", request.headers[hdrs.HOST])
    return out


def response_headers(upstream: aiohttp.ClientResponse) -> CIMultiDict[str]:
    drop = _dropped(upstream.headers)
    return CIMultiDict((k, v) for k, v in upstream.headers.items() if k.lower() not in drop)


class Proxy:
    """The proxy port's one handler."""

    def __init__(
        self,
        router: Router,
        pools: Mapping[str, PoolState],
        session: aiohttp.ClientSession,
        sniff_limit: int,
        replay_limit: int,
        on_unrouted: Callable[[], None] | None = None,
    ) -> None:
        self.router = router
        self.pools = pools
        self.session = session
        self.sniff_limit = sniff_limit
        self.replay_limit = replay_limit
        self.on_unrouted = on_unrouted
        self.draining = False

    async def handle(self, request: web.Request) -> web.StreamResponse:
        host = host_of(request.headers.get(hdrs.HOST))
        candidates = self.router.candidates(host, request.path)
        head: list[bytes] = []
        model: str | None = None
        by_model = self.router.needs_model(candidates)
        if by_model and request.body_exists:
            model, head = await read_model(request.content, self.sniff_limit)
        route = self.router.choose(candidates, model)
        if route is None:
            if self.on_unrouted is not None:
                self.on_unrouted()
            return error(404, self.router.unrouted(host, request.path, model, by_model),
                         "not_found")  # fmt: skip
        pool = self.pools.get(route.pool)
        if pool is None:  # dropped by a reload while the body was read
            return error(503, f"pool {route.pool!r} is no longer fronted by this activator; "
                         "retry the request", "unavailable", {"Retry-After": "1"})  # fmt: skip
        pool.arrive()
        body = None
        if request.body_exists:
            body = Body(head, request.content, self.replay_limit)
        return await self._serve(request, pool, body)

    async def _serve(self, request: web.Request, pool: PoolState, body: Body | None
                     ) -> web.StreamResponse:  # fmt: skip
        loop = asyncio.get_running_loop()
        deadline = loop.time() + pool.limits.hold_timeout
        held: float | None = None
        again = False
        while True:
            url = None if self.draining else pool.take()
            if url is None:
                started = loop.time()
                try:
                    url = await pool.hold(deadline, first=again)
                except QueueFull:
                    pool.record("rejected_full")
                    return self._full(pool)
                except ShuttingDown as exc:
                    pool.record("shutdown", hold=_add(held, loop.time() - started))
                    why = str(exc) or "the activator is shutting down; retry the request"
                    return error(503, why, "unavailable", {"Retry-After": "1"})
                except TimeoutError:
                    pool.record("timed_out", hold=_add(held, loop.time() - started))
                    return error(504, f"pool {pool.name!r} had no ready endpoint within "
                                 f"{pool.limits.hold_timeout:g}s (its hold_timeout)",
                                 "timeout")  # fmt: skip
                except asyncio.CancelledError:
                    pool.record("client_gone", hold=_add(held, loop.time() - started))
                    raise
                held = _add(held, loop.time() - started)
            try:
                return await self._forward(request, pool, url, body, held)
            except Unreachable as exc:
                pool.failed(url)
                log.info("pool %s: %s", pool.name, exc)
                if not exc.retryable:
                    pool.record("backend_error", hold=held)
                    return error(502, f"pool {pool.name!r}: {exc}; the body was too large "
                                 "to send again", "bad_gateway")  # fmt: skip
                again = True

    def _full(self, pool: PoolState) -> web.Response:
        retry = pool.limits.retry_after
        return error(
            503,
            f"pool {pool.name!r} already holds {pool.limits.max_queue} requests waiting for "
            f"an endpoint (its max_queue); retry after {retry:g}s",
            "overloaded",
            {"Retry-After": str(math.ceil(retry))},
        )

    async def _forward(self, request: web.Request, pool: PoolState, url: str,
                       body: Body | None, held: float | None) -> web.StreamResponse:  # fmt: skip
        """Send the request to `url` and stream its answer back; Unreachable (the endpoint
        released by the caller) when it failed before answering."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        pool.in_flight += 1
        outcome = "client_gone"
        try:
            try:
                upstream = await self.session.request(
                    request.method, URL(url + request.raw_path, encoded=True),
                    headers=request_headers(request),
                    data=body.stream() if body is not None else None,
                    allow_redirects=False,
                )  # fmt: skip
            except (aiohttp.ClientConnectionError, TimeoutError) as exc:
                outcome = "retry"  # the caller releases the endpoint and decides
                raise Unreachable(
                    f"endpoint {url} failed before answering ({_why(exc)})",
                    body is None or body.replayable,
                ) from None
            except aiohttp.ClientError as exc:
                outcome = "backend_error"
                return error(502, f"pool {pool.name!r}: endpoint {url}: {_why(exc)}",
                             "bad_gateway")  # fmt: skip
            try:
                response, outcome = await self._relay(request, upstream)
            finally:
                upstream.release()
            return response
        except asyncio.CancelledError:  # the client left, or the drain ran out
            outcome = "shutdown" if self.draining else "client_gone"
            raise
        finally:
            pool.in_flight -= 1
            if outcome != "retry":
                pool.release(url)
                latency = loop.time() - started if outcome == "served" else None
                pool.record(outcome, hold=held, latency=latency)

    async def _relay(self, request: web.Request, upstream: aiohttp.ClientResponse
                     ) -> tuple[web.StreamResponse, str]:  # fmt: skip
        """Stream the backend's answer to the client as it arrives."""
        response = web.StreamResponse(status=upstream.status, reason=upstream.reason,
                                      headers=response_headers(upstream))  # fmt: skip
        try:
            await response.prepare(request)
        except ConnectionError:
            return response, "client_gone"
        while True:
            try:
                chunk = await upstream.content.readany()
            except (aiohttp.ClientError, TimeoutError) as exc:
                # Part of the answer is out: the client must see it cut, not complete.
                log.info("%s %s: the endpoint broke off its answer (%s)", request.method,
                         request.path, _why(exc))  # fmt: skip
                if request.transport is not None:
                    request.transport.abort()
                return response, "backend_error"
            if not chunk:
                break
            try:
                await response.write(chunk)
            except ConnectionError:
                return response, "client_gone"
        try:
            await response.write_eof()
        except ConnectionError:
            return response, "client_gone"
        return response, "served"


def _add(total: float | None, seconds: float) -> float:
    return (total or 0.0) + seconds


def _why(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
