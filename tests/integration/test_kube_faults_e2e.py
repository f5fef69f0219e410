"""deploy_antdb survives what a real API server does under load and during upgrades, through
the package's one retry policy (hooks/retry.py), and refusals are not retried.

Faults come from the test API's control interface (`cluster.api.faults`, kubeapi/faults.py),
aimed at the Airflow ServiceAccount's requests. Each test ends by checking the cluster: the
Pgclusters, every holder's pgxc_node catalog and the rows written before the fault.
Tests run in order against one cluster per backend.
"""

from __future__ import annotations

import threading
import time

import pytest
from kubernetes import client, config, watch

from tests.integration.test_deploy_e2e import expected_catalog, wait_until
from tests.support.users import AIRFLOW

pytestmark = pytest.mark.integration
NS = "pgouser1"
NODES = ["gc", "cn1", "cn2", "dn1", "dn2", "dn3"]
HOLDERS = ["gc", "cn1", "cn2"]
CONF = {"prepare_hosts": "off", "timeouts": {"gc_ready": 300, "nodes_ready": 300, "poke_interval": 1}}
ROWS = 200


def task_states(run) -> dict[str, str]:
    return {ti.task_id: str(getattr(ti.state, "value", ti.state)) for ti in run.get_task_instances()}


def assert_cluster_is_right(cluster) -> None:
    names = {p["metadata"]["name"] for p in cluster.store.list("crunchydata.com/v1", "Pgcluster", NS)}
    assert names == set(NODES)
    for holder in HOLDERS:
        assert cluster.pgxc_rows(NS, holder) == expected_catalog(cluster), holder


def live_pods(cluster) -> dict[str, str]:
    return {p["metadata"]["name"]: p["metadata"]["resourceVersion"] for p in cluster.store.list("v1", "Pod", NS)}


def row_count(cluster) -> int:
    return cluster.query(NS, "cn1", "SELECT count(*) FROM fault_rows")[0][0]


def test_a_deploy_through_5xx_429_resets_and_an_api_restart_succeeds(module_cluster):
    cluster = module_cluster
    faults = cluster.api.faults
    injected = [
        faults.fail(503, times=3, methods={"POST"}, path=r"/pgclusters$", user=AIRFLOW),
        faults.fail(500, times=2, methods={"GET"}, path=r"/secrets/", user=AIRFLOW),
        faults.fail(502, times=1, methods={"GET"}, path=r"/services$", user=AIRFLOW),
        faults.fail(504, times=1, methods={"POST"}, path=r"/configmaps$", user=AIRFLOW),
        faults.throttle(times=2, retry_after=1, methods={"GET"}, path=r"/pods$", user=AIRFLOW),
        faults.reset(times=2, methods={"GET"}, path=r"/pgclusters/", user=AIRFLOW),
        faults.restart(down_for=2.0, methods={"POST"}, path=r"/pgclusters$", user=AIRFLOW, skip=3),
    ]
    run = cluster.run_dag("deploy_antdb", CONF)
    assert run.state == "success", task_states(run)
    for fault in injected:
        assert len(fault.hits) == fault.times, (fault, fault.hits)
    assert cluster.api.restarts == 1
    answered = [r for r in cluster.api.requests if r.user == AIRFLOW and r.code >= 400]
    assert {r.code for r in answered} - {404} == {429, 500, 502, 503, 504}, "only the faults failed (404: not yet created)"
    assert_cluster_is_right(cluster)
    cluster.query(NS, "cn1", "CREATE TABLE fault_rows (id int, note text)")
    cluster.query(NS, "cn1", f"INSERT INTO fault_rows SELECT g, 'before' FROM generate_series(1, {ROWS}) g")
    assert row_count(cluster) == ROWS


