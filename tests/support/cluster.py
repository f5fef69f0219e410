"""A test cluster of its own for each test or module: `sandbox.world` (the Kubernetes API on
loopback, the built-in controllers and kubelets with the real postgres-operator 4.2.1 in its pod,
AntDB nodes) on a /24 no other test process uses, with Airflow's connections pointed at it.

`TestCluster` is what end-to-end tests hold: they trigger DAGs with `run_dag`, then assert
on Kubernetes (through the API store) and on the node databases themselves (through
psycopg connections to each Service ClusterIP, never through the product's hooks).
"""

from __future__ import annotations

import fcntl
import itertools
import json
import os
import tempfile
import time
from pathlib import Path

import psycopg

from sandbox.world import World, assemble_world, stop_world
from tests.support import secret_scan

_NETWORKS = itertools.cycle(range(40, 255))  # third octet of each cluster's 127.0.N.0/24
_NETWORK_LOCK_DIR = Path(tempfile.gettempdir()) / "antdb-test-networks"
_held_networks: dict[str, int] = {}  # workdir -> fd of the lock reserving that cluster's /24
PASSWORD = "s3cret:'pw\\x"  # awkward on purpose: quoting bugs must show up in tests
SUPERUSER = "postgres"


class TestCluster(World):
    """The world plus what tests read from it (objects, node databases, DAG runs)."""

    # --- Kubernetes side --------------------------------------------------------------
    def get(self, api_version: str, kind: str, namespace: str | None, name: str) -> dict | None:
        from sandbox.kubeapi import ApiError

        try:
            return self.store.get(api_version, kind, namespace, name)
        except ApiError as err:
            if err.code == 404:
                return None
            raise

    def cluster_ips(self, namespace: str) -> dict[str, str]:
        services = self.store.list("v1", "Service", namespace)
        return {s["metadata"]["name"]: s["spec"].get("clusterIP") for s in services
                if not s["metadata"]["name"].endswith(("-replica", "-backrest-shared-repo"))}

    def database_pods(self, namespace: str) -> dict[str, str]:
        pods = self.store.list("v1", "Pod", namespace, label_selector="pgo-pg-database=true,!pgo-backrest-repo")
        return {p["metadata"]["labels"]["pg-cluster"]: p["metadata"]["name"] for p in pods
                if "job-name" not in p["metadata"]["labels"]}

    def wait_operator_settled(self, namespace: str, timeout: float = 180) -> None:
        """Block until the operator's own follow-up work is over: every Pgcluster `pgcluster
        Initialized` and no Job still active. A DAG run ends when the nodes are Ready, while the
        real operator goes on with stanza-create and the first backup; tests that compare
        inventories before and after must not see that work as a change."""
        deadline = time.monotonic() + timeout
        while True:
            pending = self._operator_pending(namespace)
            if not pending:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"operator still busy after {timeout}s: {', '.join(pending)}")
            time.sleep(0.3)

    def _operator_pending(self, namespace: str) -> list[str]:
        """What the operator still owes: a Pgcluster not Initialized, a node whose first backup
        (`backrest-backup-<node>`) has not completed, or any other Job still running."""
        pgclusters = self.store.list("crunchydata.com/v1", "Pgcluster", namespace)
        jobs = {j["metadata"]["name"]: _job_outcome(j) for j in self.store.list("batch/v1", "Job", namespace)}
        pending = [f"Pgcluster/{p['metadata']['name']} {(p.get('status') or {}).get('state')}"
                   for p in pgclusters if (p.get("status") or {}).get("state") != "pgcluster Initialized"]
        pending += [f"Job/backrest-backup-{name} {jobs.get(f'backrest-backup-{name}', 'not created')}"
                    for name in (p["metadata"]["name"] for p in pgclusters)
                    if jobs.get(f"backrest-backup-{name}") != "Complete"]
        pending += [f"Job/{name} active" for name, outcome in jobs.items()
                    if outcome == "active" and not name.startswith("backrest-backup-")]
        return pending

    # --- database side ----------------------------------------------------------------
    def connect(self, namespace: str, node: str) -> psycopg.Connection:
        host = self.cluster_ips(namespace)[node]
        return psycopg.connect(host=host, port=5432, user=SUPERUSER, password=PASSWORD, dbname="postgres",
                               autocommit=True, connect_timeout=10)

    def query(self, namespace: str, node: str, sql: str) -> list[tuple]:
        with self.connect(namespace, node) as conn:
            cursor = conn.execute(sql)
            return cursor.fetchall() if cursor.description else []

    def pgxc_rows(self, namespace: str, node: str) -> set[tuple]:
        rows = self.query(namespace, node, "SELECT node_name, node_type, node_host, node_port, nodeis_primary, "
                                           "nodeis_gtm FROM pgxc_node")
        return {(str(n), str(t), str(h), int(p), bool(pr), bool(g)) for n, t, h, p, pr, g in rows}

    # --- Airflow side -----------------------------------------------------------------
    def run_dag(self, dag_id: str, conf: dict | None = None):
        return run_dag(dag_id, conf)

    def xcom(self, run, task_id: str, key: str = "return_value"):
        """The XCom `key` of `task_id` in `run` (a DagRun from `run_dag`), or None."""
        from airflow.models.xcom import XComModel
        from airflow.utils.session import create_session

        with create_session() as session:
            query = XComModel.get_many(run_id=run.run_id, dag_ids=run.dag_id, task_ids=task_id, key=key)
            row = session.execute(query.with_only_columns(XComModel.value)).first()
        return None if row is None else XComModel.deserialize_value(row)

    def mapped_xcoms(self, run, task_id: str, key: str = "return_value") -> list:
        """The XCom `key` of every map index of the mapped `task_id` in `run`, in map-index order."""
        from airflow.models.xcom import XComModel
        from airflow.utils.session import create_session

        with create_session() as session:
            query = XComModel.get_many(run_id=run.run_id, dag_ids=run.dag_id, task_ids=task_id, key=key,
                                       map_indexes=None)
            rows = session.execute(query.with_only_columns(XComModel.map_index, XComModel.value)).all()
        return [XComModel.deserialize_value(row) for row in sorted(rows, key=lambda r: r.map_index)]


