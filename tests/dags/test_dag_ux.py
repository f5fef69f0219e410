"""DAG-level promises to the person using them: descriptions, node names on mapped tasks, schedules."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from tests.dags.test_dag_integrity import DAGS_DIR


@pytest.fixture(scope="module")
def dagbag():
    from airflow.models import DagBag

    return DagBag(dag_folder=str(DAGS_DIR))


def test_every_dag_has_a_description(dagbag):
    for dag_id, dag in dagbag.dags.items():
        assert dag.description and 20 < len(dag.description) < 200, dag_id


def test_mapped_tasks_are_named_after_their_node(dagbag):
    mapped = [(dag_id, t) for dag_id, dag in dagbag.dags.items() for t in dag.tasks if t.is_mapped]
    assert mapped, "deploy_antdb maps over nodes"
    for dag_id, task in mapped:
        assert task.partial_kwargs.get("map_index_template"), f"{dag_id}.{task.task_id} shows numbers, not nodes"


def test_deploy_preflight_is_never_retried_and_summary_always_runs(dagbag):
    dag = dagbag.dags["deploy_antdb"]
    assert dag.get_task("preflight").retries == 0
    assert dag.get_task("summary").trigger_rule == "all_done"


def _next_two_am(now: datetime) -> datetime:
    candidate = now.replace(hour=2, minute=0, second=0, microsecond=0)
    return candidate if candidate > now else candidate + timedelta(days=1)


def _last_two_am(now: datetime) -> datetime:
    return _next_two_am(now) - timedelta(days=1)


@pytest.fixture
def clock(monkeypatch):
    """Sets the time the scheduler's timetable sees. Airflow's CronTriggerTimetable runs the last cron
    point at once when unpaused within max(10% of the gap, 5 min) after it unless told otherwise,
    so a test reading the real clock passed or failed by the hour it ran (CI at 02:49 UTC failed)."""
    import pendulum

    import airflow.timetables.trigger as trigger

    def set_to(when: datetime) -> datetime:
        monkeypatch.setattr(trigger, "utcnow", lambda: pendulum.instance(when))
        return when

    return set_to


# Before, at, just after, inside and past the 2.4 h window after 02:00 in which Airflow would run at once.
CLOCKS = ["01:59:59", "02:00:01", "02:49:24", "04:23:00", "04:30:00", "14:00:00", "23:59:59"]


def _on_a_day(hms: str) -> datetime:
    return datetime.fromisoformat(f"2026-12-04T{hms}+00:00")


@pytest.mark.parametrize("since_two_am", [timedelta(0), timedelta(seconds=1), timedelta(minutes=49),
                                          timedelta(hours=2, minutes=23)])
def test_unpausing_verify_starts_no_run_before_the_next_two_am(dagbag, airflow_db, clock, since_two_am):
    """Written to the metadata DB as the dag-processor does, then unpaused: the scheduler has nothing to
    create, whatever time after the last 02:00 it is (the real clock decides what the DB calls due)."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import sync_bag_to_db
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session

    now = clock(_last_two_am(datetime.now(timezone.utc)) + since_two_am + timedelta(microseconds=1))
    DagBundlesManager().sync_bundles_to_db()
    sync_bag_to_db(dagbag, "dags-folder", None)
    with create_session() as session:
        model = session.get(DagModel, "verify_antdb_topology")
        model.is_paused = False
        session.flush()
        assert model.next_dagrun_create_after == _next_two_am(now)
        needing, _ = DagModel.dags_needing_dagruns(session)
        assert "verify_antdb_topology" not in {m.dag_id for m in needing}
        model.is_paused = True


@pytest.mark.parametrize("cron_data_intervals", ["True", "False"])
@pytest.mark.parametrize("hms", CLOCKS)
def test_the_first_scheduled_verify_is_the_next_two_am(monkeypatch, clock, cron_data_intervals, hms):
    """As the scheduler reads the DAG back, at any time of day. With create_cron_data_intervals on, a
    plain "0 2 * * *" would become a data-interval schedule, whose first run is the last complete day,
    started at once on unpause: the explicit timetable is immune to it."""
    from airflow.models import DagBag
    from airflow.serialization.serialized_objects import DagSerialization

    monkeypatch.setenv("AIRFLOW__SCHEDULER__CREATE_CRON_DATA_INTERVALS", cron_data_intervals)
    now = clock(_on_a_day(hms))
    dag = DagBag(dag_folder=str(DAGS_DIR / "verify_antdb_topology.py")).dags["verify_antdb_topology"]
    scheduler_dag = DagSerialization.from_dict(DagSerialization.to_dict(dag))
    info = scheduler_dag.next_dagrun_info(last_automated_run_info=None)
    assert type(scheduler_dag.timetable).__name__ == "CronTriggerTimetable"
    assert info.run_after == _next_two_am(now) and info.run_after > now


def test_forms_survive_serialization_unchanged_and_shared_schemas_refuse_changes(dagbag):
    """The form lives on the DAG only and its schemas are shared read-only (parse cost; see
    operators/wiring.py): the form the scheduler and UI read back is still exactly the schema table,
    a task running gets every field of it, and the form still refuses bad input."""
    import json
    import pickle

    from airflow.sdk.definitions.param import ParamsDict, process_params
    from airflow.sdk.exceptions import ParamValidationError
    from airflow.serialization.serialized_objects import DagSerialization

    from antdb_k8s.core.defaults import DEFAULTS
    from antdb_k8s.core.params import PARAM_SCHEMAS

    dag = dagbag.dags["deploy_antdb"]
    served = DagSerialization.from_dict(json.loads(json.dumps(DagSerialization.to_dict(dag))))
    for key, table in PARAM_SCHEMAS.items():
        param = served.params.get_param(key)
        expected = {k: v for k, v in table.items() if k not in ("default", "description")}
        assert json.loads(json.dumps(param.schema)) == expected, key
        assert param.description == table["description"], key
    task = dag.get_task("preflight")
    assert not task.params  # built before the form was attached: no per-task copy
    serialized_tasks = [t.get("__var", t) for t in DagSerialization.to_dict(dag)["dag"]["tasks"]]
    assert len(serialized_tasks) == len(dag.tasks) and not any("params" in t for t in serialized_tasks)
    running = process_params(dag, task, {"namespace": "antdb-ux"}, suppress_exception=False)
    assert set(running) == set(PARAM_SCHEMAS) and running["namespace"] == "antdb-ux"
    assert running["prepare_hosts"] == DEFAULTS["prepare_hosts"]
    shared = dag.params.get_param("storage").schema
    assert pickle.loads(pickle.dumps(shared)) == shared and type(pickle.loads(pickle.dumps(shared))) is dict
    with pytest.raises(TypeError, match="cannot be changed in place"):
        shared["properties"]["dn"]["properties"]["size"]["pattern"] = ".*"
    with pytest.raises(TypeError, match="cannot be changed in place"):
        dag.params.get_param("prepare_hosts").schema["enum"].append("reboot")
    form = ParamsDict(dag.params)
    with pytest.raises(ParamValidationError, match="reboot"):
        form["prepare_hosts"] = "reboot"
    assert dag.params.get_param("prepare_hosts").resolve() == DEFAULTS["prepare_hosts"]
