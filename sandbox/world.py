"""The world both the tests and `make run`'s sandbox run in, assembled in one place.

An API server on loopback over an object store (`sandbox.kubeapi`), the built-in controllers
and a kubelet per node (`sandbox.sim`) with the real postgres-operator 4.2.1 in its pod
(`sandbox.pgo_process`), and real AntDB nodes (`sandbox.antdb_nodes`). Airflow's
`kubernetes_default` is the ServiceAccount of `include/rbac/airflow-antdb.yaml`, so every run
proves those permissions; the harness and the controllers act as administrators.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sandbox.kubeapi import ApiError, KubeApiServer, ObjectStore
from sandbox.kubeapi.persistence import load
from sandbox.kubeapi.rbac import AUTHENTICATED, UserInfo
from sandbox.sim import ClusterSimulator

INCLUDE_DIR = Path(__file__).resolve().parents[1] / "include"
AIRFLOW_RBAC_FILE = INCLUDE_DIR / "rbac" / "airflow-antdb.yaml"
OPERATOR_FILE = INCLUDE_DIR / "operator" / "postgres-operator.yaml"
# Only needed when the package installs the operator (`operator.install: true`).
INSTALL_BINDING = "antdb-airflow-operator-install"


def make_backend(base_dir: str):
    """Real AntDB nodes (the only backend): raises `AntDBUnavailable` saying how to get a build."""
    from sandbox.antdb_nodes import AntDBBackend, antdb_home

    return AntDBBackend(antdb_home(), base_dir)


@dataclass
class World:
    store: ObjectStore
    api: KubeApiServer
    sim: ClusterSimulator
    backend: Any
    kubeconfig: str            # kubernetes_default's: the Airflow ServiceAccount's token
    workdir: str
    env: dict[str, str] = field(default_factory=dict)
    admin_kubeconfig: str = ""  # the harness's (system:masters)
    operator_api: KubeApiServer | None = None      # the real operator's listener on the same store


def assemble_world(workdir: str, network: str, *, api_port: int = 0, operator_installed: bool = True,
                   ready_delay: float = 0.2, airflow_rbac: list[dict] | None = None,
                   state_file: Path | None = None, listeners: tuple = (), world_class: type | None = None):
    """The one assembly of the world, used by every test cluster and by the sandbox.

    With a `state_file` that exists (the sandbox after a restart), the API objects are loaded
    from it and the cluster is power-cycled instead of seeded: running pods are started anew by
    their controllers and the databases find their data under `workdir/nodes`.
    """
    store = ObjectStore(cluster_ip_network=network)
    for listener in listeners:
        store.add_listener(listener)
    restored = state_file is not None and load(store, state_file)
    api = KubeApiServer(store, port=api_port).start()
    backend = make_backend(os.path.join(workdir, "nodes"))
    # The operator pod reaches the same store through a listener of its own (two apiserver
    # replicas over one etcd), so `api.requests` holds what the package and the tests sent and
    # `operator_api.requests` what the real operator sent.
    operator_api = KubeApiServer(store, pod_identity=operator_identity()).start()
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
    admin = api.write_kubeconfig(os.path.join(workdir, "kubeconfig-admin"))
    return (world_class or World)(store, api, sim, backend, kubeconfig, workdir, admin_kubeconfig=admin,
                                  operator_api=operator_api)


def operator_identity() -> UserInfo:
    """The ServiceAccount include/operator runs the operator as: its ClusterRole is all it gets."""
    docs = [d for d in yaml.safe_load_all(OPERATOR_FILE.read_text(encoding="utf-8")) if d]
    account = next(d for d in docs if d["kind"] == "ServiceAccount")["metadata"]
    namespace = account.get("namespace", "pgo")
    return UserInfo(f"system:serviceaccount:{namespace}:{account['name']}",
                    ("system:serviceaccounts", f"system:serviceaccounts:{namespace}", AUTHENTICATED))


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


def operator_kubeconfig(cluster: "World", path: str | os.PathLike | None = None,
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
    try:
        store.create(obj)
    except ApiError as err:
        if err.code != 409:
            raise


def operator_log_report(cluster: World, tail: int = 200) -> str:
    """The last lines of every real postgres-operator process of this cluster (for failed tests)."""
    parts = []
    for path, text in cluster.sim.operator_logs():
        lines = text.splitlines()[-tail:]
        parts.append(f"--- postgres-operator log {path} (last {len(lines)} lines) ---\n" + "\n".join(lines))
    return "\n".join(parts) or "(no postgres-operator process was started)"


def stop_world(world: World, *, keep_workdir: bool = False) -> None:
    """Stop the databases, the operator and the API servers; the work folder goes unless kept."""
    try:
        world.sim.stop()
    finally:
        if world.operator_api is not None:
            world.operator_api.stop()
        world.api.stop()
        if not keep_workdir:
            shutil.rmtree(world.workdir, ignore_errors=True)
