"""The test cluster's own parts (controllers, kubelets) with the real postgres-operator 4.2.1
in its pod, against the in-process API store, with a socket-only fake node backend.

What is checked is what the end-to-end tests rely on: nothing happens without an operator,
the operator's pod runs the real binary (its log is the pod's log), a Pgcluster the package
renders turns into the runbook's objects and a reachable node on its ClusterIP, pod specs
that cannot be honoured fail the way a kubelet reports it (FailedMount,
CreateContainerConfigError, FailedCreate for a missing ServiceAccount), pods and Services
can be re-created, and host preparation pods report (and change) the hosts' sysctls.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import socket
import threading
import time
import urllib.request
from pathlib import Path
from typing import Callable

import pytest
import yaml

from sandbox.kubeapi.server import KubeApiServer
from sandbox.kubeapi.store import ApiError, ObjectStore
from sandbox.nodes import NodeProcessSpec
from sandbox.sim import ClusterSimulator
from sandbox.world import operator_identity

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

NS = "pgouser1"
PASSWORD = "pw-Xq7-not-for-logs"
CRD_FILE = Path(__file__).resolve().parents[2] / "include" / "crd" / "pgclusters.crunchydata.com.yaml"
SYSCTL_WANT = "net.ipv4.ip_forward=1 net.bridge.bridge-nf-call-iptables=1 net.bridge.bridge-nf-call-ip6tables=1"
REPORT_LINE = re.compile(r"^(?P<key>\S+) current=(?P<current>\S*) want=(?P<want>\S*) "
                         r"result=(?P<result>ok|set|drift|error)$")


class FakeBackend:
    """Records calls; a started node is a real listening socket on spec.host:spec.port."""

    def __init__(self, root: Path, start_delay: float = 0.05) -> None:
        self.root = root
        self.start_delay = start_delay
        self.calls: list[tuple] = []
        self.specs: list[NodeProcessSpec] = []
        self.fail_starts = 0                       # the next N start_node calls raise
        self._sockets: dict[tuple[str, str], socket.socket] = {}
        self._lock = threading.Lock()

    def start_node(self, spec: NodeProcessSpec) -> None:
        time.sleep(self.start_delay)
        with self._lock:
            self.calls.append(("start", spec.key, spec.host))
            self.specs.append(spec)
            if self.fail_starts:
                self.fail_starts -= 1
                raise RuntimeError(f"could not connect as {spec.superuser} password={spec.superuser_password}")
            assert spec.key not in self._sockets, "started twice without a stop"
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((spec.host, spec.port))
            sock.listen(8)
            self._sockets[spec.key] = sock

    def repo_dir(self, namespace: str, claim: str) -> Path:
        """A pgBackRest repository of this fake: a folder under the test's own root."""
        path = self.root / "repos" / namespace / claim
        path.mkdir(parents=True, exist_ok=True)
        return path

    def data_dir(self, namespace: str, node: str) -> Path:
        """A data directory holding only what pgBackRest reads first: pg_control's system
        identifier, random per node like an initdb's."""
        path = self.root / "data" / namespace / node
        control = path / "global" / "pg_control"
        if not control.exists():
            control.parent.mkdir(parents=True, exist_ok=True)
            control.write_bytes(os.urandom(8))
        return path

    def backup_data(self, namespace: str, source: str, dest: Path) -> None:
        self.calls.append(("backup", (namespace, source)))
        self.make_dir(dest)

    def restore_data(self, namespace: str, target: str, backup: Path) -> None:
        self.calls.append(("restore", (namespace, target)))

    def copy_tree(self, source: Path, dest: Path) -> None:
        self.calls.append(("copy", str(source), str(dest)))
        shutil.copytree(source, dest, dirs_exist_ok=True)

    def make_dir(self, path: Path) -> None:
        Path(path).mkdir(parents=True, exist_ok=True)

    def write_file(self, path: Path, text: str) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text)

    def remove_tree(self, path: Path) -> None:
        shutil.rmtree(path, ignore_errors=True)

    def stop_node(self, namespace: str, name: str) -> None:
        with self._lock:
            self.calls.append(("stop", (namespace, name)))
            sock = self._sockets.pop((namespace, name), None)
        if sock:
            sock.close()

    def destroy_data(self, namespace: str, name: str) -> None:
        self.stop_node(namespace, name)
        with self._lock:
            self.calls.append(("destroy", (namespace, name)))

    def stop_all(self) -> None:
        for key in list(self._sockets):
            self.stop_node(*key)

    def kinds(self, key: tuple[str, str]) -> list[str]:
        with self._lock:
            return [c[0] for c in self.calls if c[1] == key]


