"""GPU node provisioning on EC2: a small Karpenter for unschedulable GPU pods.

`NodeProvisioner(config, api_client, ec2_provider, clock).tick()` observes EC2 and the
cluster (observe.py), decides with the pure `plan_nodes(observed) -> NodePlan` (plan.py:
bin packing in binpack.py, scale-down, the memory of empty nodes), and carries the
commands (commands.py) out through the EC2 provider and the Kubernetes API
(actuator.py, drain.py). See docs/nodes.md.

Only observe.py, drain.py and provisioner.py may import the Kubernetes client, and only
the provisioner holds the EC2 provider (the actuator and observe step get it from there);
planning must never import either, nor read a clock: nothing here imports `time`.
"""

from .actuator import NodeTickResult
from .commands import NodePlan
from .inventory import Memory, Observed
from .plan import plan_nodes
from .provisioner import NodeProvisioner

__all__ = ["Memory", "NodePlan", "NodeProvisioner", "NodeTickResult", "Observed", "plan_nodes"]
