"""Request bodies: the OpenAI `model` field read as the body streams in, and the body sent on.

Why incremental: a chat request may carry megabytes of context (and images), and the
activator must not hold a whole body in memory to route it. `read_model` feeds the stream
to ijson's push parser until the top-level `model` appears (usually in the first bytes),
the JSON ends, it turns out not to be JSON, or `limit` bytes were read; `Body` then sends
the bytes already read followed by the rest of the stream, as it arrives.

A connection that fails before the backend answered may be retried elsewhere only if the
body can be sent again: `Body` keeps what it sent while that is at most `replay_limit`
bytes (or what routing read anyway); past that a failure is final.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import ijson
from aiohttp import StreamReader

SNIFF_LIMIT = 16 * 1024 * 1024
"""Most body bytes read looking for `model`; a body that has it later routes as having none."""
REPLAY_LIMIT = 1024 * 1024
"""Most body bytes kept to send again when an endpoint fails before answering."""


async def read_model(
    content: StreamReader, limit: int = SNIFF_LIMIT
) -> tuple[str | None, list[bytes]]:
    """The top-level string `model` of a JSON body (None if there is none), and the chunks
    read to find it, which the caller must send on first."""
    events = ijson.sendable_list()
    parser = ijson.parse_coro(events)
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = await content.readany()
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
        try:
            parser.send(chunk)
        except ijson.JSONError:
            return None, chunks
        for prefix, event, value in events:
            if prefix == "model":
                return (value if event == "string" else None), chunks
            if prefix == "" and event == "end_map":
                return None, chunks
        events.clear()
    return None, chunks


class Body:
    """A request's body for one or more attempts: `head` (already read), then `content`."""

    def __init__(
        self, head: list[bytes], content: StreamReader | None, replay_limit: int = REPLAY_LIMIT
    ) -> None:
        self._content = content
        self._taken: list[bytes] | None = list(head)
        self._size = sum(len(c) for c in head)
        self._limit = max(replay_limit, self._size)
        self.started = False

    @property
    def replayable(self) -> bool:
        """Whether a new attempt can send the whole body again."""
        return self._taken is not None

    async def stream(self) -> AsyncIterator[bytes]:
        """The whole body, for one attempt."""
        self.started = True
        if self._taken is None:
            raise RuntimeError("the body was sent already and is too large to send again")
        taken = self._taken
        for chunk in list(taken):
            yield chunk
        if self._content is None:
            return
        while True:
            chunk = await self._content.readany()
            if not chunk:
                return
            self._size += len(chunk)
            if self._taken is not None:
                if self._size <= self._limit:
                    self._taken.append(chunk)
                else:
                    self._taken = None
            yield chunk
