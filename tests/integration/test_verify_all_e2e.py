"""verify_antdb_topology with no namespace verifies every deployed cluster: one mapped task per cluster
(map index = namespace); one drifted cluster makes the run red, naming it, while the other stays green."""

from __future__ import annotations

import pytest

from tests.support.drift import alter_row

pytestmark = pytest.mark.integration
SMALL = {"coordinators": 1, "datanodes": 1, "prepare_hosts": "off",
         "timeouts": {"gc_ready": 300, "nodes_ready": 300, "poke_interval": 1}}
FIRST, SECOND = "pgouser1", "pgouser2"


def mapped(run, task_id: str) -> dict[str, str]:
    """rendered map index (the namespace) -> state of each mapped task instance."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.execute(select(TaskInstance.rendered_map_index, TaskInstance.state).where(
            TaskInstance.dag_id == run.dag_id, TaskInstance.run_id == run.run_id, TaskInstance.task_id == task_id))
        return {index: str(state) for index, state in rows}


def reports(cluster, run) -> dict[str, dict]:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        query = XComModel.get_many(run_id=run.run_id, dag_ids=run.dag_id, task_ids="final_verify", key="report",
                                   map_indexes=None)
        values = [XComModel.deserialize_value(r) for r in session.execute(query.with_only_columns(XComModel.value))]
    return {v["namespace"]: v for v in values}


@pytest.fixture(scope="module")
def two_clusters(module_cluster):
    for namespace in (FIRST, SECOND):
        run = module_cluster.run_dag("deploy_antdb", {**SMALL, "namespace": namespace})
        assert run.state == "success", namespace
    return module_cluster


def test_no_namespace_verifies_every_deployed_cluster(two_clusters):
    run = two_clusters.run_dag("verify_antdb_topology", {"data_check": False})
    assert run.state == "success"
    for task in ("verify", "repair", "final_verify"):
        assert mapped(run, task) == {FIRST: "success", SECOND: "success"}, task
    found = reports(two_clusters, run)
    assert set(found) == {FIRST, SECOND} and all(r["clean"] for r in found.values())


def test_one_red_cluster_makes_the_run_red_naming_it(two_clusters, capfd):
    alter_row(two_clusters, SECOND, "cn1", "dn1", port=6543)
    run = two_clusters.run_dag("verify_antdb_topology", {"data_check": False})
    assert run.state == "failed"
    assert mapped(run, "final_verify") == {FIRST: "success", SECOND: "failed"}
    found = reports(two_clusters, run)
    assert found[FIRST]["clean"] and not found[SECOND]["clean"]
    assert any("dn1" in line and "6543" in line for line in found[SECOND]["drift"])
    output = capfd.readouterr()
    assert f"{SECOND}: 1 drift finding(s) on cn1" in output.out + output.err


def test_a_given_namespace_verifies_only_that_cluster(two_clusters):
    run = two_clusters.run_dag("verify_antdb_topology", {"namespace": FIRST, "data_check": False})
    assert run.state == "success"
    assert mapped(run, "final_verify") == {FIRST: "success"}
    repaired = two_clusters.run_dag("verify_antdb_topology", {"namespace": SECOND, "repair": "safe",
                                                              "data_check": False})
    assert repaired.state == "success" and mapped(repaired, "final_verify") == {SECOND: "success"}


def test_without_any_deployed_cluster_the_run_fails_saying_so(fresh_cluster, capfd):
    run = fresh_cluster.run_dag("verify_antdb_topology", {"data_check": False})
    assert run.state == "failed"
    output = capfd.readouterr()
    assert "no deployed AntDB cluster" in output.out + output.err
