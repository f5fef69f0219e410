"""The last deploy_antdb and verify_antdb_topology run of each namespace, from Airflow's metadata DB.

A deploy run names its namespace in its conf (the DAG's default when absent). A
verification run may cover several namespaces (one mapped task each), so its namespaces
are read from the reports it pushed (XCom `report`, whose `namespace` says which), and
from its conf for a run that failed before any report.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Iterable
from urllib.parse import quote

from antdb_k8s.core.spec import DEFAULTS
from antdb_k8s.core.verify import VerificationReport

DEPLOY_DAG = "deploy_antdb"
VERIFY_DAG = "verify_antdb_topology"
REPORT_TASKS = ("final_verify", "verify")  # the final report wins over the first one of the same run
RECENT = 200


@dataclass(frozen=True)
class RunInfo:
    dag_id: str
    run_id: str
    state: str
    when: datetime | None

    def link(self, airflow_root: str) -> str:
        """The run's page in Airflow's UI."""
        return f"{airflow_root}/dags/{quote(self.dag_id)}/runs/{quote(self.run_id, safe='')}"

    def to_dict(self, airflow_root: str = "") -> dict:
        return {"dag_id": self.dag_id, "run_id": self.run_id, "state": self.state,
                "when": self.when.isoformat() if self.when else None, "url": self.link(airflow_root)}


@dataclass(frozen=True)
class LastVerification:
    run: RunInfo
    report: VerificationReport | None  # None: the run ended before it reported on this namespace


def _info(run) -> RunInfo:
    return RunInfo(run.dag_id, run.run_id, str(run.state or "unknown"), run.start_date or run.run_after)


def _conf_namespace(run, default: str | None) -> str | None:
    namespace = (run.conf or {}).get("namespace")
    return namespace or default


def _recent_runs(session, dag_id: str):
    from airflow.models.dagrun import DagRun
    from sqlalchemy import select

    query = select(DagRun).where(DagRun.dag_id == dag_id).order_by(DagRun.run_after.desc()).limit(RECENT)
    return list(session.scalars(query))


def last_deploys(namespaces: Iterable[str]) -> dict[str, RunInfo]:
    """The newest deploy_antdb run per namespace."""
    from airflow.utils.session import create_session

    wanted, found = set(namespaces), {}
    with create_session() as session:
        for run in _recent_runs(session, DEPLOY_DAG):
            namespace = _conf_namespace(run, DEFAULTS["namespace"])
            if namespace in wanted and namespace not in found:
                found[namespace] = _info(run)
    return found


def _reports(session, run_ids: list[str]) -> dict[str, dict[str, VerificationReport]]:
    """run_id -> namespace -> the run's last report on it."""
    from airflow.models.xcom import XComModel
    from sqlalchemy import select

    if not run_ids:
        return {}
    query = select(XComModel.run_id, XComModel.task_id, XComModel.value).where(
        XComModel.dag_id == VERIFY_DAG, XComModel.key == "report", XComModel.task_id.in_(REPORT_TASKS),
        XComModel.run_id.in_(run_ids))
    by_run: dict[str, dict[str, tuple[int, VerificationReport]]] = {}
    for run_id, task_id, value in session.execute(query):
        data = XComModel.deserialize_value(_Row(value))
        if not isinstance(data, dict) or "namespace" not in data:
            continue
        rank = REPORT_TASKS.index(task_id)
        current = by_run.setdefault(run_id, {}).get(data["namespace"])
        if current is None or rank < current[0]:
            by_run[run_id][data["namespace"]] = (rank, VerificationReport.from_dict(data))
    return {run_id: {ns: report for ns, (_, report) in per.items()} for run_id, per in by_run.items()}


@dataclass(frozen=True)
class _Row:
    """What `XComModel.deserialize_value` reads (a `.value`)."""

    value: object


def last_verifications(namespaces: Iterable[str]) -> dict[str, LastVerification]:
    """The newest verify_antdb_topology run that covered each namespace, with its report."""
    from airflow.utils.session import create_session

    wanted, found = set(namespaces), {}
    with create_session() as session:
        runs = _recent_runs(session, VERIFY_DAG)
        reports = _reports(session, [r.run_id for r in runs])
        for run in runs:
            covered = dict(reports.get(run.run_id, {}))
            conf_namespace = _conf_namespace(run, None)
            if conf_namespace and conf_namespace not in covered:
                covered[conf_namespace] = None
            for namespace, report in covered.items():
                if namespace in wanted and namespace not in found:
                    found[namespace] = LastVerification(_info(run), report)
    return found
