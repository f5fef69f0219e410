"""scale_antdb_coordinators' tasks: plan, clone new coordinators, reconcile pgxc_node, remove
departing coordinators, verify.

Every decision is in `core.scale` (pure); these operators read Kubernetes and AntDB, act,
and wait with deadlines. pgxc_node is changed only through the one planner and applier
(`services.catalog.reconcile_catalog`); discovery, waits and verification are `services`'.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from datetime import datetime, timezone
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from antdb_k8s.core.manifests import MANAGED_BY, ROLE_LABEL
from antdb_k8s.core.names import InvalidName, require_dns1123_label
from antdb_k8s.core.pgxc import PlanBlockedError, diff_summary
from antdb_k8s.core.scale import (CRUNCHY_API, USER_RELATIONS_SQL, ScalePlan, ScaleRefused, catalog_differences,
                                  clone_progress, clone_request, plan_scale, removal_steps, timeouts_from,
                                  validate_request)
from antdb_k8s.core.topology import NodeAddress, NodeRole, Topology, TopologyError, UnsafeTopologyError
from antdb_k8s.hooks.errors import KubeError
from antdb_k8s.operators.base import AntDBBaseOperator
from antdb_k8s.services.catalog import reconcile_catalog
from antdb_k8s.services.discovery import describe_timeout, discover, read_readiness
from antdb_k8s.services.pods import wait_pods_gone
from antdb_k8s.services.verification import verify_cluster
from antdb_k8s.services.wait import Poll, wait_until

PGTASK_CRD = "pgtasks.crunchydata.com"
FAILURE_REASON = "CloneClusterFailure"


class _PlanOperator(AntDBBaseOperator):
    """Base for the tasks that carry out the plan task's decision (XCom, templated)."""

    template_fields = ("plan",)

    def __init__(self, *, plan: dict, **kwargs):
        super().__init__(**kwargs)
        self.plan = plan

    def scale_plan(self) -> ScalePlan:
        return ScalePlan.from_dict(self.plan)

    def members(self, namespace: str) -> dict[str, NodeRole]:
        return discover(self.kube, namespace, pods=False, services=False).members

    def listed(self, api_version: str, kind: str, namespace: str, selector: str) -> list[dict]:
        """Objects by label; none when their CRD is not installed (404), not an error."""
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
        try:
            return discover(self.kube, namespace, pods=False, services=False).members
        except KubeError as err:
            if err.status == 404:
                raise ScaleRefused("the Pgcluster CRD is not installed: there is no AntDB cluster to scale") from None
            raise


