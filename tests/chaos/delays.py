"""Slow answers, so that a SIGKILL lands in the middle of a call, and a ledger of what each
killed process changed.

- `ChaosMotoServer`: the fault-injecting moto server of tests/aws with a delay in front of
  it: a call from an `autoscaler run` process waits `delay / 2` before moto carries it out
  and `delay / 2` before its answer goes back. A process killed in the first half leaves a
  call that still lands (the request was sent); killed in the second, one whose answer it
  never read. Every EC2 call that launches, starts, stops or terminates instances is
  recorded with the pool's active instances just before and just after moto carried it out
  (mutating calls are serialised for that), and with the caller: each process has its own
  access key, so a call that lands after its caller died is still its caller's.
  With `client_tokens` on, EC2's ClientToken is honoured as EC2 documents it and moto does
  not: a launch repeated with a token already used gets the first answer again (nothing
  launched), or, with other parameters, `IdempotentParameterMismatch`.
- `DelayProxy`: a TCP proxy that holds every chunk `delay / 2` in each direction, for the
  Kubernetes API server (TLS passes through untouched).

Calls made with any other access key (the test's own setup and checks) pass undelayed and
unrecorded. Test-only.
"""

from __future__ import annotations

import contextlib
import io
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from moto.core import DEFAULT_ACCOUNT_ID
from moto.ec2.models import ec2_backends
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

from tests.aws.faults import FaultInjector, FaultyMotoServer, _error, _run
from tests.aws.helpers import REGION

PROCESS_KEY = "CHAOS"
"""Access keys starting with this are `autoscaler run` processes: delayed and recorded."""
LAUNCHES = frozenset({"RunInstances", "CreateFleet", "StartInstances"})
REMOVALS = frozenset({"TerminateInstances", "StopInstances"})
TOKENED = frozenset({"RunInstances", "CreateFleet"})
ACTIVE = ("pending", "running")
StartResponse = Callable[..., Any]
Answer = tuple[str, list[Any], str]
"""HTTP status line, headers, body."""


@dataclass(frozen=True)
class Mutation:
    """One EC2 call that changed instances, as moto carried it out."""

    key: str
    """The caller's access key (one per process)."""
    action: str
    at: float
    """time.monotonic() when moto carried it out."""
    before: int
    """The watched pool's active (pending, running) instances just before."""
    after: int
    created: tuple[str, ...]
    """Ids of instances that did not exist before (any tags)."""
    started: tuple[str, ...]
    """Ids of the pool's instances that became active (launched or started)."""
    removed: tuple[str, ...]
    """Ids of the pool's instances that stopped being active."""


@dataclass(frozen=True)
class Seen:
    """An instance as moto holds it."""

    state: str
    tags: dict[str, str]


def moto_instances() -> dict[str, Seen]:
    """Every instance moto holds in the region (any state, any tags), read in process."""
    backend = ec2_backends[DEFAULT_ACCOUNT_ID][REGION]
    for _ in range(20):
        try:
            return {
                i.id: Seen(i.state, {t["key"]: t["value"] for t in i.get_tags()})
                for i in backend.all_instances()
            }
        except RuntimeError:  # a concurrent describe changed a dict under us: read again
            time.sleep(0.01)
    raise RuntimeError("could not read moto's instances")


