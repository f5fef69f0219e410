"""scale_antdb_coordinators' tasks: plan, reconcile pgxc_node, remove departing coordinators,
verify (cloning new coordinators is `operators.clone`).

Every decision is in `core.scale` (pure); these operators read Kubernetes and AntDB, act,
and wait with deadlines. pgxc_node is changed only through the one planner and applier
(`services.catalog.reconcile_catalog`); discovery, waits and verification are `services`'.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowFailException

from antdb_k8s.operators.base import AntDBBaseOperator

if TYPE_CHECKING:
    from antdb_k8s.core.scale import RemovalStep, ScalePlan
    from antdb_k8s.core.topology import NodeAddress, NodeRole, Topology

PGTASK_CRD = "pgtasks.crunchydata.com"
LATE_SETTLE_SECONDS = 3.0  # an operator reaction already under way when a Pgcluster is deleted lands within it


class ScaleStepOperator(AntDBBaseOperator):
    """Base for the tasks that carry out the plan task's decision (XCom, templated)."""

    template_fields = ("plan",)

    def __init__(self, *, plan: dict, **kwargs):
        super().__init__(**kwargs)
        self.plan = plan

    def scale_plan(self) -> ScalePlan:
        from antdb_k8s.core.scale import ScalePlan

        return ScalePlan.from_dict(self.plan)

    def members(self, namespace: str) -> dict[str, NodeRole]:
        from antdb_k8s.services.discovery import discover

        return discover(self.kube, namespace, pods=False, services=False).members

    def delete_steps(self, namespace: str, steps: list[RemovalStep]) -> list[str]:
        """Delete what each step names or selects; returns `Kind/name` of what was deleted.

        Objects already being deleted (a deletionTimestamp) are left to finish: deleting them
        again changes nothing, and a sweep must not count them as found.
        """
        deleted = []
        for step in steps:
            where = None if step.kind == "PersistentVolume" else namespace
            if step.name:
                names = [step.name]
            else:
                found = (self.kube.list(step.api_version, step.kind, label_selector=step.selector) if where is None
                         else self.listed(step.api_version, step.kind, where, step.selector))
                names = [o["metadata"]["name"] for o in found if not o["metadata"].get("deletionTimestamp")]
            for object_name in names:
                if self.kube.delete(step.api_version, step.kind, object_name, where):
                    deleted.append(f"{step.kind}/{object_name}")
        return deleted

    def listed(self, api_version: str, kind: str, namespace: str, selector: str) -> list[dict]:
        """Objects by label; none when their CRD is not installed (404), not an error."""
        from antdb_k8s.hooks.errors import KubeError

        try:
            return self.kube.list(api_version, kind, namespace, label_selector=selector)
        except KubeError as err:
            if err.status == 404:
                return []
            raise


class PlanScaleOperator(AntDBBaseOperator):
    """Refuse what must not happen, then decide which coordinators come and go. Changes nothing.

    Refusals (fewer than 1 coordinator, any datanode change, no cluster) fail the run
    without retry: a request does not become acceptable by asking again.
    """

    def execute(self, context: Any) -> dict:
        from antdb_k8s.core.names import InvalidName, require_dns1123_label
        from antdb_k8s.core.scale import ScaleRefused, plan_scale, validate_request

        params = context["params"]
        try:
            validate_request(params.get("coordinators"), params.get("datanodes"))
            namespace = require_dns1123_label(params.get("namespace"), "namespace")
            members = self._members(namespace)
            plan = plan_scale(namespace, members, params["coordinators"], params.get("datanodes"),
                              bool(params.get("delete_data", False)))
        except (ScaleRefused, InvalidName) as exc:
            raise AirflowFailException(f"scale_antdb_coordinators refused: {exc}") from None
        self.log.info("%s", plan.summary())
        return plan.to_dict()

    def _members(self, namespace: str) -> dict[str, NodeRole]:
        from antdb_k8s.core.scale import ScaleRefused
        from antdb_k8s.hooks.errors import KubeError
        from antdb_k8s.services.discovery import discover

        try:
            return discover(self.kube, namespace, pods=False, services=False).members
        except KubeError as err:
            if err.status == 404:
                raise ScaleRefused("the Pgcluster CRD is not installed: there is no AntDB cluster to scale") from None
            raise


