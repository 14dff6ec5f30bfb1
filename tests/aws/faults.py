"""A fault-injecting WSGI layer in front of moto's server, so AWS's failure modes travel
over real HTTP and through botocore's real retry and parsing.

moto never runs out of capacity and never throttles. `FaultInjector` answers chosen
requests the way EC2 does instead: InsufficientInstanceCapacity as HTTP 500 and
RequestLimitExceeded as HTTP 503 with EC2's XML error body; for CreateFleet (type instant)
a capacity fault is not an HTTP error but an entry in the answer's `errorSet` while the
other offerings of the same call are still launched, as on AWS. Faults match by action,
instance type, subnet, market and any parameter value. It can also lose the answer of a
call that moto carried out (the caller sees nothing until released), to stand in for a
crash between a call and its answer.

Test-only; it must never change a request it does not match.
"""

from __future__ import annotations

import io
import re
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode
from xml.sax.saxutils import escape

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from moto.server import ThreadedMotoServer
from werkzeug.serving import make_server

from autoscaler.clients.aws import CAPACITY_CODES

STATUS = {"InsufficientInstanceCapacity": 500, "RequestLimitExceeded": 503, "InternalError": 500}
_OVERRIDE = re.compile(r"^LaunchTemplateConfigs\.(\d+)\.Overrides\.(\d+)\.(.+)$")
StartResponse = Callable[..., Any]


@dataclass
class Fault:
    """Answer matching requests with `code` instead of moto's answer.

    `times` limits how many requests it hits (None: all). `room` (RunInstances, CreateFleet)
    lets that many instances launch before the fault applies: partial capacity (a
    CreateFleet then launches fewer than its target, even below its MinTargetCapacity).
    `lose_answer` lets moto carry the call out and then withholds the answer until
    `release()`.
    """

    action: str
    code: str = "InsufficientInstanceCapacity"
    instance_type: str | None = None
    subnet: str | None = None
    market: str | None = None
    contains: str | None = None
    times: int | None = None
    room: int | None = None
    lose_answer: bool = False
    hits: int = 0
    released: threading.Event = field(default_factory=threading.Event)

    def offering_matches(self, instance_type: str | None, subnet: str | None, market: str) -> bool:
        return (
            (self.instance_type is None or self.instance_type == instance_type)
            and (self.subnet is None or self.subnet == subnet)
            and (self.market is None or self.market == market)
        )

    def release(self) -> None:
        self.released.set()

    @property
    def spent(self) -> bool:
        return self.times is not None and self.hits >= self.times


@dataclass(frozen=True)
class Call:
    """One request the injector saw: action, service and its parameters."""

    action: str
    service: str
    params: dict[str, str]

    def overrides(self) -> list[tuple[str | None, str | None]]:
        """(instance type, subnet) of each CreateFleet override, in request order."""
        found: dict[tuple[int, int], dict[str, str]] = {}
        for key, value in self.params.items():
            m = _OVERRIDE.match(key)
            if m:
                found.setdefault((int(m[1]), int(m[2])), {})[m[3]] = value
        return [(o.get("InstanceType"), o.get("SubnetId")) for _, o in sorted(found.items())]


