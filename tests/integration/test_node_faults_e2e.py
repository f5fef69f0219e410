"""deploy_antdb when a database, not the API, fails: a coordinator whose server is down while
`reconcile_pgxc_node` runs. Its pod still looks Ready to Kubernetes (the server died after the
last readiness probe), so only the catalog step meets it.

What must hold: every other holder is reconciled in the same run, the down coordinator's task
fails and is named by its node, and once it is back a re-run converges without dropping and
re-creating any datanode row (same `node_id`, same OID) and without losing a row written before.
Tests run in order against one cluster.
"""

from __future__ import annotations

import pytest

from tests.integration.test_deploy_e2e import wait_until
from tests.support import drift

pytestmark = pytest.mark.integration
NS = "antdb-node-faults"
NODES = ["gc", "cn1", "cn2", "dn1", "dn2"]
HOLDERS = ["gc", "cn1", "cn2"]
CONF = {"namespace": NS, "coordinators": 2, "datanodes": 2, "prepare_hosts": "off",
        "timeouts": {"gc_ready": 300, "nodes_ready": 300, "poke_interval": 1}}
ROWS = 321


def expected_catalog(cluster) -> set[tuple]:
    ips = cluster.cluster_ips(NS)
    return {(n, "D" if n.startswith("dn") else "C", ips[n], 5432, n == "dn1", n == "gc") for n in NODES}


def datanode_identity(cluster, holder: str) -> dict[str, tuple[int, int]]:
    """(OID, node_id) of each datanode row: a row dropped and re-created gets new ones."""
    rows = cluster.query(NS, holder, "SELECT node_name, oid, node_id FROM pgxc_node WHERE node_type = 'D'")
    return {str(name): (int(oid), int(node_id)) for name, oid, node_id in rows}


def reconcile_states(run) -> dict[str, str]:
    from airflow.models import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.query(TaskInstance).filter_by(dag_id=run.dag_id, run_id=run.run_id,
                                                     task_id="reconcile_pgxc_node")
        return {ti.rendered_map_index: str(getattr(ti.state, "value", ti.state)) for ti in rows}


def count_everywhere(cluster) -> dict[str, int]:
    return {h: cluster.query(NS, h, "SELECT count(*) FROM ledger")[0][0] for h in HOLDERS}


def test_deploy_and_write_rows(module_cluster):
    cluster = module_cluster
    assert cluster.run_dag("deploy_antdb", CONF).state == "success"
    cluster.wait_operator_settled(NS)
    cluster.query(NS, "gc", "CREATE TABLE ledger (id int, payload text)")
    cluster.query(NS, "gc", f"INSERT INTO ledger SELECT g, md5(g::text) FROM generate_series(1, {ROWS}) g")
    assert count_everywhere(cluster) == {h: ROWS for h in HOLDERS}


def test_a_coordinator_down_during_reconcile_fails_alone_and_a_rerun_converges(module_cluster, capfd):
    cluster = module_cluster
    identities = {h: datanode_identity(cluster, h) for h in HOLDERS}
    wrong = drift.unused_address(cluster, NS)
    for holder in HOLDERS:                      # drift on every holder: each has work to do
        drift.alter_row(cluster, NS, holder, "dn2", host=wrong)
    cluster.backend.stop_node(NS, "cn2")         # down after its last readiness probe

    run = cluster.run_dag("deploy_antdb", CONF)

    assert run.state == "failed"
    states = reconcile_states(run)
    assert states["gc"] == states["cn1"] == "success" and states["cn2"] == "failed", states
    for holder in ("gc", "cn1"):
        assert cluster.pgxc_rows(NS, holder) == expected_catalog(cluster), holder
        assert datanode_identity(cluster, holder) == identities[holder], "ALTER in place, never DROP+CREATE"
    output = capfd.readouterr()
    assert "cn2" in output.out + output.err

    old_pod = cluster.database_pods(NS)["cn2"]
    cluster.store.delete("v1", "Pod", NS, old_pod)          # what a liveness probe would bring about
    wait_until(lambda: cluster.database_pods(NS).get("cn2") not in (None, old_pod)
               and cluster.query(NS, "cn2", "SELECT 1") == [(1,)], 180, "cn2 back")

    rerun = cluster.run_dag("deploy_antdb", CONF)

    assert rerun.state == "success"
    for holder in HOLDERS:
        assert cluster.pgxc_rows(NS, holder) == expected_catalog(cluster), holder
        assert datanode_identity(cluster, holder) == identities[holder], holder
    assert count_everywhere(cluster) == {h: ROWS for h in HOLDERS}