class ReconcileScaleOperator(ScaleStepOperator):
    """pgxc_node on gc and every remaining coordinator, planned against the target topology.

    Scale-out: new coordinators first (their copied catalog lacks only their own row), then
    gc and the others learn them. Scale-in: the departing coordinators are left out of the
    topology, so the planner drops their rows everywhere while they still run (see
    core.scale for why this order). Then a new coordinator's tables are compared with its
    source's.
    """

    def execute(self, context: Any) -> dict:
        plan = self.scale_plan()
        topology = self._topology(plan)
        holders = sorted(topology.catalog_holders, key=lambda n: n.name not in plan.add)
        results = [self._reconcile(topology, holder) for holder in holders]
        self._check_catalogs(plan, topology)
        return {"topology": topology.to_list(), "holders": results, "dropped": list(plan.remove)}

    def _topology(self, plan: ScalePlan) -> Topology:
        from antdb_k8s.core.topology import TopologyError, UnsafeTopologyError
        from antdb_k8s.services.discovery import discover

        facts = discover(self.kube, plan.namespace, pods=False)
        missing = sorted(set(plan.target) - set(facts.members))
        if missing:
            raise RuntimeError(f"coordinators {', '.join(missing)} have no Pgcluster yet: the clone did not finish")
        keep = {name: role for name, role in facts.members.items() if name not in plan.remove}
        try:
            return facts.topology(keep)
        except UnsafeTopologyError as refused:
            raise AirflowFailException(str(refused)) from None  # not transient: retrying cannot fix a name
        except TopologyError as exc:
            raise RuntimeError(str(exc)) from None

    def _reconcile(self, topology: Topology, holder: NodeAddress) -> dict:
        from antdb_k8s.core.pgxc import PlanBlockedError, diff_summary
        from antdb_k8s.services.catalog import reconcile_catalog

        try:
            result = reconcile_catalog(self.antdb, topology, holder)
        except PlanBlockedError as exc:
            raise AirflowFailException(str(exc)) from None
        return {"target": holder.name, "changes": result.applied, "summary": diff_summary(result.plan)[0]}

    def _check_catalogs(self, plan: ScalePlan, topology: Topology) -> None:
        from antdb_k8s.core.scale import USER_RELATIONS_SQL, catalog_differences

        if not plan.add:
            return
        source = topology.by_name(plan.source)
        have = [r[0] for r in self.antdb.query(source, USER_RELATIONS_SQL)]
        problems = []
        for name in plan.add:
            rows = self.antdb.query(topology.by_name(name), USER_RELATIONS_SQL)
            problems += catalog_differences(plan.source, have, name, [r[0] for r in rows])
        if problems:
            raise AirflowFailException("catalog of the new coordinator(s) differs from the source: "
                                       + "; ".join(problems) + ". Avoid DDL while scaling out; scale in and "
                                       "out again to re-clone")
        self.log.info("%s carry the same %d relation(s) as %s", ", ".join(plan.add), len(have), plan.source)


