"""What the EC2 and Auto Scaling providers share: ownership, the clock, the boto3 clients,
the request ids already applied and one lock per pool.

This module must never call AWS itself: the providers do.
"""

from __future__ import annotations

from typing import Self

from autoscaler.clients.aws import AppliedRequests, AwsClients, Ownership, PoolLocks
from autoscaler.clock import Clock
from autoscaler.config import Config

from .base import CapacityProvider


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
