"""scale_antdb_coordinators: an Airflow DAG that adds or removes AntDB coordinators. Wiring only: no I/O at parse time.

### Scale AntDB coordinators (manual)

Set **coordinators** to the count the cluster should have: **plan** → **clone new coordinators**
→ **reconcile `pgxc_node`** on gc and every coordinator → **remove departing coordinators** → **verify**.

* **Scale-out** is the runbook's `pgo clone cn1 cnN`, run by the real postgres-operator: the package
  first takes a fresh pgBackRest backup of cn1 (the clone restores the latest backup), then creates
  the clone `Pgtask`; the operator syncs cn1's repository, restores it into the new volume and
  creates the Pgcluster. The package gives it back cn1's `customconfig` (the clone drops it) before
  it serves. The new coordinator starts under its own name with cn1's catalog, so every table
  created before the scale is usable from it. A failed clone step fails the task at once, naming it.
  Then every catalog holder, old and new, learns it. Avoid DDL while a scale-out runs (a table
  created meanwhile would be missing on the new node; the run checks and fails if so).
* **Scale-in** removes the highest-numbered coordinators. They are dropped from `pgxc_node` everywhere
  *first*, while they still run (a catalog that points at a dead coordinator makes every DDL fail), then
  their Pgclusters, Deployments, Services, Jobs, pods, ConfigMaps, Secrets and clone tasks are deleted.
  Their PVCs are kept unless `delete_data: true`.
* Refused: fewer than 1 coordinator, and any datanode change (AntDB 5 does not support datanode
  scaling here; leave `datanodes` empty).
* Re-running once the target is reached changes nothing; a re-run after a failure continues.
"""

from __future__ import annotations

from antdb_k8s.operators.clone import CloneCoordinatorsOperator
from antdb_k8s.operators.scale import (
    PlanScaleOperator,
    ReconcileScaleOperator,
    RemoveCoordinatorsOperator,
    VerifyScaleOperator,
)
from antdb_k8s.operators.wiring import antdb_dag

with antdb_dag(
    "scale_antdb_coordinators", "scale", __doc__,
    description="Add or remove AntDB coordinators (clone of cn1 / drop from pgxc_node everywhere)",
) as dag:
    plan = PlanScaleOperator(task_id="plan", retries=0)
    clone = CloneCoordinatorsOperator(task_id="clone_new_coordinators", plan=plan.output)
    reconcile = ReconcileScaleOperator(task_id="reconcile_pgxc_node", plan=plan.output)
    remove = RemoveCoordinatorsOperator(task_id="remove_departing_coordinators", plan=plan.output)
    verify = VerifyScaleOperator(task_id="verify", plan=plan.output, retries=0)

    plan >> clone >> reconcile >> remove >> verify
