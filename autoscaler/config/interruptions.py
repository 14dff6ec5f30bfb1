"""Configuration of EC2 interruption handling for node provisioning (`nodes.interruptions`).

EventBridge rules put EC2's notices about our instances on one SQS queue, as Karpenter's
interruption queue: spot interruption warnings, rebalance recommendations, instance
state changes and AWS Health scheduled changes (docs/nodes.md, "Spot interruptions").
The node provisioner reads that queue every tick; unset, interruption handling is off.

Configuration only; `autoscaler.nodes.interruptions` acts on it. This module must never
import that package, nor call AWS.
"""

from __future__ import annotations

import re
from typing import Literal
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .formats import Region, Whole

__all__ = ["MAX_RECEIVES", "Interruptions", "queue_name"]

MAX_RECEIVES = 10
"""ReceiveMessage calls per tick at most (10 messages each)."""

_QUEUE_NAME = re.compile(r"^(?=.{1,80}$)[A-Za-z0-9_-]+(\.fifo)?$")


def queue_name(queue: str) -> str:
    """The queue's name: the last part of its URL, or the name itself."""
    if "://" in queue:
        return urlparse(queue).path.rstrip("/").rsplit("/", 1)[-1]
    return queue


def _queue(value: str) -> str:
    if "://" in value:
        url = urlparse(value)
        parts = [p for p in url.path.split("/") if p]
        if url.scheme not in ("https", "http") or not url.hostname or len(parts) != 2:
            raise ValueError(
                f"{value!r} is not an SQS queue URL "
                "(https://sqs.<region>.amazonaws.com/<account>/<queue name>)"
            )
        name = parts[1]
    else:
        name = value
    if not _QUEUE_NAME.match(name):
        raise ValueError(
            f"{name!r} is not an SQS queue name: 1 to 80 letters, digits, '-' or '_' "
            "(a FIFO queue's ending in .fifo)"
        )
    return value


class Interruptions(BaseModel):
    """EC2 interruption notices, read from the SQS queue EventBridge feeds."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    queue: str = Field(
        description="the SQS queue's URL (https://sqs.<region>.amazonaws.com/<account>/"
        "<name>) or its name (looked up in the region)"
    )
    region: Region | None = Field(
        None, description="default: the queue URL's region, else nodes.region, else AWS_REGION"
    )
    rebalance: Literal["ignore", "drain"] = Field(
        "ignore",
        description="a rebalance recommendation is counted and logged (ignore), or handled "
        "as an interruption: replacement, cordon, drain (drain)",
    )
    wait_seconds: Whole = Field(
        1, ge=0, le=20, description="long poll of the first receive of a tick, seconds"
    )
    receives: Whole = Field(
        5, ge=1, le=MAX_RECEIVES, description="ReceiveMessage calls per tick at most (10 each)"
    )

    @field_validator("queue")
    @classmethod
    def _a_queue(cls, value: str) -> str:
        return _queue(value)
