"""A pool's activator section: how `autoscaler activator` routes to it and holds requests.

Configuration only; the proxy lives in `autoscaler.activator`. A serving pool with this
section can scale to zero for real: with no ready endpoint the activator holds each request
(bounded by `max_queue` and `hold_timeout`) until the controller has woken the pool.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from .formats import (
    NUMBER,
    TEXT,
    Namespace,
    Timeout,
    Whole,
    number_or_text,
    whole_number,
)

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_URL = re.compile(r"^https?://[^/\s?#]+/?$")


Port = Annotated[
    Annotated[int, Field(ge=1, le=65535), BeforeValidator(whole_number), Tag(NUMBER)]
    | Annotated[str, Tag(TEXT)],
    Discriminator(number_or_text),
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class ActivatorBackend(_Model):
    """Where a pool's ready endpoints are: the EndpointSlices of a Kubernetes Service, or a
    fixed list of URLs outside Kubernetes. Exactly one of `service` and `urls`."""

    service: str | None = Field(
        None, description="Service whose ready EndpointSlice endpoints receive the requests"
    )
    namespace: Namespace | None = Field(
        None, description="the Service's namespace; default: the pool target's namespace"
    )
    port: Port | None = Field(
        None,
        description="the EndpointSlice port to use, by number or name; default: its first",
    )
    scheme: str = Field("http", pattern="^https?$", description="http or https to endpoints")
    urls: list[str] | None = Field(
        None, description="static endpoints (http://host:port), always taken as ready"
    )

    @field_validator("service")
    @classmethod
    def _service_name(cls, value: str | None) -> str | None:
        if value is not None and not _DNS_LABEL.match(value):
            raise ValueError(f"{value!r} is not a Service name (lower case DNS-1035 label)")
        return value

    @field_validator("urls")
    @classmethod
    def _urls(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return value
        if not value:
            raise ValueError("list at least one URL, or use `service`")
        bad = [u for u in value if not _URL.match(u)]
        if bad:
            raise ValueError(
                f"{bad[0]!r} is not an endpoint URL: write scheme://host:port, no path"
            )
        return [u.rstrip("/") for u in value]

    @model_validator(mode="after")
    def _one_kind(self) -> ActivatorBackend:
        if (self.service is None) == (self.urls is None):
            raise ValueError("set exactly one of `service` (Kubernetes) and `urls` (static)")
        return self


class ActivatorSpec(_Model):
    """How `autoscaler activator` fronts this pool.

    A request is this pool's when its Host is in `hosts` (if any are listed), its path
    starts with one of `paths` (if any), and, for OpenAI-compatible APIs, the `model` field
    of its JSON body is in `models` (if any). Pools are matched in file order; the first
    match wins. With no ready endpoint a request is held, up to `max_queue` requests
    (more get 503 with Retry-After) and for at most `hold_timeout` (then 504).
    """

    backend: ActivatorBackend = Field(
        description="where held requests go once the pool has a ready endpoint"
    )
    hosts: list[str] = Field(default_factory=list, description="Host names (no port) routed here")
    paths: list[str] = Field(default_factory=list, description="path prefixes routed here")
    models: list[str] = Field(
        default_factory=list, description="OpenAI `model` values routed here (JSON bodies)"
    )
    max_queue: Whole = Field(
        1000, ge=1, le=1_000_000, description="requests held at once; more get 503"
    )
    hold_timeout: Timeout = Field(
        300.0, gt=0, le=3600, description="longest a request is held for an endpoint; then 504"
    )
    retry_after: Timeout = Field(
        10.0, gt=0, le=3600, description="Retry-After sent with a 503 when the queue is full"
    )
    concurrency_per_endpoint: (
        Annotated[int, Field(ge=1, le=100_000), BeforeValidator(whole_number)] | None
    ) = Field(
        None,
        description="requests each endpoint is given at once (Knative's containerConcurrency; "
        "vLLM's max_num_seqs); more wait here in arrival order. Default: no limit, the "
        "backend queues them",
    )

    @field_validator("paths")
    @classmethod
    def _paths(cls, value: list[str]) -> list[str]:
        bad = [p for p in value if not p.startswith("/")]
        if bad:
            raise ValueError(f"path prefix {bad[0]!r} must start with '/'")
        return value

    @field_validator("hosts")
    @classmethod
    def _hosts(cls, value: list[str]) -> list[str]:
        bad = [h for h in value if not h or ":" in h or "/" in h or h != h.strip()]
        if bad:
            raise ValueError(f"host {bad[0]!r}: write a bare host name (no port, no scheme)")
        return [h.lower() for h in value]
