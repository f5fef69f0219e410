"""Inject drift into a running test cluster, the way it happens to a real one.

Catalog drift is made with real node DDL on AntDB (`ALTER/CREATE/DROP NODE`, rendered by
the product's own renderer so the statements are the ones AntDB accepts), each followed by
`pgxc_pool_reload()` on that node, as a DBA's manual change would be. Nothing here goes
through the product's hooks.

A moved gc is made as an operator mistake makes it: the Service is deleted and created
again from the same spec without its ClusterIP, so the API server allocates a new one.
"""

from __future__ import annotations

import time

from antdb_k8s.core.pgxc import ChangeKind, NodeChange, PgxcRow
from antdb_k8s.core.sql import render_node_change


def change_catalog(cluster, namespace: str, holder: str, change: NodeChange) -> None:
    """Apply one node DDL change to `holder`'s pgxc_node only, then reload its pool."""
    with cluster.connect(namespace, holder) as conn:
        conn.execute(render_node_change(change))
    cluster.query(namespace, holder, "SELECT pgxc_pool_reload()")


def current_row(cluster, namespace: str, holder: str, node: str) -> PgxcRow:
    rows = cluster.query(namespace, holder, "SELECT node_name, node_type, node_host, node_port, nodeis_primary, "
                                            f"nodeis_preferred, nodeis_gtm FROM pgxc_node WHERE node_name = '{node}'")
    if not rows:
        raise AssertionError(f"{node} is not in pgxc_node on {holder}")
    name, kind, host, port, primary, preferred, gtm = rows[0]
    return PgxcRow(str(name), str(kind), str(host), int(port), bool(primary), bool(preferred), bool(gtm))


def alter_row(cluster, namespace: str, holder: str, node: str, **changes) -> None:
    """`ALTER NODE node WITH (...)` on holder; changes use the planner's field names (host, primary...)."""
    row = current_row(cluster, namespace, holder, node)
    attrs = {"host": "node_host", "port": "node_port", "primary": "is_primary", "preferred": "is_preferred",
             "gtm": "is_gtm"}
    values = {**row.to_dict(), **{attrs[k]: v for k, v in changes.items()}}
    change = NodeChange(ChangeKind.ALTER, PgxcRow.from_dict(values), tuple(changes), "injected drift")
    change_catalog(cluster, namespace, holder, change)


def create_row(cluster, namespace: str, holder: str, row: PgxcRow) -> None:
    change_catalog(cluster, namespace, holder, NodeChange(ChangeKind.CREATE, row, (), "injected drift"))


def drop_row(cluster, namespace: str, holder: str, node: str) -> None:
    row = current_row(cluster, namespace, holder, node)
    change_catalog(cluster, namespace, holder, NodeChange(ChangeKind.DROP, row, (), "injected drift"))


def unused_address(cluster, namespace: str, last_octet: int = 251) -> str:
    """A loopback address in the cluster's Service network that nothing listens on."""
    taken = set(cluster.cluster_ips(namespace).values())
    prefix = cluster.cluster_ips(namespace)["gc"].rsplit(".", 1)[0]
    for octet in range(last_octet, 200, -1):
        candidate = f"{prefix}.{octet}"
        if candidate not in taken:
            return candidate
    raise AssertionError("no unused address left in the Service network")


def recreate_service(cluster, namespace: str, name: str, timeout: float = 120.0) -> tuple[str, str]:
    """Delete Service `name` and create it again without its ClusterIP; returns (old, new) ClusterIP.

    Waits (bounded) until the node's database answers on the new address: the simulated
    kube-proxy moves it there, as a real ClusterIP would forward at once.
    """
    old = cluster.store.get("v1", "Service", namespace, name)
    spec = {k: v for k, v in old["spec"].items() if k not in ("clusterIP", "clusterIPs")}
    metadata = {k: v for k, v in old["metadata"].items() if k in ("name", "namespace", "labels", "annotations")}
    cluster.store.delete("v1", "Service", namespace, name)
    created = cluster.store.create({"apiVersion": "v1", "kind": "Service", "metadata": metadata, "spec": spec})
    new_ip = created["spec"]["clusterIP"]
    assert new_ip and new_ip != old["spec"]["clusterIP"], "the API server must allocate a new ClusterIP"
    deadline = time.monotonic() + timeout
    while True:
        try:
            cluster.query(namespace, name, "SELECT 1")
            return old["spec"]["clusterIP"], new_ip
        except Exception:  # noqa: BLE001 - the database is moving to the new address
            if time.monotonic() >= deadline:
                raise AssertionError(f"{name} never answered on its new ClusterIP {new_ip}") from None
            time.sleep(0.3)
