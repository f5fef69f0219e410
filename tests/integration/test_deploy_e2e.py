"""deploy_antdb end to end: empty namespace -> verified 1 gc + 2 cn + 3 dn cluster, then the
same conf again (nothing changes), then the runbook's section 3 (the gc pod restarts and
nothing in pgxc_node, ClusterIPs or row counts changes).

Tests in this module run in order against one cluster per backend.
"""

from __future__ import annotations

import base64
import time

import pytest

from tests.support.cluster import PASSWORD, xcom_values

pytestmark = pytest.mark.integration
NS = "pgouser1"
NODES = ["gc", "cn1", "cn2", "dn1", "dn2", "dn3"]
HOLDERS = ["gc", "cn1", "cn2"]
MUTATING = {"POST", "PUT", "PATCH", "DELETE"}


def expected_catalog(cluster) -> set[tuple]:
    ips = cluster.cluster_ips(NS)
    rows = set()
    for name in NODES:
        kind = "D" if name.startswith("dn") else "C"
        rows.add((name, kind, ips[name], 5432, name == "dn1", name == "gc"))
    return rows


def snapshot(cluster) -> dict:
    """resourceVersion of every object in the namespace, keyed by kind/name."""
    state = {}
    for api_version, kind in (("v1", "Secret"), ("v1", "ConfigMap"), ("v1", "Service"),
                              ("crunchydata.com/v1", "Pgcluster"), ("apps/v1", "Deployment"), ("v1", "Pod")):
        for item in cluster.store.list(api_version, kind, NS):
            state[f"{kind}/{item['metadata']['name']}"] = item["metadata"]["resourceVersion"]
    state["Namespace"] = cluster.store.get("v1", "Namespace", None, NS)["metadata"]["resourceVersion"]
    return state


def wait_until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except Exception:  # noqa: BLE001 - a node still restarting refuses connections
            pass
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def test_deploy_with_default_conf_builds_a_verified_cluster(module_cluster, capfd):
    cluster = module_cluster
    run = cluster.run_dag("deploy_antdb", {})
    assert run.state == "success"
    logs = capfd.readouterr()
    secrets_seen = {cluster.store.get("v1", "Secret", NS, s["metadata"]["name"])["data"]["password"]
                    for s in cluster.store.list("v1", "Secret", NS) if "password" in (s.get("data") or {})}
    passwords = {base64.b64decode(value).decode() for value in secrets_seen}
    assert PASSWORD in passwords and len(passwords) > 1, "superuser from the connection, others generated"
    xcoms = xcom_values(run)
    assert {task for task, _ in xcoms} >= {"validate", "collect_topology", "reconcile_pgxc_node", "smoke_test"}
    for secret in passwords:
        assert secret not in logs.out + logs.err, "a password reached the task log"
        assert all(secret not in value for _, value in xcoms), "a password reached XCom"

    pgclusters = {p["metadata"]["name"] for p in cluster.store.list("crunchydata.com/v1", "Pgcluster", NS)}
    assert pgclusters == set(NODES)
    ips = cluster.cluster_ips(NS)
    config = cluster.get("v1", "ConfigMap", NS, "pgo-custom-antdb-config")
    assert f"agtm_host: {ips['gc']}" in config["data"]["postgres-ha.yaml"]
    for holder in HOLDERS:
        assert cluster.pgxc_rows(NS, holder) == expected_catalog(cluster), holder
    # The smoke test's scratch table is gone from every node.
    for holder in HOLDERS:
        leftovers = cluster.query(NS, holder, "SELECT relname FROM pg_class WHERE relname LIKE 'antdb_smoke%'")
        assert leftovers == [], holder


def test_second_run_with_same_conf_changes_nothing(module_cluster):
    cluster = module_cluster
    cluster.wait_operator_settled(NS)      # the operator works on after the DAG: Initialized, stanza, backup
    cluster.sim.wait_idle()
    before, catalogs = snapshot(cluster), {h: cluster.pgxc_rows(NS, h) for h in HOLDERS}
    cluster.api.requests.clear()

    run = cluster.run_dag("deploy_antdb", {})

    assert run.state == "success"
    writes = [(r.method, r.path) for r in cluster.api.requests
              if r.method in MUTATING and "antdb-host-prep" not in r.path and "/pods" not in r.path]
    assert writes == [], f"a re-run must not write to Kubernetes: {writes}"
    assert snapshot(cluster) == before
    assert {h: cluster.pgxc_rows(NS, h) for h in HOLDERS} == catalogs


def replacement_ready(cluster, node: str, old_pod: str) -> bool:
    name = cluster.database_pods(NS).get(node)
    if name in (None, old_pod):
        return False
    conditions = (cluster.store.get("v1", "Pod", NS, name).get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def test_gc_pod_restart_changes_nothing_and_loses_nothing(module_cluster):
    cluster = module_cluster
    cluster.query(NS, "gc", "CREATE TABLE restart_check (id int, payload text)")
    cluster.query(NS, "gc", "INSERT INTO restart_check SELECT g, md5(g::text) FROM generate_series(1, 10000) g")
    per_dn_sql = ("SELECT n.node_name, count(*) FROM restart_check t JOIN pgxc_node n ON t.xc_node_id = n.node_id "
                  "GROUP BY n.node_name ORDER BY 1")
    spread = cluster.query(NS, "gc", per_dn_sql)
    assert [name for name, _ in spread] == ["dn1", "dn2", "dn3"] and all(count > 0 for _, count in spread)
    ips, catalogs = cluster.cluster_ips(NS), {h: cluster.pgxc_rows(NS, h) for h in HOLDERS}
    old_pod = cluster.database_pods(NS)["gc"]

    cluster.store.delete("v1", "Pod", NS, old_pod)
    # Ready, not just created: the ReplicaSet makes the replacement at once, while the old
    # pod's database is still being stopped (and still answers).
    wait_until(lambda: replacement_ready(cluster, "gc", old_pod)
               and cluster.query(NS, "cn1", "SELECT count(*) FROM restart_check")[0][0] == 10000
               and cluster.query(NS, "gc", "SELECT count(*) FROM restart_check")[0][0] == 10000,
               120, "the replacement gc pod to serve queries")

    assert cluster.database_pods(NS)["gc"] != old_pod
    assert cluster.cluster_ips(NS) == ips
    assert {h: cluster.pgxc_rows(NS, h) for h in HOLDERS} == catalogs
    for holder in HOLDERS:
        assert cluster.query(NS, holder, "SELECT count(*) FROM restart_check")[0][0] == 10000, holder
    assert cluster.query(NS, "gc", per_dn_sql) == spread
    cluster.query(NS, "gc", "DROP TABLE restart_check")
