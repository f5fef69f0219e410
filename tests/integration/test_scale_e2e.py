"""scale_antdb_coordinators end to end on the real postgres-operator 4.2.1: 1 gc + 2 cn + 2 dn
with a filled table, then 2 -> 3 (a fresh pgBackRest backup of cn1, then the operator's three
clone steps: repo sync, restore, new Pgcluster), the same again (no change), 3 -> 1 (PVCs kept),
a clone whose restore Job fails (the task fails at once naming the step) and its re-run 1 -> 2
onto the kept PVC, 2 -> 1 with delete_data, refusals.

Tests in this module run in order against one cluster per backend. Every scenario ends by
counting every row written so far, from every coordinator that exists.
"""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest

from antdb_k8s.core.scale import ScalePlan
from antdb_k8s.operators.clone import CloneCoordinatorsOperator
from tests.integration.test_deploy_e2e import MUTATING, wait_until
from tests.support.users import AIRFLOW, OPERATOR

pytestmark = pytest.mark.integration
NS = "pgouser1"
TABLE = "scale_check"
DATANODES = ["dn1", "dn2"]
TIMEOUTS = {"clone_ready": 300, "removal": 120, "poke_interval": 1}
DEPLOY = {"coordinators": 2, "datanodes": 2, "prepare_hosts": "off",
          "timeouts": {"gc_ready": 300, "nodes_ready": 300, "poke_interval": 1}}
WRITTEN = {"rows": 0}          # rows inserted so far into this backend's cluster (the tests run in order)


def scale(cluster, coordinators: int, **extra):
    return cluster.run_dag("scale_antdb_coordinators",
                           {"namespace": NS, "coordinators": coordinators, "timeouts": TIMEOUTS, **extra})


def expected_catalog(cluster, coordinators: list[str]) -> set[tuple]:
    ips = cluster.cluster_ips(NS)
    rows = {("gc", "C", ips["gc"], 5432, False, True)}
    rows |= {(cn, "C", ips[cn], 5432, False, False) for cn in coordinators}
    rows |= {(dn, "D", ips[dn], 5432, dn == "dn1", False) for dn in DATANODES}
    return rows


def write_from(cluster, node: str, rows: int) -> None:
    start = WRITTEN["rows"] + 1
    cluster.query(NS, node, f"INSERT INTO {TABLE} SELECT g, md5(g::text) FROM generate_series({start}, "
                            f"{start + rows - 1}) g")
    WRITTEN["rows"] += rows


def count_from(cluster, node: str) -> int:
    return cluster.query(NS, node, f"SELECT count(*) FROM {TABLE}")[0][0]


def coordinators_in_kubernetes(cluster) -> list[str]:
    names = [p["metadata"]["name"] for p in cluster.store.list("crunchydata.com/v1", "Pgcluster", NS)]
    return sorted((n for n in names if n.startswith("cn")), key=lambda n: int(n[2:]))


def leftovers(cluster, name: str) -> list[str]:
    """Every object of node `name` still in the namespace, PVCs aside."""
    found = []
    for api_version, kind in (("crunchydata.com/v1", "Pgcluster"), ("crunchydata.com/v1", "Pgtask"),
                              ("apps/v1", "Deployment"), ("batch/v1", "Job"), ("v1", "Service"), ("v1", "Pod"),
                              ("v1", "ConfigMap"), ("v1", "Secret")):
        for item in cluster.store.list(api_version, kind, NS):
            meta = item["metadata"]
            labels = meta.get("labels") or {}
            if name in (labels.get("pg-cluster"), labels.get("crunchy-pgha-scope")) or meta["name"] == name:
                found.append(f"{kind}/{meta['name']}")
    return found


def test_deploy_and_fill_a_table(module_cluster):
    cluster = module_cluster
    WRITTEN["rows"] = 0        # a new cluster per backend: count from zero again
    assert cluster.run_dag("deploy_antdb", DEPLOY).state == "success"
    cluster.query(NS, "gc", f"CREATE TABLE {TABLE} (id int, payload text)")
    write_from(cluster, "gc", 1000)
    assert {count_from(cluster, n) for n in ("gc", "cn1", "cn2")} == {1000}


