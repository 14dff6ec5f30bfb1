"""How the simulator models a pool: its service model, cost and workload trace.

Configuration only (no I/O); the simulator (`autoscaler.sim`) uses it. A replica's
capacity is `slots_per_replica` here as in the policies: sequences for an LLM replica, GPUs
for a batch node.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from policies import AnyPolicyConfig

from .formats import (
    MAX_COST_PER_HOUR,
    MAX_GPUS,
    MAX_UNITS,
    Real,
    Timeout,
    Whole,
    Window,
)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def _old_name_too(schema: dict[str, Any]) -> None:
    """The JSON Schema accepts `slots`, the old name, as pydantic does (editors, `validate`)."""
    props = schema["properties"]
    props["slots"] = {**props["slots_per_replica"], "deprecated": True}
    schema["required"].remove("slots_per_replica")
    schema["anyOf"] = [{"required": ["slots_per_replica"]}, {"required": ["slots"]}]


class LlmService(_Model):
    """Each replica serves `slots_per_replica` sequences; a request holds one slot for
    input_tokens / prefill_tokens_per_s + output_tokens / decode_tokens_per_s seconds."""

    model_config = ConfigDict(json_schema_extra=_old_name_too)
    type: Literal["llm"] = Field("llm", description="selects this service model")
    slots_per_replica: Whole = Field(
        gt=0,
        le=MAX_UNITS,
        validation_alias=AliasChoices("slots_per_replica", "slots"),
        description="sequences one replica serves at once; `slots` (the old name) also loads",
    )
    prefill_tokens_per_s: Real = Field(
        gt=0, le=1e9, description="prompt tokens a slot reads per second"
    )
    decode_tokens_per_s: Real = Field(
        gt=0, le=1e9, description="tokens a slot generates per second (per sequence)"
    )


class GpuBatchService(_Model):
    """Each job needs `num_gpu` GPUs for its duration on nodes of `gpus_per_node` GPUs."""

    type: Literal["gpu-batch"] = Field("gpu-batch", description="selects this service model")
    gpus_per_node: Whole = Field(
        gt=0, le=MAX_UNITS, description="GPUs of one node (one replica of the pool)"
    )


class Trace(_Model):
    """A workload trace to replay."""

    path: str = Field(
        description="the trace file, relative to the folder of the config file that names "
        "it (symbolic links followed), or absolute; `bundled:NAME` for a sample shipped "
        "with the package (azure-llm-code-sample, azure-llm-conv-sample); `sparse:NAME` for a "
        "sparse case derived from the public traces (azure-code, alibaba-gpu, periodic-eval; "
        "see autoscaler/sim/sparse.py)"
    )
    format: Literal["azure-llm", "alibaba-gpu", "csv"] | None = Field(
        None,
        description="the file's format; unset: detected from its header as `simulate "
        "--trace` does (TIMESTAMP,ContextTokens... is azure-llm; creation_time and num_gpu "
        "is alibaba-gpu; a `timestamp` column is csv), and a header that is none of them "
        "is an error; an explicit format wins",
    )
    speedup: Real = Field(
        1.0,
        gt=0,
        le=1e6,
        description="replay this many times faster (arrival times divided by it)",
    )
    repeat: Whole = Field(
        1, ge=1, le=10_000, description="replay the trace this many times back to back"
    )


class Simulation(_Model):
    """The pool as the simulator sees it."""

    service: Annotated[LlmService | GpuBatchService, Field(discriminator="type")] = Field(
        description="how a replica serves work, chosen by `type`: LLM sequences or GPU jobs"
    )
    cost_per_hour: Real = Field(
        ge=0,
        le=MAX_COST_PER_HOUR,
        description="price of one replica (or node) for an hour, in your currency",
    )
    gpus_per_replica: Whole = Field(
        1, ge=1, le=MAX_GPUS, description="GPUs one replica holds, for GPU-hours (llm)"
    )
    wait_slo: Window = Field(description="queue wait a request (or job) should stay within")
    trace: Trace | None = Field(
        None,
        description="the workload to replay; default: `simulate --trace`, else the bundled "
        "Azure LLM code sample",
    )
    signal_delay: Timeout = Field(
        0.0,
        description="how late the policies see each simulated signal (a metrics "
        "pipeline's lag)",
    )
    start: Literal["warm", "cold"] = Field(
        "warm",
        description="how each replay begins: `warm` (the default) with the replicas the "
        "first startup window needs at its peak (at least `min`), as a pool that has been "
        "running, so `min` changes nothing while that peak is above it; `cold` with the "
        "pool's `min` replicas ready at t=0 (or the policy's own floor, such as the HPA's "
        "min_replicas), the rest started by the policy and ready after the pool's "
        "`startup` (a cold start at t=0 for a `min: 0` pool). The oracle and "
        "the baselines start the same way; `simulate --start` and `sweep --start` override it",
    )
    baselines: dict[str, AnyPolicyConfig] = Field(
        default_factory=dict,
        description="override the compared hpa/keda/kpa settings (keys: hpa, keda, kpa)",
    )
