"""The built-in catalog of EC2 GPU instance types: GPUs, vCPUs, memory and price.

Data only, so that every config module may read it; `autoscaler.nodes.catalog` turns an
entry into what the packer uses. It holds common NVIDIA types, not every EC2 type: a type
it lacks is still accepted where it is written as EC2 names types (family.size), and node
provisioning then needs its GPUs, vCPUs, memory and price spelt out.
"""

from __future__ import annotations

# Prices are us-east-1 on-demand list prices in USD per hour (2024); they only rank types
# against each other, and a config entry's `price` overrides them (spot, other regions).
# type: (GPUs, vCPUs, GiB, USD/h on demand in us-east-1)
CATALOG: dict[str, tuple[int, int, int, float]] = {
    "g4dn.xlarge": (1, 4, 16, 0.526),
    "g4dn.2xlarge": (1, 8, 32, 0.752),
    "g4dn.12xlarge": (4, 48, 192, 3.912),
    "g5.xlarge": (1, 4, 16, 1.006),
    "g5.2xlarge": (1, 8, 32, 1.212),
    "g5.4xlarge": (1, 16, 64, 1.624),
    "g5.8xlarge": (1, 32, 128, 2.448),
    "g5.12xlarge": (4, 48, 192, 5.672),
    "g5.24xlarge": (4, 96, 384, 8.144),
    "g5.48xlarge": (8, 192, 768, 16.288),
    "g6.xlarge": (1, 4, 16, 0.805),
    "g6.2xlarge": (1, 8, 32, 0.978),
    "g6.4xlarge": (1, 16, 64, 1.323),
    "g6.12xlarge": (4, 48, 192, 4.602),
    "g6.24xlarge": (4, 96, 384, 6.675),
    "g6.48xlarge": (8, 192, 768, 13.350),
    "g6e.xlarge": (1, 4, 32, 1.861),
    "g6e.12xlarge": (4, 48, 384, 10.493),
    "g6e.48xlarge": (8, 192, 1536, 30.131),
    "p3.2xlarge": (1, 8, 61, 3.060),
    "p3.8xlarge": (4, 32, 244, 12.240),
    "p4d.24xlarge": (8, 96, 1152, 32.773),
    "p5.48xlarge": (8, 192, 2048, 55.040),
}