def test_scale_out_2_to_3_clones_the_catalog_and_registers_cn3_everywhere(module_cluster):
    cluster = module_cluster
    run = scale(cluster, 3)
    assert run.state == "success"

    assert coordinators_in_kubernetes(cluster) == ["cn1", "cn2", "cn3"]
    cn3 = cluster.get("crunchydata.com/v1", "Pgcluster", NS, "cn3")
    cn1 = cluster.get("crunchydata.com/v1", "Pgcluster", NS, "cn1")
    assert cn3["metadata"]["labels"]["antdb.io/role"] == "coordinator"
    for key in ("ccpimage", "ccpimagetag", "BackrestStorage", "port"):
        assert cn3["spec"][key] == cn1["spec"][key], f"{key} must come from cn1's Pgcluster"
    # The operator's clone drops customconfig; the package restored it, down to the pod template.
    assert cn3["spec"]["customconfig"] == cn1["spec"]["customconfig"] == "pgo-custom-antdb-config"
    pgconf = next(v for v in cluster.get("apps/v1", "Deployment", NS, "cn3")["spec"]["template"]["spec"]["volumes"]
                  if v["name"] == "pgconf-volume")
    assert pgconf["projected"]["sources"][0] == {"configMap": {"name": "pgo-custom-antdb-config"}}
    assert "postgres-ha.yaml" not in cluster.get("v1", "ConfigMap", NS, "cn3-pgha-default-config")["data"]
    assert cluster.query(NS, "cn3", "SHOW agtm_host")[0][0] == cluster.cluster_ips(NS)["gc"]
    without_name = lambda storage: {k: v for k, v in storage.items() if k != "name"}  # noqa: E731
    assert without_name(cn3["spec"]["PrimaryStorage"]) == without_name(cn1["spec"]["PrimaryStorage"])
    assert cn3["spec"]["rootsecretname"] == "cn3-postgres-secret"
    assert cluster.get("v1", "Secret", NS, "cn3-postgres-secret")["data"]["password"] == \
        cluster.get("v1", "Secret", NS, "cn1-postgres-secret")["data"]["password"]
    tasks = {t["spec"]["tasktype"]: t for t in cluster.store.list("crunchydata.com/v1", "Pgtask", NS,
                                                                  label_selector="pg-cluster=cn3,pgo-clone=true")}
    assert set(tasks) == {"clone-step1", "clone-step2", "clone-step3"}
    assert all(t["spec"]["status"] == "completed" for t in tasks.values())
    assert tasks["clone-step1"]["spec"]["parameters"]["sourceClusterName"] == "cn1"
    assert cluster.get("v1", "PersistentVolumeClaim", NS, "cn3") is not None
    # The fresh backup the clone restored from, run by the operator as `pgo backup cn1` would.
    backup = cluster.get("crunchydata.com/v1", "Pgtask", NS, "backrest-backup-cn1")
    assert backup["spec"]["status"] == "job completed"
    jobs = {j["metadata"]["name"]: j for j in cluster.store.list("batch/v1", "Job", NS)}
    assert job_condition(jobs["backrest-backup-cn1"]) == "Complete"
    clone_jobs = [n for n in jobs if n.startswith(("pgo-backrest-repo-sync-cn3-", "restore-cn3-"))]
    assert len(clone_jobs) == 2 and {job_condition(jobs[n]) for n in clone_jobs} == {"Complete"}
    assert cluster.xcom(run, "clone_new_coordinators")["backup"] == "Job backrest-backup-cn1 completed"

    holders = ["gc", "cn1", "cn2", "cn3"]
    for holder in holders:
        assert cluster.pgxc_rows(NS, holder) == expected_catalog(cluster, ["cn1", "cn2", "cn3"]), holder
    assert cluster.query(NS, "cn3", "SELECT setting FROM pg_settings WHERE name = 'pgxc_node_name'")[0][0] == "cn3"
    for holder in holders:
        assert count_from(cluster, holder) == WRITTEN["rows"], holder
    for holder in holders:
        write_from(cluster, holder, 25)
    for holder in holders:
        assert count_from(cluster, holder) == WRITTEN["rows"], holder
    # DDL after the scale reaches the new coordinator too.
    cluster.query(NS, "gc", "CREATE TABLE scale_after (id int)")
    cluster.query(NS, "cn3", "INSERT INTO scale_after SELECT g FROM generate_series(1, 10) g")
    assert cluster.query(NS, "cn2", "SELECT count(*) FROM scale_after")[0][0] == 10
    cluster.query(NS, "cn1", "DROP TABLE scale_after")
    assert cluster.xcom(run, "verify")["coordinators"] == ["cn1", "cn2", "cn3"]


def test_scale_to_the_current_count_changes_nothing(module_cluster):
    cluster = module_cluster
    catalogs = {h: cluster.pgxc_rows(NS, h) for h in ("gc", "cn1", "cn2", "cn3")}
    cluster.api.requests.clear()

    run = scale(cluster, 3, datanodes=2)

    assert run.state == "success"
    writes = [(r.method, r.path) for r in cluster.api.requests if r.method in MUTATING]
    assert writes == [], f"a re-run at the target must not write to Kubernetes: {writes}"
    assert {h: cluster.pgxc_rows(NS, h) for h in catalogs} == catalogs
    assert cluster.xcom(run, "plan")["action"] == "none"


