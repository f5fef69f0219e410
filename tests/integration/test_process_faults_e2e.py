"""deploy_antdb when a process dies, not a request: the gc pod killed between `create_gc` and
`write_custom_config`, the worker running `reconcile_pgxc_node` killed in the middle of a plan
and the task retried, and the postgres-operator's process restarted mid-deploy.

Each test has a namespace of its own in one cluster, kills the real thing (a pod through the
API, so the Deployment brings a new one; a worker process with SIGKILL; the operator pod, so
its real process is stopped and a new one started), then asserts on the nodes themselves:
every holder's pgxc_node, each node's GTM address, datanode rows kept in place (same OID and
`node_id`) and the rows written before the fault.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.test_deploy_e2e import wait_until
from tests.support import drift, task_runs
from tests.support.users import AIRFLOW, OPERATOR

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
NODES = ["gc", "cn1", "dn1", "dn2"]
HOLDERS = ["gc", "cn1"]
ROWS = 257


def conf(namespace: str) -> dict:
    return {"namespace": namespace, "coordinators": 1, "datanodes": 2, "prepare_hosts": "off",
            "timeouts": {"gc_ready": 300, "nodes_ready": 300, "poke_interval": 1}}


def expected_catalog(cluster, namespace: str) -> set[tuple]:
    ips = cluster.cluster_ips(namespace)
    return {(n, "D" if n.startswith("dn") else "C", ips[n], 5432, n == "dn1", n == "gc") for n in NODES}


def datanode_identity(cluster, namespace: str, holder: str) -> dict[str, tuple[int, int]]:
    rows = cluster.query(namespace, holder, "SELECT node_name, oid, node_id FROM pgxc_node WHERE node_type = 'D'")
    return {str(name): (int(oid), int(node_id)) for name, oid, node_id in rows}


def write_rows(cluster, namespace: str) -> None:
    cluster.query(namespace, "gc", "CREATE TABLE ledger (id int, payload text)")
    cluster.query(namespace, "gc", f"INSERT INTO ledger SELECT g, md5(g::text) FROM generate_series(1, {ROWS}) g")


def counted_everywhere(cluster, namespace: str) -> dict[str, int]:
    return {h: cluster.query(namespace, h, "SELECT count(*) FROM ledger")[0][0] for h in HOLDERS}


def assert_cluster_is_whole(cluster, namespace: str) -> None:
    """Every holder's catalog is Kubernetes', and every node finds the GTM at gc's ClusterIP."""
    gc_ip = cluster.cluster_ips(namespace)["gc"]
    config = cluster.get("v1", "ConfigMap", namespace, "pgo-custom-antdb-config")
    assert f"agtm_host: {gc_ip}" in config["data"]["postgres-ha.yaml"]
    for holder in HOLDERS:
        assert cluster.pgxc_rows(namespace, holder) == expected_catalog(cluster, namespace), holder
    for node in NODES[1:]:
        assert cluster.query(namespace, node, "SHOW agtm_host") == [(gc_ip,)], node


# --- the gc pod killed between create_gc and write_custom_config -------------------------

NS_GC = "antdb-gc-killed"
MARK = "ALTER SYSTEM SET vacuum_cost_page_miss = 11"      # default 10; read back after the restart


