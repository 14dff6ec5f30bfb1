"""Where a signal is read from: one pydantic model per source type, selected by `type`.

Configuration only. The readers live in `autoscaler.signals`; a source type whose reader
is not in this version is rejected when a controller is built, with a message that says so.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from .experiments import OptunaSource
from .formats import (
    MAX_GPUS,
    LabelKey,
    LongWindow,
    Namespace,
    Real,
    Region,
    Timeout,
    Window,
    positive,
    whole_number,
)


class _Source(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    timeout: Timeout | None = Field(None, description="per-read timeout; default controller's")


class StaticSource(_Source):
    """A fixed value: for tests, demos and `explain`."""

    type: Literal["static"] = Field("static", description="selects this source")
    value: Real = Field(ge=-1e15, le=1e15, description="the value every read returns")


Aggregate = Literal["single", "sum", "avg", "max", "min"]

PROMETHEUS_SHAPES: dict[str, tuple[str, str]] = {
    # shape: (PromQL template with {agg} and {sel}, default aggregate)
    "dcgm-gpu-utilization": ("{agg}(DCGM_FI_DEV_GPU_UTIL{sel}) / 100", "avg"),
    "vllm-queue": ("{agg}(vllm:num_requests_waiting{sel})", "sum"),
    "vllm-running": ("{agg}(vllm:num_requests_running{sel})", "sum"),
    # vLLM renamed gpu_cache_usage_perc to kv_cache_usage_perc (both 0..1); `or` takes
    # the new name where a server exports both, so either version reads the same.
    "vllm-kv-cache": (
        "{agg}(vllm:kv_cache_usage_perc{sel} or vllm:gpu_cache_usage_perc{sel})",
        "avg",
    ),
    "triton-queue": ("{agg}(nv_inference_pending_request_count{sel})", "sum"),
}
"""Ready-made queries: DCGM GPU utilization as a fraction (the exporter reports percent),
vLLM waiting/running requests and KV-cache use (0..1), Triton pending requests."""


class PrometheusSource(_Source):
    """An instant PromQL query, or a ready-made `shape` with a label `selector`.

    An empty result is *missing* (stale), not zero, unless `empty_as_zero`. A result with
    several series is an error unless `aggregate` says how to combine them.
    """

    type: Literal["prometheus"] = Field("prometheus", description="selects this source")
    url: str = Field(description="base URL of the Prometheus HTTP API, e.g. http://prom:9090")
    query: str | None = Field(None, description="instant PromQL query (or use `shape`)")
    shape: (
        Literal[
            "dcgm-gpu-utilization", "vllm-queue", "vllm-running", "vllm-kv-cache", "triton-queue"
        ]
        | None
    ) = Field(None, description="a ready-made query (docs/signals.md lists them)")
    selector: str = Field(
        "", description='label matchers for `shape`, e.g. namespace="llm",pod=~"vllm-.*"'
    )
    aggregate: Aggregate | None = Field(
        None,
        description="how several series combine: sum, avg, max, min, or single (several is "
        "an error). Default: single for `query`, the shape's own for `shape`",
    )
    empty_as_zero: bool = Field(False, description="read an empty result as 0, not as missing")
    headers: dict[str, str] = Field(
        default_factory=dict, description="extra HTTP headers, e.g. X-Scope-OrgID for Mimir"
    )
    bearer_token_file: str | None = Field(
        None, description="file holding a bearer token; re-read when it changes"
    )
    username: str | None = Field(None, description="basic-auth user (with `password_env`)")
    password_env: str | None = Field(None, description="env var holding the basic-auth password")
    ca_file: str | None = Field(None, description="PEM bundle to verify the server's certificate")
    insecure_skip_verify: bool = Field(False, description="do not verify TLS certificates")

    @model_validator(mode="after")
    def _query_or_shape(self) -> PrometheusSource:
        if (self.query is None) == (self.shape is None):
            raise ValueError("set exactly one of `query` (PromQL) and `shape` (a ready-made one)")
        if self.selector and self.shape is None:
            raise ValueError("`selector` goes with `shape`; put label matchers in `query` instead")
        if "{" in self.selector or "}" in self.selector:
            raise ValueError(
                f"`selector` holds only label matchers, without braces: got {self.selector!r}"
            )
        if self.bearer_token_file and (self.username or self.password_env):
            raise ValueError("use either `bearer_token_file` or `username`/`password_env`")
        if bool(self.username) != bool(self.password_env):
            raise ValueError("basic auth needs both `username` and `password_env`")
        if not self.url.startswith(("http://", "https://")):
            raise ValueError(f"`url` must start with http:// or https://, got {self.url!r}")
        return self

    @property
    def effective_query(self) -> str:
        """The PromQL sent to the server."""
        if self.query is not None:
            return self.query
        assert self.shape is not None
        template, default = PROMETHEUS_SHAPES[self.shape]
        agg = self.aggregate or default
        sel = "{" + self.selector + "}" if self.selector else ""
        if agg == "single":
            # No aggregator: strip "{agg}(" ... ")" around the metric expression.
            body = template.replace("{agg}(", "(", 1)
            return body.format(sel=sel)
        return template.format(agg=agg, sel=sel)

    @property
    def result_aggregate(self) -> str:
        """How the reader combines the series the server returns (shapes aggregate in
        PromQL, so the server returns at most one)."""
        if self.query is not None:
            return self.aggregate or "single"
        return "single"


class SqsSource(_Source):
    """SQS backlog: ApproximateNumberOfMessages + NotVisible (+ Delayed), in messages."""

    type: Literal["sqs"] = Field("sqs", description="selects this source")
    queue_url: str = Field(description="https://sqs.<region>.amazonaws.com/<account>/<queue>")
    region: Region | None = Field(
        None, description="the queue's AWS region; default: from the queue URL, else AWS_REGION"
    )
    include_in_flight: bool = Field(True, description="add ApproximateNumberOfMessagesNotVisible")
    include_delayed: bool = Field(False, description="add ApproximateNumberOfMessagesDelayed")
    poll_interval: Annotated[Timeout, AfterValidator(positive)] | None = Field(
        None,
        description="read the queue at most this often (default: every tick); between reads "
        "its last reading stands, with the time it was read. SQS counts are approximate "
        "and every read is a billed request: with many queues and a short tick, a few "
        "seconds here spreads the reads evenly over the ticks",
    )


_STATISTICS = ("Average", "Sum", "Minimum", "Maximum", "SampleCount")
_EXTENDED_STATISTIC = re.compile(r"^(p|tm|wm|tc|ts)\d{1,2}(\.\d+)?$|^(TM|WM|TC|TS|PR)\(.+\)$")


class CloudWatchSource(_Source):
    """Any CloudWatch metric through GetMetricData: the newest datapoint within `lookback`.

    No datapoint is a *missing* reading (the pool holds), never 0.
    """

    type: Literal["cloudwatch"] = Field("cloudwatch", description="selects this source")
    namespace: str = Field(min_length=1, description="the metric's namespace, e.g. CWAgent")
    metric_name: str = Field(
        min_length=1, description="the metric's name, e.g. nvidia_smi_utilization_gpu"
    )
    dimensions: dict[str, str] = Field(
        default_factory=dict,
        description="dimension name -> value, e.g. {AutoScalingGroupName: gpu-workers}; the "
        "metric must carry exactly these; default: none",
    )
    statistic: str = Field("Average", description="Average, Sum, Minimum, Maximum, p90, ...")
    period: Window = Field(
        60.0, description="seconds per datapoint: 1, 5, 10, 20, 30 or a multiple of 60"
    )
    lookback: LongWindow | None = Field(
        None, description="how far back to look for a datapoint (default: 5 periods, >= 5m)"
    )
    unit: str | None = Field(None, description="only datapoints published with this unit")
    region: Region | None = Field(
        None, description="the AWS region; default: the environment (AWS_REGION)"
    )

    @field_validator("statistic")
    @classmethod
    def _known_statistic(cls, value: str) -> str:
        if value in _STATISTICS or _EXTENDED_STATISTIC.match(value):
            return value
        raise ValueError(
            f"unknown statistic {value!r}; use one of {', '.join(_STATISTICS)} "
            "or a percentile such as p90"
        )

    @field_validator("period")
    @classmethod
    def _valid_period(cls, value: float) -> float:
        if value in (1, 5, 10, 20, 30) or (value >= 60 and value % 60 == 0):
            return value
        raise ValueError(
            f"CloudWatch periods are 1, 5, 10, 20 or 30 seconds or a multiple of 60; got {value:g}s"
        )

    @property
    def lookback_seconds(self) -> float:
        """The query window in seconds: `lookback`, or 5 periods but at least 5 minutes."""
        if self.lookback is not None:
            return max(self.lookback, self.period)
        return max(5 * self.period, 300.0)


class RedisSource(_Source):
    """A Redis queue's length: a list (LLEN: Celery, RQ), a sorted set (ZCARD: arq, delayed
    jobs), a stream (XLEN), or a stream consumer group's pending count (XPENDING) or lag
    (XINFO GROUPS, Redis >= 7)."""

    type: Literal["redis"] = Field("redis", description="selects this source")
    url: str = Field(description="redis://host:6379/0, rediss:// for TLS, unix:///path.sock")
    key: str = Field(description="the Redis key of the queue (list, sorted set or stream)")
    kind: Literal["list", "zset", "stream", "stream-pending", "stream-lag"] = Field(
        "list",
        description="how the key is counted: LLEN, ZCARD, XLEN, the group's XPENDING count "
        "or its lag (XINFO GROUPS)",
    )
    group: str | None = Field(None, description="consumer group, for stream-pending/-lag")
    password_env: str | None = Field(
        None, description="name of the environment variable holding the password"
    )
    ca_file: str | None = Field(None, description="PEM bundle to verify the server (rediss://)")
    insecure_skip_verify: bool = Field(False, description="do not verify TLS (rediss://)")

    @model_validator(mode="after")
    def _group_for_groups(self) -> RedisSource:
        if self.kind in ("stream-pending", "stream-lag") and not self.group:
            raise ValueError(f"kind {self.kind!r} needs `group` (the consumer group name)")
        if self.group and self.kind not in ("stream-pending", "stream-lag"):
            raise ValueError(
                f"`group` goes with kind stream-pending or stream-lag, not {self.kind!r}"
            )
        if not self.url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(f"`url` must start with redis://, rediss:// or unix://: {self.url!r}")
        tls = self.ca_file is not None or self.insecure_skip_verify
        if tls and not self.url.startswith("rediss://"):
            raise ValueError("`ca_file` and `insecure_skip_verify` need a rediss:// (TLS) url")
        return self


class KubePendingSource(_Source):
    """Kubernetes backlog in a namespace, by label selector.

    `kind: pending-pods` counts Pending pods (optionally only those requesting GPUs, or only
    those the scheduler could not place); `kind: job-backlog` counts the completions that
    unfinished Jobs still need (docs/signals.md says exactly how).
    """

    type: Literal["kube-pending-pods"] = Field(
        "kube-pending-pods", description="selects this source"
    )
    kind: Literal["pending-pods", "job-backlog"] = Field(
        "pending-pods",
        description="`pending-pods`: Pending pods; `job-backlog`: completions unfinished "
        "Jobs still need",
    )
    namespace: Namespace = Field("default", description="the namespace counted")
    selector: str = Field("", description="label selector, e.g. app=llm,tier!=canary")
    gpu_only: bool = Field(False, description="count only pods requesting `gpu_resource`")
    gpu_resource: LabelKey = Field(
        "nvidia.com/gpu", description="the extended resource of a GPU"
    )
    unschedulable_only: bool = Field(
        False, description="count only pods the scheduler marked Unschedulable"
    )

    @model_validator(mode="after")
    def _pod_options(self) -> KubePendingSource:
        if self.kind == "job-backlog" and (self.gpu_only or self.unschedulable_only):
            raise ValueError("`gpu_only` and `unschedulable_only` apply to kind pending-pods")
        return self


class NvmlSource(_Source):
    """Local GPUs through NVML (the `nvml` extra): mean utilization or memory use, 0..1."""

    type: Literal["nvml"] = Field("nvml", description="selects this source")
    metric: Literal["utilization", "memory"] = Field(
        "utilization",
        description="`utilization`: busy share of time; `memory`: share of memory used",
    )
    devices: (
        list[Annotated[int, Field(ge=0, le=MAX_GPUS - 1), BeforeValidator(whole_number)]] | None
    ) = Field(
        None, description="GPU indices to average over; default: every GPU of the node"
    )

    @model_validator(mode="after")
    def _devices(self) -> NvmlSource:
        if self.devices is not None and (
            not self.devices or len(set(self.devices)) != len(self.devices)
        ):
            raise ValueError(f"`devices` must list distinct GPU indices, got {self.devices}")
        return self


class ActivatorSource(_Source):
    """What `autoscaler activator` counts for this pool, read straight from its admin port
    (no Prometheus scrape in between), so a pool at zero wakes on the first request.

    `url` is the activator's admin address; every address its host name resolves to (the
    chart's headless Service: one per activator replica) is read and the counts summed.
    The reader also long-polls it, so the controller ticks at once when a pool at zero
    gets its first request instead of at its next interval.
    """

    type: Literal["activator"] = Field("activator", description="selects this source")
    url: str = Field(
        description="the activator's admin URL, e.g. "
        "http://autoscaler-activator-admin.autoscaler:9091 (the chart's headless admin Service)"
    )
    metric: Literal["waiting", "in_flight", "demand", "arrival_rate", "latency"] = Field(
        "waiting",
        description="waiting: held for an endpoint; in_flight: forwarded, not yet answered; "
        "demand: both; arrival_rate: requests/s over the last minute; latency: mean seconds "
        "to answer over the last minute",
    )
    pool: str | None = Field(None, description="the activator's pool; default: this pool")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+/?$", value):
            raise ValueError(f"{value!r} is not an activator admin URL: write http://host:port")
        return value.rstrip("/")


AnySource = Annotated[
    StaticSource
    | PrometheusSource
    | SqsSource
    | CloudWatchSource
    | RedisSource
    | KubePendingSource
    | NvmlSource
    | ActivatorSource
    | OptunaSource,
    Field(discriminator="type"),
]
SOURCE_TYPES = (
    "static",
    "prometheus",
    "sqs",
    "cloudwatch",
    "redis",
    "kube-pending-pods",
    "nvml",
    "activator",
    "optuna",
)


class SignalSpec(BaseModel):
    """A named signal of a pool and where it comes from."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    source: AnySource = Field(description="where the signal is read from, chosen by `type`")
    max_age: Window | None = Field(
        None,
        description="a reading older than this is stale (default: 3 controller ticks, plus "
        "the source's poll_interval where it has one)",
    )
    from_pods: bool = Field(
        False,
        description="scraped from the pool's own pods: while no replica is ready an empty "
        "answer reads as 0 (nobody to export it), not as stale; a failing source still holds",
    )

    @model_validator(mode="after")
    def _max_age_covers_polling(self) -> SignalSpec:
        poll = getattr(self.source, "poll_interval", None)
        if poll is not None and self.max_age is not None and self.max_age < poll:
            raise ValueError(
                f"max_age {self.max_age:g}s is shorter than the source's poll_interval "
                f"{poll:g}s: every reading would go stale before the next read; raise max_age "
                "or lower poll_interval"
            )
        return self
