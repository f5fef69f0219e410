"""Scale-out through the real postgres-operator 4.2.1 `pgo clone`, decided without I/O: the fresh
backup taken first, where a clone stands or why it failed, and the custom config the clone drops.

What the operator does (v4.2.1, read from the source; the package cannot change it):
- A `backrest` Pgtask `backrest-backup-<c>` (apiserver/backrestservice/backrestimpl.go
  CreateBackup) makes the operator run Job `backrest-backup-<c>`: pgBackRest in the repository
  pod backs up the primary (operator/backrest/backup.go). The Pgtask's name is fixed, so an
  earlier task and its Job are deleted first, as the apiserver does. On success the job
  controller sets the task's `spec.status` to "job completed"; a failure is only the Job's
  `Failed` condition.
- Clone: step 1 (PVCs, then repo sync Job `pgo-backrest-repo-sync-<t>-*`), step 2 (Secret,
  temporary repository Deployment, restore Job `restore-<t>-*`), step 3 (Pgcluster `<t>`)
  (operator/cluster/clone.go). The job controller creates the next step's Pgtask when a step's
  Job succeeds (controller/jobcontroller.go). A step that gives up only logs and publishes
  to NSQ: its Pgtask stays "pgtask Processed" without `spec.status: completed`, or it is marked
  completed without its Job. Nothing marks a failed Job's workflow failed.
So a failure is read from Job conditions and from a step that stays incomplete, or completes
without its Job, for longer than the operator's own bounded waits (STEP_GRACE_SECONDS).
- The restore restores the latest backup, and the new Pgcluster has no `customconfig`
  ("CustomConfig is not set", createCluster), so the operator also puts its default
  postgres-ha.yaml into `<t>-pgha-default-config`. The package restores what a Pgcluster with
  customconfig gets: the field, the ConfigMap first in the pgconf projected volume
  (cluster-deployment.json), no default postgres-ha.yaml (clusterlogic.go; a later projected
  source would hide the custom file), and no Patroni DCS config bootstrapped from the default
  file by a first pod.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Iterable, Mapping

import yaml

from antdb_k8s.core.names import require_dns1123_label
from antdb_k8s.core.scale import pgtask_spec
from antdb_k8s.core.topology import CRUNCHY_API
TASK_COMPLETED = "completed"                 # apis/cr/v1/common.go CompletedStatus
JOB_COMPLETED = "job completed"              # apis/cr/v1/common.go JobCompletedStatus
TASK_PROCESSED = "pgtask Processed"          # apis/cr/v1/task.go PgtaskStateProcessed
PGCONF_VOLUME = "pgconf-volume"              # conf/postgres-operator/cluster-deployment.json
POSTGRES_HA_KEY = "postgres-ha.yaml"         # config/pgoconfig.go PostgresHaTemplatePath
STEP_GRACE_SECONDS = 120                     # step 2 and 3 each wait up to 30 s for a Deployment
CLONE_STEPS = (
    ("clone-step1", "pgo-clone-step-1", "step 1 (PVCs and pgBackRest repo sync)"),
    ("clone-step2", "pgo-clone-step-2", "step 2 (pgBackRest restore into the new PVC)"),
    ("clone-step3", "pgo-clone-step-3", "step 3 (create the new Pgcluster)"),
)


def backup_task_name(cluster: str) -> str:
    return f"backrest-backup-{cluster}"


def backup_job_selector(cluster: str) -> str:
    """The apiserver's selector for a cluster's backup Jobs (deleted before a new backup)."""
    return f"backrest-command=backup,pg-cluster={cluster},pgo-backrest=true"


def backup_request(namespace: str, cluster: str, repo_pod: str, *, pgouser: str, identifier: str = "") -> dict:
    """The `backrest` Pgtask `pgo backup <cluster>` creates (backrestimpl.go getBackupParams)."""
    require_dns1123_label(namespace, "namespace")
    require_dns1123_label(cluster, "cluster")
    name = backup_task_name(cluster)
    return {
        "apiVersion": CRUNCHY_API, "kind": "Pgtask",
        "metadata": {"name": name, "namespace": namespace,
                     "labels": {"pg-cluster": cluster, "pg-cluster-id": identifier, "pgouser": pgouser}},
        "spec": pgtask_spec(namespace, name, "backrest",
                            {"job-name": name, "pg-cluster": cluster, "podname": repo_pod,
                             "containername": "database", "backrest-command": "backup",
                             "backrest-opts": "", "backrest-storage-type": ""}),
    }


def parse_time(stamp: str | None) -> datetime | None:
    if not stamp:
        return None
    try:
        parsed = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _age(stamp: str | None, now: datetime) -> float:
    parsed = parse_time(stamp)
    return (now - parsed).total_seconds() if parsed else 0.0


def condition(obj: Mapping | None, kind: str) -> dict | None:
    for item in ((obj or {}).get("status") or {}).get("conditions") or []:
        if item.get("type") == kind and item.get("status") == "True":
            return item
    return None


def _meta(obj: Mapping) -> Mapping:
    return obj.get("metadata") or {}


@dataclass(frozen=True)
class StepVerdict:
    """done, or still running (`waiting` says on what), or failed (`failure`, `job` names its Job)."""

    done: bool = False
    waiting: str = ""
    failure: str | None = None
    job: str | None = None


def job_verdict(job: Mapping, what: str) -> StepVerdict:
    name = _meta(job).get("name", "?")
    failed = condition(job, "Failed")
    if failed:
        reason = failed.get("reason") or "Failed"
        return StepVerdict(failure=f"{what}: Job {name} failed ({reason})", job=name)
    if condition(job, "Complete"):
        return StepVerdict(done=True)
    return StepVerdict(waiting=f"{what}: Job {name} running")


def backup_verdict(task: Mapping | None, job: Mapping | None, now: datetime,
                   grace: float = STEP_GRACE_SECONDS) -> StepVerdict:
    """Where the fresh backup of the clone source stands (task and Job as read now)."""
    what = "fresh backup before the clone"
    if job is not None:
        return job_verdict(job, what)
    if task is None:
        return StepVerdict(waiting=f"{what}: Pgtask not there yet")
    processed = ((task.get("status") or {}).get("state")) == TASK_PROCESSED
    if processed and _age(_meta(task).get("creationTimestamp"), now) > grace:
        return StepVerdict(failure=f"{what}: the operator took Pgtask {_meta(task).get('name')} but created no "
                                   "backup Job (its log says why, e.g. no Ready primary or repository pod)")
    return StepVerdict(waiting=f"{what}: waiting for the operator to create the Job")


def source_ready_verdict(cluster: str, stanza_job: Mapping | None, backup_job: Mapping | None, now: datetime,
                         waited: float, grace: float = STEP_GRACE_SECONDS) -> StepVerdict:
    """May a backup of `cluster` be requested now? Only once its stanza exists (Job
    `<c>-stanza-create` succeeded; the pod controller starts it when the primary is first
    Ready) and the initial backup the job controller then starts is not running any more
    (its Pgtask has the same fixed name as ours)."""
    what = f"pgBackRest of {cluster}"
    if stanza_job is None:
        if waited > grace:
            return StepVerdict(failure=f"{what}: no Job {cluster}-stanza-create after {int(waited)} s (is "
                                       f"pgBackRest on for {cluster}, label pgo-backrest=true?)")
        return StepVerdict(waiting=f"{what}: waiting for the stanza-create Job")
    stanza = job_verdict(stanza_job, f"{what}: stanza-create")
    if not stanza.done:
        return stanza
    if backup_job is None:
        done_at = ((stanza_job.get("status") or {}).get("completionTime")
                   or (condition(stanza_job, "Complete") or {}).get("lastTransitionTime"))
        if _age(done_at, now) < min(grace, 30):
            return StepVerdict(waiting=f"{what}: waiting for the initial backup the operator starts")
        return StepVerdict(done=True)
    if condition(backup_job, "Complete") or condition(backup_job, "Failed"):
        return StepVerdict(done=True)
    return StepVerdict(waiting=f"{what}: the earlier backup Job {_meta(backup_job).get('name')} is running")


def _of_workflow(items: Iterable[Mapping], workflow_id: str, key: str, value: str) -> list[Mapping]:
    found = []
    for item in items:
        labels, params = _meta(item).get("labels") or {}, ((item.get("spec") or {}).get("parameters") or {})
        if labels.get(key) == value and workflow_id in (labels.get("workflowid"), params.get("workflowid")):
            found.append(item)
    return sorted(found, key=lambda o: _meta(o).get("creationTimestamp") or "")


def _task_verdict(task: Mapping, what: str, now: datetime, grace: float) -> StepVerdict | None:
    """None when the task completed; otherwise waiting, or failed once it is stuck."""
    if (task.get("spec") or {}).get("status") == TASK_COMPLETED:
        return None
    processed = ((task.get("status") or {}).get("state")) == TASK_PROCESSED
    if processed and _age(_meta(task).get("creationTimestamp"), now) > grace:
        return StepVerdict(failure=f"{what}: the operator took Pgtask {_meta(task).get('name')} but did not "
                                   f"complete it within {int(grace)} s (it gave up; its log says why)")
    return StepVerdict(waiting=f"{what}: Pgtask {_meta(task).get('name')} not completed yet")


def clone_verdict(target: str, workflow_id: str, tasks: Iterable[Mapping], jobs: Iterable[Mapping],
                  pgcluster_exists: bool, now: datetime, grace: float = STEP_GRACE_SECONDS) -> StepVerdict:
    """The clone of `target` (one workflow): done once step 3 made the Pgcluster; the first
    failed or stuck step otherwise, named; tasks and jobs are those labelled pg-cluster=<target>."""
    tasks, jobs = list(tasks), list(jobs)
    previous_done_at: str | None = None
    for index, (tasktype, step_label, what) in enumerate(CLONE_STEPS):
        what = f"clone of {target}, {what}"
        step_tasks = [t for t in _of_workflow(tasks, workflow_id, step_label, "true")
                      if (t.get("spec") or {}).get("tasktype") == tasktype]
        if not step_tasks:
            if index and _age(previous_done_at, now) > grace:
                return StepVerdict(failure=f"{what}: no Pgtask {tasktype} appeared after the previous step's Job "
                                           "succeeded (the job controller could not create it)")
            return StepVerdict(waiting=f"{what}: waiting for Pgtask {tasktype}")
        task = step_tasks[-1]
        stuck = _task_verdict(task, what, now, grace)
        if stuck is not None:
            return stuck
        if index == len(CLONE_STEPS) - 1:
            if pgcluster_exists:
                return StepVerdict(done=True)
            return StepVerdict(failure=f"{what}: Pgtask {_meta(task).get('name')} completed but there is no "
                                       f"Pgcluster {target} (creating it failed; the operator's log says why)")
        step_jobs = _of_workflow(jobs, workflow_id, step_label, "true")
        if not step_jobs:
            if _age(_meta(task).get("creationTimestamp"), now) > grace:
                return StepVerdict(failure=f"{what}: Pgtask {_meta(task).get('name')} completed without creating "
                                           "its Job (the operator's log says why)")
            return StepVerdict(waiting=f"{what}: waiting for its Job")
        verdict = job_verdict(step_jobs[-1], what)
        if not verdict.done:
            return verdict
        complete = condition(step_jobs[-1], "Complete") or {}
        previous_done_at = ((step_jobs[-1].get("status") or {}).get("completionTime")
                            or complete.get("lastTransitionTime"))
    return StepVerdict(done=True)


# --------------------------------------------------------------------------- the dropped customconfig

def default_config_name(cluster: str) -> str:
    """The HA ConfigMap the operator makes per cluster (operator/clusterutilities.go)."""
    return f"{cluster}-pgha-default-config"


def pgconf_volumes_with(volumes: list[dict], customconfig: str) -> list[dict] | None:
    """The pod volumes with ConfigMap `customconfig` first in the pgconf projected volume, as
    cluster-deployment.json renders a Pgcluster with customconfig; None if it is there already."""
    result, changed = [], False
    for volume in volumes:
        if volume.get("name") != PGCONF_VOLUME or "projected" not in volume:
            result.append(volume)
            continue
        sources = list((volume.get("projected") or {}).get("sources") or [])
        if any((s.get("configMap") or {}).get("name") == customconfig for s in sources):
            result.append(volume)
            continue
        projected = {**volume["projected"], "sources": [{"configMap": {"name": customconfig}}, *sources]}
        result.append({**volume, "projected": projected})
        changed = True
    return result if changed else None


def custom_bootstrap_dcs(postgres_ha_yaml: str) -> dict:
    """`bootstrap.dcs` of a postgres-ha.yaml ({} when absent or not YAML)."""
    try:
        document = yaml.safe_load(postgres_ha_yaml or "") or {}
    except yaml.YAMLError:
        return {}
    dcs = (document.get("bootstrap") or {}).get("dcs") if isinstance(document, dict) else None
    return dict(dcs) if isinstance(dcs, dict) else {}


def dcs_is_stale(raw_config: str | None, custom_dcs: Mapping) -> bool:
    """Did Patroni bootstrap the clone's DCS config (`<c>-config` annotation `config`) from
    another file than the custom one? Then its postgresql parameters differ from the custom
    bootstrap.dcs ones.

    Patroni bootstraps that annotation once, from the postgres-ha.yaml the first pod finds,
    and runs from it ever after: a clone whose first pod started before its customconfig was
    restored runs with the operator's defaults (no agtm_host; and for a clone, whose
    Pgcluster lacks the `archive-timeout` user label, `archive_timeout` rendered empty by
    AddDefaultPostgresHaConfigMap) however its pods are mounted, until that config goes.
    """
    try:
        config = json.loads(raw_config or "{}")
    except json.JSONDecodeError:
        return True
    if not isinstance(config, dict):
        return True
    have = (config.get("postgresql") or {}).get("parameters") or {}
    want = (custom_dcs.get("postgresql") or {}).get("parameters") or {}
    return dict(have) != dict(want)
