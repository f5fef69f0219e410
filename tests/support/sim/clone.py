"""The Crunchy postgres-operator v4.2 clone workflow (`pgo clone <source> <target>`), as far as
the product can observe it: the Pgtask controller's three clone steps, the job controller's
hooks that chain them, and the restore Job's pod, whose "container" copies the data.

What v4.2.1 does (operator/cluster/clone.go, controller/jobcontroller.go, util/clone.go):
- step 1 (Pgtask `clone-step1`): PVCs `<target>-pgbr-repo` and `<target>` (kept if they exist),
  then a Job `pgo-backrest-repo-sync-<target>-<rand>` (rsync of the source's pgBackRest repo).
  The Job completing makes the job controller create Pgtask `clone-step2`.
- step 2: Secret `<target>-backrest-repo-config`, then Job `restore-<target>-<rand>`: a
  pgBackRest delta restore into PVC `<target>`. Its completion creates Pgtask `clone-step3`.
- step 3: the source's user Secrets copied under the target's name, then Pgcluster `<target>`
  from the source's spec; the cluster controller builds it and reuses the restored PVC.
Each task gets status `pgtask Processed` when taken and `spec.status: completed` when done.

Simplified: no pgBackRest repository (the restore pod copies the source's data directory
through `NodeBackend.clone_data`, online) and no temporary repo Deployment in step 2.
Deviation on purpose: the new Pgcluster keeps the source's `customconfig` (v4.2.1 leaves it
empty); AntDB's deployment pins every cn/dn to pgo-custom-antdb-config (runbook design
limit 1.6), which is where agtm_host comes from. The real operator only logs failures; here
they also become Warning Events on the Pgtask, and a failed copy fails the restore Job.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable

from tests.support.kubeapi.store import ApiError
from tests.support.nodes import NodeBackend

from .common import (JOB, NAMESPACE, PGCLUSTER, PGTASK, PVC, SECRET, Api, EventRecorder, Snapshot, condition_true,
                     labels_of, log, name_of, now_rfc3339, ns_of, rand_suffix, uid_of)
from .dbspec import scrub
from .operator import PGO_IMAGE, _repo_storage, operator_running, pvc_manifest
from .podstatus import WAITING, PodState, completed

STEP1, STEP2, STEP3 = "clone-step1", "clone-step2", "clone-step3"
STEP_LABELS = {STEP1: "pgo-clone-step-1", STEP2: "pgo-clone-step-2", STEP3: "pgo-clone-step-3"}
TASK_PROCESSED = {"state": "pgtask Processed", "message": "Successfully processed Pgtask by controller"}
COMPLETED = "completed"
SOURCE_ANNOTATION, TARGET_ANNOTATION = "clone-source-cluster-name", "clone-target-cluster-name"
WORKFLOW = {STEP1: ("clone 1.1: create pvc", "clone 1.2: sync pgbackrest repo"),
            STEP2: ("clone 2: restoring backup",), STEP3: ("clone 3: cluster creating",)}


def clone_task(step: str, namespace: str, source: str, target: str, workflow_id: str, pgouser: str) -> dict:
    """A clone Pgtask as util.CloneTask.Create renders it (the job controller's next step)."""
    name = f"{step}-{target}-{rand_suffix(4)}"
    labels = {"pg-cluster": target, "pgouser": pgouser, "pgo-clone": "true", STEP_LABELS[step]: "true"}
    parameters = {"sourceClusterName": source, "targetClusterName": target, "taskName": name,
                  "timestamp": now_rfc3339(), "workflowid": workflow_id, "backrestStorageType": ""}
    return {"apiVersion": "crunchydata.com/v1", "kind": "Pgtask",
            "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "spec": {"name": name, "namespace": namespace, "tasktype": step, "parameters": parameters}}


def _job(name: str, namespace: str, labels: dict, pod_labels: dict, container: dict, volumes: list[dict],
         source: str, target: str) -> dict:
    annotations = {SOURCE_ANNOTATION: source, TARGET_ANNOTATION: target}
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, "namespace": namespace, "labels": labels, "annotations": annotations},
            "spec": {"backoffLimit": 0, "template": {"metadata": {"labels": pod_labels}, "spec": {
                "restartPolicy": "Never", "containers": [container], "volumes": volumes}}}}


