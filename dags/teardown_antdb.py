"""teardown_antdb: delete one deployed AntDB cluster, keeping its data unless asked (an Airflow DAG). Wiring only.

### Tear down an AntDB cluster

Deletes what `deploy_antdb` and the postgres-operator created for one cluster in a namespace:
Pgclusters, node and pgBackRest Deployments, Jobs and pods, Services, ConfigMaps
(`pgo-custom-antdb-config`, `<node>-pgha-default-config`, Patroni's `<node>-config` and
`<node>-leader`) and the nodes' Secrets. Objects are found by the labels deploy and the operator
set, never by the deploy conf. Other objects in the namespace are left alone.

* **confirm_namespace** must repeat the namespace, or the run refuses before touching anything
  (a dry run does not need it).
* **Data is kept by default**: the PVCs (`<node>`, `<node>-pgbr-repo`), the package's hostPath PVs
  and the namespace stay, and deploying the same cluster into the namespace again brings every
  row back.
* **delete_data: true** also deletes the PVCs, the PVs labelled `antdb.io/namespace=<ns>`, and the
  namespace if the package created it and nothing else lives there. This loses every row.
* **dry_run: true** lists what would be deleted and what is kept, and deletes nothing.
* Refuses when the namespace holds no AntDB cluster. The log shows a table of deleted and kept objects.
"""

from __future__ import annotations

from antdb_k8s.operators.teardown import ConfirmTeardownOperator, TeardownClusterOperator
from antdb_k8s.operators.wiring import antdb_dag

with antdb_dag(
    "teardown_antdb", "teardown", __doc__,
    description="Delete one AntDB cluster from a namespace, keeping its data unless delete_data is true",
) as dag:
    confirm = ConfirmTeardownOperator(task_id="confirm", retries=0)
    teardown = TeardownClusterOperator(task_id="teardown")

    confirm >> teardown
