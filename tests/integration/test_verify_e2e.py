"""verify_antdb_topology end to end: clean on a healthy cluster; for each injected drift, it
fails naming the drift with repair off, repairs at the right level, and a second run with
repair off passes. Every scenario ends by counting a table written before any of them.

Tests in this module run in order against one cluster of real AntDB nodes.
"""

from __future__ import annotations

import json
import time

import pytest
import yaml

from antdb_k8s.core.pgxc import PgxcRow
from tests.support.drift import alter_row, create_row, drop_row, recreate_service, unused_address

pytestmark = pytest.mark.integration
NS = "pgouser1"
DEPLOY = {"coordinators": 2, "datanodes": 3, "prepare_hosts": "off",
          "timeouts": {"gc_ready": 300, "nodes_ready": 300, "poke_interval": 1}}
NODES = ["gc", "cn1", "cn2", "dn1", "dn2", "dn3"]
HOLDERS = ["gc", "cn1", "cn2"]
KEEP, KEEP_ROWS = "verify_keep", 1000


def wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if predicate():
                return
        except Exception:  # noqa: BLE001 - a moving node refuses connections for a moment
            pass
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.3)


def expected_catalog(cluster) -> set[tuple]:
    ips = cluster.cluster_ips(NS)
    return {(n, "D" if n.startswith("dn") else "C", ips[n], 5432, n == "dn1", n == "gc") for n in NODES}


def run_verify(cluster, repair: str = "off", data_check: bool = True):
    run = cluster.run_dag("verify_antdb_topology", {"namespace": NS, "repair": repair, "data_check": data_check})
    return run, cluster.xcom(run, "final_verify", "report"), cluster.xcom(run, "repair")


def fails_naming(cluster, *fragments: str, repair: str = "off", data_check: bool = True) -> list[str]:
    run, report, _ = run_verify(cluster, repair, data_check)
    assert run.state == "failed", f"drift must fail the run: {report}"
    assert report is not None and not report["clean"]
    text = "\n".join(report["drift"])
    for fragment in fragments:
        assert fragment in text, f"{fragment!r} not named in the drift:\n{text}"
    return report["drift"]


def repairs_then_verifies_clean(cluster, level: str) -> dict:
    run, report, repaired = run_verify(cluster, level)
    assert run.state == "success", report and report["drift"]
    assert report["clean"] and repaired["changed"] and repaired["refused"] == []
    again, report, repaired = run_verify(cluster, "off")
    assert again.state == "success", report["drift"]
    assert report["clean"] and not repaired["changed"]
    for holder in HOLDERS:
        assert cluster.pgxc_rows(NS, holder) == expected_catalog(cluster), holder
    return report


def assert_nothing_lost(cluster) -> None:
    for holder in HOLDERS:
        assert cluster.query(NS, holder, f"SELECT count(*) FROM {KEEP}")[0][0] == KEEP_ROWS, holder
    leftovers = cluster.query(NS, "gc", "SELECT relname FROM pg_class WHERE relname LIKE 'antdb_verify%'")
    assert leftovers == [], "the data check's scratch table must always be dropped"


@pytest.fixture(scope="module")
def deployed(module_cluster):
    cluster = module_cluster
    run = cluster.run_dag("deploy_antdb", DEPLOY)
    assert run.state == "success"
    cluster.query(NS, "gc", f"CREATE TABLE {KEEP} (id int, payload text)")
    cluster.query(NS, "gc", f"INSERT INTO {KEEP} SELECT g, md5(g::text) FROM generate_series(1, {KEEP_ROWS}) g")
    return cluster


def test_healthy_cluster_verifies_clean_with_every_check(deployed):
    run, report, repaired = run_verify(deployed)

    assert run.state == "success" and report["clean"] and report["drift"] == []
    assert repaired == {"level": "off", "actions": [], "refused": [], "changed": False}
    checks = {(f["node"], f["check"]) for f in report["findings"]}
    for node in NODES:
        for check in ("pod", "service", "reachable", "version", "agtm_host"):
            assert (node, check) in checks, (node, check)
    assert {(h, "pgxc_node") for h in HOLDERS} <= checks
    assert {("cluster", "config_map"), ("cluster", "data")} <= checks
    data = next(f for f in report["findings"] if f["check"] == "data")
    assert all(f"dn{i}=" in data["detail"] for i in (1, 2, 3)), data
    assert_nothing_lost(deployed)


def test_coordinator_row_with_wrong_host_is_named_and_safely_repaired(deployed):
    wrong = unused_address(deployed, NS)
    alter_row(deployed, NS, "cn1", "cn2", host=wrong)

    fails_naming(deployed, "cn1 pgxc_node: ALTER cn2 [host]", wrong)
    repairs_then_verifies_clean(deployed, "safe")
    assert_nothing_lost(deployed)


def test_stale_extra_coordinator_row_is_named_and_dropped(deployed):
    create_row(deployed, NS, "cn2", PgxcRow("cn3", "C", unused_address(deployed, NS), 5432))

    fails_naming(deployed, "cn2 pgxc_node: DROP cn3", "Kubernetes no longer has it")
    repairs_then_verifies_clean(deployed, "safe")
    assert_nothing_lost(deployed)


