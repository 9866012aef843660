"""A real local control plane (etcd + kube-apiserver on loopback) for tests, the demo and developers."""

from certpolicy.localcluster.binaries import (
    KUBERNETES_VERSION,
    Binaries,
    BinaryError,
    NodeBinaries,
    ensure_binaries,
    ensure_node_binaries,
)
from certpolicy.localcluster.cluster import ClusterError, LocalCluster

__all__ = [
    "KUBERNETES_VERSION", "Binaries", "BinaryError", "ClusterError", "LocalCluster", "NodeBinaries",
    "ensure_binaries", "ensure_node_binaries",
]
