"""A whole test cluster: the Kubernetes API on loopback, the built-in controllers and kubelets
(tests.support.sim) with the real postgres-operator 4.2.1 in its pod, AntDB nodes, connections.

`TestCluster` is what end-to-end tests hold: they trigger DAGs with `run_dag`, then assert
on Kubernetes (through the API store) and on the node databases themselves (through
psycopg connections to each Service ClusterIP, never through the product's hooks).
"""

from __future__ import annotations

import fcntl
import itertools
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

import yaml

from tests.support import secret_scan
from tests.support.kubeapi import KubeApiServer, ObjectStore
from tests.support.sim import ClusterSimulator

INCLUDE_DIR = Path(__file__).resolve().parents[2] / "include"
AIRFLOW_RBAC_FILE = INCLUDE_DIR / "rbac" / "airflow-antdb.yaml"
OPERATOR_FILE = INCLUDE_DIR / "operator" / "postgres-operator.yaml"
# Only needed when the package installs the operator (`operator.install: true`).
INSTALL_BINDING = "antdb-airflow-operator-install"

_NETWORKS = itertools.cycle(range(40, 255))  # third octet of each cluster's 127.0.N.0/24
_NETWORK_LOCK_DIR = Path(tempfile.gettempdir()) / "antdb-test-networks"
_held_networks: dict[str, int] = {}  # workdir -> fd of the lock reserving that cluster's /24
PASSWORD = "s3cret:'pw\\x"  # awkward on purpose: quoting bugs must show up in tests
SUPERUSER = "postgres"


def make_backend(base_dir: str):
    """Real AntDB nodes (the only backend): raises `AntDBUnavailable` saying how to get a build."""
    from tests.support.antdb_nodes import AntDBBackend, antdb_home

    return AntDBBackend(antdb_home(), base_dir)


@dataclass
class TestCluster:
    store: ObjectStore
    api: KubeApiServer
    sim: ClusterSimulator
    backend: Any
    kubeconfig: str            # kubernetes_default's: the Airflow ServiceAccount's token
    workdir: str
    env: dict[str, str] = field(default_factory=dict)
    admin_kubeconfig: str = ""  # the test harness's (system:masters)
    operator_api: KubeApiServer | None = None      # the real operator's listener on the same store

    # --- Kubernetes side --------------------------------------------------------------
    def get(self, api_version: str, kind: str, namespace: str | None, name: str) -> dict | None:
        from tests.support.kubeapi import ApiError

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


def run_dag(dag_id: str, conf: dict | None = None):
    """Run a DAG to completion in this process with `dag.test()`; returns the DagRun."""
    from airflow.models import DagBag

    bag = DagBag(dag_folder=str(Path(__file__).resolve().parents[2] / "dags" / f"{dag_id}.py"))
    assert not bag.import_errors, bag.import_errors
    return bag.dags[dag_id].test(run_conf=conf or {})


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
    return assemble_world(workdir, network, operator_installed=operator_installed, ready_delay=ready_delay,
                          airflow_rbac=airflow_rbac)


def assemble_world(workdir: str, network: str, *, api_port: int = 0, operator_installed: bool = True,
                   ready_delay: float = 0.2, airflow_rbac: list[dict] | None = None,
                   state_file: Path | None = None) -> TestCluster:
    """The one assembly of the test world, used by every test cluster and by the sandbox.

    With a `state_file` that exists (the sandbox after a restart), the API objects are loaded
    from it and the cluster is power-cycled instead of seeded: running pods are started anew by
    their controllers and the databases find their data under `workdir/nodes`.
    """
    from tests.support.kubeapi.persistence import load

    store = ObjectStore(cluster_ip_network=network)
    store.add_listener(secret_scan.remember_secrets)  # the session-end scan looks for these too
    restored = state_file is not None and load(store, state_file)
    api = KubeApiServer(store, port=api_port).start()
    backend = make_backend(os.path.join(workdir, "nodes"))
    # The operator pod reaches the same store through a listener of its own (two apiserver
    # replicas over one etcd), so `api.requests` holds what the package and the tests sent and
    # `operator_api.requests` what the real operator sent.
    operator_api = KubeApiServer(store).start()
    operator_kubeconfig = operator_api.write_kubeconfig(os.path.join(workdir, "operator-kubeconfig"))
    sim = ClusterSimulator(store, backend, kubeconfig=operator_kubeconfig, workdir=workdir, ready_delay=ready_delay)
    if restored:
        _power_cycle(store)
    else:
        sim.seed(operator_installed=operator_installed)
    sim.start()
    documents = airflow_rbac if airflow_rbac is not None else airflow_rbac_documents()
    if operator_installed:   # least privilege: the install grant is bound only where it is used
        documents = [d for d in documents if not (d["kind"] == "ClusterRoleBinding"
                                                  and d["metadata"]["name"] == INSTALL_BINDING)]
    kubeconfig = airflow_kubeconfig(api, documents, os.path.join(workdir, "kubeconfig"))
    env = {
        "AIRFLOW_CONN_KUBERNETES_DEFAULT": json.dumps({"conn_type": "kubernetes",
                                                       "extra": {"kube_config_path": kubeconfig}}),
        "AIRFLOW_CONN_ANTDB_DEFAULT": json.dumps({"conn_type": "postgres", "login": SUPERUSER,
                                                  "password": PASSWORD, "schema": "postgres"}),
    }
    admin = api.write_kubeconfig(os.path.join(workdir, "kubeconfig-admin"))
    return TestCluster(store, api, sim, backend, kubeconfig, workdir, env, admin, operator_api)


