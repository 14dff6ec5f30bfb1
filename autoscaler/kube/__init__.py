"""The Kubernetes plug-ins of the process loop: the AutoscalingPool CRD and the pools
loaded from it (`pools.CrdPools`), status written back (`status.StatusWriter`), Events
(`events.EventRecorder`) and leader election on a Lease (`leader.LeaderElector`).
autoscaler/cli_run.py plugs them into autoscaler/process.py.

This package must never import the process loop, the controller, a provider, a signal
source or the node provisioner, and nothing here may decide or plan. The Kubernetes client
is reached through autoscaler/clients/.
"""