class ChaosInjector(FaultInjector):
    """tests/aws's FaultInjector with the delay and the ledger in front of it."""

    def __init__(self, app: Callable[..., Any]) -> None:
        super().__init__(app)
        self.delay = 0.0
        self.ledger: list[Mutation] = []
        self.watched: Callable[[Seen], bool] = lambda _: False
        """Which instances are the pool's (set by the scenario)."""
        self._mutating = threading.Lock()
        self._state = threading.Lock()
        self._busy: Counter[str] = Counter()
        self._changing: Counter[str] = Counter()
        self._first: dict[str, float] = {}
        self.client_tokens = False
        """Honour ClientToken as EC2 does (moto ignores it)."""
        self._tokens: dict[str, tuple[tuple[tuple[str, str], ...], Answer]] = {}
        self.replays = 0
        """Launches answered again from their ClientToken (nothing launched)."""
        self.mismatches = 0
        """Launches refused with IdempotentParameterMismatch."""

    # -- what the driver asks ---------------------------------------------------------
    def first_call(self, key: str) -> float | None:
        """When a call with this key first arrived (monotonic), or None."""
        with self._state:
            return self._first.get(key)

    def busy(self, key: str) -> bool:
        """A call of this key is held here or inside moto right now."""
        with self._state:
            return self._busy[key] > 0

    def changing(self, key: str) -> bool:
        """A launch or removal of this key is held here or inside moto right now."""
        with self._state:
            return self._changing[key] > 0

    def clear(self) -> None:
        with self._state:
            self.ledger.clear()
            self._busy.clear()
            self._changing.clear()
            self._first.clear()
            self._tokens.clear()
            self.replays = self.mismatches = 0
        self.delay = 0.0
        self.client_tokens = False
        self.watched = lambda _: False

    # -- WSGI ---------------------------------------------------------------------------
    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        key = _access_key(environ.get("HTTP_AUTHORIZATION", ""))
        if not key.startswith(PROCESS_KEY):
            return super().__call__(environ, start_response)
        action, params = _action(environ)
        changes = action in LAUNCHES | REMOVALS
        with self._state:
            self._busy[key] += 1
            self._changing[key] += changes
            self._first.setdefault(key, time.monotonic())
        try:
            time.sleep(self.delay / 2)  # a kill now: the call still lands
            if changes:
                with self._mutating:
                    before = moto_instances()
                    status, headers, text = self._launch_once(environ, action, params)
                    after = moto_instances()
                    self._record(key, action, before, after)
            else:
                status, headers, text = self._carry_out(environ)
            time.sleep(self.delay / 2)  # a kill now: the answer is lost
        finally:
            with self._state:
                self._busy[key] -= 1
                self._changing[key] -= changes
        data = text.encode()
        headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
        start_response(status, [*headers, ("Content-Length", str(len(data)))])
        return [data]

    def _carry_out(self, environ: dict[str, Any]) -> Answer:
        return _run(lambda e, s: FaultInjector.__call__(self, e, s), environ)

    def _launch_once(self, environ: dict[str, Any], action: str, params: dict[str, str]) -> Answer:
        """Carry the call out, unless its ClientToken was used before (EC2's idempotency)."""
        token = params.get("ClientToken") if self.client_tokens and action in TOKENED else None
        if not token:
            return self._carry_out(environ)
        asked = tuple(sorted((k, v) for k, v in params.items() if k != "ClientToken"))
        known = self._tokens.get(token)
        if known is None:
            answer = self._carry_out(environ)
            if answer[0].startswith("2"):
                self._tokens[token] = (asked, answer)
            return answer
        if known[0] == asked:
            self.replays += 1
            return known[1]
        self.mismatches += 1
        captured: dict[str, Any] = {}

        def capture(status: str, headers: list[Any], exc_info: Any = None) -> None:
            captured.update(status=status, headers=headers)

        message = f"Client token {token} was used before with other parameters"
        body = b"".join(_error(capture, "ec2", "IdempotentParameterMismatch", message))
        return captured["status"], captured["headers"], body.decode()

    def _record(
        self, key: str, action: str, before: dict[str, Seen], after: dict[str, Seen]
    ) -> None:
        def active(seen: dict[str, Seen]) -> set[str]:
            return {i for i, s in seen.items() if s.state in ACTIVE and self.watched(s)}

        was, now = active(before), active(after)
        mutation = Mutation(
            key,
            action,
            time.monotonic(),
            len(was),
            len(now),
            tuple(sorted(set(after) - set(before))),
            tuple(sorted(now - was)),
            tuple(sorted(was - now)),
        )
        with self._state:
            self.ledger.append(mutation)


class ChaosMotoServer(FaultyMotoServer):
    """moto's threaded server behind a ChaosInjector (delay 0 until a scenario sets it)."""

    def __init__(self) -> None:
        super().__init__()
        self.injector = ChaosInjector(DomainDispatcherApplication(create_backend_app))

    @property
    def chaos(self) -> ChaosInjector:
        assert isinstance(self.injector, ChaosInjector)
        return self.injector


def _access_key(authorization: str) -> str:
    m = re.search(r"Credential=([^/]+)/", authorization)
    return m.group(1) if m else ""


def _action(environ: dict[str, Any]) -> tuple[str, dict[str, str]]:
    """The call's action (query protocol `Action`, or JSON protocol `X-Amz-Target`) and
    its query parameters; the body is put back for the next layer."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    environ["wsgi.input"] = io.BytesIO(body)
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    if target:
        return target.rpartition(".")[2], {}
    params = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    return params.get("Action", ""), params


# -- Kubernetes: a TCP proxy that delays --------------------------------------------------
class _Link:
    """One proxied connection: what is held in it and whether a request awaits its answer."""

    def __init__(self, client: socket.socket, upstream: socket.socket) -> None:
        self.client = client
        self.upstream = upstream
        self.held = 0
        self.awaiting = False

    def close(self) -> None:
        for s in (self.client, self.upstream):
            with contextlib.suppress(OSError):
                s.close()


class DelayProxy:
    """127.0.0.1:<port> -> `upstream`, every chunk held `delay / 2` in each direction."""

    def __init__(self, upstream: tuple[str, int], delay: float) -> None:
        self.upstream = upstream
        self.delay = delay
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._links: set[_Link] = set()
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self.on_accept: Callable[[], None] | None = None
        """Called for each new connection (a process has begun to talk)."""

    def start(self) -> DelayProxy:
        threading.Thread(target=self._accept, name="delay-proxy", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        self._listener.close()
        with self._lock:
            links, self._links = set(self._links), set()
        for link in links:
            link.close()

    def in_flight(self) -> bool:
        """A chunk is held, or a request has been sent and its answer not yet delivered."""
        with self._lock:
            return any(link.held or link.awaiting for link in self._links)

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.upstream, timeout=10)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            link = _Link(client, upstream)
            with self._lock:
                self._links.add(link)
            if self.on_accept is not None:
                self.on_accept()
            for src, dst, request in ((client, upstream, True), (upstream, client, False)):
                threading.Thread(
                    target=self._pump, args=(link, src, dst, request), daemon=True
                ).start()

    def _pump(self, link: _Link, src: socket.socket, dst: socket.socket, request: bool) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                with self._lock:
                    link.held += 1
                    if request:
                        link.awaiting = True
                time.sleep(self.delay / 2)
                try:
                    dst.sendall(data)
                finally:
                    with self._lock:
                        link.held -= 1
                        if not request:
                            link.awaiting = False
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)
            if not request:  # the server is done with this connection
                with self._lock:
                    self._links.discard(link)
                link.close()
