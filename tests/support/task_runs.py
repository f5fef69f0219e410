"""Task instances of DAG runs made by `run_dag`, and what the scheduler does when a worker dies.

`retry_after_worker_death` is the scheduler's part of a killed worker: a running task
instance whose worker stopped heartbeating is failed through `TaskInstance.handle_failure`
(so a task with retries left becomes `up_for_retry`), and the run then goes on. The run is
continued here with the loop `dag.test()` itself uses (Airflow's `_run_task` per scheduled
task instance), in this process; the retry delay is not waited out.
"""

from __future__ import annotations

import logging
from datetime import timedelta

log = logging.getLogger(__name__)


def latest_run(dag_id: str):
    from airflow.models import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        run = session.query(DagRun).filter_by(dag_id=dag_id).order_by(DagRun.id.desc()).first()
        session.expunge(run)
        return run


def _task_instance(session, run, task_id: str, map_index: int):
    from airflow.models import TaskInstance

    return session.query(TaskInstance).filter_by(dag_id=run.dag_id, run_id=run.run_id, task_id=task_id,
                                                 map_index=map_index).one()


def state_of(run, task_id: str, map_index: int = -1) -> str:
    from airflow.utils.session import create_session

    with create_session() as session:
        ti = _task_instance(session, run, task_id, map_index)
        return str(getattr(ti.state, "value", ti.state))


def try_number_of(run, task_id: str, map_index: int = -1) -> int:
    from airflow.utils.session import create_session

    with create_session() as session:
        return int(_task_instance(session, run, task_id, map_index).try_number)


def retry_after_worker_death(run, task_id: str, map_index: int):
    """Fail the running try of (task_id, map_index) as the scheduler does for a dead worker,
    then run the rest of the DAG run to the end; returns the finished DagRun."""
    from airflow import settings
    from airflow.models import DagRun
    from airflow.sdk import timezone

    dag = load_dag(run.dag_id)
    scheduler_dag = _scheduler_dag(dag)
    session = settings.Session()
    dag_run = session.query(DagRun).filter_by(dag_id=run.dag_id, run_id=run.run_id).one()
    dag_run.dag = scheduler_dag
    ti = _task_instance(session, run, task_id, map_index)
    ti.task = scheduler_dag.get_task(task_id)
    ti.handle_failure("the worker running this try was killed (SIGKILL); no heartbeat", session=session)
    session.commit()
    assert str(getattr(ti.state, "value", ti.state)) == "up_for_retry", ti.state
    ti.end_date = timezone.utcnow() - timedelta(days=1)     # the retry delay, not waited out here
    session.commit()
    _run_to_end(dag, dag_run, session)
    return dag_run


def _scheduler_dag(dag):
    from airflow.serialization.serialized_objects import DagSerialization

    return DagSerialization.deserialize_dag(DagSerialization.serialize_dag(dag))


def _run_to_end(dag, dag_run, session) -> None:
    """`dag.test()`'s own loop: schedule what is ready, run each scheduled task instance in process."""
    import time

    from airflow.sdk import timezone
    from airflow.sdk.definitions.dag import _run_task
    from airflow.utils.state import DagRunState, TaskInstanceState

    while dag_run.state == DagRunState.RUNNING:
        session.expire_all()
        schedulable, _ = dag_run.update_state(session=session)
        for ti in schedulable:
            if ti.state != TaskInstanceState.UP_FOR_RESCHEDULE:
                ti.try_number += 1
            ti.state, ti.scheduled_dttm = TaskInstanceState.SCHEDULED, timezone.utcnow()
        session.commit()
        scheduled = [ti for ti in dag_run.get_task_instances(session=session)
                     if ti.state == TaskInstanceState.SCHEDULED]
        if not scheduled and dag_run.state == DagRunState.RUNNING:
            time.sleep(1)
        for ti in scheduled:
            try:
                _run_task(ti=ti, task=dag.task_dict[ti.task_id], run_triggerer=True)
            except Exception:  # noqa: BLE001 - as dag.test(): a failed task is recorded, the loop goes on
                log.exception("task failed: %s", ti)


def load_dag(dag_id: str):
    from pathlib import Path

    from airflow.models import DagBag

    bag = DagBag(dag_folder=str(Path(__file__).resolve().parents[2] / "dags" / f"{dag_id}.py"))
    assert not bag.import_errors, bag.import_errors
    return bag.dags[dag_id]