class FaultInjector:
    """WSGI middleware: records every call and applies the first matching fault."""

    def __init__(self, app: Callable[..., Any]) -> None:
        self.app = app
        self.faults: list[Fault] = []
        self.calls: list[Call] = []
        self._lock = threading.Lock()

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self.faults.append(fault)
        return fault

    def reset(self) -> None:
        with self._lock:
            for fault in self.faults:
                fault.release()
            self.faults.clear()
            self.calls.clear()

    def calls_to(self, action: str) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.action == action]

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        params = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        action = params.get("Action") or target.rpartition(".")[2]
        service = _service(environ.get("HTTP_AUTHORIZATION", ""))
        call = Call(action, service, params)
        with self._lock:
            self.calls.append(call)
        if action == "CreateFleet":
            return self._create_fleet(environ, start_response, call)
        fault = self._take(call, *_offering(call))
        if fault is None:
            return self.app(environ, start_response)
        if fault.lose_answer:
            return self._lose_answer(environ, start_response, fault)
        if fault.room is not None and fault.room > 0 and action == "RunInstances":
            return self._partial_run(environ, start_response, call, fault)
        return _error(start_response, service, fault.code, _message(fault.code, call))

    # -- matching --------------------------------------------------------------------
    def _take(
        self, call: Call, instance_type: str | None, subnet: str | None, market: str
    ) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.action != call.action or fault.spent:
                    continue
                if not fault.offering_matches(instance_type, subnet, market):
                    continue
                if fault.contains and fault.contains not in call.params.values():
                    continue
                fault.hits += 1
                return fault
        return None

    # -- CreateFleet: per-offering errors in a 200 answer ----------------------------
    def _create_fleet(
        self, environ: dict[str, Any], start_response: StartResponse, call: Call
    ) -> Iterable[bytes]:
        market = call.params.get("TargetCapacitySpecification.DefaultTargetCapacityType", "")
        overrides = call.overrides()
        short = self._fleet_room(call, overrides, market)
        if short is not None:
            return self._partial_fleet(environ, start_response, call, short)
        whole = self._take_fleet(call, overrides, market, whole_call=True)
        if whole is not None:
            if whole.lose_answer:
                return self._lose_answer(environ, start_response, whole)
            return _error(start_response, call.service, whole.code, _message(whole.code, call))
        failed: dict[int, tuple[str | None, str | None, str]] = {}
        for index, (kind, subnet) in enumerate(overrides, start=1):
            fault = self._take_fleet(call, [(kind, subnet)], market, whole_call=False)
            if fault is not None:
                failed[index] = (kind, subnet, fault.code)
        if not failed:
            return self.app(environ, start_response)
        errors = "".join(_fleet_error(k, s, market, code) for k, s, code in failed.values())
        if len(failed) == len(overrides):
            answer = (
                '<CreateFleetResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">'
                f"<requestId>{uuid.uuid4()}</requestId><fleetId>fleet-{uuid.uuid4()}</fleetId>"
                f"<errorSet>{errors}</errorSet><fleetInstanceSet/></CreateFleetResponse>"
            )
            return _respond(start_response, "200 OK", answer, "text/xml")
        body = urlencode(_drop_overrides(call.params, set(failed))).encode()
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        status, headers, text = _run(self.app, environ)
        spliced = f"<errorSet>{errors}</errorSet></CreateFleetResponse>"
        text = text.replace("</CreateFleetResponse>", spliced)
        kind = dict(headers).get("Content-Type", "text/xml")
        return _respond(start_response, status, text, kind)

    def _take_fleet(
        self,
        call: Call,
        overrides: list[tuple[str | None, str | None]],
        market: str,
        whole_call: bool,
    ) -> Fault | None:
        """A fault for the whole call (throttling, a lost answer: any override matches) or
        for one override (capacity codes)."""
        with self._lock:
            for fault in self.faults:
                if fault.action != "CreateFleet" or fault.spent or fault.room is not None:
                    continue
                per_offering = fault.code in CAPACITY_CODES and not fault.lose_answer
                if per_offering == whole_call:
                    continue
                if not any(fault.offering_matches(k, s, market) for k, s in overrides):
                    continue
                if fault.contains and fault.contains not in call.params.values():
                    continue
                fault.hits += 1
                return fault
        return None

    def _fleet_room(
        self, call: Call, overrides: list[tuple[str | None, str | None]], market: str
    ) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.action != "CreateFleet" or fault.room is None or fault.spent:
                    continue
                if any(fault.offering_matches(k, s, market) for k, s in overrides):
                    return fault
        return None

    def _partial_fleet(
        self, environ: dict[str, Any], start_response: StartResponse, call: Call, fault: Fault
    ) -> Iterable[bytes]:
        """Launch at most the fault's room; the rest is an InsufficientInstanceCapacity."""
        asked = int(call.params.get("TargetCapacitySpecification.TotalTargetCapacity", "1"))
        market = call.params.get("TargetCapacitySpecification.DefaultTargetCapacityType", "")
        with self._lock:
            granted = min(fault.room or 0, asked)
            fault.room = (fault.room or 0) - granted
            fault.hits += 1
        kind, subnet = call.overrides()[0]
        errors = _fleet_error(kind, subnet, market, fault.code) if granted < asked else ""
        if granted == 0:
            answer = (
                '<CreateFleetResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">'
                f"<requestId>{uuid.uuid4()}</requestId><fleetId>fleet-{uuid.uuid4()}</fleetId>"
                f"<errorSet>{errors}</errorSet><fleetInstanceSet/></CreateFleetResponse>"
            )
            return _respond(start_response, "200 OK", answer, "text/xml")
        params = dict(call.params)
        params["TargetCapacitySpecification.TotalTargetCapacity"] = str(granted)
        for key in ("OnDemandOptions.MinTargetCapacity", "SpotOptions.MinTargetCapacity"):
            if key in params:
                params[key] = str(granted)
        body = urlencode(params).encode()
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        status, headers, text = _run(self.app, environ)
        if errors:
            text = text.replace(
                "</CreateFleetResponse>", f"<errorSet>{errors}</errorSet></CreateFleetResponse>"
            )
        return _respond(start_response, status, text, dict(headers).get("Content-Type", "text/xml"))

    # -- other behaviours ------------------------------------------------------------
    def _lose_answer(
        self, environ: dict[str, Any], start_response: StartResponse, fault: Fault
    ) -> Iterable[bytes]:
        _run(self.app, environ)  # moto carries the call out ...
        fault.released.wait(timeout=60)  # ... and the caller hears nothing until released
        return _error(start_response, "ec2", "InternalError", "the answer was lost")

    def _partial_run(
        self, environ: dict[str, Any], start_response: StartResponse, call: Call, fault: Fault
    ) -> Iterable[bytes]:
        room = fault.room or 0
        asked = int(call.params.get("MaxCount", "1"))
        granted = min(room, asked)
        with self._lock:
            fault.room = room - granted
            fault.hits -= 1  # a request that fits is not a fault hit
        # moto launches MinCount instances, AWS as many as it can up to MaxCount.
        params = dict(call.params, MaxCount=str(granted), MinCount=str(granted))
        body = urlencode(params).encode()
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        return self.app(environ, start_response)


