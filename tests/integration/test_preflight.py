"""Every failure says what to do: deploy_antdb's preflight, and the same translation in every DAG.

Each case asserts the run failed in the task that should catch it, on its first try (no
retry), with a message that names the connection and the README section, and that
nothing was written to Kubernetes.
"""

from __future__ import annotations

import json
import socket

import pytest

from antdb_k8s.core.failures import FAILURE_KEY, README_SECTION, RBAC_MANIFEST
from tests.integration.test_deploy_e2e import MUTATING
from tests.support.cluster import run_dag
from tests.support.refusing_api import SERVICE_ACCOUNT, RefusingApi

pytestmark = pytest.mark.integration
ANTDB_CONN = "postgres://postgres:pw-for-preflight@/postgres"


def task_instances(run) -> dict[str, tuple[str, int, int]]:
    """task_id -> (state, try_number, max_tries) for every task of `run`."""
    from airflow.models import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.query(TaskInstance).filter_by(dag_id=run.dag_id, run_id=run.run_id).all()
        return {ti.task_id: (str(ti.state), ti.try_number, ti.max_tries) for ti in rows if ti.map_index < 0}


def failure_message(run, task_id: str) -> str:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        query = XComModel.get_many(run_id=run.run_id, dag_ids=run.dag_id, task_ids=task_id, key=FAILURE_KEY)
        row = session.execute(query.with_only_columns(XComModel.value)).first()
    assert row is not None, f"{task_id} left no failure message"
    return XComModel.deserialize_value(row)["message"]


def assert_failed_once_in(run, task_id: str) -> tuple[str, list[str]]:
    """`task_id` failed on its first try; returns its message and the other tasks that started."""
    tis = task_instances(run)
    assert run.state == "failed"
    state, tries, _ = tis[task_id]
    assert (state, tries) == ("failed", 1), f"{task_id}: {tis[task_id]}"
    started_after = [t for t, (s, n, _) in tis.items() if n > 0 and t not in (task_id, "summary", "validate")]
    return failure_message(run, task_id), started_after


def kubeconfig_for(tmp_path, server: str) -> str:
    path = tmp_path / "kubeconfig"
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "laptop",
        "clusters": [{"name": "c", "cluster": {"server": server}}],
        "users": [{"name": "me", "user": {"token": "t"}}],
        "contexts": [{"name": "laptop", "context": {"cluster": "c", "user": "me"}}]}))
    return str(path)


def use_kubeconfig(monkeypatch, path: str) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_KUBERNETES_DEFAULT",
                       json.dumps({"conn_type": "kubernetes", "extra": {"kube_config_path": path}}))


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as probe:  # a loopback port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_unreachable_kubernetes_fails_the_first_task_without_retry(airflow_db, tmp_path, monkeypatch, closed_port):
    use_kubeconfig(monkeypatch, kubeconfig_for(tmp_path, f"http://127.0.0.1:{closed_port}"))
    monkeypatch.setenv("AIRFLOW_CONN_ANTDB_DEFAULT", ANTDB_CONN)

    run = run_dag("deploy_antdb", {})

    message, started_after = assert_failed_once_in(run, "preflight")
    assert task_instances(run)["preflight"][2] == 0, "the preflight is never retried"
    assert started_after == []
    assert f"127.0.0.1:{closed_port}" in message and "kubernetes_default" in message
    assert README_SECTION in message
    assert task_instances(run)["summary"][0] == "failed", "summary runs whatever happened and keeps the run red"


