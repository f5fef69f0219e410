"""verify_antdb_topology: nightly check of every deployed AntDB cluster against Kubernetes, with repair.

Wiring only: no I/O at parse time.

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
  always dropped);
* per node the postgres-operator has not marked Initialized: whether its bootstrap (stanza-create, first
  backup) is still moving; nothing for `bootstrap_grace` seconds is drift (an operator restart leaves that).

`repair`: **off** reports only. **safe** applies the planned `pgxc_node` changes with the deploy applier
(a blocked plan is refused whole; a datanode is never dropped). **full** also handles gc at a new address
(re-created Service): rewrites agtm_host in the custom ConfigMap (other settings kept) and in each node's
Patroni `<node>-config`, restarts the nodes still on the old address one at a time (each must be Ready and
answering with the new agtm_host before the next), re-runs each unfinished bootstrap (Pgtask and Job
`<node>-stanza-create` deleted, the node's pod restarted), then does the safe repair.

**final_verify fails the run when drift remains in any cluster**, naming the namespace and the drift, so
it shows red in the run history; the other clusters are still verified (and repaired).

#### Schedule
Nightly at 02:00 UTC. Unpausing does not start a run: the first scheduled run is the next 02:00
(`run_immediately=timedelta(0)`: Airflow's `False` still runs the last 02:00 at once when unpaused
within 2.4 hours of it); trigger it by hand to verify now.

#### Notifications
Every task's `on_failure_callback` is `antdb_k8s.operators.verify.notify_drift`, which logs one line with the
drift in the failed task's log; the same line becomes the run's note in the UI. To be paged instead, copy
this file and pass any Airflow notifier as well (or instead), e.g.
`on_failure_callback=[notify_drift, SlackNotifier(slack_conn_id="slack", text="AntDB drift in {{ dag_run.run_id }}")]`
(`apache-airflow-providers-slack`), or `SmtpNotifier` from the SMTP provider.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import CronTriggerTimetable

from antdb_k8s.operators.repair import RepairTopologyOperator
from antdb_k8s.operators.verify import (
    MAP_INDEX_TEMPLATE,
    DeployedClustersOperator,
    VerifyTopologyOperator,
    final_verify_kwargs,
    notify_drift,
)
from antdb_k8s.operators.wiring import antdb_dag

with antdb_dag(
    "verify_antdb_topology", "verify", __doc__, retry_delay=30, exponential=False,
    schedule=CronTriggerTimetable("0 2 * * *", timezone="UTC", run_immediately=timedelta(0)),
    task_failure_callback=notify_drift,
    description="Nightly: compare a deployed AntDB cluster with Kubernetes (pgxc_node, agtm_host, data); "
                "optionally repair",
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