def test_missing_row_is_named_and_created(deployed):
    drop_row(deployed, NS, "gc", "cn2")

    fails_naming(deployed, "gc pgxc_node: CREATE cn2", "missing from pgxc_node on gc")
    repairs_then_verifies_clean(deployed, "safe")
    assert_nothing_lost(deployed)


def test_wrong_primary_flag_is_named_and_moved_back(deployed):
    alter_row(deployed, NS, "cn1", "dn1", primary=False)
    alter_row(deployed, NS, "cn1", "dn2", primary=True)

    fails_naming(deployed, "cn1 pgxc_node: ALTER dn1 [primary]", "cn1 pgxc_node: ALTER dn2 [primary]")
    repairs_then_verifies_clean(deployed, "safe")
    assert_nothing_lost(deployed)


def test_extra_datanode_row_is_refused_not_dropped(deployed):
    create_row(deployed, NS, "cn2", PgxcRow("dn9", "D", unused_address(deployed, NS), 5432))

    drift = fails_naming(deployed, "cn2 pgxc_node: BLOCKER", "refusing to drop a datanode", repair="safe",
                         data_check=False)
    assert any("dn9" in line for line in drift)
    assert ("dn9", "D") in {(r[0], r[1]) for r in deployed.pgxc_rows(NS, "cn2")}, "a datanode row is never dropped"
    drop_row(deployed, NS, "cn2", "dn9")  # the DBA's decision, by hand
    run, report, _ = run_verify(deployed)
    assert run.state == "success", report["drift"]
    assert_nothing_lost(deployed)


def test_a_missing_service_is_named_and_a_moved_coordinator_safely_repaired(deployed):
    cluster = deployed
    service = cluster.store.get("v1", "Service", NS, "cn2")
    cluster.store.delete("v1", "Service", NS, "cn2")

    fails_naming(cluster, "cn2 service: Service cn2 not found", "cluster pgxc_node: not checked: cn2 have no Service",
                 data_check=False)
    run, _, repaired = run_verify(cluster, "safe", data_check=False)
    assert run.state == "failed" and not repaired["changed"]
    assert repaired["refused"] == ["cannot repair pgouser1: no Service address for cn2"]
    spec = {k: v for k, v in service["spec"].items() if k not in ("clusterIP", "clusterIPs")}
    metadata = {k: v for k, v in service["metadata"].items() if k in ("name", "namespace", "labels")}
    new_ip = cluster.store.create({"apiVersion": "v1", "kind": "Service", "metadata": metadata,
                                   "spec": spec})["spec"]["clusterIP"]
    wait_until(lambda: cluster.query(NS, "cn2", "SELECT 1"), 120, "cn2 to answer on its new ClusterIP")

    fails_naming(cluster, "gc pgxc_node: ALTER cn2 [host]", f"-> '{new_ip}'")
    repairs_then_verifies_clean(cluster, "safe")
    assert_nothing_lost(cluster)


def _custom_config(cluster) -> dict:
    text = cluster.get("v1", "ConfigMap", NS, "pgo-custom-antdb-config")["data"]["postgres-ha.yaml"]
    return yaml.safe_load(text)


def test_gc_at_a_new_address_needs_full_repair(deployed):
    cluster = deployed
    before_config, pods_before = _custom_config(cluster), cluster.database_pods(NS)
    old_ip, new_ip = recreate_service(cluster, NS, "gc")

    drift = fails_naming(cluster, "cluster config_map", f"gc's Service is at {new_ip}:5432",
                         "gc pgxc_node: ALTER gc [host]", data_check=False)
    # Vanilla nodes still answer and show their stale agtm_host; AntDB nodes refuse every query
    # without their GTM, and the report explains why from each node's Patroni config.
    stale = {line.split()[0] for line in drift if " agtm_host: " in line and old_ip in line}
    assert stale == set(NODES[1:]), drift
    fails_naming(cluster, "cluster config_map", repair="safe", data_check=False)
    assert cluster.database_pods(NS) == pods_before, "repair: safe never restarts a pod"

    repairs_then_verifies_clean(cluster, "full")

    config = _custom_config(cluster)
    parameters = config["bootstrap"]["dcs"]["postgresql"]["parameters"]
    assert parameters["agtm_host"] == new_ip
    before_params = before_config["bootstrap"]["dcs"]["postgresql"]["parameters"]
    assert {k: v for k, v in parameters.items() if k != "agtm_host"} == \
           {k: v for k, v in before_params.items() if k != "agtm_host"}, "other parameters are kept"
    assert config["postgresql"] == before_config["postgresql"]
    for node in NODES[1:]:
        dcs = json.loads(cluster.get("v1", "ConfigMap", NS, f"{node}-config")["metadata"]["annotations"]["config"])
        assert dcs["postgresql"]["parameters"]["agtm_host"] == new_ip, node
    pods_after = cluster.database_pods(NS)
    assert all(pods_after[n] != pods_before[n] for n in NODES[1:]), "every node on the old address restarted"
    assert old_ip not in {h for rows in (cluster.pgxc_rows(NS, h) for h in HOLDERS) for _, _, h, *_ in rows}
    assert_nothing_lost(cluster)
