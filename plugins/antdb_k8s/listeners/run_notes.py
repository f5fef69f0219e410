"""Write the run note of the package's DAG runs, from the scheduler (the only place that may).

Tasks cannot write a DagRun note in Airflow 3 (no metadata-database access, and the
Execution API has no note endpoint), and a DAG's `on_failure_callback` runs in the
dag-processor, whose log nobody reads. A listener runs in the scheduler, inside the
session that changes the run's state, so the note appears in the UI with the state.
It reads what the tasks left: the failure messages (XCom `failure`, written by
`TaskErrorsMixin`) and the final verification report. Runs of other DAGs are untouched.
"""

from __future__ import annotations

import logging

from airflow.listeners import hookimpl

from antdb_k8s.core.failures import FAILURE_KEY
from antdb_k8s.core.run_notes import drift_from_reports, drift_line, may_replace, run_note

log = logging.getLogger(__name__)
TAG = "antdb"


def _is_ours(dag_run, session) -> bool:
    from airflow.models.dag import DagTag
    from sqlalchemy import select

    return session.scalar(select(DagTag.name).where(DagTag.dag_id == dag_run.dag_id, DagTag.name == TAG)) is not None


def _xcoms(dag_run, session, key: str, task_id: str | None = None) -> list:
    from airflow.models.xcom import XComModel
    from sqlalchemy import select

    query = select(XComModel.value).where(XComModel.dag_id == dag_run.dag_id, XComModel.run_id == dag_run.run_id,
                                          XComModel.key == key)
    if task_id:
        query = query.where(XComModel.task_id == task_id)
    return [XComModel.deserialize_value(row) for row in session.execute(query.order_by(XComModel.timestamp))]


def _drift_note(dag_run, session) -> str | None:
    """The notifier's line for a verification that found drift (the same words as in the task log)."""
    if dag_run.dag_id != "verify_antdb_topology":
        return None
    drift = drift_from_reports(_xcoms(dag_run, session, "report", "final_verify"))
    return drift_line(dag_run.run_id, "task_failure", drift) if drift else None


def _update(dag_run, state: str) -> None:
    """Inside the session that changes the run's state (the scheduler's); in a detached run's own one.

    `dag.test()` hands listeners a detached run: there the note is written in a short session
    of its own. The scheduler's run is attached, and a second session would wait on the row
    lock the scheduler holds, so it is never opened then.
    """
    from sqlalchemy.orm import object_session

    session = object_session(dag_run)
    if session is not None:
        _write(dag_run, state, session)
        return
    from airflow.models import DagRun
    from airflow.utils.session import create_session

    with create_session() as own:
        attached = own.get(DagRun, dag_run.id)
        if attached is not None:
            _write(attached, state, own)


def _write(dag_run, state: str, session) -> None:
    if not _is_ours(dag_run, session) or not may_replace(dag_run.note):
        return
    conf = dag_run.conf or {}
    failures = [f for f in _xcoms(dag_run, session, FAILURE_KEY) if isinstance(f, dict)] if state == "failed" else []
    note = run_note(state=state, dry_run=bool(conf.get("dry_run")), failures=failures,
                    drift_note=_drift_note(dag_run, session) if state == "failed" else None)
    if note and note != dag_run.note:
        dag_run.note = note
        session.flush()


class RunNotes:
    """The listener object the plugin registers (hook names are Airflow's listener spec)."""

    @hookimpl
    def on_dag_run_running(self, dag_run, msg: str):
        self._safely(dag_run, "running")

    @hookimpl
    def on_dag_run_success(self, dag_run, msg: str):
        self._safely(dag_run, "success")

    @hookimpl
    def on_dag_run_failed(self, dag_run, msg: str):
        self._safely(dag_run, "failed")

    @staticmethod
    def _safely(dag_run, state: str) -> None:
        try:
            _update(dag_run, state)
        except Exception:  # noqa: BLE001 - a note must never break the scheduler's state change
            log.warning("could not write the note of %s", getattr(dag_run, "run_id", "?"), exc_info=True)
