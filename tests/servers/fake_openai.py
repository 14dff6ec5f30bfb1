"""A small OpenAI-compatible backend (vLLM-shaped) for the activator's tests and benches.

    python -m tests.servers.fake_openai --host 127.0.0.1 --port 8000 --delay-ms 50 --tokens 16

Serves `POST /v1/completions` and `/v1/chat/completions` (with `"stream": true`, SSE
`data: {...}` chunks `chunk_ms` apart ending `data: [DONE]`), `GET /v1/models`, `/health`
and a vLLM-like `/metrics` (vllm:num_requests_waiting, vllm:num_requests_running,
vllm:request_success_total). In-process (`FakeOpenAI`, on the caller's event loop) a test
also sees every request (`seen`) and can hold streams after their first chunk (`gate`);
`FakeOpenAIProcess` runs it as a process on a free port of 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

HOST = "127.0.0.1"
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Seen:
    """One request as the backend got it."""

    method: str
    path: str
    headers: dict[str, str]
    size: int
    sha256: str
    model: str | None
    tag: str | None = None  # the X-Test-Tag header, for tests that follow requests
    at: float = field(default_factory=time.monotonic)


class FakeOpenAI:
    """The backend on an aiohttp server of the running loop."""

    def __init__(
        self,
        name: str = "fake",
        tokens: int = 8,
        delay_ms: float = 0.0,
        chunk_ms: float = 5.0,
        model: str = "fake-model",
    ) -> None:
        self.name = name
        self.tokens = tokens
        self.delay = delay_ms / 1000
        self.chunk = chunk_ms / 1000
        self.model = model
        self.seen: list[Seen] = []
        self.order: list[str | None] = []
        """X-Test-Tag of each request, in the order their handlers started."""
        self.gate: asyncio.Event | None = None
        """When set (to an unset Event), streams pause after their first chunk until it is."""
        self.first_sent = asyncio.Event()
        self.last_sent = asyncio.Event()
        self.body_started = asyncio.Event()
        self.running = 0
        self.waiting = 0
        self.succeeded = 0
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def app(self) -> web.Application:
        app = web.Application(client_max_size=1 << 30)
        app.router.add_post("/v1/completions", self._complete)
        app.router.add_post("/v1/chat/completions", self._complete)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/health", self._health)
        app.router.add_route("*", "/echo/{tail:.*}", self._echo)
        return app

    async def start(self, port: int = 0, host: str = HOST) -> FakeOpenAI:
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port).start()
        self.port = int(self._runner.addresses[0][1])
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- handlers ----------------------------------------------------------------------------
    async def _read(self, request: web.Request) -> tuple[bytes, Seen]:
        self.order.append(request.headers.get("X-Test-Tag"))
        digest, chunks = hashlib.sha256(), []
        async for chunk in request.content.iter_any():
            self.body_started.set()
            digest.update(chunk)
            chunks.append(chunk)
        data = b"".join(chunks)
        model = None
        with contextlib.suppress(ValueError, AttributeError):
            model = json.loads(data).get("model")
        seen = Seen(request.method, request.path_qs, dict(request.headers), len(data),
                    digest.hexdigest(), model, request.headers.get("X-Test-Tag"))  # fmt: skip
        self.seen.append(seen)
        return data, seen

    async def _complete(self, request: web.Request) -> web.StreamResponse:
        data, seen = await self._read(request)
        try:
            body = json.loads(data or b"{}")
        except ValueError:
            return web.json_response({"error": {"message": "body is not JSON"}}, status=400)
        chat = request.path.endswith("/chat/completions")
        count = int(body.get("max_tokens") or self.tokens)
        model = str(body.get("model") or self.model)
        self.running += 1
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
            if body.get("stream"):
                return await self._stream(request, chat, model, count)
            text = " ".join(f"tok{i}" for i in range(count))
            choice: dict[str, Any] = {"index": 0, "finish_reason": "length"}
            if chat:
                choice["message"] = {"role": "assistant", "content": text}
            else:
                choice["text"] = text
            self.succeeded += 1
            return web.json_response({
                "id": f"cmpl-{len(self.seen)}", "object": "chat.completion" if chat
                else "text_completion", "created": int(time.time()), "model": model,
                "backend": self.name, "choices": [choice],
                "usage": {"prompt_tokens": seen.size // 4, "completion_tokens": count,
                          "total_tokens": seen.size // 4 + count},
            })  # fmt: skip
        finally:
            self.running -= 1

    async def _stream(self, request: web.Request, chat: bool, model: str, count: int
                      ) -> web.StreamResponse:  # fmt: skip
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                               "Cache-Control": "no-cache"})  # fmt: skip
        await response.prepare(request)
        for i in range(count):
            choice: dict[str, Any] = {"index": 0, "finish_reason": None}
            if chat:
                choice["delta"] = {"content": f"tok{i} "}
            else:
                choice["text"] = f"tok{i} "
            event = {"id": "cmpl-stream", "object": "chat.completion.chunk" if chat
                     else "text_completion", "model": model, "backend": self.name,
                     "choices": [choice]}  # fmt: skip
            await response.write(f"data: {json.dumps(event)}\n\n".encode())
            if i == 0:
                self.first_sent.set()
                if self.gate is not None:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.gate.wait(), 10)
            elif self.chunk:
                await asyncio.sleep(self.chunk)
        await response.write(b"data: [DONE]\n\n")
        self.last_sent.set()
        self.succeeded += 1
        await response.write_eof()
        return response

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [
            {"id": self.model, "object": "model", "owned_by": self.name}]})  # fmt: skip

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "backend": self.name})

    async def _echo(self, request: web.Request) -> web.Response:
        """Answers what it got (tests of headers, methods and bodies)."""
        data, seen = await self._read(request)
        return web.json_response({"backend": self.name, "method": seen.method,
                                  "path": seen.path, "headers": seen.headers,
                                  "size": seen.size, "sha256": seen.sha256},
                                 headers={"Set-Cookie": "a=b", "X-Backend": self.name})  # fmt: skip

    async def _metrics(self, request: web.Request) -> web.Response:
        labels = f'model_name="{self.model}"'
        text = (
            "# TYPE vllm:num_requests_waiting gauge\n"
            f"vllm:num_requests_waiting{{{labels}}} {float(self.waiting)}\n"
            "# TYPE vllm:num_requests_running gauge\n"
            f"vllm:num_requests_running{{{labels}}} {float(self.running)}\n"
            "# TYPE vllm:request_success_total counter\n"
            f'vllm:request_success_total{{finished_reason="length",{labels}}} '
            f"{float(self.succeeded)}\n"
        )
        return web.Response(text=text, content_type="text/plain")


class FakeOpenAIProcess:
    """`python -m tests.servers.fake_openai` on a free port of 127.0.0.1; `stop` is
    idempotent and ends with SIGKILL where SIGTERM was not enough."""

    def __init__(self, workdir: Path, port: int | None = None, delay_ms: float = 0.0,
                 tokens: int = 8) -> None:  # fmt: skip
        from .processes import free_port

        self.port = port or free_port()
        self.log = workdir / f"fake-openai-{self.port}.log"
        self._argv = [sys.executable, "-m", "tests.servers.fake_openai", "--host", HOST,
                      "--port", str(self.port), "--delay-ms", str(delay_ms),
                      "--tokens", str(tokens)]  # fmt: skip
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self, timeout: float = 15.0) -> FakeOpenAIProcess:
        from .processes import ServerStartError, wait_until

        self.log.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                self._argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
        if not wait_until(self._answers, timeout):
            tail = self.log.read_text(errors="replace")[-2000:]
            self.stop()
            raise ServerStartError(f"fake OpenAI did not answer on {self.url}; log:\n{tail}")
        return self

    def _answers(self) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            raise RuntimeError("exited during startup")
        with urllib.request.urlopen(f"{self.url}/v1/models", timeout=1) as r:
            return bool(r.status == 200)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default=HOST)
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--delay-ms", type=float, default=0.0, help="before the first token")
    parser.add_argument("--chunk-ms", type=float, default=5.0, help="between streamed chunks")
    parser.add_argument("--tokens", type=int, default=8, help="tokens when max_tokens is unset")
    parser.add_argument("--name", default="fake")
    args = parser.parse_args(argv)

    async def run() -> None:
        server = FakeOpenAI(args.name, args.tokens, args.delay_ms, args.chunk_ms)
        await server.start(args.port, args.host)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await server.stop()

    asyncio.run(run())


if __name__ == "__main__":
    main()
