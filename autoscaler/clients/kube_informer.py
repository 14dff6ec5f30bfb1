"""A watched cache of one resource in one namespace: LIST once, then WATCH for changes.

Under a controller, listing a namespace's 1,000 Deployments every tick costs the API server
a 1.7 MB answer and this process its JSON parse, every second. An informer (client-go's
name for the pattern) pays that once: it lists, then follows the watch from the list's
resourceVersion, and every tick reads the cache. The cache is exactly as fresh as the watch.

Staleness is never silent. While the watch is broken (the API server unreachable, access
revoked, a read timeout) the informer reports the error (`error`), and readers refuse the
cache until a new LIST succeeds: a pool whose capacity is unknown holds, it is never
decided on an old count. A watch the server ends at its timeout is resumed from the last
resourceVersion seen; one too old to resume (410 Gone) lists afresh.

Objects are kept as `Raw` JSON without `metadata.managedFields` (client-go informers
strip them with a transform for the same reason: they are most of an object's bytes and
nothing here reads them).
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
from collections.abc import Callable
from typing import Any

from autoscaler.clients.kube import Raw, status_of, translate
from autoscaler.clock import stopwatch
from autoscaler.errors import ProviderError

log = logging.getLogger("autoscaler.clients.kube_informer")

WATCH_SECONDS = 60
"""How long the server keeps one watch open (it then ends it and we resume)."""
READ_MARGIN = 30
"""A watch answering nothing this long past its own timeout is taken as broken."""


class Gone(Exception):
    """The watch's resourceVersion is too old to resume (410): list afresh."""


class Informer:
    """LIST then WATCH `list_call(namespace, ...)` (a kubernetes `list_namespaced_*`
    method) in a daemon thread; `items` holds the objects by name."""

    def __init__(
        self,
        list_call: Callable[..., Any],
        namespace: str,
        what: str,
        *,
        watch_seconds: int = WATCH_SECONDS,
        backoff: tuple[float, float] = (0.5, 30.0),
    ) -> None:
        """`what` names the resource in messages ("Deployments in namespace llm")."""
        self._call = list_call
        self.namespace = namespace
        self.what = what
        self._watch_seconds = watch_seconds
        self._backoff = backoff
        self._lock = threading.Lock()
        self._items: dict[str, Raw] = {}
        self._version = ""
        self._error: ProviderError | None = None
        self._synced = threading.Event()
        self._stop = threading.Event()
        self._response: Any = None
        self.lists = 0  # lists so far (a watch resumed is not a list)
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"watch {what}")

    def start(self) -> Informer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        _interrupt(self._response)
        self._thread.join(timeout=5)

    def items(self, wait: float) -> dict[str, Raw]:
        """A copy of the objects by name, waiting up to `wait` seconds for the first list.
        Raises the ProviderError that broke the watch while it is broken."""
        if not self._synced.wait(wait) and self._error is None:
            raise ProviderError(
                f"{self.what}: not listed within {wait:g}s; the pools there hold until it is",
                "Timeout",
            )
        with self._lock:
            if self._error is not None:
                raise ProviderError(
                    f"{self._error} (the watch is broken; the pools there hold until a new "
                    "list succeeds)",
                    self._error.code,
                )
            return dict(self._items)

    @property
    def error(self) -> ProviderError | None:
        return self._error

    # -- the thread ----------------------------------------------------------------------
    def _run(self) -> None:
        delay = self._backoff[0]
        while not self._stop.is_set():
            try:
                self._list()
                delay = self._backoff[0]
                while not self._stop.is_set():
                    elapsed = stopwatch()
                    self._watch()
                    if elapsed() < 1.0:  # ended at once: do not spin on it
                        self._stop.wait(self._backoff[0])
            except Gone:
                log.info("%s: watch too old to resume; listing again", self.what)
            except Exception as exc:
                if self._stop.is_set():
                    return
                error = exc if isinstance(exc, ProviderError) else translate(exc, self.what)
                with self._lock:
                    first = self._error is None
                    self._error = error
                (log.warning if first else log.debug)("%s; retrying in %.1fs", error, delay)
                self._stop.wait(delay)
                delay = min(delay * 2, self._backoff[1])

    def _list(self) -> None:
        response = self._call(self.namespace, _preload_content=False,
                              _request_timeout=(10, 60))  # fmt: skip
        data = json.loads(response.data)
        items = {}
        for obj in data.get("items") or []:
            items[obj["metadata"]["name"]] = _kept(obj)
        with self._lock:
            self._items = items
            self._version = str((data.get("metadata") or {}).get("resourceVersion") or "")
            self._error = None
            self.lists += 1
        self._synced.set()

    def _watch(self) -> None:
        """Follow one watch until the server ends it; Gone when it cannot resume."""
        try:
            response = self._call(
                self.namespace, watch=True, resource_version=self._version,
                allow_watch_bookmarks=True, timeout_seconds=self._watch_seconds,
                _preload_content=False,
                _request_timeout=(10, self._watch_seconds + READ_MARGIN),
            )  # fmt: skip
        except Exception as exc:
            if status_of(exc) == 410:
                raise Gone from None
            raise
        self._response = response
        try:
            for line in _lines(response):
                if self._stop.is_set():
                    return
                self._apply(json.loads(line))
        finally:
            self._response = None
            response.release_conn()

    def _apply(self, event: dict[str, Any]) -> None:
        kind, obj = event.get("type"), event.get("object") or {}
        if kind == "ERROR":
            if obj.get("code") == 410:
                raise Gone
            raise ProviderError(
                f"{self.what}: the watch failed: {obj.get('message') or obj}",
                f"Kube{obj.get('code') or ''}",
            )
        meta = obj.get("metadata") or {}
        version = str(meta.get("resourceVersion") or self._version)
        with self._lock:
            if kind == "DELETED":
                self._items.pop(str(meta.get("name")), None)
            elif kind in ("ADDED", "MODIFIED"):
                self._items[meta["name"]] = _kept(obj)
            self._version = version


def _interrupt(response: Any) -> None:
    """Wake a thread blocked reading a watch: shut its socket down. `close()` would wait
    for the read to return (the reader holds the buffer's lock), up to the watch's timeout."""
    sock = getattr(getattr(response, "connection", None), "sock", None)
    if sock is None:
        return
    with contextlib.suppress(OSError):  # already closed: nothing is blocked on it
        socket.socket.shutdown(sock, socket.SHUT_RDWR)  # the plain socket's, under any TLS


def _kept(obj: dict[str, Any]) -> Raw:
    (obj.get("metadata") or {}).pop("managedFields", None)
    return Raw(obj)


def _lines(response: Any) -> Any:
    """The watch's events, one JSON document per line, as they arrive."""
    buffer = b""
    for chunk in response.stream(amt=None, decode_content=False):
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            if line.strip():
                yield line
