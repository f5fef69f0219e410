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

from antdb_k8s.core.clone import (POSTGRES_HA_KEY, backup_job_selector, backup_request, backup_task_name,
                                  backup_verdict, clone_verdict, custom_bootstrap_dcs, dcs_is_stale,
                                  default_config_name, pgconf_volumes_with, source_ready_verdict)
from antdb_k8s.core.manifests import MANAGED_BY, ROLE_LABEL, dcs_config_name
from antdb_k8s.core.names import InvalidName, require_dns1123_label
from antdb_k8s.core.pgxc import PlanBlockedError, diff_summary
from antdb_k8s.core.scale import (CRUNCHY_API, PGO_USER, USER_RELATIONS_SQL, RemovalStep, ScalePlan, ScaleRefused,
                                  catalog_differences, clone_progress, clone_request, plan_scale, removal_steps,
                                  timeouts_from, validate_request)
from antdb_k8s.core.topology import NodeAddress, NodeRole, Topology, TopologyError, UnsafeTopologyError
from antdb_k8s.hooks.errors import KubeError
from antdb_k8s.operators.base import AntDBBaseOperator
from antdb_k8s.services.catalog import reconcile_catalog
from antdb_k8s.services.discovery import describe_timeout, discover, read_readiness
from antdb_k8s.services.pods import wait_pods_gone
from antdb_k8s.services.verification import verify_cluster
from antdb_k8s.services.wait import Poll, wait_for, wait_until