def _power_cycle(store: ObjectStore) -> None:
    """Running pods do not survive a restart of the machine they ran on: delete them so their
    controllers start them again. Finished Job pods stay: a completed Job (a clone's restore,
    say) must not run again."""
    for pod in store.list("v1", "Pod", None):
        meta = pod["metadata"]
        if (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed"):
            store.delete("v1", "Pod", meta["namespace"], meta["name"])


def airflow_rbac_documents() -> list[dict]:
    """include/rbac/airflow-antdb.yaml, as documents (tests may edit a copy)."""
    return [d for d in yaml.safe_load_all(AIRFLOW_RBAC_FILE.read_text(encoding="utf-8")) if d]


def airflow_kubeconfig(api: KubeApiServer, rbac_documents: list[dict], path: str) -> str:
    """Create the ServiceAccounts the documents' bindings name (and their namespaces), apply
    the documents as an administrator would, and write a kubeconfig with the token of the
    first ServiceAccount subject (the Airflow worker)."""
    subjects = [s for d in rbac_documents for s in d.get("subjects") or [] if s.get("kind") == "ServiceAccount"]
    if not subjects:
        raise ValueError("the Airflow RBAC documents bind no ServiceAccount")
    for subject in subjects:
        _create_missing(api.store, {"apiVersion": "v1", "kind": "Namespace",
                                    "metadata": {"name": subject["namespace"]}})
        _create_missing(api.store, {"apiVersion": "v1", "kind": "ServiceAccount",
                                    "metadata": {"name": subject["name"], "namespace": subject["namespace"]}})
    for document in rbac_documents:
        _create_missing(api.store, document)
    token = api.service_account_token(subjects[0]["namespace"], subjects[0]["name"])
    return api.write_kubeconfig(path, token=token)


def operator_kubeconfig(cluster: TestCluster, path: str | os.PathLike | None = None,
                        operator_namespace: str = "pgo") -> str:
    """A kubeconfig for the postgres-operator process: the token of the ServiceAccount that
    include/operator defines (`postgres-operator` in `operator_namespace`), so the operator
    runs with exactly the ClusterRole the package installs. The ServiceAccount must exist
    (seeded with `operator_installed=True`, or created by `ensure_operator`)."""
    docs = [d for d in yaml.safe_load_all(OPERATOR_FILE.read_text(encoding="utf-8")) if d]
    account = next(d for d in docs if d["kind"] == "ServiceAccount")["metadata"]["name"]
    token = cluster.api.service_account_token(operator_namespace, account)
    target = path or os.path.join(cluster.workdir, "kubeconfig-operator")
    return cluster.api.write_kubeconfig(target, namespace=operator_namespace, token=token)


def _create_missing(store: ObjectStore, obj: dict) -> None:
    from tests.support.kubeapi import ApiError

    try:
        store.create(obj)
    except ApiError as err:
        if err.code != 409:
            raise


def operator_log_report(cluster: TestCluster, tail: int = 200) -> str:
    """The last lines of every real postgres-operator process of this cluster (for failed tests)."""
    parts = []
    for path, text in cluster.sim.operator_logs():
        lines = text.splitlines()[-tail:]
        parts.append(f"--- postgres-operator log {path} (last {len(lines)} lines) ---\n" + "\n".join(lines))
    return "\n".join(parts) or "(no postgres-operator process was started)"


def stop_cluster(cluster: TestCluster, *, keep_workdir: bool = False) -> None:
    try:
        cluster.sim.stop()
    finally:
        if cluster.operator_api is not None:
            cluster.operator_api.stop()
        cluster.api.stop()
        if not keep_workdir:
            shutil.rmtree(cluster.workdir, ignore_errors=True)
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
