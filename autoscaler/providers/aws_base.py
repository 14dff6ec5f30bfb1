"""What the EC2 and Auto Scaling providers share: ownership, the clock, the boto3 clients,
the request ids already applied, one lock per pool, and calls retried with backoff.

This module must never call AWS itself: the providers do, through `_call`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Self, TypeVar

from autoscaler.clients.aws import AppliedRequests, AwsClients, Ownership, PoolLocks, with_backoff
from autoscaler.clock import Clock
from autoscaler.config import Config, Pool
from autoscaler.config.targets import AwsRetry

from .base import CapacityProvider

T = TypeVar("T")


class AwsProvider(CapacityProvider):
    """A provider for one kind of AWS pool; one instance serves every pool of the kind."""

    def __init__(self, ownership: Ownership, clock: Clock, clients: AwsClients | None = None):
        self.ownership = ownership
        self.clock = clock
        self._clients = clients or AwsClients()
        self._applied = AppliedRequests()
        self._locks = PoolLocks()

    @classmethod
    def from_config(cls, config: Config, clock: Clock) -> Self:
        installation = config.installation
        return cls(Ownership(installation.id, installation.tag_prefix), clock)

    def _retry(self, pool: Pool) -> AwsRetry:
        """The pool's retry settings (its target's `retry`)."""
        raise NotImplementedError

    def _call(self, pool: Pool, operation: str, call: Callable[[], T]) -> T:
        """`call`, retried with backoff on throttling as the pool's target says."""
        retry = self._retry(pool)
        return with_backoff(
            call,
            clock=self.clock,
            what=f"pool {pool.name}: {operation}",
            rounds=retry.backoff_rounds,
            first_wait_seconds=retry.backoff,
        )