PGTASK_CRD = "pgtasks.crunchydata.com"


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

    def delete_steps(self, namespace: str, steps: list[RemovalStep]) -> list[str]:
        """Delete what each step names or selects; returns `Kind/name` of what was deleted."""
        deleted = []
        for step in steps:
            where = None if step.kind == "PersistentVolume" else namespace
            if step.name:
                names = [step.name]
            elif where is None:
                names = [o["metadata"]["name"] for o in self.kube.list(step.api_version, step.kind,
                                                                         label_selector=step.selector)]
            else:
                names = [o["metadata"]["name"] for o in self.listed(step.api_version, step.kind, where, step.selector)]
            for object_name in names:
                if self.kube.delete(step.api_version, step.kind, object_name, where):
                    deleted.append(f"{step.kind}/{object_name}")
        return deleted

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
    """Scale-out: per new coordinator one `pgo clone` of the source (the real operator's
    three-step workflow), after a fresh backup of the source, then wait until it serves.

    Why a fresh backup first: the operator restores the clone from the source's latest
    pgBackRest backup, which is the one taken when the source was created, before any table
    existed. A backup taken now makes the new coordinator carry today's catalog.
    Why the custom config is restored: the operator creates the clone's Pgcluster without
    `customconfig`, and without it an AntDB coordinator has no agtm_host (see core.clone).
    A failed step is read from what the operator and its Jobs write (core.clone verdicts) and
    fails the task at once, naming the step; a clone already running (an earlier try) is
    waited for, not submitted again.
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
        to_submit = [n for n in plan.add if self._needs_clone(plan.namespace, n)]
        backup = self._fresh_backup(plan, timeouts) if to_submit else "not needed (clones already under way)"
        requests = {name: self._ensure_clone(plan, name, attempt) for name in plan.add}
        self._wait(plan, timeouts)
        for name in plan.add:
            self._label(plan.namespace, name)
        return {"cloned": list(plan.add), "source": plan.source, "backup": backup, "requests": requests}

    def _require_clone_support(self, namespace: str) -> None:
        if self.kube.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", PGTASK_CRD) is None:
            raise AirflowFailException(
                f"CRD {PGTASK_CRD} is not installed, so no clone can be requested in {namespace}: re-run "
                "deploy_antdb with operator.install: true, or apply include/crd/pgtasks.crunchydata.com.yaml")

    def _needs_clone(self, namespace: str, name: str) -> bool:
        """No Pgcluster yet and no clone under way (a failed or stuck attempt does not count)."""
        if self.kube.get(CRUNCHY_API, "Pgcluster", name, namespace) is not None:
            return False
        if not self._progress(namespace, name).ongoing:
            return True
        verdict = self._verdict(namespace, name)
        return verdict is not None and verdict.failure is not None

    # ------------------------------------------------------------ the fresh backup

    def _fresh_backup(self, plan: ScalePlan, timeouts: dict[str, int]) -> str:
        """`pgo backup <source>`: old task and Jobs deleted, a new task, its Job awaited."""
        namespace, source = plan.namespace, plan.source
        self._wait_source_backrest(plan, timeouts)
        repo_pods = [p for p in self.listed("v1", "Pod", namespace, f"pg-cluster={source},pgo-backrest-repo=true")
                     if (p.get("status") or {}).get("phase") == "Running"]
        if len(repo_pods) != 1:
            raise RuntimeError(f"{source} has {len(repo_pods)} running pgBackRest repository pods, need 1: is "
                               f"pgBackRest on for it (label pgo-backrest=true) and its repo Deployment up?")
        old_jobs = {j["metadata"]["uid"] for j in self.listed("batch/v1", "Job", namespace,
                                                              backup_job_selector(source))}
        self.kube.delete(CRUNCHY_API, "Pgtask", backup_task_name(source), namespace)
        for uid in old_jobs:
            self._delete_job(namespace, uid, source)
        wait_for(lambda: not self.listed("batch/v1", "Job", namespace, backup_job_selector(source)),
                 timeouts["removal"], 0.5, f"the earlier backup Jobs of {source} to be deleted")
        pgcluster = self.kube.get(CRUNCHY_API, "Pgcluster", source, namespace) or {}
        identifier = ((pgcluster.get("metadata") or {}).get("labels") or {}).get("pg-cluster-id", "")
        self.kube.create(backup_request(namespace, source, repo_pods[0]["metadata"]["name"], pgouser=PGO_USER,
                                        identifier=identifier))
        self.log.info("backup of %s requested (Pgtask %s)", source, backup_task_name(source))
        def look() -> Poll:
            task = self.kube.get(CRUNCHY_API, "Pgtask", backup_task_name(source), namespace)
            job = self.kube.get("batch/v1", "Job", backup_task_name(source), namespace)
            verdict = backup_verdict(task, job, datetime.now(timezone.utc))
            if verdict.failure:
                raise RuntimeError(f"{verdict.failure}: {self._job_log(namespace, verdict.job)}. Fix the cause "
                                   f"(the Job's pod log above) and run again")
            return Poll(verdict.done, True, verdict.waiting)

        self._poll(look, timeouts, f"the backup of {source}")
        self.log.info("backup of %s completed (Job %s)", source, backup_task_name(source))
        return f"Job {backup_task_name(source)} completed"

    def _wait_source_backrest(self, plan: ScalePlan, timeouts: dict[str, int]) -> None:
        """Until the source's stanza exists and no earlier backup of it runs (core.clone)."""
        started = time.monotonic()

        def look() -> Poll:
            stanza = self.kube.get("batch/v1", "Job", f"{plan.source}-stanza-create", plan.namespace)
            backup = self.kube.get("batch/v1", "Job", backup_task_name(plan.source), plan.namespace)
            verdict = source_ready_verdict(plan.source, stanza, backup, datetime.now(timezone.utc),
                                           time.monotonic() - started)
            if verdict.failure:
                raise RuntimeError(f"{verdict.failure}: {self._job_log(plan.namespace, verdict.job)}")
            return Poll(verdict.done, True, verdict.waiting)

        self._poll(look, timeouts, f"pgBackRest of {plan.source}")

    def _delete_job(self, namespace: str, uid: str, source: str) -> None:
        for job in self.listed("batch/v1", "Job", namespace, backup_job_selector(source)):
            if job["metadata"]["uid"] == uid:
                self.kube.delete("batch/v1", "Job", job["metadata"]["name"], namespace)

    def _poll(self, look, timeouts: dict[str, int], what: str) -> None:
        wait_until(look, time.monotonic() + timeouts["clone_ready"], timeouts["poke_interval"],
                   lambda poll, waited: f"timed out after {waited:.0f}s (timeouts.clone_ready) waiting for {what}: "
                                        f"{poll.state if poll else 'nothing seen'}", what=what)

    # ------------------------------------------------------------ the clone request

    def _ensure_clone(self, plan: ScalePlan, name: str, attempt: str) -> dict:
        namespace = plan.namespace
        if self.kube.get(CRUNCHY_API, "Pgcluster", name, namespace) is not None:
            self.log.info("%s: Pgcluster exists already (an earlier clone finished)", name)
            return {"state": "exists"}
        if not self._needs_clone(namespace, name):
            self.log.info("%s: waiting for the clone an earlier try submitted (%s)", name,
                          self._progress(namespace, name).describe())
            return {"state": "in progress"}
        self._clear_earlier_attempt(namespace, name)
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

    def _clear_earlier_attempt(self, namespace: str, name: str) -> None:
        """What a failed clone (or a removed coordinator) of `name` left, PVCs kept: the operator's
        step 2 refuses to run while Secret `<t>-backrest-repo-config` or the repo Service exists."""
        steps = [s for s in removal_steps(namespace, name) if s.kind != "Pgcluster"]
        deleted = self.delete_steps(namespace, steps)
        if deleted:
            self.log.info("%s: removed what an earlier clone attempt left: %s", name, ", ".join(deleted))

    def _progress(self, namespace: str, name: str, workflow_id: str | None = None):
        selector = f"pg-cluster={name}"
        return clone_progress(name, self.listed(CRUNCHY_API, "Pgtask", namespace, selector),
                              self.listed("batch/v1", "Job", namespace, selector), workflow_id)

    def _latest_workflow(self, namespace: str, name: str) -> str | None:
        """The newest clone attempt's workflow id (older failed attempts are history)."""
        tasks = self.listed(CRUNCHY_API, "Pgtask", namespace, f"pg-cluster={name},pgo-clone=true")
        if not tasks:
            return None
        newest = max(tasks, key=lambda t: t["metadata"].get("creationTimestamp") or "")
        return (newest["spec"].get("parameters") or {}).get("workflowid")

    def _verdict(self, namespace: str, name: str):
        workflow_id = self._latest_workflow(namespace, name)
        if workflow_id is None:
            return None
        selector = f"pg-cluster={name}"
        return clone_verdict(name, workflow_id, self.listed(CRUNCHY_API, "Pgtask", namespace, selector),
                             self.listed("batch/v1", "Job", namespace, selector),
                             self.kube.get(CRUNCHY_API, "Pgcluster", name, namespace) is not None,
                             datetime.now(timezone.utc))

    def _job_log(self, namespace: str, job: str | None) -> str:
        """The tail of the log of `job`'s pod (found by the Job controller's label or by owner)."""
        if not job:
            return "(no Job)"
        pods = self.listed("v1", "Pod", namespace, f"job-name={job}") or [
            p for p in self.listed("v1", "Pod", namespace, "vendor=crunchydata")
            if any(o.get("kind") == "Job" and o.get("name") == job for o in p["metadata"].get("ownerReferences") or [])]
        for pod in pods:
            try:
                return " ".join(self.kube.pod_log(namespace, pod["metadata"]["name"]).split())[-500:]
            except KubeError:
                break
        return "(no pod log)"

    # ------------------------------------------------------------ waiting, with the custom config restored

    def _wait(self, plan: ScalePlan, timeouts: dict[str, int]) -> None:
        """Until every target coordinator has its Pgcluster, its custom config and a Ready pod."""
        seen: dict = {}

        def look() -> Poll:
            pending = []
            for name in plan.add:
                verdict = self._verdict(plan.namespace, name)
                if verdict is not None and verdict.failure:
                    raise RuntimeError(f"{verdict.failure}: {self._job_log(plan.namespace, verdict.job)}. Fix the "
                                       f"cause and run again (a new clone attempt replaces this one)")
                if verdict is None or not verdict.done:
                    pending.append(verdict.waiting if verdict else f"clone of {name}: not requested")
                elif not self._restore_customconfig(plan, name):
                    pending.append(f"{name}: its Deployment has not rolled out with the custom config yet")
            report = read_readiness(self.kube, plan.namespace, list(plan.target))
            seen.update(report=report, pending=pending)
            if report.done and not pending:
                return Poll(True, report)
            return Poll(False, None, report.progress_line() + "".join(f"; {line}" for line in pending))

        def describe(poll: Poll, waited: float) -> str:
            return (describe_timeout(self.kube, plan.namespace, seen["report"], waited)
                    + "".join(f"\n  {line}" for line in seen["pending"]))

        report = wait_until(look, time.monotonic() + timeouts["clone_ready"], timeouts["poke_interval"], describe,
                            what="the new coordinators")
        self.log.info("%s", report.progress_line())

    def _restore_customconfig(self, plan: ScalePlan, name: str) -> bool:
        """Give the clone the source's customconfig as the operator renders it for a Pgcluster that
        has one (see core.clone); True once its Deployment runs that pod template and Patroni's
        DCS config comes from the custom file."""
        namespace = plan.namespace
        source = self.kube.get(CRUNCHY_API, "Pgcluster", plan.source, namespace) or {}
        customconfig = (source.get("spec") or {}).get("customconfig") or ""
        if not customconfig:
            return True
        clone = self.kube.get(CRUNCHY_API, "Pgcluster", name, namespace) or {}
        if (clone.get("spec") or {}).get("customconfig") != customconfig:
            self.kube.patch(CRUNCHY_API, "Pgcluster", name, {"spec": {"customconfig": customconfig}}, namespace)
            self.log.info("%s: customconfig %s restored on the Pgcluster (the clone drops it)", name, customconfig)
        self._drop_default_postgres_ha(namespace, name)
        deployment = self.kube.get("apps/v1", "Deployment", name, namespace)
        if deployment is None:
            return False
        volumes = pgconf_volumes_with(deployment["spec"]["template"]["spec"].get("volumes") or [], customconfig)
        if volumes is not None:
            self.kube.patch("apps/v1", "Deployment", name, {"spec": {"template": {"spec": {"volumes": volumes}}}},
                            namespace)
            self.log.info("%s: ConfigMap %s added to the pods' pgconf volume", name, customconfig)
            return False
        status = deployment.get("status") or {}
        if status.get("observedGeneration", 0) < deployment["metadata"].get("generation", 1) \
                or status.get("updatedReplicas", 0) < 1:
            return False
        return not self._drop_stale_dcs(namespace, name, customconfig)

    def _drop_default_postgres_ha(self, namespace: str, name: str) -> None:
        """`<t>-pgha-default-config` without its postgres-ha.yaml, as the operator makes it for a
        Pgcluster with customconfig (clusterlogic.go): a later projected source wins, so the
        default file would hide the custom one."""
        default = self.kube.get("v1", "ConfigMap", default_config_name(name), namespace)
        if default is not None and POSTGRES_HA_KEY in (default.get("data") or {}):
            self.kube.patch("v1", "ConfigMap", default_config_name(name), {"data": {POSTGRES_HA_KEY: None}},
                            namespace)
            self.log.info("%s: default postgres-ha.yaml removed from %s", name, default_config_name(name))

    def _drop_stale_dcs(self, namespace: str, name: str, customconfig: str) -> bool:
        """Delete Patroni's `<t>-config` if the first pod bootstrapped it from the operator's default
        file; the clone has not served yet, so its next start bootstraps from the custom file."""
        dcs = self.kube.get("v1", "ConfigMap", dcs_config_name(name), namespace)
        custom = self.kube.get("v1", "ConfigMap", customconfig, namespace)
        if dcs is None or custom is None:
            return False
        wanted = custom_bootstrap_dcs((custom.get("data") or {}).get(POSTGRES_HA_KEY) or "")
        if not dcs_is_stale(((dcs.get("metadata") or {}).get("annotations") or {}).get("config"), wanted):
            return False
        self.kube.delete("v1", "ConfigMap", dcs_config_name(name), namespace)
        self.log.info("%s: Patroni DCS config %s was bootstrapped without %s: deleted, it bootstraps again",
                      name, dcs_config_name(name), customconfig)
        return True

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
        deleted = self.delete_steps(plan.namespace, removal_steps(plan.namespace, name, plan.delete_data))
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
