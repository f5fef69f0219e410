"""scale_antdb_coordinators' scale-out step: clone each new coordinator from the source
through the real operator's `pgo clone` workflow.

Its own module because it is most of the scaling code: every decision is in `core.clone`
and `core.scale` (pure), and this operator only reads, acts and waits with deadlines. Those
imports sit in the methods that use them, so parsing the DAG file loads none of them.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowFailException

from antdb_k8s.operators.scale import PGTASK_CRD, ScaleStepOperator

if TYPE_CHECKING:
    from antdb_k8s.core.scale import ScalePlan


class CloneCoordinatorsOperator(ScaleStepOperator):
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
        from antdb_k8s.core.scale import timeouts_from
        from antdb_k8s.services.discovery import read_readiness

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
        from antdb_k8s.core.scale import CRUNCHY_API

        if self.kube.get(CRUNCHY_API, "Pgcluster", name, namespace) is not None:
            return False
        if not self._progress(namespace, name).ongoing:
            return True
        verdict = self._verdict(namespace, name)
        return verdict is not None and verdict.failure is not None

    # ------------------------------------------------------------ the fresh backup

    def _fresh_backup(self, plan: ScalePlan, timeouts: dict[str, int]) -> str:
        """`pgo backup <source>`: old task and Jobs deleted, a new task, its Job awaited."""
        from antdb_k8s.core.clone import backup_job_selector, backup_request, backup_task_name, backup_verdict
        from antdb_k8s.core.scale import CRUNCHY_API, PGO_USER
        from antdb_k8s.services.wait import Poll, wait_for

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
        from antdb_k8s.core.clone import backup_task_name, source_ready_verdict
        from antdb_k8s.services.wait import Poll

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
        from antdb_k8s.core.clone import backup_job_selector

        for job in self.listed("batch/v1", "Job", namespace, backup_job_selector(source)):
            if job["metadata"]["uid"] == uid:
                self.kube.delete("batch/v1", "Job", job["metadata"]["name"], namespace)

    def _poll(self, look, timeouts: dict[str, int], what: str) -> None:
        from antdb_k8s.services.wait import wait_until

        wait_until(look, time.monotonic() + timeouts["clone_ready"], timeouts["poke_interval"],
                   lambda poll, waited: f"timed out after {waited:.0f}s (timeouts.clone_ready) waiting for {what}: "
                                        f"{poll.state if poll else 'nothing seen'}", what=what)

    # ------------------------------------------------------------ the clone request

    def _ensure_clone(self, plan: ScalePlan, name: str, attempt: str) -> dict:
        from antdb_k8s.core.scale import CRUNCHY_API, clone_request

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
        from antdb_k8s.core.scale import removal_steps

        steps = [s for s in removal_steps(namespace, name) if s.kind != "Pgcluster"]
        deleted = self.delete_steps(namespace, steps)
        if deleted:
            self.log.info("%s: removed what an earlier clone attempt left: %s", name, ", ".join(deleted))

    def _progress(self, namespace: str, name: str, workflow_id: str | None = None):
        from antdb_k8s.core.scale import CRUNCHY_API, clone_progress

        selector = f"pg-cluster={name}"
        return clone_progress(name, self.listed(CRUNCHY_API, "Pgtask", namespace, selector),
                              self.listed("batch/v1", "Job", namespace, selector), workflow_id)

    def _latest_workflow(self, namespace: str, name: str) -> str | None:
        """The newest clone attempt's workflow id (older failed attempts are history)."""
        from antdb_k8s.core.scale import CRUNCHY_API

        tasks = self.listed(CRUNCHY_API, "Pgtask", namespace, f"pg-cluster={name},pgo-clone=true")
        if not tasks:
            return None
        newest = max(tasks, key=lambda t: t["metadata"].get("creationTimestamp") or "")
        return (newest["spec"].get("parameters") or {}).get("workflowid")

    def _verdict(self, namespace: str, name: str):
        from antdb_k8s.core.clone import clone_verdict
        from antdb_k8s.core.scale import CRUNCHY_API

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
        from antdb_k8s.hooks.errors import KubeError

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
        from antdb_k8s.services.discovery import describe_timeout, read_readiness
        from antdb_k8s.services.wait import Poll, wait_until

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
        from antdb_k8s.core.clone import pgconf_volumes_with
        from antdb_k8s.core.scale import CRUNCHY_API

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
        from antdb_k8s.core.clone import POSTGRES_HA_KEY, default_config_name

        default = self.kube.get("v1", "ConfigMap", default_config_name(name), namespace)
        if default is not None and POSTGRES_HA_KEY in (default.get("data") or {}):
            self.kube.patch("v1", "ConfigMap", default_config_name(name), {"data": {POSTGRES_HA_KEY: None}},
                            namespace)
            self.log.info("%s: default postgres-ha.yaml removed from %s", name, default_config_name(name))

    def _drop_stale_dcs(self, namespace: str, name: str, customconfig: str) -> bool:
        """Delete Patroni's `<t>-config` if the first pod bootstrapped it from the operator's default
        file; the clone has not served yet, so its next start bootstraps from the custom file."""
        from antdb_k8s.core.clone import POSTGRES_HA_KEY, custom_bootstrap_dcs, dcs_is_stale
        from antdb_k8s.core.manifests import dcs_config_name

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
        from antdb_k8s.core.manifests import MANAGED_BY, ROLE_LABEL
        from antdb_k8s.core.scale import CRUNCHY_API
        from antdb_k8s.core.topology import NodeRole

        pgcluster = self.kube.get(CRUNCHY_API, "Pgcluster", name, namespace) or {}
        wanted = {ROLE_LABEL: NodeRole.COORDINATOR.value, **MANAGED_BY}
        labels = (pgcluster.get("metadata") or {}).get("labels") or {}
        if any(labels.get(k) != v for k, v in wanted.items()):
            self.kube.patch(CRUNCHY_API, "Pgcluster", name, {"metadata": {"labels": wanted}}, namespace)