# ---------------------------------------------------------------- helpers

def reachable(host: str, port: int = 5432) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def wait_for(predicate: Callable[[], object], timeout: float = 10, what: str = "condition") -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def create_namespace(store: ObjectStore, name: str = NS, watched: bool = True) -> None:
    """The namespace as the package creates it, with include/operator/target-namespace.yaml."""
    from antdb_k8s.core.install import target_namespace_manifests
    from antdb_k8s.core.spec import parse_spec

    labels = {"vendor": "crunchydata", "pgo-installation-name": "devtest"} if watched else {}
    ensure(store, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}})
    if watched:
        store.patch("v1", "Namespace", None, name, {"metadata": {"labels": labels}})
    for manifest in target_namespace_manifests(parse_spec({"namespace": name})):
        ensure(store, manifest)


def ensure(store: ObjectStore, obj: dict) -> None:
    try:
        store.create(obj)
    except ApiError as exc:
        if exc.code != 409:
            raise


def create_secrets(store: ObjectStore, cluster: str, namespace: str = NS) -> None:
    users = {"postgres-secret": "postgres", "primaryuser-secret": "primaryuser", "antdb-secret": "antdb"}
    for suffix, user in users.items():
        store.create({"apiVersion": "v1", "kind": "Secret",
                      "metadata": {"name": f"{cluster}-{suffix}", "namespace": namespace,
                                   "labels": {"pg-cluster": cluster}},
                      "stringData": {"username": user, "password": PASSWORD}})
    store.create({"apiVersion": "v1", "kind": "Secret",
                  "metadata": {"name": f"{cluster}-backrest-repo-config", "namespace": namespace,
                               "labels": {"pg-cluster": cluster, "pgo-backrest-repo": "true"}},
                  "stringData": {"config": "[global]\n", "sshd_config": "Port 2022\n"}})


def pgcluster(cluster: str, namespace: str = NS) -> dict:
    """The Pgcluster the package renders for node `cluster` (core/manifests.py)."""
    from antdb_k8s.core.manifests import pgcluster_manifest
    from antdb_k8s.core.spec import parse_spec

    return pgcluster_manifest(parse_spec({"namespace": namespace}), cluster)


def postgres_ha(agtm_host: str) -> dict:
    text = yaml.safe_dump({"bootstrap": {"dcs": {"postgresql": {"parameters": {
        "logging_collector": True, "max_prepared_transactions": 1000, "agtm_host": agtm_host, "agtm_port": 5432}}}},
        "postgresql": {"pg_hba": ["host all postgres 127.0.0.0/8 trust"]}})
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "pgo-custom-antdb-config", "namespace": NS},
            "data": {"postgres-ha.yaml": text}}


def pods(store: ObjectStore, namespace: str = NS, selector: str | None = None) -> list[dict]:
    return store.list("v1", "Pod", namespace, label_selector=selector)


def database_pods(store: ObjectStore, cluster: str) -> list[dict]:
    return pods(store, selector=f"pg-cluster={cluster},pgo-pg-database=true,!pgo-backrest-repo,!job-name")


def primary_pod(store: ObjectStore, cluster: str) -> dict:
    found = database_pods(store, cluster)
    assert len(found) == 1, [p["metadata"]["name"] for p in found]
    return found[0]


def is_ready(pod: dict) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in (pod.get("status") or {}).get("conditions", []))


def events_for(store: ObjectStore, name: str, namespace: str = NS) -> list[dict]:
    return store.list("v1", "Event", namespace, field_selector=f"involvedObject.name={name}")


def cluster_ip(store: ObjectStore, cluster: str) -> str:
    return store.get("v1", "Service", NS, cluster)["spec"]["clusterIP"]


def primary_ready(store: ObjectStore, cluster: str) -> bool:
    found = database_pods(store, cluster)
    return len(found) == 1 and is_ready(found[0])


