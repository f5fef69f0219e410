"""deploy_antdb refuses what it must refuse, and says why, having changed nothing."""

from __future__ import annotations

import pytest

from antdb_k8s.core.pgxc import PgxcRow
from tests.integration.test_deploy_e2e import MUTATING, NS
from tests.support.drift import create_row, drop_row

pytestmark = pytest.mark.integration

# Each bad conf with the field its error must name. The first group is rejected by the
# trigger form's JSON schema (the run is never created); the rest by the validate task.
BAD_CONFS = [
    ({"coordinators": 0}, "coordinators"),
    ({"datanodes": -1}, "datanodes"),
    ({"coordinators": 17}, "coordinators"),
    ({"namespace": "Bad_Name"}, "namespace"),
    ({"images": {"gc": {"name": "antdb.cluster.gc-ha", "tag": "21 0"}}}, "tag"),
    ({"storage": {"dn": {"size": "10 GB"}}}, "size"),
    ({"surprise": 1}, "surprise"),
    ({"storage": {"dn": {"size": "10Gi", "speed": "fast"}}}, "speed"),
    ({"postgres_parameters": {"agtm_host": "127.0.0.1"}}, "postgres_parameters.agtm_host"),
    ({"pg_hba": ["host all all 0.0.0.0/0 trust"]}, "pg_hba[0]"),
]


def mutations(cluster) -> list[tuple[str, str]]:
    return [(r.method, r.path) for r in cluster.api.requests if r.method in MUTATING]


@pytest.mark.parametrize("conf,field", BAD_CONFS, ids=[f for _, f in BAD_CONFS])
def test_bad_conf_fails_naming_the_field_and_creates_nothing(fresh_cluster, capfd, conf, field):
    cluster = fresh_cluster
    cluster.api.requests.clear()
    try:
        run = cluster.run_dag("deploy_antdb", conf)
        assert run.state == "failed"
        message = capfd.readouterr()
        message = message.out + message.err
    except Exception as exc:  # noqa: BLE001 - the form's schema rejects before a run exists
        message = str(exc)
    assert field in message
    assert mutations(cluster) == []
    assert cluster.get("v1", "Namespace", None, NS) is None
    assert cluster.store.list("crunchydata.com/v1", "Pgcluster") == []


def test_dry_run_on_a_live_cluster_reads_but_writes_nothing(fresh_cluster):
    cluster = fresh_cluster
    cluster.api.requests.clear()
    run = cluster.run_dag("deploy_antdb", {"dry_run": True})
    assert run.state == "success"
    assert mutations(cluster) == []
    assert any(r.method == "GET" for r in cluster.api.requests), "a dry run still reads live facts"
    assert cluster.store.list("crunchydata.com/v1", "Pgcluster") == []


def test_a_datanode_kubernetes_does_not_have_is_refused_not_dropped(fresh_cluster, capfd):
    cluster = fresh_cluster
    conf = {"coordinators": 1, "datanodes": 2, "prepare_hosts": "off", "timeouts": {"gc_ready": 300, "nodes_ready": 300, "poke_interval": 1}}
    assert cluster.run_dag("deploy_antdb", conf).state == "success"
    # A stale datanode row, as if dn9 had been removed from Kubernetes by hand.
    create_row(cluster, NS, "cn1", PgxcRow("dn9", "D", "127.0.0.9", 5432))
    before = cluster.pgxc_rows(NS, "cn1")
    capfd.readouterr()

    run = cluster.run_dag("deploy_antdb", conf)

    assert run.state == "failed"
    output = capfd.readouterr()
    assert "refusing" in output.out + output.err and "dn9" in output.out + output.err
    assert cluster.pgxc_rows(NS, "cn1") == before, "a refused plan must change nothing"
    assert ("dn9", "D") in {(row[0], row[1]) for row in cluster.pgxc_rows(NS, "cn1")}

    # Once the DBA has dealt with dn9 (here: removed its row by hand), the same conf re-run
    # continues from where the failed run stopped and finishes the deploy.
    drop_row(cluster, NS, "cn1", "dn9")
    assert cluster.run_dag("deploy_antdb", conf).state == "success"
    assert "dn9" not in {row[0] for row in cluster.pgxc_rows(NS, "cn1")}
    assert cluster.pgxc_rows(NS, "cn1") == cluster.pgxc_rows(NS, "gc")


def test_dry_run_without_a_reachable_cluster_says_what_it_could_not_read(airflow_db, tmp_path, monkeypatch):
    import json
    import socket

    from tests.support.cluster import run_dag, xcom_values

    with socket.socket() as probe:  # a loopback port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}]}))
    monkeypatch.setenv("AIRFLOW_CONN_KUBERNETES_DEFAULT", json.dumps(
        {"conn_type": "kubernetes", "extra": {"kube_config_path": str(kubeconfig)}}))
    monkeypatch.setenv("AIRFLOW_CONN_ANTDB_DEFAULT", "postgres://postgres:pw@/postgres")

    run = run_dag("deploy_antdb", {"dry_run": True})

    assert run.state == "success"
    summary = json.loads(dict(xcom_values(run))["summary"])
    unread = " | ".join(summary["unread"])
    for fact in ("Kubernetes nodes", "postgres-operator state", "Service gc ClusterIP", "node Services",
                 "pgxc_node on gc"):
        assert fact in unread
    planned = [step for step in summary["steps"]["reconcile"]]
    assert {p["target"] for p in planned} == {"gc", "cn1", "cn2"}
    assert all(p["applied"] is False and p["sql"][-1] == "SELECT pgxc_pool_reload()" for p in planned)