def repo_sync_job(namespace: str, source: str, target: str, workflow_id: str, pgouser: str) -> dict:
    labels = {"vendor": "crunchydata", "pgo-clone-step-1": "true", "pgouser": pgouser, "pg-cluster": target,
              "workflowid": workflow_id}
    pod_labels = {k: v for k, v in labels.items() if k != "workflowid"} | {"service-name": target}
    container = {"name": "rsync", "image": PGO_IMAGE.format("pgo-backrest-repo-sync"),
                 "env": [{"name": "PGBACKREST_REPO1_HOST", "value": f"{source}-backrest-shared-repo"},
                         {"name": "NEW_PGBACKREST_REPO", "value": f"/backrestrepo/{target}-backrest-shared-repo"}],
                 "volumeMounts": [{"name": "pgbackrest", "mountPath": "/backrestrepo"},
                                  {"name": "sshd", "mountPath": "/sshd", "readOnly": True}]}
    volumes = [{"name": "pgbackrest", "persistentVolumeClaim": {"claimName": f"{target}-pgbr-repo"}},
               {"name": "sshd", "secret": {"secretName": f"{source}-backrest-repo-config"}}]
    return _job(f"pgo-backrest-repo-sync-{target}-{rand_suffix(4)}", namespace, labels, pod_labels, container,
                volumes, source, target)


def restore_job(namespace: str, source: str, target: str, workflow_id: str, pgouser: str) -> dict:
    labels = {"vendor": "crunchydata", "pgo-backrest-restore": "true", "pg-cluster": target,
              "backrest-restore-to-pvc": target, "workflowid": workflow_id, "pgo-clone-step-2": "true",
              "pgouser": pgouser}
    pod_labels = {"vendor": "crunchydata", "pgo-backrest-restore": "true", "backrest-restore-to-pvc": target,
                  "pg-cluster": target, "service-name": target}
    container = {"name": "backrest", "image": PGO_IMAGE.format("pgo-backrest-restore"),
                 "env": [{"name": "COMMAND_OPTS", "value": "--delta"},
                         {"name": "PGBACKREST_DB_PATH", "value": f"/pgdata/{target}"}],
                 "volumeMounts": [{"name": "pgdata", "mountPath": "/pgdata"},
                                  {"name": "sshd", "mountPath": "/sshd", "readOnly": True}]}
    volumes = [{"name": "pgdata", "persistentVolumeClaim": {"claimName": target}},
               {"name": "sshd", "secret": {"secretName": f"{target}-backrest-repo-config"}}]
    return _job(f"restore-{target}-{rand_suffix(4)}", namespace, labels, pod_labels, container, volumes,
                source, target)


def target_pgcluster(source: dict, target: str, namespace: str, task: dict) -> dict:
    """createCluster: the source's spec with the target's names; Secrets named after the target."""
    spec, params = source["spec"], task["spec"].get("parameters") or {}
    copied = {k: v for k, v in spec.items() if k in (
        "ArchiveStorage", "BackrestStorage", "ccpimage", "ccpimagetag", "ccpimageprefix", "ContainerResources",
        "database", "exporterport", "pgbadgerport", "policies", "port", "primaryhost", "PrimaryStorage",
        "pswlastupdate", "ReplicaStorage", "user", "backrestS3Bucket", "backrestS3Endpoint",
        "backrestS3Region", "customconfig")}
    user = spec.get("user") or "testuser"
    copied.update({
        "clustername": target, "name": target, "namespace": namespace, "replicas": "0", "strategy": "1",
        "collectSecretName": f"{target}-collect-secret", "primarysecretname": f"{target}-primaryuser-secret",
        "rootsecretname": f"{target}-postgres-secret", "usersecretname": f"{target}-{user}-secret",
        "secretfrom": spec.get("clustername") or name_of(source),
        "userlabels": {"pgo-version": "4.2.1",
                       "backrest-storage-type": (spec.get("userlabels") or {}).get("backrest-storage-type", "")},
    })
    labels = {"name": target, "autofail": "true", "pgo-backrest": "true", "vendor": "crunchydata",
              "pgouser": labels_of(task).get("pgouser", ""), "workflowid": params.get("workflowid", "")}
    return {"apiVersion": "crunchydata.com/v1", "kind": "Pgcluster",
            "metadata": {"name": target, "namespace": namespace, "labels": labels}, "spec": copied}


