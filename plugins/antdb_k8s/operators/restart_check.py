"""The restart check's tasks: precheck, record, restart, assert unchanged, drop the check table.

Discovery, verification, the pod replacement and the waits are the package's services
(`discover`, `verify_cluster`, `replace_pod`, `wait_until`) and the table SQL is `SmokeSql`;
this module only orders them around a pod deletion.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowFailException

from antdb_k8s.operators.base import AntDBBaseOperator

if TYPE_CHECKING:
    from antdb_k8s.core.restart_check import ClusterRecord
    from antdb_k8s.core.smoke import SmokeSql
    from antdb_k8s.core.topology import NodeAddress, Topology
    from antdb_k8s.hooks.antdb import AntDBHook
    from antdb_k8s.hooks.kube import AntDBKubeHook

POLL_SECONDS = 1.0
TABLE_KEY = "table"


def live_topology(kube: AntDBKubeHook, namespace: str) -> Topology:
    """The cluster as Kubernetes holds it now, discovered exactly as deploy and verify do."""
    from antdb_k8s.services.discovery import discover

    return discover(kube, namespace, pods=False).topology()


def record_cluster(kube: AntDBKubeHook, antdb: AntDBHook, namespace: str, sql: SmokeSql) -> ClusterRecord:
    """ClusterIPs, pods, every holder's pgxc_node, the table's count per holder and per datanode."""
    from antdb_k8s.core.restart_check import ClusterRecord
    from antdb_k8s.services.discovery import discover

    facts = discover(kube, namespace)
    topology = facts.topology()
    readiness = facts.readiness(topology.names())
    return ClusterRecord(
        cluster_ips={n.name: n.host for n in topology.nodes},
        pgxc={h.name: [r.to_dict() for r in antdb.read_pgxc_nodes(h)] for h in topology.catalog_holders},
        counts={h.name: int(antdb.query(h, sql.count)[0][0]) for h in topology.catalog_holders},
        per_datanode={name: int(count) for name, count in antdb.query(topology.gtm_coord, sql.per_datanode)},
        pods={n.node: n.pod or "-" for n in readiness.nodes},
    )


def _params(context: Any) -> tuple[str, SmokeSql, int]:
    from antdb_k8s.core.restart_check import check_table_name
    from antdb_k8s.core.smoke import SmokeSql

    params = context["params"]
    sql = SmokeSql(check_table_name(context["run_id"]), int(params.get("rows") or 10000))
    return params["namespace"], sql, int(params.get("timeout") or 600)


class RestartPrecheckOperator(AntDBBaseOperator):
    """Refuse unless the node name is known and the cluster verifies clean; returns the nodes to restart."""

    def execute(self, context: Any) -> list[str]:
        from antdb_k8s.core.restart_check import UnknownNodeError, choose_nodes
        from antdb_k8s.core.smoke import scratch_table_name
        from antdb_k8s.core.topology import TopologyError
        from antdb_k8s.services.verification import verify_cluster

        namespace, _, _ = _params(context)
        try:
            nodes = choose_nodes(context["params"].get("pod"), live_topology(self.kube, namespace))
        except (UnknownNodeError, TopologyError) as exc:
            raise AirflowFailException(f"refusing the restart check: {exc}") from None
        table = scratch_table_name("antdb_verify", f"{context['run_id']}-precheck-{context['ti'].try_number}")
        report = verify_cluster(self.kube, self.antdb, namespace, data_check=True, table=table)
        self.log.info("\n%s", report.table())
        if not report.clean:
            raise AirflowFailException("refusing the restart check: the cluster does not verify clean: "
                                       + "; ".join(report.drift))
        self.log.info("cluster verifies clean; will restart %s", ", ".join(nodes))
        return nodes


class RecordClusterOperator(AntDBBaseOperator):
    """Create and fill the run's check table on gc, then record what must not change."""

    def execute(self, context: Any) -> dict:
        namespace, sql, _ = _params(context)
        context["ti"].xcom_push(key=TABLE_KEY, value=sql.table)  # first: the drop task relies on it
        gc = live_topology(self.kube, namespace).gtm_coord
        self.antdb.execute_ddl(gc, sql.drop)  # a retried try starts from an empty table
        self.antdb.execute_ddl(gc, sql.create)
        self.antdb.execute(gc, sql.fill)
        record = record_cluster(self.kube, self.antdb, namespace, sql)
        self.log.info("recorded %s: counts %s; rows per datanode %s", sql.table, record.counts, record.per_datanode)
        return {"table": sql.table, "rows": sql.rows, **record.to_dict()}


