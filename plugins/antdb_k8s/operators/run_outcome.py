"""The states and failure messages of a run's other tasks, read by a final task (the summary)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from antdb_k8s.core.failures import TaskOutcome


def run_outcomes(context: Any, exclude: set[str]) -> list[TaskOutcome]:
    """Every finished task instance of this run but `exclude`, in the DAG's order, with its failure message."""
    from antdb_k8s.core.failures import TaskOutcome

    ti = context["ti"]
    crumbs = list(ti.get_task_breadcrumbs(dag_id=ti.dag_id, run_id=ti.run_id))
    order = {task_id: i for i, task_id in enumerate(context["dag"].task_ids)}
    crumbs.sort(key=lambda c: (order.get(c["task_id"], len(order)), c["map_index"]))
    outcomes = []
    for crumb in crumbs:
        if crumb["task_id"] in exclude:
            continue
        name = crumb["task_id"] if crumb["map_index"] < 0 else f"{crumb['task_id']}[{crumb['map_index']}]"
        state = str(getattr(crumb["state"], "value", crumb["state"]))
        failure = _failure(ti, crumb) if state == "failed" else None
        failure = failure or {}
        outcomes.append(TaskOutcome(name, state, failure.get("message"), bool(failure.get("permanent"))))
    return outcomes


def _failure(ti, crumb: dict) -> dict | None:
    from antdb_k8s.core.failures import FAILURE_KEY

    value = ti.xcom_pull(task_ids=crumb["task_id"], key=FAILURE_KEY, map_indexes=crumb["map_index"])
    return value if isinstance(value, dict) else None
