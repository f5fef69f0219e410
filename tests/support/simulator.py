"""Stable import path for the cluster simulator; the implementation lives in `tests.support.sim`."""

from tests.support.sim import ClusterSimulator, PassResult

__all__ = ["ClusterSimulator", "PassResult"]
