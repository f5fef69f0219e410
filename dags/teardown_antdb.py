"""teardown_antdb: delete one deployed AntDB cluster, keeping its data unless asked. Wiring only."""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import DAG, Param

from antdb_k8s.core.teardown import TEARDOWN_PARAMS
from antdb_k8s.operators.teardown import ConfirmTeardownOperator, TeardownClusterOperator

DOC_MD = """
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

with DAG(
    dag_id="teardown_antdb",
    description="Delete one AntDB cluster from a namespace, keeping its data unless delete_data is true",
    schedule=None,
    catchup=False,
    max_active_runs=1,
    tags=["antdb", "kubernetes", "teardown"],
    doc_md=DOC_MD,
    default_args={"retries": 2, "retry_delay": timedelta(seconds=20), "retry_exponential_backoff": True},
    params={key: Param(schema["default"], **{k: v for k, v in schema.items() if k != "default"})
            for key, schema in TEARDOWN_PARAMS.items()},
) as dag:
    confirm = ConfirmTeardownOperator(task_id="confirm", retries=0)
    teardown = TeardownClusterOperator(task_id="teardown")

    confirm >> teardown
