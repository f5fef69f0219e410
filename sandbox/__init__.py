"""A local AntDB-on-Kubernetes sandbox for `make run` on a machine with no cluster.

Kubernetes is simulated locally (an API server on loopback, the built-in controllers and a
kubelet); the Crunchy postgres-operator 4.2.1 and every AntDB node are the real programs,
built from their pinned sources. The test suite runs in the same world (`tests/support`
assembles it per test; this package keeps one running, with its state on disk).
"""