def run_dag(dag_id: str, conf: dict | None = None):
    """Run a DAG to completion in this process with `dag.test()`; returns the DagRun."""
    from tests.support.task_runs import load_dag

    return load_dag(dag_id).test(run_conf=conf or {})


def xcom_values(run) -> list[tuple[str, str]]:
    """Every XCom a DAG run pushed, as (task_id, JSON text), for assertions on what leaked."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.execute(select(XComModel.task_id, XComModel.value)
                               .where(XComModel.dag_id == run.dag_id, XComModel.run_id == run.run_id)).all()
    return [(task_id, json.dumps(value, default=str)) for task_id, value in rows]


def start_cluster(*, operator_installed: bool = True, ready_delay: float = 0.2,
                  airflow_rbac: list[dict] | None = None) -> TestCluster:
    """A started cluster of its own (a fresh /24 and work folder) whose `kubernetes_default` is
    Airflow's ServiceAccount, granted exactly `include/rbac/airflow-antdb.yaml` (or the
    `airflow_rbac` documents given)."""
    network, lock_fd = _reserve_network()
    workdir = tempfile.mkdtemp(prefix="antdb-cluster-")
    _held_networks[workdir] = lock_fd
    os.chmod(workdir, 0o755)
    cluster = assemble_world(workdir, network, operator_installed=operator_installed, ready_delay=ready_delay,
                             airflow_rbac=airflow_rbac, world_class=TestCluster,
                             listeners=(secret_scan.remember_secrets,))  # the session-end scan looks for these
    cluster.env = {
        "AIRFLOW_CONN_KUBERNETES_DEFAULT": json.dumps({"conn_type": "kubernetes",
                                                       "extra": {"kube_config_path": cluster.kubeconfig}}),
        "AIRFLOW_CONN_ANTDB_DEFAULT": json.dumps({"conn_type": "postgres", "login": SUPERUSER,
                                                  "password": PASSWORD, "schema": "postgres"}),
    }
    return cluster


def stop_cluster(cluster: TestCluster, *, keep_workdir: bool = False) -> None:
    try:
        stop_world(cluster, keep_workdir=keep_workdir)
    finally:
        lock_fd = _held_networks.pop(cluster.workdir, None)
        if lock_fd is not None:
            os.close(lock_fd)  # releases the flock: the /24 may be reused by any process


def _reserve_network() -> tuple[str, int]:
    """A 127.0.N.0/24 no other test process on this machine is using, and the fd holding it.

    Several pytest sessions (parallel helpers, CI shards) may run at once, and each
    one's counter starts at the same N: without a machine-wide reservation two clusters
    get the same ClusterIPs and one node's server finds its address already bound. An
    exclusive flock per N is that reservation; the kernel drops it if the process dies.
    """
    _NETWORK_LOCK_DIR.mkdir(mode=0o777, exist_ok=True)
    for _ in range(255 - 40):
        third = next(_NETWORKS)
        fd = os.open(_NETWORK_LOCK_DIR / f"127.0.{third}.lock", os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        return f"127.0.{third}.0/24", fd
    raise RuntimeError("no free 127.0.N.0/24 test network left (40..254 are all reserved by running tests)")


def _job_outcome(job: dict) -> str:
    """`Complete`, `Failed` or `active`, from the Job's conditions as the Job controller sets them."""
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition["type"] in ("Complete", "Failed") and condition["status"] == "True":
            return condition["type"]
    return "active"