def operator_log(sim: ClusterSimulator) -> str:
    return "\n".join(text for _, text in sim.operator_logs())


# ---------------------------------------------------------------- fixtures

def private_service_network() -> str:
    """A random 127.a.b.0/24 for ClusterIPs, so parallel test processes never share addresses
    (127.0/16, 127.1/16 and 127.2/16 are the default store range, node IPs and pod IPs)."""
    rng = random.SystemRandom()
    return f"127.{rng.randrange(3, 250)}.{rng.randrange(0, 255)}.0/24"


@pytest.fixture
def store() -> ObjectStore:
    return ObjectStore(cluster_ip_network=private_service_network())


@pytest.fixture
def backend(tmp_path) -> FakeBackend:
    return FakeBackend(tmp_path / "backend")


@pytest.fixture
def api(store: ObjectStore):
    with KubeApiServer(store, pod_identity=operator_identity()) as server:  # the operator pod's listener
        yield server


def make_sim(store: ObjectStore, backend: FakeBackend, api: KubeApiServer, workdir, *,
             operator_installed: bool) -> ClusterSimulator:
    kubeconfig = api.write_kubeconfig(workdir / "operator-kubeconfig")
    simulator = ClusterSimulator(store, backend, kubeconfig=kubeconfig, workdir=str(workdir), ready_delay=0.1)
    simulator.seed(operator_installed=operator_installed)
    return simulator.start()


@pytest.fixture
def sim(store: ObjectStore, backend: FakeBackend, api: KubeApiServer, tmp_path):
    simulator = make_sim(store, backend, api, tmp_path, operator_installed=True)
    try:
        yield simulator
    finally:
        simulator.stop()
    assert simulator.errors == []


@pytest.fixture
def gc_up(store: ObjectStore, sim: ClusterSimulator, backend: FakeBackend) -> str:
    """gc built by the real operator and Ready; returns its ClusterIP."""
    create_namespace(store)
    create_secrets(store, "gc")
    store.create(pgcluster("gc"))
    wait_for(lambda: primary_ready(store, "gc"), 60, "gc primary Ready")
    return cluster_ip(store, "gc")


# ---------------------------------------------------------------- tests

def test_without_an_operator_a_pgcluster_is_left_alone(store: ObjectStore, backend: FakeBackend,
                                                        api: KubeApiServer, tmp_path) -> None:
    simulator = make_sim(store, backend, api, tmp_path, operator_installed=False)
    try:
        store.create(yaml.safe_load(CRD_FILE.read_text()))
        create_namespace(store)
        create_secrets(store, "gc")
        store.create(pgcluster("gc"))
        simulator.wait_idle()
        assert store.get("crunchydata.com/v1", "Pgcluster", NS, "gc")["status"]["state"] == "pgcluster Created"
        assert store.list("apps/v1", "Deployment", NS) == []
        assert store.list("v1", "Service", NS) == []
        assert backend.calls == [] and simulator.operator_logs() == []
        proxies = pods(store, "kube-system", "k8s-app=kube-proxy")
        assert len(proxies) == 2 and all(is_ready(p) for p in proxies)
    finally:
        simulator.stop()
    assert simulator.errors == []


def test_the_operator_pod_runs_the_real_binary_and_its_log_is_the_pod_log(store: ObjectStore,
                                                                          sim: ClusterSimulator,
                                                                          api: KubeApiServer) -> None:
    (pod,) = pods(store, "pgo", "name=postgres-operator")
    assert is_ready(pod) and len(pod["status"]["containerStatuses"]) == 4
    owner = pod["metadata"]["ownerReferences"][0]
    assert owner["kind"] == "ReplicaSet" and pod["metadata"]["name"].startswith(owner["name"] + "-")
    replica_set = store.get("apps/v1", "ReplicaSet", "pgo", owner["name"])
    assert replica_set["metadata"]["ownerReferences"][0]["name"] == "postgres-operator"
    assert re.fullmatch(r"postgres-operator-[a-z0-9]{10}", owner["name"])
    wait_for(lambda: "starting pgcluster controller" in operator_log(sim), 30, "the operator's controllers")
    sim.wait_idle()
    with urllib.request.urlopen(f"{api.url}/api/v1/namespaces/pgo/pods/{pod['metadata']['name']}/log?container=operator",
                                timeout=5) as resp:
        assert "starting pgcluster controller" in resp.read().decode()
    # It installed the accounts of the namespace it was told to watch (ns/nslogic.go).
    accounts = {a["metadata"]["name"] for a in store.list("v1", "ServiceAccount", NS)}
    assert {"pgo-pg", "pgo-backrest", "pgo-default", "pgo-target"} <= accounts
    store.delete("v1", "Pod", "pgo", pod["metadata"]["name"])
    wait_for(lambda: [p for p in pods(store, "pgo", "name=postgres-operator") if is_ready(p)], 30,
             "a new operator pod")
    assert len(sim.operator_logs()) == 2
    assert not sim.operators.processes[0].alive() and sim.operators.processes[1].alive()


