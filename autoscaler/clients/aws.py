"""Plumbing shared by the AWS adapters: clients, error codes, ownership tags, throttling.

The EC2 and Auto Scaling providers and the SQS and CloudWatch signal sources build their
boto3 clients here, so that every client honours `AWS_ENDPOINT_URL`, the usual credential
chain and botocore's adaptive retry mode the same way, and every AWS error reaches the user
with the pool, the AWS error code and what to do about it.

This module must never create clients from several threads on one boto3 Session without
its lock (Sessions are not thread-safe; clients are), never retry a capacity error in place
(the caller tries the next offering instead), and never sleep on the wall clock: waits go
through the injected Clock so tests run on a FakeClock.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import boto3
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError, NoRegionError

from autoscaler.clock import Clock
from autoscaler.errors import ProviderError, Throttled, translated_by

log = logging.getLogger("autoscaler.aws")
T = TypeVar("T")

THROTTLE_CODES = frozenset(
    {
        "RequestLimitExceeded",  # EC2
        "Throttling",  # Auto Scaling, CloudWatch (query protocol)
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",  # SQS
        "RequestThrottledException",
        "TooManyRequestsException",
        "SlowDown",
    }
)
"""Error codes meaning "slow down": retried with backoff, then raised as Throttled."""

CAPACITY_CODES = frozenset(
    {
        "InsufficientInstanceCapacity",
        "InsufficientCapacity",
        "InsufficientHostCapacity",
        "InsufficientReservedInstanceCapacity",
        "InsufficientFreeAddressesInSubnet",
        "ReservationCapacityExceeded",
        "UnfulfillableCapacity",
        "Unsupported",  # the instance type is not offered in that Availability Zone
        "SpotMaxPriceTooLow",
        "MaxSpotInstanceCountExceeded",
        "InstanceLimitExceeded",
        "VcpuLimitExceeded",
    }
)
"""Error codes meaning "not here, not now": the offering is skipped, the next one tried.

EC2 answers most of them with HTTP 500, which botocore would retry in place (up to
`max_attempts`, seconds each); `AwsClients` stops that, because the next offering is a
better bet than the same one again (Karpenter treats the same list as unfulfillable).
"""

_ADVICE = {
    "UnauthorizedOperation": "grant it to the controller's role (deploy/aws/iam-policy.json)",
    "AccessDenied": "grant it to the controller's role (deploy/aws/iam-policy.json)",
    "AccessDeniedException": "grant it to the controller's role (deploy/aws/iam-policy.json)",
    "AuthFailure": "check the AWS credentials the controller runs with",
    "InvalidClientTokenId": "check the AWS credentials the controller runs with",
    "UnrecognizedClientException": "check the AWS credentials the controller runs with",
    "ExpiredToken": "refresh the AWS credentials the controller runs with",
    "InvalidLaunchTemplateName.NotFoundException": "check target.launch_template and region",
    "InvalidLaunchTemplateId.NotFound": "check target.launch_template and region",
    "InvalidLaunchTemplateId.Malformed": "check target.launch_template",
    "InvalidSubnetID.NotFound": "check target.subnets and region",
    "InvalidAMIID.NotFound": "check target.image_id and region",
    "InvalidAMIID.Malformed": "check target.image_id",
    "InvalidGroup.NotFound": "check target.security_groups and region",
    "IdempotentParameterMismatch": "an earlier attempt of this request used other "
    "parameters; the next tick starts a new request",
    "ValidationError": "check the target's settings against the AWS resource",
}


def error_code(exc: BaseException) -> str:
    """The AWS error code of a ClientError, else the exception's type name."""
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code") or "ClientError")
    return type(exc).__name__


def error_message(exc: BaseException) -> str:
    """The AWS error message of a ClientError, else str(exc)."""
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Message") or exc)
    return str(exc)


