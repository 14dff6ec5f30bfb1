"""Where a signal is read from: one pydantic model per source type, selected by `type`.

Configuration only. The readers live in `autoscaler.signals`; a source type whose reader
is not in this version is rejected when a controller is built, with a message that says so.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from autoscaler.units import Seconds


class _Source(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    timeout: Seconds | None = Field(None, description="per-read timeout; default controller's")


class StaticSource(_Source):
    """A fixed value: for tests, demos and `explain`."""

    type: Literal["static"] = "static"
    value: float


class PrometheusSource(_Source):
    """An instant PromQL query; an empty result is *missing*, not zero, unless opted in."""

    type: Literal["prometheus"] = "prometheus"
    url: str = Field(description="base URL of the Prometheus HTTP API, e.g. http://prom:9090")
    query: str = Field(description="instant PromQL query returning one series (or sum() it)")
    empty_as_zero: bool = Field(False, description="treat an empty result as 0")
    bearer_token_file: str | None = None
    username: str | None = None
    password_env: str | None = Field(None, description="env var holding the basic-auth password")
    ca_file: str | None = None
    insecure_skip_verify: bool = False


class SqsSource(_Source):
    """SQS backlog: ApproximateNumberOfMessages + NotVisible (+ Delayed)."""

    type: Literal["sqs"] = "sqs"
    queue_url: str
    region: str | None = None
    include_in_flight: bool = Field(True, description="add ApproximateNumberOfMessagesNotVisible")
    include_delayed: bool = False


class CloudWatchSource(_Source):
    """Any CloudWatch metric through GetMetricData."""

    type: Literal["cloudwatch"] = "cloudwatch"
    namespace: str
    metric_name: str
    dimensions: dict[str, str] = Field(default_factory=dict)
    statistic: str = "Average"
    period: Seconds = 60.0
    region: str | None = None


class RedisSource(_Source):
    """A Redis list length, stream length or consumer-group lag."""

    type: Literal["redis"] = "redis"
    url: str = Field(description="redis://host:6379/0 or rediss:// for TLS")
    key: str
    kind: Literal["list", "stream", "stream-pending", "stream-lag"] = "list"
    group: str | None = Field(None, description="consumer group, for stream-pending/-lag")
    password_env: str | None = None

    @model_validator(mode="after")
    def _group_for_groups(self) -> RedisSource:
        if self.kind in ("stream-pending", "stream-lag") and not self.group:
            raise ValueError(f"kind {self.kind!r} needs `group` (the consumer group name)")
        return self


class KubePendingSource(_Source):
    """Pods pending in a namespace matching a label selector (optionally GPU requests only)."""

    type: Literal["kube-pending-pods"] = "kube-pending-pods"
    namespace: str = "default"
    selector: str = ""
    gpu_only: bool = False


class NvmlSource(_Source):
    """Local GPUs through NVML (the `nvml` extra): mean utilization or memory use, 0..1."""

    type: Literal["nvml"] = "nvml"
    metric: Literal["utilization", "memory"] = "utilization"
    devices: list[int] | None = None


AnySource = Annotated[
    StaticSource
    | PrometheusSource
    | SqsSource
    | CloudWatchSource
    | RedisSource
    | KubePendingSource
    | NvmlSource,
    Field(discriminator="type"),
]
SOURCE_TYPES = ("static", "prometheus", "sqs", "cloudwatch", "redis", "kube-pending-pods", "nvml")


class SignalSpec(BaseModel):
    """A named signal of a pool and where it comes from."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    source: AnySource
    max_age: Seconds | None = Field(
        None, description="a reading older than this is stale (default: 3 controller ticks)"
    )