def test_an_unwatched_namespace_is_left_alone(store: ObjectStore, sim: ClusterSimulator,
                                              backend: FakeBackend) -> None:
    create_namespace(store, "other", watched=False)
    create_secrets(store, "gc", "other")
    store.create(pgcluster("gc", namespace="other"))
    create_namespace(store)
    create_secrets(store, "gc")
    store.create(pgcluster("gc"))
    wait_for(lambda: primary_ready(store, "gc"), 60, "gc in the watched namespace")
    assert store.get("crunchydata.com/v1", "Pgcluster", "other", "gc")["status"]["state"] == "pgcluster Created"
    assert store.list("apps/v1", "Deployment", "other") == []
    assert [c[1] for c in backend.calls] == [(NS, "gc")]


def test_gc_pgcluster_becomes_a_reachable_primary(store: ObjectStore, sim: ClusterSimulator,
                                                  backend: FakeBackend, gc_up: str) -> None:
    wait_for(lambda: store.get("crunchydata.com/v1", "Pgcluster", NS, "gc")["status"]["state"]
             == "pgcluster Initialized", 30, "the operator to mark gc Initialized")
    service = store.get("v1", "Service", NS, "gc")
    assert gc_up.startswith("127.") and service["spec"]["selector"] == {"pg-cluster": "gc", "role": "master"}
    assert {p["port"] for p in service["spec"]["ports"]} >= {5432, 2022, 8009}
    pod = primary_pod(store, "gc")
    assert re.fullmatch(r"gc-[a-z0-9]{10}-[a-z0-9]{5}", pod["metadata"]["name"])
    assert pod["metadata"]["ownerReferences"][0]["kind"] == "ReplicaSet"
    assert pod["metadata"]["labels"]["role"] == "master" and pod["status"]["phase"] == "Running"
    assert pod["metadata"]["labels"]["antdb.io/role"] == "gtm_coord"          # userlabels reach the pod
    assert pod["spec"]["containers"][0]["image"] == "crunchydata/antdb.cluster.gc-ha:21.0"   # pgo.yaml prefix
    assert pod["spec"]["serviceAccountName"] == "pgo-pg"
    spec = backend.specs[-1]
    assert (spec.role, spec.host, spec.port, spec.agtm_host, spec.agtm_port) == ("gtm_coord", gc_up, 5432, gc_up, 5432)
    assert (spec.superuser, spec.superuser_password) == ("postgres", PASSWORD)
    # The operator's default postgres-ha.yaml (archive-timeout from the package's userlabels) reached the node.
    assert spec.parameters["archive_timeout"] == "60"
    assert reachable(gc_up)
    deployment = store.get("apps/v1", "Deployment", NS, "gc")
    assert deployment["status"]["readyReplicas"] == 1
    assert {c["type"]: c["status"] for c in deployment["status"]["conditions"]}["Available"] == "True"
    reasons = {e["reason"] for e in events_for(store, pod["metadata"]["name"])}
    assert {"Scheduled", "Pulled", "Created", "Started"} <= reasons