def aws_error(what: str, exc: BaseException) -> ProviderError:
    """A ProviderError that names where (`what`: pool and call), the code and what to do."""
    code = error_code(exc)
    advice = _ADVICE.get(code)
    if advice is None and isinstance(exc, BotoCoreError):
        advice = "check the network, AWS_ENDPOINT_URL and the credential chain"
    operation = getattr(exc, "operation_name", None)
    if operation and operation not in what:
        what = f"{what}: {operation}"
    text = f"{what}: {code}: {error_message(exc)}"
    if advice:
        text += f" ({advice})"
    return ProviderError(text, code)


def translated(what: str) -> AbstractContextManager[None]:
    """Turn botocore exceptions escaping the block into ProviderErrors naming `what`."""

    def translate(exc: Exception) -> ProviderError | None:
        if isinstance(exc, NoRegionError):
            return ProviderError(
                f"{what}: no AWS region: set `region` in the target or AWS_REGION in the "
                "environment",
                "NoRegion",
            )
        if isinstance(exc, ClientError | BotoCoreError):
            return aws_error(what, exc)
        return None

    return translated_by(translate)


def _never_retry_capacity(**kwargs: Any) -> bool | None:
    """A `needs-retry` hook: False (do not retry) for capacity errors, else no opinion."""
    response = kwargs.get("response")
    if response is None:
        return None
    parsed = response[1] if isinstance(response, tuple) and len(response) > 1 else None
    code = (parsed or {}).get("Error", {}).get("Code") if isinstance(parsed, dict) else None
    return False if code in CAPACITY_CODES else None


class AwsClients:
    """boto3 clients by (service, region, attempts), each created once under a lock.

    The first `needs-retry` handler that answers decides botocore's retry; the one added
    here answers only for capacity errors, so throttling and transient errors keep the
    adaptive retry (and its client-side rate limiter) while capacity errors return at once.
    """

    def __init__(self, timeout_seconds: float = 30.0) -> None:
        # Typed Any: the stubs type `client()` per literal service name; ours is a variable.
        self._session: Any = boto3.session.Session()
        self._lock = threading.Lock()
        self._clients: dict[tuple[str, str | None, int, str], Any] = {}
        self._timeout = timeout_seconds

    def get(
        self, service: str, region: str | None, max_attempts: int = 4, mode: str = "adaptive"
    ) -> Any:
        key = (service, region, max_attempts, mode)
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                # total_max_attempts counts the first attempt; botocore's max_attempts would not.
                retries: Any = {"mode": mode, "total_max_attempts": max_attempts}
                config = BotoConfig(
                    retries=retries,
                    connect_timeout=min(10.0, self._timeout),
                    read_timeout=self._timeout,
                    user_agent_extra="elastic-autoscaler",
                    max_pool_connections=MAX_POOL_CONNECTIONS,
                )
                client = self._session.client(service, region_name=region, config=config)
                event = client.meta.service_model.service_id.hyphenize()
                client.meta.events.register_first(f"needs-retry.{event}", _never_retry_capacity)
                self._clients[key] = client
        return client


MAX_POOL_CONNECTIONS = 32
"""Connections per client: as many as the widest concurrent reader (SQS reads 32 queues at
once); botocore's default of 10 would make the rest wait for a connection."""


def with_backoff(
    call: Callable[[], T],
    *,
    clock: Clock,
    what: str,
    rounds: int,
    first_wait_seconds: float,
) -> T:
    """`call()`, retried after throttling errors for at most `rounds` more rounds.

    botocore has already retried inside `call`; these rounds add a longer, bounded pause
    (doubling from `first_wait_seconds`, on the injected clock). When they are used up the
    pool gets Throttled and the controller backs it off, so one throttled pool waits
    alone instead of holding the others for minutes.
    """
    wait = first_wait_seconds
    for attempt in range(rounds + 1):
        try:
            return call()
        except ClientError as exc:
            code = error_code(exc)
            if code not in THROTTLE_CODES:
                raise
            if attempt == rounds:
                raise Throttled(
                    f"{what}: throttled by AWS ({code}) after {rounds + 1} round(s) of "
                    "retries; the controller backs this pool off. If it persists, lengthen "
                    "controller.interval or ask AWS for a higher API request rate",
                    code,
                ) from None
            log.warning("%s: %s; retrying in %.1fs", what, code, wait)
            clock.sleep(wait)
            wait *= 2
    raise AssertionError("unreachable")  # pragma: no cover


