"""What a person sees of a run: dry runs marked as such, manifests shown, mapped tasks named, run notes."""

from __future__ import annotations

import json

import pytest

from tests.integration.test_preflight import use_kubeconfig
from tests.support.cluster import PASSWORD, run_dag, xcom_values

pytestmark = pytest.mark.integration
NODES = ["gc", "cn1", "cn2", "dn1", "dn2", "dn3"]


def run_note(run) -> str | None:
    from airflow.models import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        return session.query(DagRun).filter_by(dag_id=run.dag_id, run_id=run.run_id).one().note


def rendered_map_indexes(run, task_id: str) -> list[str]:
    from airflow.models import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.query(TaskInstance).filter_by(dag_id=run.dag_id, run_id=run.run_id, task_id=task_id)
        return sorted(ti.rendered_map_index for ti in rows)


def manifests_of(run, task_id: str) -> list[dict]:
    return [m for task, value in xcom_values(run) if task == task_id
            for m in (json.loads(value) if value.startswith("[") else []) if isinstance(m, dict) and "kind" in m]


def test_dry_run_is_marked_shows_every_manifest_and_no_secret(fresh_cluster, capfd):
    capfd.readouterr()
    run = fresh_cluster.run_dag("deploy_antdb", {"dry_run": True, "operator": {"namespace": "pgo", "install": True,
                                                                              "installation_name": "devtest"}})
    output = capfd.readouterr()
    logs = output.out + output.err

    assert run.state == "success"
    assert run_note(run).startswith("DRY RUN: nothing was changed")
    for task in ("validate", "preflight", "prepare_hosts", "ensure_operator", "ensure_namespace", "create_gc",
                 "wait_gc_ready", "read_gc_address", "write_custom_config", "create_nodes", "wait_nodes_ready",
                 "collect_topology", "reconcile_pgxc_node", "smoke_test", "summary"):
        assert f"DRY RUN: {task} changes nothing" in logs, task
    pgclusters = [m for m in manifests_of(run, "create_nodes") + manifests_of(run, "create_gc")
                  if m["kind"] == "Pgcluster"]
    assert sorted(m["metadata"]["name"] for m in pgclusters) == sorted(NODES)
    assert "DRY RUN: would create Pgcluster/dn3:\n---\napiVersion: crunchydata.com/v1\nkind: Pgcluster" in logs
    secrets = [m for m in manifests_of(run, "ensure_namespace") if m["kind"] == "Secret"]
    assert secrets and all(value.startswith("<not shown") for s in secrets for value in s["data"].values())
    operator_kinds = {m["kind"] for m in manifests_of(run, "ensure_operator")}
    assert {"CustomResourceDefinition", "Deployment"} <= operator_kinds
    assert {m["kind"] for m in manifests_of(run, "write_custom_config")} == {"ConfigMap"}
    assert PASSWORD not in logs and all(PASSWORD not in value for _, value in xcom_values(run))
    assert rendered_map_indexes(run, "create_nodes") == sorted(NODES[1:])
    assert rendered_map_indexes(run, "reconcile_pgxc_node") == ["cn1", "cn2", "gc"]


def test_a_failed_deploy_note_says_what_failed_and_what_to_do(airflow_db, tmp_path, monkeypatch):
    use_kubeconfig(monkeypatch, str(tmp_path / "no-such-kubeconfig"))
    monkeypatch.setenv("AIRFLOW_CONN_ANTDB_DEFAULT", "postgres://postgres:pw-for-notes@/postgres")

    run = run_dag("deploy_antdb", {})

    assert run.state == "failed"
    note = run_note(run)
    assert note.startswith("Failed in preflight: the Kubernetes connection kubernetes_default cannot be configured")
    assert "no-such-kubeconfig: no such file" in note


def test_a_failed_verification_logs_the_notifier_line_in_the_task_log_and_the_note(airflow_db, tmp_path,
                                                                                   monkeypatch, capfd, caplog):
    use_kubeconfig(monkeypatch, str(tmp_path / "no-such-kubeconfig"))
    monkeypatch.setenv("AIRFLOW_CONN_ANTDB_DEFAULT", "postgres://postgres:pw-for-notes@/postgres")
    capfd.readouterr()

    run = run_dag("verify_antdb_topology", {})

    output = capfd.readouterr()
    assert run.state == "failed"
    task_log = output.out + output.err + caplog.text  # dag.test() runs the task, and its callback, in-process
    assert f"AntDB topology verification failed (run {run.run_id}, failure); see the task logs" in task_log
    assert run_note(run).startswith("Failed in clusters: the Kubernetes connection kubernetes_default")
