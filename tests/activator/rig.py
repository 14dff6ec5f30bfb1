"""What the activator tests share: configs, a started Activator, fake backends, a client.

Everything listens on 127.0.0.1 with ports the kernel picks. Tests are plain functions
wrapped by `run`, which runs the coroutine on a fresh event loop with a time limit (the
suite has no asyncio plug-in).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp

from autoscaler.activator import Activator
from autoscaler.config import Config, parse_config
from tests.servers.fake_openai import FakeOpenAI

LIMIT = 20.0


def run(test: Callable[..., Awaitable[None]]) -> Callable[..., None]:
    @functools.wraps(test)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        asyncio.run(asyncio.wait_for(test(*args, **kwargs), LIMIT))

    return wrapper


def pool(name: str, urls: list[str] | None = None, service: str | None = None,
         **activator: Any) -> dict[str, Any]:  # fmt: skip
    """A pool dict; with neither `urls` nor `service`, a Service backend (endpoints set by
    the test)."""
    backend: dict[str, Any] = {"urls": urls} if urls else {"service": service or name}
    if "backend_port" in activator:
        backend["port"] = activator.pop("backend_port")
    return {
        "name": name,
        "target": {"kind": "deployment", "namespace": "llm", "name": name},
        "max": 4,
        "signals": {"queue": {"source": {"type": "static", "value": 0}}},
        "policy": {"type": "queue-depth", "target_per_replica": 8},
        "activator": {"backend": backend, **activator},
    }  # fmt: skip


def config(*pools: dict[str, Any]) -> Config:
    document = {"installation": {"id": "test"}, "pools": list(pools)}
    return parse_config(json.dumps(document), "<test>")


@contextlib.asynccontextmanager
async def started(cfg: Config, **kwargs: Any) -> AsyncIterator[Activator]:
    """An Activator on free ports; Service backends are not watched unless `list_slices`
    is given (the test sets their endpoints)."""
    kwargs.setdefault("watch", "list_slices" in kwargs)
    kwargs.setdefault("cooldown", 0.1)
    activator = Activator(cfg, **kwargs)
    await activator.start()
    try:
        yield activator
    finally:
        await activator.stop()


@contextlib.asynccontextmanager
async def backends(count: int = 1, **kwargs: Any) -> AsyncIterator[list[FakeOpenAI]]:
    servers = [await FakeOpenAI(name=f"b{i}", **kwargs).start() for i in range(count)]
    try:
        yield servers
    finally:
        for server in servers:
            await server.stop()


@contextlib.asynccontextmanager
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=LIMIT))
    try:
        yield session
    finally:
        await session.close()


async def until(check: Callable[[], bool], timeout: float = 5.0, what: str = "") -> float:
    """Seconds until `check()` held; AssertionError after `timeout`."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"not within {timeout}s: {what or check}")
        await asyncio.sleep(0.002)
    return time.monotonic() - start


async def get_json(session: aiohttp.ClientSession, url: str) -> Any:
    async with session.get(url) as response:
        return await response.json()


def completion(model: str = "m", stream: bool = False, **extra: Any) -> dict[str, Any]:
    return {"model": model, "prompt": "hello", "max_tokens": 4, "stream": stream, **extra}
