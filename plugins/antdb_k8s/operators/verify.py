"""The verification task: params in, `services.verification.verify_cluster`, the table, XCom, the verdict."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowFailException

from antdb_k8s.operators.base import AntDBBaseOperator

if TYPE_CHECKING:
    from antdb_k8s.core.verify import VerificationReport

log = logging.getLogger(__name__)
REPORT_KEY = "report"
MAP_INDEX_KEY = "antdb_namespace"  # set in the context by each mapped task: its map index shows the namespace
MAP_INDEX_TEMPLATE = "{{ antdb_namespace }}"


class VerifyTopologyOperator(AntDBBaseOperator):
    """Verify the cluster, print the table, push the report; optionally fail on drift.

    Params read: `namespace`, `data_check`, `bootstrap_grace`. With `fail_on_drift` the task fails (no retry:
    drift does not fix itself) naming the drift, after the report is in XCom (key
    `report` and the return value). `reuse_report` lets a final check stand on an earlier
    report when no repair ran in between, so nothing is verified twice for nothing.
    `data_rows` None: the data check writes `services.verification.DATA_CHECK_ROWS` rows.
    """

    template_fields = ("namespace", "previous", "repair_result")

    def __init__(self, *, namespace: str | None = None, fail_on_drift: bool = False, previous: dict | None = None,
                 repair_result: dict | None = None, data_rows: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.namespace = namespace  # None: the `namespace` param (mapped runs pass one cluster each)
        self.fail_on_drift, self.previous, self.repair_result = fail_on_drift, previous, repair_result
        self.data_rows = data_rows

    def execute(self, context: Any) -> dict:
        from antdb_k8s.core.topology import UnsafeTopologyError

        namespace = self.namespace or context["params"]["namespace"]
        context[MAP_INDEX_KEY] = namespace
        try:
            report = self._reused() or self._verify(context, namespace)
        except UnsafeTopologyError as refused:
            raise AirflowFailException(f"{refused}; fix or remove those objects, then re-run") from None
        self.log.info("\n%s", report.table())
        result = report.to_dict()
        context["ti"].xcom_push(key=REPORT_KEY, value=result)
        if report.clean:
            self.log.info("%s", report.summary())
        elif self.fail_on_drift:
            raise AirflowFailException(report.summary())
        else:
            for line in report.drift:
                self.log.warning("drift: %s", line)
        return result

    def _reused(self) -> VerificationReport | None:
        from antdb_k8s.core.verify import VerificationReport

        if self.previous and isinstance(self.repair_result, dict) and not self.repair_result.get("changed", True):
            self.log.info("no repair changed anything since the first verification: its report stands")
            return VerificationReport.from_dict(self.previous)
        return None

    def _verify(self, context: Any, namespace: str) -> VerificationReport:
        from antdb_k8s.core.bootstrap import BOOTSTRAP_GRACE
        from antdb_k8s.core.smoke import scratch_table_name
        from antdb_k8s.services.verification import DATA_CHECK_ROWS, verify_cluster

        ti = context["ti"]
        table = scratch_table_name("antdb_verify", f"{context['run_id']}-{ti.task_id}-{ti.try_number}")
        params = context["params"]
        return verify_cluster(self.kube, self.antdb, namespace, data_check=bool(params.get("data_check", True)),
                              data_rows=DATA_CHECK_ROWS if self.data_rows is None else self.data_rows, table=table,
                              bootstrap_grace=float(params.get("bootstrap_grace", BOOTSTRAP_GRACE)))


class DeployedClustersOperator(AntDBBaseOperator):
    """The namespaces to verify: the `namespace` param, or every namespace the package deployed into."""

    def execute(self, context: Any) -> list[str]:
        from antdb_k8s.core.manifests import MANAGED_SELECTOR
        from antdb_k8s.services.discovery import deployed_namespaces

        given = context["params"].get("namespace")
        if given:
            return [given]
        found = deployed_namespaces(self.kube)
        if not found:
            raise AirflowFailException(f"no deployed AntDB cluster: no namespace is labelled {MANAGED_SELECTOR}; "
                                       f"run deploy_antdb first or give a namespace")
        self.log.info("verifying %d cluster(s): %s", len(found), ", ".join(found))
        return found


def final_verify_kwargs(pair: tuple[dict, dict]) -> dict:
    """One cluster's first report and repair result as final_verify's arguments (mapped runs)."""
    report, repaired = pair
    return {"namespace": report["namespace"], "previous": report, "repair_result": repaired}


def _reports(value: Any) -> list[dict]:
    """A final_verify XCom pull: one report, or one per mapped cluster."""
    if isinstance(value, dict):
        return [value]
    return [r for r in (value or []) if isinstance(r, dict)]


def notify_drift(context: Any) -> None:
    """Default `on_failure_callback`: one concise log line naming the run and the drift.

    Replace it (or add to it) with any Airflow notifier, e.g.
    `on_failure_callback=[notify_drift, SlackNotifier(text="{{ dag_run.dag_id }} failed")]`.
    """
    from antdb_k8s.core.run_notes import drift_from_reports, drift_line

    drift: list[str] = []
    try:
        drift = drift_from_reports(_reports(context["ti"].xcom_pull(task_ids="final_verify", key=REPORT_KEY)))
    except Exception:  # noqa: BLE001 - a callback must never raise; the log line still goes out
        log.debug("no verification report in XCom for this run", exc_info=True)
    run_id = context.get("run_id") or getattr(context.get("dag_run"), "run_id", "?")
    reason = context.get("reason", "failure")
    task_log = getattr(context.get("ti"), "log", None) or log  # the task's own log, where its reader looks
    task_log.error("%s", drift_line(run_id, reason, drift))