def test_gc_pod_killed_before_its_address_is_read_the_deploy_still_converges(module_cluster):
    cluster = module_cluster
    killed: dict[str, str] = {}

    def kill_gc() -> None:             # runs as Airflow's read_gc_address asks for Service gc
        killed["pod"] = cluster.database_pods(NS_GC)["gc"]
        cluster.query(NS_GC, "gc", MARK)   # gc alone cannot take DDL yet (no datanode): a setting in its data dir
        cluster.store.delete("v1", "Pod", NS_GC, killed["pod"])

    fault = cluster.api.faults.before(kill_gc, methods={"GET"}, path=rf"/namespaces/{NS_GC}/services/gc$",
                                      user=AIRFLOW)

    run = cluster.run_dag("deploy_antdb", conf(NS_GC))

    assert fault.hits and not fault.errors, fault.errors or "read_gc_address never read Service gc"
    assert run.state == "success"
    assert cluster.database_pods(NS_GC)["gc"] != killed["pod"], "gc runs in the replacement pod"
    assert cluster.query(NS_GC, "gc", "SHOW vacuum_cost_page_miss") == [("11",)], "gc's data outlived its pod"
    assert_cluster_is_whole(cluster, NS_GC)
    write_rows(cluster, NS_GC)
    assert counted_everywhere(cluster, NS_GC) == {h: ROWS for h in HOLDERS}


# --- the reconcile worker killed mid-plan, the task retried ------------------------------

NS_KILL = "antdb-worker-killed"


