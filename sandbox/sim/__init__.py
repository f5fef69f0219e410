"""The test-side Kubernetes cluster behind the in-process API: controllers, the Crunchy
postgres-operator v4.2, kube-proxy and the kubelets (see `cluster.ClusterSimulator`)."""

from .cluster import ClusterSimulator, PassResult

__all__ = ["ClusterSimulator", "PassResult"]
