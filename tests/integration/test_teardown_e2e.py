"""teardown_antdb end to end: refusals change nothing, a dry run lists and deletes nothing, a
teardown removes the cluster and keeps its data (a redeploy brings every row back), and
delete_data removes the claims, the volumes, the data directories and the namespace.

Tests in this module run in order against one small cluster (1 cn, 2 dn) per backend.
"""

from __future__ import annotations

import time

import pytest

from tests.integration.test_deploy_e2e import MUTATING
from tests.support.cluster import PASSWORD, xcom_values

pytestmark = pytest.mark.integration
NS = "antdb-teardown"
NODES = ["gc", "cn1", "dn1", "dn2"]
HOLDERS = ["gc", "cn1"]
LEDGER_ROWS = 1234
DEPLOY = {"namespace": NS, "coordinators": 1, "datanodes": 2, "prepare_hosts": "off",
          "storage": {"dn": {"size": "5Gi", "host_path": "/srv/antdb-test"}},
          "timeouts": {"gc_ready": 300, "nodes_ready": 300, "poke_interval": 1}}
KINDS = (("crunchydata.com/v1", "Pgcluster"), ("apps/v1", "Deployment"), ("batch/v1", "Job"), ("v1", "Pod"),
         ("v1", "Service"), ("v1", "ConfigMap"), ("v1", "Secret"), ("v1", "PersistentVolumeClaim"))


def inventory(cluster, namespace: str = NS) -> dict[str, str]:
    """uid of every object of the kinds teardown handles, keyed by kind/name (plus PVs, namespace)."""
    found = {}
    for api_version, kind in KINDS:
        for item in cluster.store.list(api_version, kind, namespace):
            found[f"{kind}/{item['metadata']['name']}"] = item["metadata"]["uid"]
    for pv in cluster.store.list("v1", "PersistentVolume", None, label_selector=f"antdb.io/namespace={namespace}"):
        found[f"PersistentVolume/{pv['metadata']['name']}"] = pv["metadata"]["uid"]
    namespace_object = cluster.get("v1", "Namespace", None, namespace)
    if namespace_object:
        found[f"Namespace/{namespace}"] = namespace_object["metadata"]["uid"]
    return found


def mutations(cluster) -> list[tuple[str, str]]:
    return [(r.method, r.path) for r in cluster.api.requests if r.method in MUTATING]


def ledger_counts(cluster) -> dict[str, int]:
    return {h: cluster.query(NS, h, "SELECT count(*) FROM ledger")[0][0] for h in HOLDERS}


def wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def teardown(cluster, **conf):
    return cluster.run_dag("teardown_antdb", {"namespace": NS, **conf})


def test_deploy_a_small_cluster_and_write_a_ledger(module_cluster):
    cluster = module_cluster
    assert cluster.run_dag("deploy_antdb", DEPLOY).state == "success"
    cluster.wait_operator_settled(NS)      # the inventories compared below must not move on their own
    cluster.query(NS, "gc", "CREATE TABLE ledger (id int, payload text)")
    cluster.query(NS, "gc", f"INSERT INTO ledger SELECT g, md5(g::text) FROM generate_series(1, {LEDGER_ROWS}) g")
    assert ledger_counts(cluster) == {h: LEDGER_ROWS for h in HOLDERS}
    assert {p["metadata"]["name"] for p in cluster.store.list("v1", "PersistentVolume", None)} >= \
        {f"antdb-{NS}-dn1", f"antdb-{NS}-dn2"}


@pytest.mark.parametrize("confirmation", [None, "", "antdb-teardwn", "pgouser1"],
                         ids=["missing", "empty", "typo", "other-namespace"])
def test_without_matching_confirmation_it_refuses_and_touches_nothing(module_cluster, capfd, confirmation):
    cluster = module_cluster
    before = inventory(cluster)
    cluster.api.requests.clear()
    conf = {} if confirmation is None else {"confirm_namespace": confirmation}

    run = teardown(cluster, **conf)

    assert run.state == "failed"
    output = capfd.readouterr()
    assert f"refusing to tear down namespace {NS}" in output.out + output.err
    assert cluster.api.requests == [], "refused before reading or touching anything"
    assert inventory(cluster) == before
    assert ledger_counts(cluster) == {h: LEDGER_ROWS for h in HOLDERS}