def start_deploy_process(namespace: str, log_path: Path) -> subprocess.Popen:
    """deploy_antdb under `dag.test()` in a process of its own (same Airflow DB and connections):
    the worker that will be killed."""
    code = ("import json, sys; from tests.support.cluster import run_dag; "
            "print('run state:', run_dag('deploy_antdb', json.loads(sys.argv[1])).state)")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "plugins"), str(ROOT)])}
    with open(log_path, "w") as out:
        return subprocess.Popen([sys.executable, "-c", code, json.dumps(conf(namespace))], cwd=ROOT, env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def blocked_node_ddl(cluster, namespace: str, holder: str, blocker_pid: int) -> list[str]:
    """ALTER NODE statements on `holder` waiting for a lock (the one the blocker holds)."""
    rows = cluster.query(namespace, holder, "SELECT query FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                            f"AND pid <> {blocker_pid} AND query ILIKE 'ALTER NODE%'")
    return [str(q) for (q,) in rows]


def test_reconcile_worker_killed_mid_plan_then_retried_converges_keeping_datanode_rows(module_cluster, tmp_path):
    cluster = module_cluster
    assert cluster.run_dag("deploy_antdb", conf(NS_KILL)).state == "success"
    write_rows(cluster, NS_KILL)
    identities = {h: datanode_identity(cluster, NS_KILL, h) for h in HOLDERS}
    wrong = drift.unused_address(cluster, NS_KILL)
    for node in ("dn1", "dn2"):                  # cn1's plan: ALTER dn1, ALTER dn2, then the pool reload
        drift.alter_row(cluster, NS_KILL, "cn1", node, host=wrong)
    blocker = cluster.connect(NS_KILL, "cn1")
    blocker.autocommit = False
    blocker.execute(f"ALTER NODE dn2 WITH (HOST = '{wrong}')")      # uncommitted: holds dn2's row

    worker = start_deploy_process(NS_KILL, tmp_path / "worker.log")
    try:
        wait_until(lambda: blocked_node_ddl(cluster, NS_KILL, "cn1", blocker.info.backend_pid), 300,
                   "the worker's reconcile of cn1 to wait on dn2's row")
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(30)
        blocker.rollback()
        blocker.close()
    print((tmp_path / "worker.log").read_text())     # the killed worker's log, for the report and the secret scan
    killed_run = task_runs.latest_run("deploy_antdb")
    cn1 = list(cluster.xcom(killed_run, "collect_topology")).index("cn1")      # its map index
    assert task_runs.state_of(killed_run, "reconcile_pgxc_node", cn1) == "running", "killed while running"

    resumed = task_runs.retry_after_worker_death(killed_run, "reconcile_pgxc_node", cn1)

    assert resumed.state == "success"
    assert task_runs.try_number_of(resumed, "reconcile_pgxc_node", cn1) == 2
    assert_cluster_is_whole(cluster, NS_KILL)
    for holder in HOLDERS:
        assert datanode_identity(cluster, NS_KILL, holder) == identities[holder], "ALTERed in place, never re-created"
    assert counted_everywhere(cluster, NS_KILL) == {h: ROWS for h in HOLDERS}


# --- the postgres-operator restarted mid-deploy ------------------------------------------

NS_PGO = "antdb-operator-restarted"
GRACE = 5          # bootstrap_grace of the verification below: seconds without progress before "stuck"


def operator_pod(cluster) -> dict:
    pods = [p for p in cluster.store.list("v1", "Pod", "pgo") if p["metadata"]["name"].startswith("postgres-operator")]
    assert len(pods) == 1, [p["metadata"]["name"] for p in pods]
    return pods[0]


def pgcluster_states(cluster, namespace: str) -> dict[str, str]:
    return {p["metadata"]["name"]: (p.get("status") or {}).get("state", "")
            for p in cluster.store.list("crunchydata.com/v1", "Pgcluster", namespace)}


def operator_idle(cluster, namespace: str, settled: set[str]) -> bool:
    """No Job running, and every node in `settled` bootstrapped by the operator (Initialized)."""
    jobs = cluster.store.list("batch/v1", "Job", namespace)
    running = [j for j in jobs if not any(c["status"] == "True" and c["type"] in ("Complete", "Failed")
                                          for c in (j.get("status") or {}).get("conditions") or [])]
    states = pgcluster_states(cluster, namespace)
    return not running and all(states.get(n) == "pgcluster Initialized" for n in settled)


def test_operator_restarted_mid_deploy_the_deploy_completes(module_cluster):
    cluster = module_cluster
    before = operator_pod(cluster)
    processes_before = len(cluster.sim.operators.processes)

    def restart_operator() -> None:  # as write_custom_config reads the ConfigMap: gc is up, no other node yet
        cluster.store.delete("v1", "Pod", "pgo", before["metadata"]["name"])
        old = cluster.sim.operators.processes[:processes_before]
        wait_until(lambda: not any(p.alive() for p in old), 30, "the old operator process to be stopped")

    fault = cluster.api.faults.before(restart_operator, methods={"GET"}, user=AIRFLOW,
                                      path=rf"/namespaces/{NS_PGO}/configmaps/pgo-custom-antdb-config$")

    run = cluster.run_dag("deploy_antdb", conf(NS_PGO))

    assert fault.hits and not fault.errors, fault.errors or "write_custom_config never read its ConfigMap"
    assert operator_pod(cluster)["metadata"]["uid"] != before["metadata"]["uid"], "the operator pod was replaced"
    assert len(cluster.sim.operators.processes) > processes_before, "a new operator process was started"
    assert run.state == "success"
    assert_cluster_is_whole(cluster, NS_PGO)
    write_rows(cluster, NS_PGO)
    assert counted_everywhere(cluster, NS_PGO) == {h: ROWS for h in HOLDERS}
    # The new process bootstraps (stanza, first backup, Initialized) every node created after it started.
    # 4.2.1 acts only on a pod's transition to Ready and a Job's completion event, so gc, whose chain the
    # old process was in the middle of, may stay Processed, its database whole (asserted above) but
    # without a backup: the next test finds and repairs it.
    wait_until(lambda: operator_idle(cluster, NS_PGO, {"cn1", "dn1", "dn2"}), 180, "the restarted operator's bootstrap")
    states = pgcluster_states(cluster, NS_PGO)
    print("Pgcluster states after the operator restart:", states)
    assert set(states.values()) <= {"pgcluster Initialized", "pgcluster Processed"}, states


def test_nightly_verification_names_the_unfinished_bootstrap_and_repair_full_reruns_it(module_cluster):
    cluster = module_cluster
    time.sleep(GRACE + 1)                        # whatever is not Initialized now has not moved for GRACE s
    stuck = sorted(n for n, state in pgcluster_states(cluster, NS_PGO).items() if state != "pgcluster Initialized")

    run = cluster.run_dag("verify_antdb_topology", {"namespace": NS_PGO, "repair": "full", "bootstrap_grace": GRACE})

    first, repaired = cluster.xcom(run, "verify"), cluster.xcom(run, "repair")
    failed = sorted(f["node"] for f in first["findings"] if f["check"] == "bootstrap" and not f["ok"])
    assert failed == stuck, first["findings"]
    assert all(any(a.startswith(f"{n}: bootstrap re-run") for a in repaired["actions"]) for n in stuck), repaired
    assert run.state == "success", cluster.xcom(run, "final_verify", "report")
    wait_until(lambda: operator_idle(cluster, NS_PGO, set(NODES)), 180, "the re-run bootstrap to finish")
    jobs = {j["metadata"]["name"]: j for j in cluster.store.list("batch/v1", "Job", NS_PGO)}
    for node in NODES:                           # every node has its first pgBackRest backup now
        conditions = (jobs[f"backrest-backup-{node}"].get("status") or {}).get("conditions") or []
        assert any(c["type"] == "Complete" and c["status"] == "True" for c in conditions), node
    assert_cluster_is_whole(cluster, NS_PGO)
    assert counted_everywhere(cluster, NS_PGO) == {h: ROWS for h in HOLDERS}


# --- the postgres-operator stopped while it creates a node -----------------------------

NS_ABANDONED = "antdb-creation-abandoned"


def test_operator_stopped_while_creating_a_node_the_deploy_says_so_and_a_rerun_finishes_it(module_cluster):
    """4.2.1 marks a Pgcluster Processed, then creates its Deployment. Stopped in between, the node is never
    made: the new process skips Processed Pgclusters. The deploy's wait names it; a re-run re-creates it."""
    from tests.integration.test_run_visibility import run_note

    cluster = module_cluster
    before = operator_pod(cluster)
    processes_before = len(cluster.sim.operators.processes)

    def stop_operator() -> None:  # as the operator marks a cn/dn Pgcluster Processed, before anything else of it
        cluster.store.delete("v1", "Pod", "pgo", before["metadata"]["name"])
        old = cluster.sim.operators.processes[:processes_before]
        wait_until(lambda: not any(p.alive() for p in old), 30, "the old operator process to be stopped")

    fault = cluster.operator_api.faults.before(stop_operator, methods={"PATCH"}, user=OPERATOR,
                                      path=rf"/namespaces/{NS_ABANDONED}/pgclusters/(cn|dn)[0-9]+$")
    short = {**conf(NS_ABANDONED), "timeouts": {"gc_ready": 300, "nodes_ready": 90, "poke_interval": 1}}

    failed = cluster.run_dag("deploy_antdb", short)

    assert fault.hits and not fault.errors, fault.errors or "the operator never marked a node Processed"
    node = fault.hits[0].rsplit("/", 1)[1]
    assert pgcluster_states(cluster, NS_ABANDONED)[node] == "pgcluster Processed"
    assert cluster.get("apps/v1", "Deployment", NS_ABANDONED, node) is None, "the operator never made it"
    assert failed.state == "failed"
    assert f"Pgcluster {node} is 'pgcluster Processed' with no Deployment" in run_note(failed), run_note(failed)
    old_uid = cluster.get("crunchydata.com/v1", "Pgcluster", NS_ABANDONED, node)["metadata"]["uid"]

    rerun = cluster.run_dag("deploy_antdb", short)

    assert rerun.state == "success"
    created = {r["node"]: r["action"] for r in cluster.mapped_xcoms(rerun, "create_nodes")}
    assert created[node] == "re-created" and set(created.values()) - {"re-created"} <= {"exists"}, created
    assert cluster.get("crunchydata.com/v1", "Pgcluster", NS_ABANDONED, node)["metadata"]["uid"] != old_uid
    assert_cluster_is_whole(cluster, NS_ABANDONED)
    write_rows(cluster, NS_ABANDONED)
    assert counted_everywhere(cluster, NS_ABANDONED) == {h: ROWS for h in HOLDERS}
