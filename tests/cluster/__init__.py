"""A real Kubernetes for the tests: a local control plane with kwok nodes, and ways to use it.

- ``harness.LocalCluster``: etcd, kube-apiserver, kube-controller-manager, kube-scheduler and
  kwok as processes on 127.0.0.1, cleaned up on every exit path.
- ``session.open_cluster``: an existing cluster from ``KUBECONFIG``, else a local one.
- ``pytest_plugin``: session fixtures (``kube_cluster``, ``core_v1``, ``kube_namespace``...).
- ``nodes``: fake (kwok) Nodes with GPU capacity, labels and taints.
- ``node_shim.NodeShim``: a Node per running EC2 instance (moto) the autoscaler owns.
- ``python -m tests.cluster up|down|status``: a cluster that outlives the command.

Binaries come from ``scripts/k8s/build.sh`` (``make cluster-build``); see docs/test-cluster.md.
"""

from tests.cluster.binaries import MissingBinariesError, find_binaries
from tests.cluster.harness import ClusterStartError, LocalCluster, local_cluster

__all__ = [
    "ClusterStartError",
    "LocalCluster",
    "MissingBinariesError",
    "find_binaries",
    "local_cluster",
]