class RestartNodesOperator(AntDBBaseOperator):
    """Delete each chosen node's primary database pod in turn and wait until the cluster answers again."""

    template_fields = ("nodes",)

    def __init__(self, *, nodes: list[str], **kwargs):
        super().__init__(**kwargs)
        self.nodes = nodes

    def execute(self, context: Any) -> list[dict]:
        namespace, sql, timeout = _params(context)
        restarts = []
        for node in self.nodes:
            restarts.append(self._restart(namespace, node, sql, timeout))
            self.log.info("%s: pod %s replaced by %s in %.1fs", node, restarts[-1]["old_pod"],
                          restarts[-1]["new_pod"], restarts[-1]["seconds"])
        return restarts

    def _restart(self, namespace: str, node: str, sql: SmokeSql, timeout: int) -> dict:
        from antdb_k8s.services.discovery import describe_timeout, read_readiness
        from antdb_k8s.services.pods import replace_pod
        from antdb_k8s.services.wait import WaitTimeout

        before = read_readiness(self.kube, namespace, [node]).nodes[0]
        if not before.ready:
            raise AirflowFailException(f"{node} is not Ready ({before.reason}): not deleting its pod")
        started = time.monotonic()
        deadline = started + timeout
        self.log.info("%s: deleting pod %s", node, before.pod)
        address = live_topology(self.kube, namespace).by_name(node)

        def describe(old: str | None, report, state: str, waited: float) -> str:
            return (f"{node}: no replacement for pod {old} answering in time: "
                    + describe_timeout(self.kube, namespace, report, time.monotonic() - started))

        try:
            _, new_pod = replace_pod(self.kube, namespace, node, lambda: self._answers(address, "SELECT 1"),
                                     deadline=deadline, interval=POLL_SECONDS, describe=describe, old_pod=before.pod)
            self._wait_answers(namespace, sql, node, started, deadline)
        except WaitTimeout as exc:
            raise AirflowFailException(str(exc)) from None
        return {"node": node, "old_pod": before.pod, "new_pod": new_pod,
                "seconds": round(time.monotonic() - started, 1)}

    def _wait_answers(self, namespace: str, sql: SmokeSql, node: str, started: float, deadline: float) -> None:
        """Every catalog holder reads the check table again: pooled connections to the restarted node recovered."""
        from antdb_k8s.services.wait import Poll, wait_until

        holders = live_topology(self.kube, namespace).catalog_holders

        def look() -> Poll[None]:
            silent = [h.name for h in holders if not self._answers(h, sql.count)]
            return Poll(not silent, None, f"{', '.join(silent)} cannot read the check table")

        wait_until(look, deadline, POLL_SECONDS, lambda poll, waited: f"after restarting {node}: {poll.state} "
                   f"after {time.monotonic() - started:.0f}s", what=f"the cluster to answer after restarting {node}")

    def _answers(self, address: NodeAddress, statement: str) -> bool:
        try:
            self.antdb.query(address, statement)
        except Exception as exc:  # noqa: BLE001 - a node coming back refuses or errors; retried until the deadline
            self.log.debug("%s not answering yet: %s", address.name, type(exc).__name__)
            return False
        return True


class AssertUnchangedOperator(AntDBBaseOperator):
    """Record again and compare: any changed ClusterIP, pgxc_node row or count fails the run, named."""

    template_fields = ("recorded", "restarts")

    def __init__(self, *, recorded: dict, restarts: list | None = None, **kwargs):
        super().__init__(**kwargs)
        self.recorded, self.restarts = recorded, restarts

    def execute(self, context: Any) -> dict:
        from antdb_k8s.core.restart_check import ClusterRecord, compare_records, summary_table

        namespace, sql, _ = _params(context)
        before = ClusterRecord.from_dict(self.recorded)
        after = record_cluster(self.kube, self.antdb, namespace, sql)
        self.log.info("\n%s", summary_table(before, after, sql.table))
        differences = compare_records(before, after)
        summary = {"table": sql.table, "rows": sql.rows, "restarts": list(self.restarts or []),
                   "before": before.to_dict(), "after": after.to_dict(), "differences": differences}
        context["ti"].xcom_push(key="summary", value=summary)
        if differences:
            raise AirflowFailException("the restart changed the cluster: " + "; ".join(differences))
        self.log.info("unchanged after restarting %s", ", ".join(r["node"] for r in summary["restarts"]) or "-")
        return summary


class DropCheckTableOperator(AntDBBaseOperator):
    """Drop the run's check table on gc, whatever happened before (trigger rule all_done)."""

    def execute(self, context: Any) -> dict:
        namespace, sql, _ = _params(context)
        if context["ti"].xcom_pull(task_ids="record", key=TABLE_KEY) is None:
            self.log.info("the record task never started: no check table to drop")
            return {"table": sql.table, "dropped": False}
        gc = live_topology(self.kube, namespace).gtm_coord
        self.antdb.execute_ddl(gc, sql.drop)
        self.log.info("dropped check table %s (if it existed)", sql.table)
        return {"table": sql.table, "dropped": True}


class RestartSummaryOperator(AntDBBaseOperator):
    """The run's last word: succeeds only when the check passed and its table is gone."""

    template_fields = ("summary", "dropped")

    def __init__(self, *, summary: dict, dropped: dict, **kwargs):
        super().__init__(**kwargs)
        self.summary, self.dropped = summary, dropped

    def execute(self, context: Any) -> dict:
        restarts = self.summary.get("restarts") or []
        self.log.info("restart check passed: %s restarted, nothing changed; check table %s dropped",
                      ", ".join(f"{r['node']} ({r['old_pod']} -> {r['new_pod']}, {r['seconds']}s)" for r in restarts),
                      self.dropped.get("table"))
        return {**self.summary, "dropped": bool(self.dropped.get("dropped"))}
