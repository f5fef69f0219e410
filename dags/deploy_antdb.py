"""deploy_antdb: the AntDB-on-Kubernetes runbook as one DAG. Wiring only: no I/O at parse time.

### Deploy an AntDB cluster on Kubernetes

Turns the AntDB-on-Crunchy-postgres-operator runbook into one run:
**validate** the conf → **preflight** (connections, Kubernetes access, operator: fails at once, saying what
to fix) → **prepare hosts** (sysctl, kube-proxy ipvs) → **ensure the operator**
→ **namespace, Secrets, volumes** → **create gc** → **wait for gc** → **read gc's ClusterIP**
→ **write `pgo-custom-antdb-config`** (agtm_host) → **create datanodes and coordinators** (in parallel)
→ **wait for every node** → **collect the topology** → **reconcile `pgxc_node`** on gc and every
coordinator (in parallel) → **smoke test** → **summary**.

* Re-running with the same conf changes nothing; re-running after a failure continues where it stopped.
* `dry_run: true` renders every manifest and the planned SQL and changes nothing.
* Kubernetes is the truth for `pgxc_node`: missing nodes are added, moved ones altered, coordinators that
  are gone dropped; a datanode is never dropped (the run fails and says why).
* Passwords live only in Kubernetes Secrets; the superuser is the `antdb_default` connection's.
"""

from __future__ import annotations

from airflow.sdk import XComArg

from antdb_k8s.operators.cluster import (
    CollectTopologyOperator,
    CreatePgclusterOperator,
    EnsureNamespaceOperator,
    ReadGtmAddressOperator,
    WriteCustomConfigOperator,
)
from antdb_k8s.operators.pgxc import ReconcilePgxcNodeOperator
from antdb_k8s.operators.platform import EnsurePgoOperator, PrepareHostsOperator
from antdb_k8s.operators.preflight import PreflightOperator
from antdb_k8s.operators.smoke import AntDBSmokeTestOperator
from antdb_k8s.operators.spec import DeploySummaryOperator, ValidateSpecOperator
from antdb_k8s.operators.wiring import antdb_dag
from antdb_k8s.sensors.readiness import AntDBNodesReadySensor

with antdb_dag(
    "deploy_antdb", "deploy", __doc__, day2=False,
    description="Deploy an AntDB cluster (gc, coordinators, datanodes) on Kubernetes through the postgres-operator; "
                "dry_run shows every manifest",
) as dag:
    validate = ValidateSpecOperator(task_id="validate", retries=0)
    preflight = PreflightOperator(task_id="preflight", retries=0)
    prepare_hosts = PrepareHostsOperator(task_id="prepare_hosts")
    ensure_operator = EnsurePgoOperator(task_id="ensure_operator")
    ensure_namespace = EnsureNamespaceOperator(task_id="ensure_namespace")
    create_gc = CreatePgclusterOperator(task_id="create_gc", node_name="gc")
    wait_gc = AntDBNodesReadySensor(task_id="wait_gc_ready", nodes=["gc"], timeout_key="gc_ready", retries=0)
    gc_address = ReadGtmAddressOperator(task_id="read_gc_address")
    custom_config = WriteCustomConfigOperator(task_id="write_custom_config", gtm_address=gc_address.output)
    create_nodes = CreatePgclusterOperator.partial(
        task_id="create_nodes", map_index_template="{{ task.node_name }}").expand(node_name=validate.output)
    wait_nodes = AntDBNodesReadySensor(task_id="wait_nodes_ready", nodes=XComArg(validate, key="nodes"), retries=0)
    topology = CollectTopologyOperator(task_id="collect_topology")
    nodes_topology = XComArg(topology, key="topology")
    reconcile = ReconcilePgxcNodeOperator.partial(
        task_id="reconcile_pgxc_node", topology=nodes_topology, map_index_template="{{ task.target }}").expand(
        target=topology.output
    )
    smoke = AntDBSmokeTestOperator(task_id="smoke_test", topology=nodes_topology)
    summary = DeploySummaryOperator(
        task_id="summary",
        trigger_rule="all_done",
        steps={"preflight": "preflight", "prepare_hosts": "prepare_hosts", "operator": "ensure_operator",
               "namespace": "ensure_namespace", "gc_address": "read_gc_address",
               "custom_config": "write_custom_config", "topology": "collect_topology:topology",
               "reconcile": "reconcile_pgxc_node", "smoke_test": "smoke_test"},
    )

    validate >> preflight >> prepare_hosts >> ensure_operator >> ensure_namespace
    ensure_namespace >> create_gc >> wait_gc >> gc_address
    custom_config >> create_nodes >> wait_nodes >> topology
    reconcile >> smoke >> summary  # all_done: it runs (and reports every step) whatever happened
