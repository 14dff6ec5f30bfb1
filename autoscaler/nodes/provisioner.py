"""The node provisioner's tick: observe, plan, actuate, report.

`NodeProvisioner(config, api_client, ec2_provider, clock).tick() -> NodeTickResult`:

- observe (observe.py): our instances (one EC2 pool per allowed type), every Node,
  every live pod, as plain values. A failed read ends the tick with an error and no
  action: a tick that cannot see never launches and never drains;
- plan (plan.py): `plan_nodes(observed)`, pure, gives the commands and the new memory;
- actuate (actuator.py): the commands through the EC2 provider and the Kubernetes API.

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

    def tick(self) -> NodeTickResult:
        result = NodeTickResult()
        if not self.config.enabled:
            return result
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
        elapsed = stopwatch()
        plan = plan_nodes(observed)
        result.decide_seconds = elapsed()
        result.seen(plan)
        self.memory = plan.memory
        Actuator(self.ec2, self.drainer, self.pools).carry_out(plan.commands, result)
        return result