def test_a_conflict_on_update_is_re_read_and_the_update_lands(module_cluster):
    cluster = module_cluster
    namespace = cluster.store.get("v1", "Namespace", None, NS)
    wanted = dict(namespace["metadata"]["labels"])
    cluster.store.patch("v1", "Namespace", None, NS, {"metadata": {"labels": {k: None for k in wanted}}})
    conflict = cluster.api.faults.conflict(times=2, path=rf"/namespaces/{NS}$", user=AIRFLOW)
    run = cluster.run_dag("deploy_antdb", CONF)
    assert run.state == "success", task_states(run)
    assert len(conflict.hits) == 2
    assert cluster.store.get("v1", "Namespace", None, NS)["metadata"]["labels"] == wanted
    patches = [r for r in cluster.api.requests[-200:] if r.method == "PATCH" and r.path.endswith(f"/namespaces/{NS}")]
    assert [r.code for r in patches][-3:] == [409, 409, 200]
    assert_cluster_is_right(cluster)
    assert row_count(cluster) == ROWS


class PodInformer:
    """What a client-go informer does with pods: list, then watch from the list's
    resourceVersion, and after a cut stream resume from the last one it saw."""

    def __init__(self, api: client.CoreV1Api, namespace: str):
        self.api, self.namespace = api, namespace
        self.seen: dict[str, str] = {}
        self.cuts: list[str] = []
        self.done = threading.Event()
        listed = api.list_namespaced_pod(namespace)
        self.seen.update({p.metadata.name: p.metadata.resource_version for p in listed.items})
        self.thread = threading.Thread(target=self._follow, args=(listed.metadata.resource_version,), daemon=True)
        self.thread.start()

    def _follow(self, resource_version: str) -> None:
        while not self.done.is_set():
            try:
                for event in watch.Watch().stream(self.api.list_namespaced_pod, self.namespace,
                                                  resource_version=resource_version, timeout_seconds=30):
                    pod = event["object"]
                    resource_version = pod.metadata.resource_version
                    if event["type"] == "DELETED":
                        self.seen.pop(pod.metadata.name, None)
                    else:
                        self.seen[pod.metadata.name] = resource_version
            except Exception:  # noqa: BLE001 - a cut stream: resume from the last resourceVersion
                self.cuts.append(resource_version)


def test_dropped_watch_streams_are_resumed_without_losing_events(module_cluster):
    """Every open watch (the readiness trigger's, an informer's) is cut during a run: the run
    still succeeds and a watcher resuming from its last resourceVersion misses nothing."""
    cluster = module_cluster
    informer = PodInformer(client.CoreV1Api(config.new_client_from_config(config_file=cluster.admin_kubeconfig)), NS)
    old_gc = cluster.database_pods(NS)["gc"]
    cluster.store.delete("v1", "Pod", NS, old_gc)        # the gc pod restarts while watched
    time.sleep(1)
    dropped = cluster.api.faults.drop_watches()
    run = cluster.run_dag("deploy_antdb", CONF)
    dropped += cluster.api.faults.drop_watches()
    assert run.state == "success", task_states(run)
    assert dropped >= 2
    wait_until(lambda: len(informer.cuts) >= 2, 10, "the watcher to see both cuts")
    wait_until(lambda: informer.seen == live_pods(cluster), 15, "the watcher to catch up with the live pods")
    informer.done.set()
    assert old_gc not in informer.seen
    assert_cluster_is_right(cluster)
    assert row_count(cluster) == ROWS


def test_a_403_is_sent_once_and_fails_the_task_without_retries(module_cluster, capfd):
    cluster = module_cluster
    cluster.api.requests.clear()
    labels = dict(cluster.store.get("v1", "Namespace", None, NS)["metadata"]["labels"])
    cluster.store.patch("v1", "Namespace", None, NS, {"metadata": {"labels": {k: None for k in labels}}})
    refusal = cluster.api.faults.fail(403, times=5, methods={"PATCH"}, path=rf"/namespaces/{NS}$", user=AIRFLOW)
    run = cluster.run_dag("deploy_antdb", CONF)
    assert run.state == "failed"
    assert task_states(run)["ensure_namespace"] == "failed"
    tries = {ti.task_id: ti.try_number for ti in run.get_task_instances()}
    assert tries["ensure_namespace"] == 1, "a refusal is not a reason for a task retry"
    assert len(refusal.hits) == 1, "one request, not retried"
    assert "Kubernetes API 403 Forbidden" in "".join(capfd.readouterr())
    cluster.api.faults.clear()
    cluster.store.patch("v1", "Namespace", None, NS, {"metadata": {"labels": labels}})
    assert_cluster_is_right(cluster)
    assert row_count(cluster) == ROWS
