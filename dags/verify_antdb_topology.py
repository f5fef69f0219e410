"""verify_antdb_topology: nightly check of every deployed AntDB cluster against Kubernetes, with repair.

Wiring only: no I/O at parse time.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import DAG, Param

from antdb_k8s.operators.repair import REPAIR_LEVELS, RepairTopologyOperator
from antdb_k8s.operators.verify import (
    MAP_INDEX_TEMPLATE,
    DeployedClustersOperator,
    VerifyTopologyOperator,
    final_verify_kwargs,
    notify_drift,
)

DOC_MD = """
### Verify every AntDB cluster against Kubernetes (nightly), optionally repairing drift

**clusters** → **verify** → **repair** → **final_verify**, one mapped task per cluster (the map index
shows its namespace). With no `namespace` (the nightly run) every namespace the package deployed into
(labelled `app.kubernetes.io/managed-by=antdb-airflow`) is verified; with one, only that cluster. Kubernetes is the truth (ADR 0001); every check is a row of
the report table in the task log and of the XCom `report` (`clean`, `drift`, `findings`):

* per node: primary pod Ready, Service ClusterIP present, database reachable, AntDB version;
* on gc and every coordinator: `pgxc_node` planned against Kubernetes with the deploy planner
  (missing, extra, moved host/port, wrong type, wrong primary/preferred/GTM flags: each is drift);
* every node's running `agtm_host` and the `pgo-custom-antdb-config` ConfigMap's equal gc's ClusterIP;
* `data_check`: a scratch table filled from gc and counted from every coordinator (touches every datanode,
  always dropped).

`repair`: **off** reports only. **safe** applies the planned `pgxc_node` changes with the deploy applier
(a blocked plan is refused whole; a datanode is never dropped). **full** also handles gc at a new address
(re-created Service): rewrites agtm_host in the custom ConfigMap (other settings kept) and in each node's
Patroni `<node>-config`, restarts the nodes still on the old address one at a time (each must be Ready and
answering with the new agtm_host before the next), then does the safe repair.

**final_verify fails the run when drift remains in any cluster**, naming the namespace and the drift, so
it shows red in the run history; the other clusters are still verified (and repaired).

#### Notifications
The DAG's `on_failure_callback` is `antdb_k8s.operators.verify.notify_drift`, which logs one line with the
drift. To be paged instead, copy this file and pass any Airflow notifier as well (or instead), e.g.
`on_failure_callback=[notify_drift, SlackNotifier(slack_conn_id="slack", text="AntDB drift in {{ dag_run.run_id }}")]`
(`apache-airflow-providers-slack`), or `SmtpNotifier` from the SMTP provider.
"""

PARAMS = {
    "namespace": Param("", type="string", pattern=r"^([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)?$",
                       title="Namespace", section="Cluster",
                       description="Kubernetes namespace holding the AntDB cluster to verify; empty: every "
                                   "cluster the package deployed."),
    "repair": Param("off", type="string", enum=list(REPAIR_LEVELS), title="Repair", section="Repair",
                    description="off: report only. safe: fix pgxc_node with the deploy planner/applier. "
                                "full: safe, plus move every node to gc's current address (ConfigMaps, "
                                "one pod restart at a time)."),
    "data_check": Param(True, type="boolean", title="Data check", section="Checks",
                        description="Write a small scratch table from gc and count it from every coordinator "
                                    "(touches every datanode; the table is always dropped)."),
}

with DAG(
    dag_id="verify_antdb_topology",
    schedule="0 2 * * *",
    catchup=False,
    max_active_runs=1,
    tags=["antdb", "kubernetes", "day2", "verify"],
    doc_md=DOC_MD,
    default_args={"retries": 2, "retry_delay": timedelta(seconds=30)},
    params=PARAMS,
    on_failure_callback=notify_drift,
) as dag:
    clusters = DeployedClustersOperator(task_id="clusters")
    verify = VerifyTopologyOperator.partial(task_id="verify", map_index_template=MAP_INDEX_TEMPLATE).expand(
        namespace=clusters.output)
    repair = RepairTopologyOperator.partial(task_id="repair", retries=1, map_index_template=MAP_INDEX_TEMPLATE
                                            ).expand(report=verify.output)
    final_verify = VerifyTopologyOperator.partial(
        task_id="final_verify", fail_on_drift=True, map_index_template=MAP_INDEX_TEMPLATE,
    ).expand_kwargs(verify.output.zip(repair.output).map(final_verify_kwargs))

    clusters >> verify >> repair >> final_verify