class RemoveCoordinatorsOperator(ScaleStepOperator):
    """Scale-in: delete every Kubernetes object of the departing coordinators (PVCs kept unless
    delete_data), then wait until their pods are gone. Runs after they left every pgxc_node."""

    def execute(self, context: Any) -> dict:
        from antdb_k8s.core.scale import timeouts_from

        plan = self.scale_plan()
        if not plan.remove:
            self.log.info("no coordinator to remove")
            return {"removed": {}, "kept_pvcs": []}
        removed = {name: self._remove(plan, name) for name in plan.remove}
        removed_at = time.monotonic()
        timeouts = timeouts_from(context["params"])
        self._wait_gone(plan, timeouts)
        for name, late in self._sweep_late(plan, removed_at, timeouts["removal"]).items():
            removed[name] += late
        kept = [] if plan.delete_data else sorted(
            p["metadata"]["name"] for n in plan.remove for p in self.listed("v1", "PersistentVolumeClaim",
                                                                             plan.namespace, f"pg-cluster={n}"))
        if kept:
            self.log.info("kept PVCs (delete_data is false): %s", ", ".join(kept))
        return {"removed": removed, "kept_pvcs": kept}

    def _remove(self, plan: ScalePlan, name: str) -> list[str]:
        deleted = self._delete_node(plan, name)
        self.log.info("%s: deleted %s", name, ", ".join(deleted) or "nothing (already gone)")
        return deleted

    def _delete_node(self, plan: ScalePlan, name: str) -> list[str]:
        """One sweep over everything of coordinator `name` (core.scale.removal_steps)."""
        from antdb_k8s.core.scale import removal_steps

        return self.delete_steps(plan.namespace, removal_steps(plan.namespace, name, plan.delete_data))

    def _sweep_late(self, plan: ScalePlan, removed_at: float, seconds: int) -> dict[str, list[str]]:
        """Delete what the operator made for the departing coordinators while they were removed.

        The 4.2.1 operator answers a stanza-create Job's success with a `backrest-backup-<node>`
        Pgtask (controller/jobcontroller.go). When that reaction read the Pgcluster just before
        the removal deleted it, the Pgtask lands after the removal's Pgtask sweep (seen in CI).
        Once the Pgcluster is gone no new reaction can start, so sweeps repeat until one finds
        nothing at least LATE_SETTLE_SECONDS after the last deletion.
        """
        from antdb_k8s.services.wait import Poll, wait_until

        late: dict[str, list[str]] = {}
        last_deletion = [removed_at]

        def sweep() -> Poll[dict[str, list[str]]]:
            for name in plan.remove:
                found = self._delete_node(plan, name)
                if found:
                    self.log.info("%s: appeared during the removal (the operator still answering it), deleted: %s",
                                  name, ", ".join(found))
                    late.setdefault(name, []).extend(found)
                    last_deletion[0] = time.monotonic()
            return Poll(time.monotonic() - last_deletion[0] >= LATE_SETTLE_SECONDS, late, "the operator settling")

        return wait_until(sweep, time.monotonic() + seconds, LATE_SETTLE_SECONDS / 2,
                          lambda poll, waited: f"the operator kept making objects of {', '.join(plan.remove)} for "
                                               f"{waited:.0f}s after their removal: {late}; the retry deletes them",
                          what="the removed coordinators to stay removed")

    def _wait_gone(self, plan: ScalePlan, timeouts: dict[str, int]) -> None:
        from antdb_k8s.services.pods import wait_pods_gone

        seconds = timeouts["removal"]
        wait_pods_gone(self.kube, plan.namespace, plan.remove, deadline=time.monotonic() + seconds,
                       interval=min(timeouts["poke_interval"], 2),
                       describe=lambda left, waited: f"pods of removed coordinators still present after {seconds}s: "
                                                     + ", ".join(left))


class VerifyScaleOperator(ScaleStepOperator):
    """The whole cluster verified (verify_cluster) and exactly the target coordinators in
    Kubernetes; any drift fails the run, naming it (no retry: drift does not fix itself)."""

    def execute(self, context: Any) -> dict:
        from antdb_k8s.core.topology import NodeRole
        from antdb_k8s.services.verification import verify_cluster

        plan = self.scale_plan()
        report = verify_cluster(self.kube, self.antdb, plan.namespace,
                                data_check=bool(context["params"].get("data_check", True)))
        self.log.info("\n%s", report.table())
        coordinators = sorted((n for n, r in self.members(plan.namespace).items() if r is NodeRole.COORDINATOR),
                              key=lambda n: (len(n), n))
        problems = list(report.drift)
        if coordinators != list(plan.target):
            problems.append(f"Kubernetes has coordinators {', '.join(coordinators)}, expected {', '.join(plan.target)}")
        if problems:
            raise AirflowFailException("cluster not as planned after scaling: " + "; ".join(problems))
        self.log.info("%s: verified, coordinators %s", plan.namespace, ", ".join(coordinators))
        return {"plan": plan.to_dict(), "coordinators": coordinators, "verification": report.to_dict()}