def test_auxiliary_pods_look_like_the_runbook_listing(store: ObjectStore, sim: ClusterSimulator, gc_up: str) -> None:
    def listing():
        by_name = {p["metadata"]["name"]: p for p in pods(store)}
        backups = [p for n, p in by_name.items() if re.fullmatch(r"backrest-backup-gc-[a-z0-9]{5}", n)]
        return by_name if backups and backups[0]["status"].get("phase") == "Succeeded" else None

    by_name = wait_for(listing, 60, "the operator's stanza-create and backup Jobs")
    repo = [p for n, p in by_name.items() if n.startswith("gc-backrest-shared-repo-")]
    stanza = [p for n, p in by_name.items() if re.fullmatch(r"gc-stanza-create-[a-z0-9]{5}", n)]
    backup = [p for n, p in by_name.items() if re.fullmatch(r"backrest-backup-gc-[a-z0-9]{5}", n)]
    assert len(repo) == len(stanza) == len(backup) == 1
    assert repo[0]["metadata"]["labels"]["pgo-backrest-repo"] == "true" and is_ready(repo[0])
    assert stanza[0]["metadata"]["labels"]["job-name"] == "gc-stanza-create"
    assert backup[0]["metadata"]["labels"]["job-name"] == "backrest-backup-gc"
    assert stanza[0]["status"]["phase"] == backup[0]["status"]["phase"] == "Succeeded"
    # The runbook's filter (at most two dashes) keeps exactly the primary.
    primaries = [n for n in by_name if not re.search(r"[a-zA-Z0-9 ]+-[a-zA-Z0-9 ]+-[a-zA-Z0-9 ]+-[a-zA-Z0-9 ]+", n)]
    assert primaries == [primary_pod(store, "gc")["metadata"]["name"]]
    claims = {c["metadata"]["name"]: c["status"]["phase"] for c in store.list("v1", "PersistentVolumeClaim", NS)}
    assert claims == {"gc": "Bound", "gc-pgbr-repo": "Bound"}
    config_maps = {c["metadata"]["name"] for c in store.list("v1", "ConfigMap", NS)}
    assert {"gc-pgha-default-config", "gc-config", "gc-leader"} <= config_maps
    endpoints = store.get("v1", "Endpoints", NS, "gc")
    assert [a["ip"] for a in endpoints["subsets"][0]["addresses"]] == [primary_pod(store, "gc")["status"]["podIP"]]


def test_custom_config_gives_a_datanode_its_gtm(store: ObjectStore, sim: ClusterSimulator,
                                                backend: FakeBackend, gc_up: str) -> None:
    store.create(postgres_ha(gc_up))
    create_secrets(store, "dn1")
    store.create(pgcluster("dn1"))
    wait_for(lambda: primary_ready(store, "dn1"), 60, "dn1 Ready")
    spec = backend.specs[-1]
    assert (spec.name, spec.role, spec.agtm_host, spec.agtm_port) == ("dn1", "datanode", gc_up, 5432)
    assert spec.host == cluster_ip(store, "dn1") != gc_up and reachable(spec.host)
    assert spec.parameters["max_prepared_transactions"] == "1000" and spec.parameters["logging_collector"] == "on"
    assert "agtm_host" not in spec.parameters and "archive_timeout" not in spec.parameters, \
        "the custom postgres-ha.yaml replaces the operator's default (clusterlogic.go)"
    dcs = json.loads(store.get("v1", "ConfigMap", NS, "dn1-config")["metadata"]["annotations"]["config"])
    assert dcs["postgresql"]["parameters"]["agtm_host"] == gc_up
    assert "postgres-ha.yaml" not in store.get("v1", "ConfigMap", NS, "dn1-pgha-default-config")["data"]


def test_a_custom_config_missing_at_build_time_is_skipped_for_good(store: ObjectStore, sim: ClusterSimulator,
                                                                   backend: FakeBackend, gc_up: str) -> None:
    """operator/clusterutilities.go GetConfVolume: a `customconfig` the operator cannot find is
    logged and left out of the Deployment; creating it later changes nothing."""
    create_secrets(store, "dn1")
    store.create(pgcluster("dn1"))
    pod = wait_for(lambda: database_pods(store, "dn1"), 30, "a dn1 pod")[0]
    sources = next(v for v in pod["spec"]["volumes"] if v["name"] == "pgconf-volume")["projected"]["sources"]
    assert [s["configMap"]["name"] for s in sources] == ["dn1-pgha-default-config"]
    failed = wait_for(lambda: [e["message"] for e in events_for(store, pod["metadata"]["name"])
                               if e["reason"] == "Failed"], 30, "a Failed event")
    assert 'agtm_host is not set in the Patroni DCS config ("dn1-config")' in failed[0]
    assert "pgo-custom-antdb-config was not found" in operator_log(sim)
    store.create(postgres_ha(gc_up))
    time.sleep(1)
    assert not is_ready(primary_pod(store, "dn1")) and backend.kinds((NS, "dn1")) == []


