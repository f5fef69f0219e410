"""What the test-side kubelet needs from a database backend: start, stop and forget a node.

Two backends implement it: `pgnodes.VanillaPostgresBackend` (Debian's PostgreSQL,
shaped to look like AntDB where the product reads it) and `antdb_nodes.AntDBBackend`
(real AntDB from `ANTDB_HOME`). The simulator never knows which one it drives.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class NodeProcessSpec:
    """Everything a node's database needs to start, as the kubelet learns it from Kubernetes."""

    namespace: str
    name: str               # Pgcluster name == pgxc_node_name (gc, cn1, dn1, ...)
    role: str               # 'gtm_coord' | 'coordinator' | 'datanode'
    host: str               # the Service ClusterIP (a 127.x.y.z address here); listen only there
    port: int               # 5432
    agtm_host: str          # from postgres-ha.yaml / Patroni DCS config; gc: its own ClusterIP
    agtm_port: int
    superuser: str          # from the <name>-postgres-secret Secret
    superuser_password: str
    parameters: dict = field(default_factory=dict)  # other postgresql parameters from postgres-ha.yaml

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)


class NodeBackend(Protocol):
    def start_node(self, spec: NodeProcessSpec) -> None:
        """Init the data dir on first start (keyed by namespace/name: the PVC), then start
        and block until it accepts TCP connections on spec.host:spec.port. Data survives
        stop/start."""

    def stop_node(self, namespace: str, name: str) -> None:
        """Stop the server (fast shutdown), keep the data dir. No error if not running."""

    def destroy_data(self, namespace: str, name: str) -> None:
        """Stop if running and delete the data dir (the PVC was deleted)."""

    def clone_data(self, namespace: str, source: str, target: str) -> None:
        """Make target's data dir (its PVC) a consistent copy of source's, as a Crunchy clone
        restore does: online (pg_basebackup) when the source runs, so it keeps serving; file
        by file when it is stopped. Whatever target's dir held before is replaced. When target
        starts it runs under its own name (pgxc_node_name = target), with source's catalog.
        Target must not be running."""

    def stop_all(self) -> None:
        """Stop every server this backend started (test teardown). Data dirs are removed
        with the backend's base directory by the fixture that owns it."""
