"""The node provisioner's tick: observe, plan, actuate, report.

`NodeProvisioner(config, api_client, ec2_provider, clock).tick() -> NodeTickResult`:

- observe (observe.py): our instances (one EC2 pool per allowed type), every Node,
  every live pod, as plain values. A failed read ends the tick with an error and no
  action: a tick that cannot see never launches and never drains;
- plan (plan.py): `plan_nodes(observed)`, pure, gives the commands and the new memory;
- actuate (actuator.py): the commands through the EC2 provider and the Kubernetes API.

With `interruptions` configured, the tick first receives the interruption queue's
messages; after observing, `take` (interruptions.py) records their instances as leaving
in the memory (and marks spot offerings short) before planning, and `settle` deletes the
messages whose action the actuator recorded.

Time comes from the injected clock (`now`, read once per tick) and `stopwatch` (how long
planning took); the memory (empty-since times, instances seen Ready) lives here, in
process memory, so a restart only delays scale-down by one TTL, never hastens it.

This module must never decide anything itself: every decision is `plan_nodes`'.
"""

from __future__ import annotations

import logging
from typing import Any

from autoscaler.clients.kube import Labels
from autoscaler.clock import Clock, stopwatch
from autoscaler.config.nodes import NodeProvisioning
from autoscaler.errors import ProviderError

from .actuator import Actuator, NodeTickResult
from .catalog import InstanceSpec, resolve
from .drain import Drainer
from .interruptions import InterruptionHandler
from .inventory import Memory, NodePool, node_pools
from .observe import observe
from .plan import plan_nodes

log = logging.getLogger("autoscaler.nodes")


class NodeProvisioner:
    """GPU nodes on EC2 for unschedulable pods; empty ones drained and terminated."""

    def __init__(
        self, config: NodeProvisioning, api_client: Any, ec2_provider: Any, clock: Clock
    ) -> None:
        from kubernetes import client as k

        self.config = config
        self.ec2 = ec2_provider
        self.clock = clock
        self.core: Any = k.CoreV1Api(api_client)  # Any: tests and the bench put fakes here
        ownership = ec2_provider.ownership
        self.labels = Labels(ownership.owner, ownership.prefix)
        self.drainer = Drainer(self.core, self.labels)
        self.specs: dict[str, InstanceSpec] = {
            s.name: s for s in (resolve(entry) for entry in config.instance_types)
        }
        self.pools: dict[str, NodePool] = node_pools(config, self.specs)
        self.memory = Memory()
        self.interruptions: InterruptionHandler | None = None
        if config.interruptions is not None:
            self.interruptions = InterruptionHandler(config, ec2_provider, self.pools)

    def tick(self) -> NodeTickResult:
        result = NodeTickResult()
        if not self.config.enabled:
            return result
        # Read before observing: the notices are then matched against a fresh inventory.
        # Messages of a tick that ends early stay on the queue and come back.
        received = self.interruptions.receive(result) if self.interruptions else []
        try:
            observed = observe(
                self.core,
                self.ec2,
                self.pools,
                self.labels,
                config=self.config,
                memory=self.memory,
                clock=self.clock,
            )
        except ProviderError as exc:
            result.errors.append(f"observe: {exc}; nothing launched or drained this tick")
            log.warning("node provisioning: %s", result.errors[-1])
            return result
        intake = None
        if self.interruptions is not None and received:
            observed, intake = self.interruptions.take(received, observed, result)
        elapsed = stopwatch()
        plan = plan_nodes(observed)
        result.decide_seconds = elapsed()
        result.seen(plan)
        self.memory = plan.memory
        Actuator(self.ec2, self.drainer, self.pools).carry_out(plan.commands, result)
        if self.interruptions is not None and intake is not None:
            self.interruptions.settle(intake, observed, result)
        return result