def test_a_missing_secret_holds_the_pod_until_it_exists(store: ObjectStore, sim: ClusterSimulator,
                                                        backend: FakeBackend, gc_up: str) -> None:
    store.create(postgres_ha(gc_up))
    create_secrets(store, "dn1")
    root = store.get("v1", "Secret", NS, "dn1-postgres-secret")
    store.delete("v1", "Secret", NS, "dn1-postgres-secret")
    store.create(pgcluster("dn1"))
    pod = wait_for(lambda: database_pods(store, "dn1"), 30, "a dn1 pod")[0]
    messages = wait_for(lambda: [(e["reason"], e["type"], e["message"])
                                 for e in events_for(store, pod["metadata"]["name"]) if e["reason"] != "Scheduled"],
                        10, "an Event")
    assert ("FailedMount", "Warning", 'MountVolume.SetUp failed for volume "root-volume" : '
            'secret "dn1-postgres-secret" not found') in messages
    sim.wait_idle()
    pod = primary_pod(store, "dn1")
    assert not is_ready(pod) and pod["status"]["phase"] == "Pending"
    assert pod["status"]["containerStatuses"][0]["state"] == {"waiting": {"reason": "ContainerCreating"}}
    assert backend.kinds((NS, "dn1")) == []
    store.create({k: v for k, v in root.items() if k != "metadata"} |
                 {"metadata": {"name": "dn1-postgres-secret", "namespace": NS}})
    wait_for(lambda: primary_ready(store, "dn1"), 30, "dn1 Ready")


def test_a_missing_service_account_refuses_the_pod_like_admission(store: ObjectStore, sim: ClusterSimulator,
                                                                  backend: FakeBackend) -> None:
    create_namespace(store)
    store.delete("v1", "ServiceAccount", NS, "pgo-pg")
    create_secrets(store, "gc")
    store.create(pgcluster("gc"))
    replica_set = wait_for(lambda: store.list("apps/v1", "ReplicaSet", NS, label_selector="pg-cluster=gc,"
                                              "!pgo-backrest-repo"), 30, "gc's ReplicaSet")[0]
    failed = wait_for(lambda: [e for e in events_for(store, replica_set["metadata"]["name"])
                               if e["reason"] == "FailedCreate"], 10, "FailedCreate")
    assert 'serviceaccount "pgo-pg" not found' in failed[0]["message"] and failed[0]["type"] == "Warning"
    assert database_pods(store, "gc") == [] and backend.calls == []
    create_namespace(store)                                          # the package's apply brings it back
    wait_for(lambda: primary_ready(store, "gc"), 30, "gc Ready once its account exists")


def test_an_unresolvable_env_reference_is_a_create_container_config_error(store: ObjectStore,
                                                                          sim: ClusterSimulator) -> None:
    container = {"name": "app", "image": "busybox:1.36",
                 "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "absent", "key": "k"}}}]}
    name = store.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "envref", "namespace": "default"},
                         "spec": {"nodeName": "k8s-node-1", "containers": [container]}})["metadata"]["name"]
    sim.wait_idle()
    pod = store.get("v1", "Pod", "default", name)
    assert pod["status"]["containerStatuses"][0]["state"] == {"waiting": {"reason": "CreateContainerConfigError"}}
    assert not is_ready(pod)
    messages = [e["message"] for e in events_for(store, name, "default") if e["reason"] == "Failed"]
    assert messages == ['Error: configmap "absent" not found']


