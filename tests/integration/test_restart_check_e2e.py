"""antdb_restart_check end to end: deleting gc's, a coordinator's, a datanode's and every node's
pod changes no ClusterIP, no pgxc_node row and no count; the check table is dropped even when
the check fails; an unknown node and a drifted cluster are refused before any pod is touched.

Tests in this module run in order against one cluster (2 cn, 2 dn) per backend; each ends by
counting a ledger table written before it.
"""

from __future__ import annotations

import pytest

from antdb_k8s.core.pgxc import ChangeKind, NodeChange, PgxcRow
from antdb_k8s.core.topology import NodeAddress, NodeRole
from antdb_k8s.operators.restart_check import RestartNodesOperator
from tests.support.cluster import PASSWORD, xcom_values

pytestmark = pytest.mark.integration
NS = "antdb-restart"
NODES = ["gc", "cn1", "cn2", "dn1", "dn2"]
HOLDERS = ["gc", "cn1", "cn2"]
LEDGER_ROWS = 2345
DEPLOY = {"namespace": NS, "coordinators": 2, "datanodes": 2, "prepare_hosts": "off",
          "timeouts": {"gc_ready": 300, "nodes_ready": 300, "poke_interval": 1}}


def restart_check(cluster, **conf):
    return cluster.run_dag("antdb_restart_check", {"namespace": NS, "timeout": 180, **conf})


def task_states(run) -> dict[str, str]:
    return {ti.task_id: str(getattr(ti.state, "value", ti.state)) for ti in run.get_task_instances()}


def task_tries(run) -> dict[str, int]:
    return {ti.task_id: ti.try_number for ti in run.get_task_instances()}


def ledger_intact(cluster) -> None:
    counts = {h: cluster.query(NS, h, "SELECT count(*) FROM ledger")[0][0] for h in HOLDERS}
    assert counts == {h: LEDGER_ROWS for h in HOLDERS}


def check_tables(cluster) -> dict[str, list]:
    sql = "SELECT relname FROM pg_class WHERE relname LIKE 'antdb_restart_check%'"
    return {h: cluster.query(NS, h, sql) for h in HOLDERS}


def output(capfd) -> str:
    captured = capfd.readouterr()
    return captured.out + captured.err


def test_deploy_and_write_a_ledger(module_cluster):
    cluster = module_cluster
    assert cluster.run_dag("deploy_antdb", DEPLOY).state == "success"
    cluster.query(NS, "gc", "CREATE TABLE ledger (id int, payload text)")
    cluster.query(NS, "gc", f"INSERT INTO ledger SELECT g, md5(g::text) FROM generate_series(1, {LEDGER_ROWS}) g")
    ledger_intact(cluster)


@pytest.mark.parametrize("pod", ["gc", "cn1", "dn2", "all"])
def test_restart_check_passes_and_leaves_nothing_behind(module_cluster, pod):
    cluster = module_cluster
    pods, ips = cluster.database_pods(NS), cluster.cluster_ips(NS)

    run = restart_check(cluster, pod=pod, rows=5000)

    assert run.state == "success", task_states(run)
    assert set(task_tries(run).values()) == {1}, f"no task may need an Airflow retry: {task_tries(run)}"
    summary = cluster.xcom(run, "summary")
    restarted = NODES if pod == "all" else [pod]
    assert [r["node"] for r in summary["restarts"]] == restarted
    for entry in summary["restarts"]:
        assert entry["old_pod"] == pods[entry["node"]] and entry["new_pod"] != entry["old_pod"]
    now = cluster.database_pods(NS)
    assert {n for n in NODES if now[n] != pods[n]} == set(restarted)
    assert summary["differences"] == [] and summary["dropped"] is True
    assert summary["before"]["counts"] == summary["after"]["counts"] == {h: 5000 for h in HOLDERS}
    assert sorted(summary["after"]["per_datanode"]) == ["dn1", "dn2"]
    assert all(count > 0 for count in summary["after"]["per_datanode"].values())
    assert cluster.cluster_ips(NS) == ips
    assert check_tables(cluster) == {h: [] for h in HOLDERS}
    assert all(PASSWORD not in value for _, value in xcom_values(run))
    ledger_intact(cluster)


def test_an_unknown_node_is_refused_before_anything_changes(module_cluster, capfd):
    cluster = module_cluster
    pods = cluster.database_pods(NS)
    cluster.api.requests.clear()

    run = restart_check(cluster, pod="cn9")

    assert run.state == "failed"
    states = task_states(run)
    assert states["precheck"] == "failed" and states["record"] == "upstream_failed"
    assert states["drop_check_table"] == "success", "the drop task runs even after a refusal"
    text = output(capfd)
    assert "pod 'cn9' is not a node of this cluster" in text and "gc, cn1, cn2, dn1, dn2" in text
    assert not [r for r in cluster.api.requests if r.method == "DELETE"]
    assert cluster.database_pods(NS) == pods
    assert check_tables(cluster) == {h: [] for h in HOLDERS}
    ledger_intact(cluster)


def test_a_failing_check_still_drops_its_table(module_cluster, monkeypatch, capfd):
    """A row written behind the check's back between record and assert must fail it, and the
    table must still be dropped."""
    cluster = module_cluster
    original = RestartNodesOperator.execute

    def restart_then_tamper(self, context):
        result = original(self, context)
        table = context["ti"].xcom_pull(task_ids="record", key="table")
        cluster.query(NS, "cn2", f"INSERT INTO {table} VALUES (0, 'tampered')")
        return result

    monkeypatch.setattr(RestartNodesOperator, "execute", restart_then_tamper)

    run = restart_check(cluster, pod="dn1", rows=500)

    assert run.state == "failed"
    states = task_states(run)
    assert states["assert_unchanged"] == "failed" and states["drop_check_table"] == "success"
    assert states["summary"] == "upstream_failed"
    text = output(capfd)
    assert "the restart changed the cluster" in text and "row count from gc: 500 -> 501" in text
    summary = cluster.xcom(run, "assert_unchanged", "summary")
    assert "row count from cn1: 500 -> 501" in summary["differences"]
    assert check_tables(cluster) == {h: [] for h in HOLDERS}
    ledger_intact(cluster)


def test_precheck_refuses_a_drifted_cluster(module_cluster, capfd):
    from antdb_k8s.hooks.antdb import AntDBHook

    cluster = module_cluster
    cn1 = NodeAddress("cn1", NodeRole.COORDINATOR, cluster.cluster_ips(NS)["cn1"])
    stale = PgxcRow("cn9", "C", "127.0.0.1", 5432)
    hook = AntDBHook()
    hook.apply_node_change(cn1, NodeChange(ChangeKind.CREATE, stale))
    pods = cluster.database_pods(NS)
    try:
        run = restart_check(cluster, pod="gc")

        assert run.state == "failed"
        assert task_states(run)["precheck"] == "failed"
        text = output(capfd)
        assert "refusing the restart check: the cluster does not verify clean" in text
        assert "cn1 pgxc_node: DROP cn9" in text
        assert cluster.database_pods(NS) == pods, "no pod may be deleted on a drifted cluster"
    finally:
        hook.apply_node_change(cn1, NodeChange(ChangeKind.DROP, stale))
        hook.reload_pool(cn1)
    assert check_tables(cluster) == {h: [] for h in HOLDERS}
    ledger_intact(cluster)