def test_a_namespace_without_an_antdb_cluster_is_refused(module_cluster, capfd):
    cluster = module_cluster
    cluster.api.requests.clear()
    for namespace in ("default", "no-such-namespace"):
        run = cluster.run_dag("teardown_antdb", {"namespace": namespace, "confirm_namespace": namespace})
        assert run.state == "failed", namespace
    output = capfd.readouterr()
    output = output.out + output.err
    assert "namespace default holds no AntDB cluster" in output
    assert "namespace no-such-namespace does not exist" in output
    assert mutations(cluster) == []


def test_dry_run_lists_what_would_go_and_what_stays_and_deletes_nothing(module_cluster):
    cluster = module_cluster
    before = inventory(cluster)
    cluster.api.requests.clear()

    run = teardown(cluster, dry_run=True)

    assert run.state == "success"
    assert mutations(cluster) == []
    assert inventory(cluster) == before
    result = cluster.xcom(run, "teardown")
    assert result["dry_run"] is True and result["nodes"] == sorted(NODES)
    would = set(result["would_delete"])
    for node in NODES:
        assert {f"Pgcluster/{node}", f"Deployment/{node}", f"Deployment/{node}-backrest-shared-repo",
                f"Service/{node}", f"Service/{node}-backrest-shared-repo", f"ConfigMap/{node}-pgha-default-config",
                f"ConfigMap/{node}-config", f"ConfigMap/{node}-leader", f"Secret/{node}-postgres-secret",
                f"Secret/{node}-backrest-repo-config", f"Job/{node}-stanza-create",
                f"Job/backrest-backup-{node}"} <= would, node
        # The 4.2.1 operator makes `<node>-replica` only for clusters with replicas (cluster/clusterlogic.go).
        assert f"Service/{node}-replica" not in would
    assert "ConfigMap/pgo-custom-antdb-config" in would
    pods = {k for k in before if k.startswith("Pod/")}
    assert pods and pods <= would
    kept = set(result["kept"])
    assert {f"PersistentVolumeClaim/{n}" for n in NODES} | {f"PersistentVolumeClaim/{n}-pgbr-repo" for n in NODES} \
        <= kept
    assert {f"PersistentVolume/antdb-{NS}-dn1", f"PersistentVolume/antdb-{NS}-dn2", f"Namespace/{NS}"} <= kept
    assert not any(k.startswith(("PersistentVolume", "Namespace")) for k in would)
    assert ledger_counts(cluster) == {h: LEDGER_ROWS for h in HOLDERS}


def test_teardown_removes_the_cluster_and_keeps_the_data(module_cluster):
    cluster = module_cluster
    old_ips = cluster.cluster_ips(NS)

    run = teardown(cluster, confirm_namespace=NS)

    assert run.state == "success"
    left = inventory(cluster)
    assert sorted(k.split("/")[0] for k in left) == ["Namespace"] + ["PersistentVolume"] * 2 + \
        ["PersistentVolumeClaim"] * 2 * len(NODES), left
    for node in NODES:
        assert cluster.backend.data_dir(NS, node).is_dir(), f"{node}'s data must survive"
    assert all(PASSWORD not in value for _, value in xcom_values(run))

    # Nothing lost: the same cluster deployed again finds every row written before the teardown.
    assert cluster.run_dag("deploy_antdb", DEPLOY).state == "success"
    assert cluster.cluster_ips(NS)["gc"] != old_ips["gc"], "new Services, new addresses"
    assert ledger_counts(cluster) == {h: LEDGER_ROWS for h in HOLDERS}


def test_teardown_with_delete_data_removes_claims_volumes_data_and_namespace(module_cluster):
    cluster = module_cluster
    assert ledger_counts(cluster) == {h: LEDGER_ROWS for h in HOLDERS}

    run = teardown(cluster, confirm_namespace=NS, delete_data=True)

    assert run.state == "success"
    assert inventory(cluster) == {}
    assert cluster.store.list("v1", "PersistentVolumeClaim", None, label_selector="vendor=crunchydata") == []
    wait_until(lambda: not any(cluster.backend.data_dir(NS, n).exists() for n in NODES), 60,
               "the simulator to destroy the released data directories")
    result = cluster.xcom(run, "teardown")
    assert f"Namespace/{NS}" in result["deleted"]
    assert any("hostPath" in note for note in result["notes"])
