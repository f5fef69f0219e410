"""A local AntDB-on-Kubernetes sandbox for `make run` on a machine with no cluster.

Kubernetes is simulated locally (an API server on loopback, the built-in controllers and a
kubelet); the Crunchy postgres-operator 4.2.1 and every AntDB node are the real programs,
built from their pinned sources. `sandbox.world` assembles that world once for everyone: the
test suite makes one per test cluster (`tests/support/cluster.py`), `sandbox.launcher` keeps one
running for `make run`, with its state on disk.
"""