class CloneTasks:
    """The clone steps (one pass: take new Pgtasks, chain finished Jobs) and the restore pods."""

    def __init__(self, api: Api, events: EventRecorder, backend: NodeBackend, wake: Callable[[], None]) -> None:
        self.api, self.events, self.backend, self._wake = api, events, backend, wake
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="sim-clone")
        self._copies: dict[str, Future] = {}      # restore pod uid -> clone_data call
        self._chained: set[str] = set()           # Job uids whose next step exists

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    # ------------------------------------------------------------ controllers

    def reconcile(self, snap: Snapshot) -> int:
        if not operator_running(snap):
            return 0
        watched = {name_of(n) for n in snap.all(NAMESPACE) if labels_of(n).get("vendor") == "crunchydata"}
        for task in snap.all(PGTASK):
            if ns_of(task) in watched and (task.get("status") or {}).get("state") != TASK_PROCESSED["state"]:
                self._take(task, snap)
        for job in snap.all(JOB):
            if ns_of(job) in watched and uid_of(job) not in self._chained and condition_true(job, "Complete"):
                self._chain(job)
        return sum(1 for f in self._copies.values() if not f.done())

    def _take(self, task: dict, snap: Snapshot) -> None:
        self.api.set_status(PGTASK, task, dict(TASK_PROCESSED))
        spec = task.get("spec") or {}
        step = spec.get("tasktype")
        if step not in STEP_LABELS or spec.get("status") == COMPLETED:
            return
        params = spec.get("parameters") or {}
        source, target = params.get("sourceClusterName", ""), params.get("targetClusterName", "")
        log.info("operator: %s %s -> %s in %s", step, source, target, ns_of(task))
        source_cluster = snap.find(PGCLUSTER, ns_of(task), source)
        if source_cluster is None:
            self._fail(task, f"Could not find source cluster: {source}")
            return
        if step == STEP1 and snap.find(PGCLUSTER, ns_of(task), target) is not None:
            self._fail(task, f"Not cloning the cluster: {target} already exists")
            return
        {STEP1: self._step1, STEP2: self._step2, STEP3: self._step3}[step](task, source_cluster, target, snap)
        self._progress(task, snap, step)
        self.api.patch(PGTASK, ns_of(task), name_of(task), {"spec": {"status": COMPLETED}})

    def _step1(self, task: dict, source: dict, target: str, snap: Snapshot) -> None:
        namespace, spec = ns_of(task), source["spec"]
        for claim in (pvc_manifest(f"{target}-pgbr-repo", namespace, target, _repo_storage(spec)),
                      pvc_manifest(target, namespace, target, spec.get("PrimaryStorage") or {})):
            if claim is not None and snap.find(PVC, namespace, name_of(claim)) is None:
                self.api.create(claim)
        params, user = task["spec"]["parameters"], labels_of(task).get("pgouser", "")
        self.api.create(repo_sync_job(namespace, name_of(source), target, params.get("workflowid", ""), user))

    def _step2(self, task: dict, source: dict, target: str, snap: Snapshot) -> None:
        namespace = ns_of(task)
        repo = snap.find(SECRET, namespace, f"{name_of(source)}-backrest-repo-config")
        if snap.find(SECRET, namespace, f"{target}-backrest-repo-config") is None:
            labels = {"pg-cluster": target, "pgo-backrest-repo": "true", "vendor": "crunchydata"}
            self.api.create({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                             "metadata": {"name": f"{target}-backrest-repo-config", "namespace": namespace,
                                          "labels": labels}, "data": dict((repo or {}).get("data") or {})})
        params, user = task["spec"]["parameters"], labels_of(task).get("pgouser", "")
        self.api.create(restore_job(namespace, name_of(source), target, params.get("workflowid", ""), user))

    def _step3(self, task: dict, source: dict, target: str, snap: Snapshot) -> None:
        namespace, source_name = ns_of(task), name_of(source)
        for secret in snap.all(SECRET, namespace):
            labels = labels_of(secret)
            if labels.get("pg-cluster") != source_name or labels.get("pgo-backrest-repo") == "true":
                continue
            data = secret.get("data") or {}
            self.api.create({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                             "metadata": {"name": name_of(secret).replace(source_name, target, 1),
                                          "namespace": namespace, "labels": {"pg-cluster": target}},
                             "data": {k: data[k] for k in ("username", "password") if k in data}})
        if self.api.create(target_pgcluster(source, target, namespace, task)) is None:
            self._fail(task, f"Could not create cloned cluster: {target} already exists")
            return
        self.events.emit(task, "CloneClusterCompleted", f"cloned {source_name} into {target}",
                         component="postgres-operator")

    def _chain(self, job: dict) -> None:
        """Job controller: a finished repo sync starts step 2, a finished restore step 3."""
        labels, annotations = labels_of(job), job["metadata"].get("annotations") or {}
        step = STEP2 if labels.get("pgo-clone-step-1") == "true" else \
            STEP3 if labels.get("pgo-clone-step-2") == "true" else None
        self._chained.add(uid_of(job))
        if step is None or SOURCE_ANNOTATION not in annotations:
            return
        self.api.create(clone_task(step, ns_of(job), annotations[SOURCE_ANNOTATION], annotations[TARGET_ANNOTATION],
                                   labels.get("workflowid", ""), labels.get("pgouser", "")))

    def _progress(self, task: dict, snap: Snapshot, step: str) -> None:
        """UpdateCloneWorkflow: stamp each reached status on the workflow Pgtask."""
        workflow_id = (task["spec"].get("parameters") or {}).get("workflowid")
        for workflow in snap.all(PGTASK, ns_of(task)):
            if workflow_id and labels_of(workflow).get("workflowid") == workflow_id \
                    and workflow["spec"].get("tasktype") == "workflow":
                stamps = {status: now_rfc3339() for status in WORKFLOW[step]}
                self.api.patch(PGTASK, ns_of(workflow), name_of(workflow), {"spec": {"parameters": stamps}})

    def _fail(self, task: dict, message: str) -> None:
        log.error("operator: clone task %s/%s failed: %s", ns_of(task), name_of(task), message)
        self.events.emit(task, "CloneClusterFailure", message, warning=True, component="postgres-operator")

    # ------------------------------------------------------------ restore pods (kubelet side)

    def handles(self, pod: dict) -> bool:
        return labels_of(pod).get("pgo-backrest-restore") == "true"

    def run(self, pod: dict, ip: str) -> tuple[PodState, str | None, int]:
        """(state, log text or None, pending): the copy runs once per pod, off the reconcile thread."""
        uid = uid_of(pod)
        future = self._copies.get(uid)
        if future is None:
            clone = self._clone_of(pod)
            if clone is None:
                return completed(0, ip), "restore: nothing to clone\n", 0
            log.info("restore pod %s: cloning %s into %s", name_of(pod), clone[0], clone[1])
            future = self._pool.submit(self.backend.clone_data, ns_of(pod), *clone)
            future.add_done_callback(lambda _f: self._wake())
            self._copies[uid] = future
        if not future.done():
            return WAITING, None, 1
        error = future.exception()
        if error is None:
            return completed(0, ip), "restore: completed (delta restore of the source's data)\n", 0
        text = f"restore: FAILED: {type(error).__name__}: {scrub(str(error))}\n"
        return completed(1, ip), text, 0

    def _clone_of(self, pod: dict) -> tuple[str, str] | None:
        """(source, target) from the owning Job's clone annotations; None for a plain restore."""
        owner = next((r for r in pod["metadata"].get("ownerReferences") or [] if r.get("kind") == "Job"), None)
        if owner is None:
            return None
        try:
            job = self.api.store.get(*JOB, ns_of(pod), owner["name"])
        except ApiError:
            return None
        annotations = job["metadata"].get("annotations") or {}
        if SOURCE_ANNOTATION not in annotations or TARGET_ANNOTATION not in annotations:
            return None
        return annotations[SOURCE_ANNOTATION], annotations[TARGET_ANNOTATION]