class FaultyMotoServer(ThreadedMotoServer):
    """moto's threaded server with a FaultInjector in front of its WSGI app."""

    def __init__(self) -> None:
        super().__init__(ip_address="127.0.0.1", port=0, verbose=False)
        self.injector = FaultInjector(DomainDispatcherApplication(create_backend_app))

    def _server_entry(self) -> None:
        self._server = make_server(
            self._ip_address,
            self._port,
            self.injector,
            True,
            request_handler=_QuietHandler,
        )
        self._server_ready_event.set()
        self._server.serve_forever()

    @property
    def url(self) -> str:
        host, port = self.get_host_and_port()
        return f"http://{host}:{port}"


class _QuietHandler(MotoRequestHandler):
    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass


# -- helpers -------------------------------------------------------------------------------
def _service(authorization: str) -> str:
    m = re.search(r"Credential=[^/]+/[^/]+/[^/]+/([^/]+)/", authorization)
    return m.group(1) if m else ""


def _offering(call: Call) -> tuple[str | None, str | None, str]:
    spot = call.params.get("InstanceMarketOptions.MarketType") == "spot"
    market = "spot" if spot else "on-demand"
    return call.params.get("InstanceType"), call.params.get("SubnetId"), market


def _message(code: str, call: Call | str | None) -> str:
    if code == "InsufficientInstanceCapacity":
        kind = call.params.get("InstanceType") if isinstance(call, Call) else call
        return (
            f"We currently do not have sufficient {kind or 'the requested'} capacity in the "
            "Availability Zone you requested. Our system will be working on provisioning "
            "additional capacity."
        )
    if code == "RequestLimitExceeded":
        return "Request limit exceeded."
    return f"injected {code}"


def _error(start_response: StartResponse, service: str, code: str, message: str) -> list[bytes]:
    status = STATUS.get(code, 400)
    reason = {400: "Bad Request", 500: "Internal Server Error", 503: "Service Unavailable"}
    if service == "ec2":
        text = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Response><Errors><Error><Code>{escape(code)}</Code>"
            f"<Message>{escape(message)}</Message></Error></Errors>"
            f"<RequestID>{uuid.uuid4()}</RequestID></Response>"
        )
    else:  # the query protocol's shape (Auto Scaling, CloudWatch's older protocol, ...)
        text = (
            '<ErrorResponse xmlns="https://amazonaws.com/"><Error><Type>Sender</Type>'
            f"<Code>{escape(code)}</Code><Message>{escape(message)}</Message></Error>"
            f"<RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>"
        )
    return _respond(start_response, f"{status} {reason.get(status, 'Error')}", text, "text/xml")


def _respond(start_response: StartResponse, status: str, text: str, kind: str) -> list[bytes]:
    data = text.encode()
    start_response(status, [("Content-Type", kind), ("Content-Length", str(len(data)))])
    return [data]


def _run(app: Callable[..., Any], environ: dict[str, Any]) -> tuple[str, list[Any], str]:
    captured: dict[str, Any] = {}

    def start(status: str, headers: list[Any], exc_info: Any = None) -> None:
        captured["status"], captured["headers"] = status, headers

    chunks = app(environ, start)
    try:
        text = b"".join(chunks).decode()
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
    return captured["status"], captured["headers"], text


def _fleet_error(kind: str | None, subnet: str | None, market: str, code: str) -> str:
    overrides = f"<instanceType>{escape(kind or '')}</instanceType>"
    if subnet:
        overrides += f"<subnetId>{escape(subnet)}</subnetId>"
    return (
        f"<item><launchTemplateAndOverrides><overrides>{overrides}</overrides>"
        f"</launchTemplateAndOverrides><lifecycle>{market}</lifecycle>"
        f"<errorCode>{code}</errorCode><errorMessage>{escape(_message(code, kind))}"
        "</errorMessage></item>"
    )


def _drop_overrides(params: dict[str, str], drop: set[int]) -> dict[str, str]:
    """The parameters without the dropped overrides (1-based), the rest renumbered."""
    keep = sorted({int(m[2]) for k in params if (m := _OVERRIDE.match(k))} - drop)
    renumber = {old: new for new, old in enumerate(keep, start=1)}
    out: dict[str, str] = {}
    for key, value in params.items():
        m = _OVERRIDE.match(key)
        if m is None:
            out[key] = value
        elif int(m[2]) in renumber:
            out[f"LaunchTemplateConfigs.{m[1]}.Overrides.{renumber[int(m[2])]}.{m[3]}"] = value
    return out
