"""Delete one deployed AntDB cluster: confirm, list, plan (core.teardown), delete in order, wait, report.

The plan is made from a fresh listing on every try, so a retried or re-run teardown picks
up where the last one stopped, and a dry run shows exactly what a real run would delete.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowFailException

from antdb_k8s.operators.base import AntDBBaseOperator

if TYPE_CHECKING:
    from antdb_k8s.core.teardown import Inventory, ObjectRef, TeardownPlan

POLL_SECONDS = 1.0


def _confirmed(params: Any) -> str:
    """The namespace, if the run is confirmed; AirflowFailException (no retry) if not."""
    from antdb_k8s.core.teardown import ConfirmationError, check_confirmation

    try:
        return check_confirmation(params.get("namespace"), params.get("confirm_namespace"), bool(params.get("dry_run")))
    except ConfirmationError as exc:
        raise AirflowFailException(str(exc)) from None


class ConfirmTeardownOperator(AntDBBaseOperator):
    """Refuse an unconfirmed teardown before anything is read or touched (params only, no I/O)."""

    ui_color = "#fbe8e8"

    def execute(self, context: Any) -> dict:
        params = context["params"]
        namespace = _confirmed(params)
        dry_run = bool(params.get("dry_run"))
        if dry_run and params.get("confirm_namespace") != namespace:
            self.log.warning("dry run: a real run would refuse: confirm_namespace %r does not match %s",
                             params.get("confirm_namespace"), namespace)
        self.log.info("teardown of namespace %s confirmed (delete_data=%s, dry_run=%s)", namespace,
                      bool(params.get("delete_data")), dry_run)
        return {"namespace": namespace, "delete_data": bool(params.get("delete_data")), "dry_run": dry_run}


class TeardownClusterOperator(AntDBBaseOperator):
    """List the namespace, plan, then delete the cluster's objects; data and namespace only with delete_data.

    Pods are awaited between the workloads and the data, so no claim is released while a
    database still runs on it. Refuses (no retry) when the namespace is missing or holds
    no AntDB cluster.
    """

    ui_color = "#fbe8e8"

    def execute(self, context: Any) -> dict:
        from antdb_k8s.core.teardown import plan_teardown, render_table

        params = context["params"]
        namespace = _confirmed(params)
        delete_data, dry_run = bool(params.get("delete_data")), bool(params.get("dry_run"))
        plan = plan_teardown(self._inventory(namespace), delete_data=delete_data)
        if not plan.has_cluster:
            raise AirflowFailException(f"namespace {namespace} holds no AntDB cluster (no Pgcluster with an AntDB "
                                       "role and no object deploy_antdb created): nothing to tear down")
        if dry_run:
            self.log.info("dry run: nothing is deleted\n%s", render_table(plan))
            return {"dry_run": True, **self._summary(plan, {})}
        results = self._execute_plan(plan, int(params.get("timeout") or 300))
        self.log.info("\n%s", render_table(plan, results))
        return {"dry_run": False, **self._summary(plan, results)}

    # ------------------------------------------------------------------ reading

    def _inventory(self, namespace: str) -> Inventory:
        from antdb_k8s.core.teardown import NAMESPACED_KINDS, PV_NAMESPACE_LABEL, Inventory

        namespace_object = self.kube.get("v1", "Namespace", namespace)
        if namespace_object is None:
            raise AirflowFailException(f"namespace {namespace} does not exist: nothing to tear down")
        objects = {gvk: self._list(gvk, namespace) for gvk in NAMESPACED_KINDS}
        volumes = self.kube.list("v1", "PersistentVolume", label_selector=f"{PV_NAMESPACE_LABEL}={namespace}")
        return Inventory(namespace, namespace_object, objects, volumes)

    def _list(self, gvk: tuple[str, str], namespace: str) -> list[dict]:
        """One kind's objects; Secrets reduced to metadata and type so no secret value is held."""
        from antdb_k8s.core.teardown import SECRET
        from antdb_k8s.hooks.errors import KubeError

        try:
            items = self.kube.list(gvk[0], gvk[1], namespace)
        except KubeError as err:
            if err.status == 404:  # the Pgcluster CRD is not installed: there are none
                return []
            raise
        if gvk == SECRET:
            return [{"metadata": item.get("metadata") or {}, "type": item.get("type")} for item in items]
        return items

    # ------------------------------------------------------------------ deleting

    def _execute_plan(self, plan: TeardownPlan, timeout: int) -> dict[str, str]:
        from antdb_k8s.core.teardown import NAMESPACED_KINDS, remaining

        results: dict[str, str] = {}
        first, second = plan.phases()
        self._delete(first, results)
        self._wait_pods_gone(plan, timeout)
        self._delete(second, results)
        if not any(r.kind == "Namespace" for r in second):
            left = remaining(plan, self._inventory(plan.namespace), NAMESPACED_KINDS)
            if left:
                raise RuntimeError(f"still present after deletion: {', '.join(left)}; the retry deletes them")
        return results

    def _delete(self, refs: tuple[ObjectRef, ...], results: dict[str, str]) -> None:
        for ref in refs:
            gone = self.kube.delete(ref.api_version, ref.kind, ref.name, ref.namespace)
            results[ref.key] = "deleted" if gone else "already gone"
            self.log.info("%s %s %s", "deleted" if gone else "already gone:", ref.kind, ref.name)

    def _wait_pods_gone(self, plan: TeardownPlan, timeout: int) -> None:
        """Until no pod of the cluster's nodes exists (Terminating ones included), bounded by `timeout`."""
        from antdb_k8s.services.pods import wait_pods_gone

        wait_pods_gone(self.kube, plan.namespace, plan.nodes, deadline=time.monotonic() + timeout,
                       interval=POLL_SECONDS,
                       describe=lambda left, waited: f"pods still present after {timeout}s: {', '.join(left)}")

    @staticmethod
    def _summary(plan: TeardownPlan, results: dict[str, str]) -> dict:
        return {"namespace": plan.namespace, "nodes": list(plan.nodes), "delete_data": plan.delete_data,
                "deleted" if results else "would_delete": [r.key for r in plan.delete],
                "results": results, "kept": [r.key for r in plan.keep], "notes": list(plan.notes),
                "plan": plan.to_dict()}
