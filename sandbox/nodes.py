"""What the test-side kubelet needs from a database backend: start, stop and forget a node,
and copy data the way the pgBackRest pods do (backup, repository sync, restore).

`antdb_nodes.AntDBBackend` (real AntDB from `ANTDB_HOME`) implements it, on the process
management of `pgserver.PostgresStyleBackend`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
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
        """Make target's data dir a consistent copy of source's (backup_data, then restore_data)."""

    def backup_data(self, namespace: str, source: str, dest: Path) -> None:
        """`dest` becomes a consistent copy of source's data dir, as a pgBackRest backup of a live
        primary is: online (pg_basebackup) when the source runs, so it keeps serving."""

    def restore_data(self, namespace: str, target: str, backup: Path) -> None:
        """target's data dir (its PVC) becomes a copy of `backup`; when target starts it runs under
        its own name (pgxc_node_name = target) with the backup's catalog. Target must not run."""

    def copy_tree(self, source: Path, dest: Path) -> None:
        """`dest` becomes a copy of directory `source` (a pgBackRest repository sync)."""

    def repo_dir(self, namespace: str, claim: str) -> Path:
        """Where the volume `claim` of a pgBackRest repository pod lives."""

    def make_dir(self, path: Path) -> None:
        """A directory owned like the data (for files the test-side pods write)."""

    def write_file(self, path: Path, text: str) -> None:
        """A small file owned like the data."""

    def remove_tree(self, path: Path) -> None:
        """Delete a directory tree (a released volume); no error if absent."""

    def stop_all(self) -> None:
        """Stop every server this backend started (test teardown). Data dirs are removed
        with the backend's base directory by the fixture that owns it."""