def test_scale_in_3_to_1_drops_cn2_cn3_everywhere_and_keeps_their_pvcs(module_cluster):
    cluster = module_cluster
    run = scale(cluster, 1)
    assert run.state == "success"

    assert coordinators_in_kubernetes(cluster) == ["cn1"]
    for gone in ("cn2", "cn3"):
        assert leftovers(cluster, gone) == [], gone
        assert cluster.get("v1", "PersistentVolumeClaim", NS, gone) is not None, f"PVC {gone} must be kept"
        assert gone not in cluster.cluster_ips(NS)
    assert sorted(cluster.xcom(run, "remove_departing_coordinators")["kept_pvcs"]) == \
        ["cn2", "cn2-pgbr-repo", "cn3", "cn3-pgbr-repo"]
    for holder in ("gc", "cn1"):
        assert cluster.pgxc_rows(NS, holder) == expected_catalog(cluster, ["cn1"]), holder
        assert count_from(cluster, holder) == WRITTEN["rows"], holder
    write_from(cluster, "gc", 30)
    write_from(cluster, "cn1", 30)
    cluster.query(NS, "gc", "CREATE TABLE scale_ddl_after_in (id int)")   # DDL works: no dead coordinator
    cluster.query(NS, "gc", "DROP TABLE scale_ddl_after_in")
    for holder in ("gc", "cn1"):
        assert count_from(cluster, holder) == WRITTEN["rows"], holder


def job_condition(job: dict) -> str | None:
    return next((c["type"] for c in (job.get("status") or {}).get("conditions") or []
                 if c["type"] in ("Complete", "Failed") and c["status"] == "True"), None)


def test_a_failed_restore_fails_the_clone_at_once_naming_the_step_then_a_rerun_clones_onto_the_kept_pvc(
        module_cluster, monkeypatch):
    cluster = module_cluster
    cluster.query(NS, "gc", "CREATE TABLE scale_late (id int)")   # created while cn2 is gone
    cluster.query(NS, "gc", "INSERT INTO scale_late VALUES (1), (2), (3)")

    def broken_restore(namespace, target, backup):
        raise RuntimeError("no space left on device (injected)")

    # The restore Job's pod fails as pgBackRest would on a full volume; nothing else is touched.
    monkeypatch.setattr(cluster.backend, "restore_data", broken_restore)
    plan = ScalePlan(NS, ("cn1",), ("cn1", "cn2"), add=("cn2",), source="cn1", datanodes=len(DATANODES))
    clone = CloneCoordinatorsOperator(task_id="clone_new_coordinators", plan=plan.to_dict())
    slow = {**TIMEOUTS, "clone_ready": 3600}       # a failure must not be found by waiting this out
    context = {"params": {"timeouts": slow}, "run_id": "injected-failure", "ti": SimpleNamespace(try_number=1)}
    with pytest.raises(RuntimeError, match=r"clone of cn2, step 2 \(pgBackRest restore into the new PVC\): "
                                           r"Job restore-cn2-\w+ failed .*no space left on device \(injected\)"):
        clone.execute(context)
    assert cluster.get("crunchydata.com/v1", "Pgcluster", NS, "cn2") is None
    failed = [j for j in cluster.store.list("batch/v1", "Job", NS, label_selector="pg-cluster=cn2")
              if j["metadata"]["name"].startswith("restore-cn2-")]
    assert [job_condition(j) for j in failed] == ["Failed"]
    monkeypatch.undo()

    run = scale(cluster, 2)        # a new clone attempt; the failed one is history

    assert run.state == "success"
    assert coordinators_in_kubernetes(cluster) == ["cn1", "cn2"]
    for holder in ("gc", "cn1", "cn2"):
        assert cluster.pgxc_rows(NS, holder) == expected_catalog(cluster, ["cn1", "cn2"]), holder
        assert count_from(cluster, holder) == WRITTEN["rows"], holder
    # The kept PVC of the old cn2 now holds a fresh clone: it knows a table made after it left.
    assert cluster.query(NS, "cn2", "SELECT count(*) FROM scale_late")[0][0] == 3
    write_from(cluster, "cn2", 40)
    cluster.query(NS, "cn2", "DROP TABLE scale_late")
    for holder in ("gc", "cn1", "cn2"):
        assert count_from(cluster, holder) == WRITTEN["rows"], holder


PGO_PATH = rf"/apis/crunchydata.com/v1/namespaces/{NS}"


