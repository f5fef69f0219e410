"""antdb_restart_check: the runbook's pod-restart check (section 3) as one Airflow DAG. Wiring only.

### Restart check: a pod restart must change nothing

Nodes address each other by Service ClusterIP, so losing a database pod must not change how the
cluster is wired or what it holds. This run proves it:

**precheck** (the node name is known, and the cluster verifies clean, like `verify_antdb_topology`;
otherwise the run refuses and names the drift) → **record** (creates and fills its own check table
on gc; records every node's ClusterIP, `pgxc_node` on gc and every coordinator, the table's count
from each of them and its rows per datanode) → **restart** (deletes the chosen node's primary
database pod — `pod: gc` by default, any node name, or `all` one at a time — and waits, bounded by
`timeout`, for a new Ready pod whose database answers and for every coordinator to read the table
again) → **assert_unchanged** (records again; any difference fails the run, named) →
**drop_check_table** (runs even when something failed) → **summary**.

The before/after table is in the `assert_unchanged` log; the summary is in XCom. No password is logged.
"""

from __future__ import annotations

from antdb_k8s.operators.restart_check import (
    AssertUnchangedOperator,
    DropCheckTableOperator,
    RecordClusterOperator,
    RestartNodesOperator,
    RestartPrecheckOperator,
    RestartSummaryOperator,
)
from antdb_k8s.operators.wiring import antdb_dag

with antdb_dag(
    "antdb_restart_check", "check", __doc__,
    description="Prove a database pod restart changes nothing: topology, pgxc_node, row counts",
) as dag:
    precheck = RestartPrecheckOperator(task_id="precheck", retries=0)
    record = RecordClusterOperator(task_id="record")
    # No retries from here to the verdict: a retried restart would delete pods it already replaced.
    restart = RestartNodesOperator(task_id="restart", nodes=precheck.output, retries=0)
    check = AssertUnchangedOperator(task_id="assert_unchanged", recorded=record.output, restarts=restart.output,
                                    retries=0)
    drop = DropCheckTableOperator(task_id="drop_check_table", trigger_rule="all_done")
    summary = RestartSummaryOperator(task_id="summary", summary=check.output, dropped=drop.output, retries=0)

    precheck >> record >> restart >> check >> drop >> summary