def test_no_kubeconfig_anywhere_names_every_place_looked(airflow_db, tmp_path, monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_KUBERNETES_DEFAULT", raising=False)
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("AIRFLOW_CONN_ANTDB_DEFAULT", ANTDB_CONN)

    run = run_dag("deploy_antdb", {})

    message, started_after = assert_failed_once_in(run, "preflight")
    assert started_after == []
    for expected in ("connection kubernetes_default: not defined", "KUBECONFIG: not set",
                     f"kubeconfig {tmp_path}/.kube/config: no such file", "AIRFLOW_CONN_KUBERNETES_DEFAULT",
                     "in-cluster service account", README_SECTION):
        assert expected in message, expected


def test_missing_antdb_default_fails_before_anything_is_written(fresh_cluster, monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_ANTDB_DEFAULT")
    fresh_cluster.api.requests.clear()

    run = run_dag("deploy_antdb", {})

    message, started_after = assert_failed_once_in(run, "preflight")
    assert started_after == []
    assert "connection antdb_default is not defined" in message
    assert "AIRFLOW_CONN_ANTDB_DEFAULT" in message and README_SECTION in message
    assert [r for r in fresh_cluster.api.requests if r.method in MUTATING] == []


def test_antdb_default_without_password_is_refused(fresh_cluster, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_ANTDB_DEFAULT", "postgres://postgres@/postgres")

    run = run_dag("deploy_antdb", {})

    message, _ = assert_failed_once_in(run, "preflight")
    assert "connection antdb_default has no password" in message


def test_absent_operator_without_install_is_refused_naming_the_option(bare_cluster):
    bare_cluster.api.requests.clear()

    run = run_dag("deploy_antdb", {"prepare_hosts": "off"})

    message, _ = assert_failed_once_in(run, "preflight")
    assert "postgres-operator is not ready" in message and "operator.install: true" in message
    assert "CRD pgclusters.crunchydata.com is not installed" in message
    assert [r for r in bare_cluster.api.requests if r.method in MUTATING] == []


def test_refused_credentials_401_names_the_identity(airflow_db, tmp_path, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_ANTDB_DEFAULT", ANTDB_CONN)
    with RefusingApi(401) as api:
        kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig")
        use_kubeconfig(monkeypatch, kubeconfig)
        run = run_dag("deploy_antdb", {})
    message, _ = assert_failed_once_in(run, "preflight")
    assert "401 Unauthorized" in message
    assert f"user 'ci-reader' of context 'refusing' in {kubeconfig}" in message


def test_forbidden_403_names_identity_permission_and_rbac(airflow_db, tmp_path, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_ANTDB_DEFAULT", ANTDB_CONN)
    with RefusingApi(403) as api:
        use_kubeconfig(monkeypatch, api.write_kubeconfig(tmp_path / "kubeconfig"))
        run = run_dag("deploy_antdb", {})
    message, _ = assert_failed_once_in(run, "preflight")
    assert f"identity '{SERVICE_ACCOUNT}'" in message
    assert "may not get namespaces (core API group) cluster-wide" in message
    assert RBAC_MANIFEST in message


DAY2_CONFS = [
    ("verify_antdb_topology", {}, "clusters"),
    ("antdb_restart_check", {}, "precheck"),
    ("scale_antdb_coordinators", {"coordinators": 3}, "plan"),
    ("teardown_antdb", {"confirm_namespace": "pgouser1"}, "teardown"),
]


@pytest.mark.parametrize("dag_id,conf,task_id", DAY2_CONFS, ids=[d for d, _, _ in DAY2_CONFS])
def test_every_dag_says_the_same_about_a_missing_kubeconfig(airflow_db, tmp_path, monkeypatch, dag_id, conf,
                                                            task_id):
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    use_kubeconfig(monkeypatch, str(tmp_path / "missing-kubeconfig"))
    monkeypatch.setenv("AIRFLOW_CONN_ANTDB_DEFAULT", ANTDB_CONN)

    run = run_dag(dag_id, conf)

    message, _ = assert_failed_once_in(run, task_id)
    assert "the Kubernetes connection kubernetes_default cannot be configured" in message
    assert f"kubeconfig {tmp_path}/missing-kubeconfig: no such file" in message and README_SECTION in message


def test_dry_run_lists_unreadable_facts_in_the_same_words(airflow_db, tmp_path, monkeypatch, closed_port):
    from tests.support.cluster import xcom_values

    use_kubeconfig(monkeypatch, kubeconfig_for(tmp_path, f"http://127.0.0.1:{closed_port}"))
    monkeypatch.delenv("AIRFLOW_CONN_ANTDB_DEFAULT", raising=False)

    run = run_dag("deploy_antdb", {"dry_run": True})

    assert run.state == "success"
    summary = json.loads(dict(xcom_values(run))["summary"])
    unread = summary["unread"]
    reach = f"cannot reach the Kubernetes API at http://127.0.0.1:{closed_port} (connection kubernetes_default)"
    assert any(item.startswith("Kubernetes nodes: " + reach) for item in unread), unread
    assert any(item.startswith("preflight connection antdb_default: connection antdb_default is not defined")
               for item in unread), unread