def test_deleted_pod_is_replaced_and_reuses_the_node(store: ObjectStore, sim: ClusterSimulator,
                                                     backend: FakeBackend, gc_up: str) -> None:
    old = primary_pod(store, "gc")["metadata"]["name"]
    store.delete("v1", "Pod", NS, old)
    wait_for(lambda: primary_ready(store, "gc") and primary_pod(store, "gc")["metadata"]["name"] != old, 30,
             "a replacement gc pod")
    new_pod = primary_pod(store, "gc")
    new = new_pod["metadata"]["name"]
    assert new.rsplit("-", 1)[0] == old.rsplit("-", 1)[0]     # same ReplicaSet (pod-template-hash)
    assert new_pod["metadata"]["labels"]["role"] == "master"
    assert cluster_ip(store, "gc") == gc_up and reachable(gc_up)
    assert backend.kinds((NS, "gc")) == ["start", "stop", "start"]
    assert [c[2] for c in backend.calls if c[0] == "start"] == [gc_up, gc_up]


def test_recreated_service_moves_the_node_to_its_new_cluster_ip(store: ObjectStore, sim: ClusterSimulator,
                                                                backend: FakeBackend, gc_up: str) -> None:
    service = store.get("v1", "Service", NS, "gc")
    store.delete("v1", "Service", NS, "gc")
    sim.wait_idle()
    assert is_ready(primary_pod(store, "gc")) and backend.kinds((NS, "gc")) == ["start"]
    fresh = {"apiVersion": "v1", "kind": "Service",
             "metadata": {"name": "gc", "namespace": NS, "labels": service["metadata"]["labels"]},
             "spec": {k: v for k, v in service["spec"].items() if k not in ("clusterIP", "clusterIPs")}}
    new_ip = store.create(fresh)["spec"]["clusterIP"]
    wait_for(lambda: backend.kinds((NS, "gc")) == ["start", "stop", "start"], 30, "gc restarted on the new IP")
    assert new_ip != gc_up
    spec = backend.specs[-1]
    assert (spec.host, spec.agtm_host) == (new_ip, new_ip)
    wait_for(lambda: primary_ready(store, "gc"), 10, "gc Ready again")
    assert reachable(new_ip) and not reachable(gc_up)


def test_failed_start_is_reported_without_the_password_and_retried(store: ObjectStore, sim: ClusterSimulator,
                                                                   backend: FakeBackend) -> None:
    backend.fail_starts = 1
    create_namespace(store)
    create_secrets(store, "gc")
    store.create(pgcluster("gc"))
    failed = wait_for(lambda: [e for p in database_pods(store, "gc")
                               for e in events_for(store, p["metadata"]["name"]) if e["reason"] == "Failed"],
                      60, "a Failed event")
    assert "could not connect" in failed[0]["message"] and PASSWORD not in failed[0]["message"]
    wait_for(lambda: primary_ready(store, "gc"), 30, "gc Ready after the retry")
    assert backend.kinds((NS, "gc")) == ["start", "stop", "start"]
    assert reachable(cluster_ip(store, "gc"))


def test_deleting_the_claim_destroys_the_data_once_nothing_runs(store: ObjectStore, sim: ClusterSimulator,
                                                                backend: FakeBackend, gc_up: str) -> None:
    store.delete("crunchydata.com/v1", "Pgcluster", NS, "gc")        # the 4.2.1 operator does nothing on delete
    time.sleep(2)
    sim.wait_idle()
    assert is_ready(primary_pod(store, "gc")) and backend.kinds((NS, "gc")) == ["start"]
    store.delete("apps/v1", "Deployment", NS, "gc")                 # ReplicaSet and pod follow (GC)
    wait_for(lambda: backend.kinds((NS, "gc")) == ["start", "stop"], 30, "gc stopped")
    store.delete("v1", "PersistentVolumeClaim", NS, "gc")
    wait_for(lambda: backend.kinds((NS, "gc"))[-1] == "destroy", 30, "gc's data destroyed")


def host_prep_pod(node: str, mode: str, *, host_network: bool = True, privileged: bool = True) -> dict:
    container = {"name": "sysctl", "image": "busybox:1.36", "command": ["/bin/sh", "-c", "true"],
                 "env": [{"name": "SYSCTL_MODE", "value": mode}, {"name": "SYSCTL_WANT", "value": SYSCTL_WANT}],
                 "securityContext": {"privileged": privileged}}
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"generateName": f"antdb-host-prep-{node}-", "namespace": "default",
                         "labels": {"app.kubernetes.io/name": "antdb-host-prep"}},
            "spec": {"nodeName": node, "hostNetwork": host_network, "restartPolicy": "Never",
                     "containers": [container]}}


