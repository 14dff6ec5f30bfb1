"""The Kubernetes side of the autoscaler: the AutoscalingPool CRD, pools loaded from it,
status and Events written back, leader election on a Lease, the health and metrics
endpoints, and the controller process that wires them (`process.KubeProcess`).

Only this package, `autoscaler.providers.kube_*` and `autoscaler.signals.kube` may import
the Kubernetes client; nothing here may decide or plan (that stays pure, in the planner).
"""