class CloneCoordinatorsOperator(_PlanOperator):
    """Scale-out: one `pgo clone` per new coordinator (a clone-step1 Pgtask), then wait for it.

    The operator restores the source's data into the new PVC and creates the new Pgcluster,
    so the new coordinator starts with the source's catalog: every table already there.
    A clone already running (an earlier try) is waited for, not submitted again.
    """

    def execute(self, context: Any) -> dict:
        plan = self.scale_plan()
        if not plan.add:
            self.log.info("no coordinator to add")
            return {"cloned": [], "requests": {}}
        timeouts = timeouts_from(context["params"])
        self._require_clone_support(plan.namespace)
        report = read_readiness(self.kube, plan.namespace, [plan.source])
        if not report.done:
            raise RuntimeError(f"clone source {plan.source} is not Ready ({report.progress_line()}); try again later")
        attempt = f"{context['run_id']}/{context['ti'].try_number}"
        requests = {name: self._ensure_clone(plan, name, attempt) for name in plan.add}
        self._wait(plan, timeouts)
        for name in plan.add:
            self._label(plan.namespace, name)
        return {"cloned": list(plan.add), "source": plan.source, "requests": requests}

    def _require_clone_support(self, namespace: str) -> None:
        if self.kube.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", PGTASK_CRD) is None:
            raise AirflowFailException(
                f"CRD {PGTASK_CRD} is not installed, so no clone can be requested in {namespace}: re-run "
                "deploy_antdb with operator.install: true, or apply include/crd/pgtasks.crunchydata.com.yaml")

    def _ensure_clone(self, plan: ScalePlan, name: str, attempt: str) -> dict:
        namespace = plan.namespace
        if self.kube.get(CRUNCHY_API, "Pgcluster", name, namespace) is not None:
            self.log.info("%s: Pgcluster exists already (an earlier clone finished)", name)
            return {"state": "exists"}
        progress = self._progress(namespace, name)
        if progress.ongoing:
            self.log.info("%s: waiting for the clone an earlier try submitted (%s)", name, progress.describe())
            return {"state": "in progress"}
        digest = hashlib.sha256(f"{attempt}/{namespace}/{name}".encode()).hexdigest()
        workflow_id = str(uuid.UUID(digest[:32]))
        stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        workflow, step1 = clone_request(namespace, plan.source, name, suffix=digest[:4], workflow_id=workflow_id,
                                        timestamp=stamp)
        self.kube.ensure(workflow)
        self.kube.ensure(step1)
        self.log.info("%s: clone of %s requested (Pgtask %s, workflow %s)", name, plan.source,
                      step1["metadata"]["name"], workflow_id)
        return {"state": "submitted", "task": step1["metadata"]["name"], "workflow_id": workflow_id}

    def _progress(self, namespace: str, name: str, workflow_id: str | None = None):
        selector = f"pg-cluster={name}"
        return clone_progress(name, self.listed(CRUNCHY_API, "Pgtask", namespace, selector),
                              self.listed("batch/v1", "Job", namespace, selector), workflow_id)

    def _latest_workflow(self, namespace: str, name: str) -> tuple[str | None, list[dict]]:
        """The newest clone attempt's workflow id and its tasks (older failed attempts are history)."""
        tasks = self.listed(CRUNCHY_API, "Pgtask", namespace, f"pg-cluster={name},pgo-clone=true")
        if not tasks:
            return None, []
        newest = max(tasks, key=lambda t: t["metadata"].get("creationTimestamp") or "")
        workflow_id = (newest["spec"].get("parameters") or {}).get("workflowid")
        return workflow_id, [t for t in tasks if (t["spec"].get("parameters") or {}).get("workflowid") == workflow_id]

    def _clone_failure(self, namespace: str, name: str) -> str | None:
        """A failed clone Job or a failure Event on a clone task of the newest attempt."""
        workflow_id, tasks = self._latest_workflow(namespace, name)
        progress = self._progress(namespace, name, workflow_id)
        lines = [f"{e.get('message', '')}" for t in tasks for e in self.kube.events_for(namespace, t["metadata"]["name"])
                 if e.get("reason") == FAILURE_REASON]
        for job in progress.failed_jobs:
            lines.append(f"Job {job} failed: {self._job_log(namespace, name, job)}")
        if not lines:
            return None
        return (f"clone of {name} from the operator failed: " + "; ".join(lines)
                + f". Fix the cause, delete the clone Pgtasks of {name} (label pg-cluster={name}) if they are "
                  "stuck, and run again")

    def _job_log(self, namespace: str, name: str, job: str) -> str:
        for pod in self.listed("v1", "Pod", namespace, f"pg-cluster={name}"):
            owners = pod["metadata"].get("ownerReferences") or []
            if any(o.get("kind") == "Job" and o.get("name") == job for o in owners):
                try:
                    return " ".join(self.kube.pod_log(namespace, pod["metadata"]["name"]).split())[-500:]
                except KubeError:
                    break
        return "(no pod log)"

    def _wait(self, plan: ScalePlan, timeouts: dict[str, int]) -> None:
        """Until every target coordinator has its Pgcluster and a Ready pod; bounded."""
        seen: dict = {}

        def look() -> Poll:
            report = read_readiness(self.kube, plan.namespace, list(plan.target))
            missing = [n for n in plan.add if self.kube.get(CRUNCHY_API, "Pgcluster", n, plan.namespace) is None]
            seen.update(report=report, missing=missing)
            if report.done and not missing:
                return Poll(True, report)
            for name in missing:
                failure = self._clone_failure(plan.namespace, name)
                if failure:
                    raise RuntimeError(failure)
            running = f"; clone running for {', '.join(missing)}" if missing else ""
            return Poll(False, None, report.progress_line() + running)

        def describe(poll: Poll, waited: float) -> str:
            progress = "; ".join(self._progress(plan.namespace, n).describe() for n in seen["missing"])
            return (describe_timeout(self.kube, plan.namespace, seen["report"], waited)
                    + (f"\n  {progress}" if progress else ""))

        report = wait_until(look, time.monotonic() + timeouts["clone_ready"], timeouts["poke_interval"], describe,
                            what="the new coordinators")
        self.log.info("%s", report.progress_line())

    def _label(self, namespace: str, name: str) -> None:
        """The operator's clone carries Crunchy's labels only; add the package's, as deploy sets them."""
        pgcluster = self.kube.get(CRUNCHY_API, "Pgcluster", name, namespace) or {}
        wanted = {ROLE_LABEL: NodeRole.COORDINATOR.value, **MANAGED_BY}
        labels = (pgcluster.get("metadata") or {}).get("labels") or {}
        if any(labels.get(k) != v for k, v in wanted.items()):
            self.kube.patch(CRUNCHY_API, "Pgcluster", name, {"metadata": {"labels": wanted}}, namespace)