def run_host_prep(store: ObjectStore, sim: ClusterSimulator, server: KubeApiServer, pod: dict) -> tuple[str, dict]:
    """Run one host-prep pod; its log as the product reads it (HTTP), and the parsed report."""
    name = store.create(pod)["metadata"]["name"]
    sim.wait_idle()
    phase = store.get("v1", "Pod", "default", name)["status"]["phase"]
    request = urllib.request.Request(f"{server.url}/api/v1/namespaces/default/pods/{name}/log",
                                     headers={"Authorization": f"Bearer {server.admin_token}"})
    with urllib.request.urlopen(request, timeout=5) as resp:
        text = resp.read().decode()
    report = {}
    for line in text.splitlines():
        match = REPORT_LINE.match(line)
        assert match, line
        report[match["key"]] = (match["current"], match["result"])
    return phase, report


def test_host_prep_pods_check_and_apply_sysctls(store: ObjectStore, sim: ClusterSimulator) -> None:
    with KubeApiServer(store) as server:
        phase, report = run_host_prep(store, sim, server, host_prep_pod("k8s-node-1", "check"))
        assert phase == "Succeeded"
        assert report == {"net.ipv4.ip_forward": ("1", "ok"), "net.bridge.bridge-nf-call-iptables": ("0", "drift"),
                          "net.bridge.bridge-nf-call-ip6tables": ("0", "drift")}
        assert sim.node_sysctls("k8s-node-1")["net.bridge.bridge-nf-call-iptables"] == "0"
        phase, report = run_host_prep(store, sim, server, host_prep_pod("k8s-node-1", "apply"))
        assert phase == "Succeeded" and report["net.bridge.bridge-nf-call-iptables"] == ("0", "set")
        assert set(sim.node_sysctls("k8s-node-1").values()) == {"1"}
        assert sim.node_sysctls("k8s-node-2")["net.bridge.bridge-nf-call-ip6tables"] == "0"
        _, report = run_host_prep(store, sim, server, host_prep_pod("k8s-node-1", "check"))
        assert {result for _, result in report.values()} == {"ok"}


def test_host_prep_without_privilege_or_host_network_is_wrong_like_on_a_cluster(store: ObjectStore,
                                                                               sim: ClusterSimulator) -> None:
    with KubeApiServer(store) as server:
        phase, report = run_host_prep(store, sim, server, host_prep_pod("k8s-node-2", "apply", privileged=False))
        assert phase == "Failed" and report["net.bridge.bridge-nf-call-iptables"] == ("0", "error")
        phase, report = run_host_prep(store, sim, server, host_prep_pod("k8s-node-2", "check", host_network=False))
        assert report["net.bridge.bridge-nf-call-iptables"] == ("missing", "drift")
    assert sim.node_sysctls("k8s-node-2")["net.bridge.bridge-nf-call-iptables"] == "0"


def test_kube_proxy_is_iptables_and_its_pods_come_back(store: ObjectStore, sim: ClusterSimulator) -> None:
    config = yaml.safe_load(store.get("v1", "ConfigMap", "kube-system", "kube-proxy")["data"]["config.conf"])
    assert config["mode"] == "" and "ipvs" in config and config["kind"] == "KubeProxyConfiguration"
    before = pods(store, "kube-system", "k8s-app=kube-proxy")
    assert sorted(p["spec"]["nodeName"] for p in before) == ["k8s-node-1", "k8s-node-2"]
    for pod in before:
        store.delete("v1", "Pod", "kube-system", pod["metadata"]["name"])
    sim.wait_idle()
    after = pods(store, "kube-system", "k8s-app=kube-proxy")
    assert sorted(p["spec"]["nodeName"] for p in after) == ["k8s-node-1", "k8s-node-2"]
    assert not {p["metadata"]["name"] for p in after} & {p["metadata"]["name"] for p in before}
    assert all(is_ready(p) and p["status"]["podIP"] == p["status"]["hostIP"] for p in after)
    daemon_set = store.get("apps/v1", "DaemonSet", "kube-system", "kube-proxy")
    assert daemon_set["status"]["numberReady"] == 2