@dataclass(frozen=True, slots=True)
class Ownership:
    """The tags that mark a resource as this installation's, and the filters that find it.

    `<prefix>/owner` = installation id and `<prefix>/pool` = pool name on every instance
    launched, plus `<prefix>/request-id` = the action that launched it. `<prefix>/busy`,
    when a workload sets it on its own instance (0..1, or true/false), is its idleness.
    """

    owner: str
    prefix: str = "elastic-autoscaler.io"

    @property
    def owner_key(self) -> str:
        return f"{self.prefix.rstrip('/')}/owner"

    @property
    def pool_key(self) -> str:
        return f"{self.prefix.rstrip('/')}/pool"

    @property
    def request_key(self) -> str:
        return f"{self.prefix.rstrip('/')}/request-id"

    @property
    def busy_key(self) -> str:
        return f"{self.prefix.rstrip('/')}/busy"

    def launch_tags(self, pool: str, request_id: str) -> list[dict[str, str]]:
        return [
            {"Key": self.owner_key, "Value": self.owner},
            {"Key": self.pool_key, "Value": pool},
            {"Key": self.request_key, "Value": request_id},
        ]

    def filters(self, pool: str) -> list[dict[str, Any]]:
        return [
            {"Name": f"tag:{self.owner_key}", "Values": [self.owner]},
            {"Name": f"tag:{self.pool_key}", "Values": [pool]},
        ]

    def owns(self, tags: Mapping[str, str], pool: str | None = None) -> bool:
        """True when `tags` say this installation owns the resource (and, if given, pool)."""
        if tags.get(self.owner_key) != self.owner:
            return False
        return pool is None or tags.get(self.pool_key) == pool


def tags_of(resource: Mapping[str, Any]) -> dict[str, str]:
    """An AWS resource's tag list as a dict."""
    return {str(t["Key"]): str(t.get("Value", "")) for t in resource.get("Tags") or ()}


def client_token(request_id: str, attempt: int) -> str:
    """A ClientToken (<= 64 ASCII characters) for one launch call of one action.

    Real EC2 returns the first answer again for a repeated token, so a call retried after
    a lost answer launches nothing twice; the attempt number separates the calls one
    action makes to several offerings.
    """
    digest = hashlib.sha256(request_id.encode()).hexdigest()[:48]
    return f"{digest}-{attempt}"


class AppliedRequests:
    """Request ids already carried out, per pool, with what they asked for (bounded)."""

    def __init__(self, limit: int = 4096) -> None:
        self._done: OrderedDict[tuple[str, str], object] = OrderedDict()
        self._limit = limit
        self._lock = threading.Lock()

    def get(self, pool: str, request_id: str) -> object | None:
        with self._lock:
            return self._done.get((pool, request_id))

    def put(self, pool: str, request_id: str, what: object) -> None:
        with self._lock:
            self._done[(pool, request_id)] = what
            while len(self._done) > self._limit:
                self._done.popitem(last=False)


class PoolLocks:
    """One lock per pool: two actions on one pool never interleave; pools run in parallel."""

    def __init__(self) -> None:
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    @contextmanager
    def hold(self, pool: str) -> Iterator[None]:
        with self._guard:
            lock = self._locks.setdefault(pool, threading.Lock())
        with lock:
            yield


__all__ = [
    "CAPACITY_CODES",
    "THROTTLE_CODES",
    "AppliedRequests",
    "AwsClients",
    "Ownership",
    "PoolLocks",
    "aws_error",
    "client_token",
    "error_code",
    "error_message",
    "tags_of",
    "translated",
    "with_backoff",
]
