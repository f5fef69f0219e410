"""verify_antdb_topology: nightly check of a deployed AntDB cluster against Kubernetes, with repair.

Wiring only: no I/O at parse time.

### Verify an AntDB cluster against Kubernetes (nightly), optionally repairing drift

**verify** → **repair** → **final_verify**. Kubernetes is the truth (ADR 0001); every check is a row of
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

**final_verify fails the run when drift remains**, naming it, so it shows red in the run history.

#### Notifications
The DAG's `on_failure_callback` is `antdb_k8s.operators.verify.notify_drift`, which logs one line with the
drift. To be paged instead, copy this file and pass any Airflow notifier as well (or instead), e.g.
`on_failure_callback=[notify_drift, SlackNotifier(slack_conn_id="slack", text="AntDB drift in {{ dag_run.run_id }}")]`
(`apache-airflow-providers-slack`), or `SmtpNotifier` from the SMTP provider.
"""

from __future__ import annotations

from airflow.sdk import DAG

from antdb_k8s.operators.repair import RepairTopologyOperator
from antdb_k8s.operators.verify import VerifyTopologyOperator, notify_drift
from antdb_k8s.operators.wiring import dag_settings

with DAG(**dag_settings("verify_antdb_topology", "verify", __doc__, schedule="0 2 * * *", retry_delay=30,
                        exponential=False, on_failure_callback=notify_drift)) as dag:
    verify = VerifyTopologyOperator(task_id="verify")
    repair = RepairTopologyOperator(task_id="repair", report=verify.output, retries=1)
    final_verify = VerifyTopologyOperator(task_id="final_verify", fail_on_drift=True, previous=verify.output,
                                          repair_result=repair.output)

    verify >> repair >> final_verify
