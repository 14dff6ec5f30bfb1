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
    type: Literal["llm"] = "llm"
    slots_per_replica: Whole = Field(
        gt=0,
        le=MAX_UNITS,
        validation_alias=AliasChoices("slots_per_replica", "slots"),
        description="sequences one replica serves at once; `slots` (the old name) also loads",
    )
    prefill_tokens_per_s: Real = Field(gt=0, le=1e9)
    decode_tokens_per_s: Real = Field(gt=0, le=1e9, description="per sequence")


class GpuBatchService(_Model):
    """Each job needs `num_gpu` GPUs for its duration on nodes of `gpus_per_node` GPUs."""

    type: Literal["gpu-batch"] = "gpu-batch"
    gpus_per_node: Whole = Field(gt=0, le=MAX_UNITS)


class Trace(_Model):
    """A workload trace to replay."""

    path: str
    format: Literal["azure-llm", "alibaba-gpu", "csv"] = "csv"
    speedup: Real = Field(1.0, gt=0, le=1e6, description="replay this many times faster")
    repeat: Whole = Field(
        1, ge=1, le=10_000, description="replay the trace this many times back to back"
    )


class Simulation(_Model):
    """The pool as the simulator sees it."""

    service: Annotated[LlmService | GpuBatchService, Field(discriminator="type")]
    cost_per_hour: Real = Field(
        ge=0,
        le=MAX_COST_PER_HOUR,
        description="per replica (or node), in your currency",
    )
    gpus_per_replica: Whole = Field(1, ge=1, le=MAX_GPUS)
    wait_slo: Window = Field(description="queue wait a request (or job) should stay within")
    trace: Trace | None = None
    signal_delay: Timeout = Field(0.0, description="delay of the metrics source")
    baselines: dict[str, AnyPolicyConfig] = Field(
        default_factory=dict,
        description="override the compared hpa/keda/kpa settings (keys: hpa, keda, kpa)",
    )