class ReconcileScaleOperator(_PlanOperator):
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
        try:
            result = reconcile_catalog(self.antdb, topology, holder)
        except PlanBlockedError as exc:
            raise AirflowFailException(str(exc)) from None
        return {"target": holder.name, "changes": result.applied, "summary": diff_summary(result.plan)[0]}

    def _check_catalogs(self, plan: ScalePlan, topology: Topology) -> None:
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


class RemoveCoordinatorsOperator(_PlanOperator):
    """Scale-in: delete every Kubernetes object of the departing coordinators (PVCs kept unless
    delete_data), then wait until their pods are gone. Runs after they left every pgxc_node."""

    def execute(self, context: Any) -> dict:
        plan = self.scale_plan()
        if not plan.remove:
            self.log.info("no coordinator to remove")
            return {"removed": {}, "kept_pvcs": []}
        removed = {name: self._remove(plan, name) for name in plan.remove}
        self._wait_gone(plan, timeouts_from(context["params"]))
        kept = [] if plan.delete_data else sorted(
            p["metadata"]["name"] for n in plan.remove for p in self.listed("v1", "PersistentVolumeClaim",
                                                                             plan.namespace, f"pg-cluster={n}"))
        if kept:
            self.log.info("kept PVCs (delete_data is false): %s", ", ".join(kept))
        return {"removed": removed, "kept_pvcs": kept}

    def _remove(self, plan: ScalePlan, name: str) -> list[str]:
        deleted = []
        for step in removal_steps(plan.namespace, name, plan.delete_data):
            namespace = None if step.kind == "PersistentVolume" else plan.namespace
            if step.name:
                names = [step.name]
            elif namespace is None:
                names = [o["metadata"]["name"] for o in self.kube.list(step.api_version, step.kind,
                                                                         label_selector=step.selector)]
            else:
                names = [o["metadata"]["name"] for o in self.listed(step.api_version, step.kind, namespace,
                                                                      step.selector)]
            for object_name in names:
                if self.kube.delete(step.api_version, step.kind, object_name, namespace):
                    deleted.append(f"{step.kind}/{object_name}")
        self.log.info("%s: deleted %s", name, ", ".join(deleted) or "nothing (already gone)")
        return deleted

    def _wait_gone(self, plan: ScalePlan, timeouts: dict[str, int]) -> None:
        seconds = timeouts["removal"]
        wait_pods_gone(self.kube, plan.namespace, plan.remove, deadline=time.monotonic() + seconds,
                       interval=min(timeouts["poke_interval"], 2),
                       describe=lambda left, waited: f"pods of removed coordinators still present after {seconds}s: "
                                                     + ", ".join(left))


class VerifyScaleOperator(_PlanOperator):
    """The whole cluster verified (verify_cluster) and exactly the target coordinators in
    Kubernetes; any drift fails the run, naming it (no retry: drift does not fix itself)."""

    def execute(self, context: Any) -> dict:
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