def race_the_initial_backup(cluster, node: str) -> dict:
    """Make the real operator create `node`'s initial-backup Pgtask just after the removal swept Pgtasks.

    As the removal deletes the Pgcluster, the node's stanza-create Job reports success (its
    completion write, as the Job controller makes it); the operator's answer
    (controller/jobcontroller.go -> backrest.CreateBackup) reads the Pgcluster while it still
    exists, and its Pgtask create is held until the removal has listed and deleted Pgtasks.
    This is the order CI once hit by chance.
    """
    seen = {"operator read": threading.Event(), "swept": threading.Event()}
    race: dict = {}

    def job_completes() -> None:
        cluster.operator_api.faults.before(seen["operator read"].set, methods={"GET"}, user=OPERATOR,
                                           path=rf"{PGO_PATH}/pgclusters/{node}$")
        race["held create"] = cluster.operator_api.faults.before(
            lambda: seen["swept"].wait(60), methods={"POST"}, user=OPERATOR, path=rf"{PGO_PATH}/pgtasks$")
        cluster.api.faults.before(seen["swept"].set, methods={"GET"}, user=AIRFLOW,
                                  path=rf"/apis/apps/v1/namespaces/{NS}/deployments$")
        cluster.store.patch("batch/v1", "Job", NS, f"{node}-stanza-create",
                            {"metadata": {"annotations": {"antdb.io/test-completion-write": "1"}}})
        assert seen["operator read"].wait(60), "the operator never answered the stanza-create Job's success"

    race["delete"] = cluster.api.faults.before(job_completes, methods={"DELETE"}, user=AIRFLOW,
                                               path=rf"{PGO_PATH}/pgclusters/{node}$")
    race["seen"] = seen
    return race


def test_scale_in_with_delete_data_removes_the_volumes(module_cluster):
    """Also when the operator, answering the node's stanza-create, adds a Pgtask during the removal."""
    cluster = module_cluster
    cluster.wait_operator_settled(NS)    # cn2's stanza-create and first backup are over: a quiet start
    race = race_the_initial_backup(cluster, "cn2")

    run = scale(cluster, 1, delete_data=True)

    assert race["delete"].hits and not race["delete"].errors, race["delete"].errors or "cn2 was never deleted"
    assert race["seen"]["swept"].is_set(), "the removal never swept past Pgtasks"
    assert race["held create"].hits == [f"POST {PGO_PATH}/pgtasks"], "the operator made its Pgtask after the sweep"
    assert "Pgtask/backrest-backup-cn2" in cluster.xcom(run, "remove_departing_coordinators")["removed"]["cn2"]
    assert run.state == "success"
    assert coordinators_in_kubernetes(cluster) == ["cn1"]
    assert leftovers(cluster, "cn2") == []
    claims = [c["metadata"]["name"] for c in cluster.store.list("v1", "PersistentVolumeClaim", NS)]
    assert "cn2" not in claims and "cn2-pgbr-repo" not in claims and "cn1" in claims
    assert cluster.xcom(run, "remove_departing_coordinators")["kept_pvcs"] == []
    wait_until(lambda: not cluster.backend.data_dir(NS, "cn2").exists(), 60, "cn2's data to be released")
    for holder in ("gc", "cn1"):
        assert cluster.pgxc_rows(NS, holder) == expected_catalog(cluster, ["cn1"]), holder
        assert count_from(cluster, holder) == WRITTEN["rows"], holder


def _refused(cluster, capfd, conf: dict) -> str:
    capfd.readouterr()
    cluster.api.requests.clear()
    run = cluster.run_dag("scale_antdb_coordinators", {"namespace": NS, "timeouts": TIMEOUTS, **conf})
    assert run.state == "failed"
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert states["plan"] == "failed" and states["clone_new_coordinators"] == "upstream_failed"
    assert [(r.method, r.path) for r in cluster.api.requests if r.method in MUTATING] == []
    output = capfd.readouterr()
    return output.out + output.err


def test_zero_coordinators_is_refused_and_changes_nothing(module_cluster, capfd):
    cluster = module_cluster
    message = _refused(cluster, capfd, {"coordinators": 0})
    assert "coordinators must be at least 1, got 0" in message
    assert coordinators_in_kubernetes(cluster) == ["cn1"]


def test_a_datanode_change_is_refused_saying_antdb5_does_not_support_it(module_cluster, capfd):
    cluster = module_cluster
    message = _refused(cluster, capfd, {"coordinators": 2, "datanodes": 3})
    assert "AntDB 5 does not support datanode scaling here" in message
    assert coordinators_in_kubernetes(cluster) == ["cn1"]
    for holder in ("gc", "cn1"):
        assert count_from(cluster, holder) == WRITTEN["rows"], holder
