"""GPU node provisioning on EC2: a small Karpenter for unschedulable GPU pods.

`NodeProvisioner(config, api_client, ec2_provider, clock).tick()` reads the pending pods,
packs them onto the cheapest allowed instance types (`packing`), launches through the EC2
provider, and drains and terminates our nodes that stayed empty (`drain`). See docs/nodes.md.
"""

from .provisioner import NodeProvisioner, NodeTickResult

__all__ = ["NodeProvisioner", "NodeTickResult"]
