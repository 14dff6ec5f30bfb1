"""Elastic autoscaler for AI workloads: the framework around the pure policies.

Everything with I/O lives in this package: the process loop (process.py), one tick
(controller.py), the pure planner (planner.py), signal readers (signals/), capacity
providers (providers/), the Kubernetes plug-ins (kube/), GPU node provisioning (nodes/),
shared clients (clients/) and the simulator (sim/). docs/architecture.md draws the layers;
pyproject.toml declares them as import contracts. Importing this package must never import
boto3, the Kubernetes client or any adapter: they load lazily, by name.
"""
