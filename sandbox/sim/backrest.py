"""What a real cluster's pgBackRest pods do to data, decided from the pod specs the real
postgres-operator 4.2.1 writes: the repository pod of Deployment `<c>-backrest-shared-repo`
and the Job pods of stanza-create, backup, the clone's repo sync (rsync) and restore.

Each interpretation follows an upstream file of the pinned v4.2.1 source:
- Repository pod (`conf/postgres-operator/pgo-backrest-repo-template.json`,
  `operator/backrest/repo.go`): an sshd holding the repository on the claim mounted as
  volume `backrestrepo`. Here: Running once its volumes can be mounted; the repository is a
  directory keyed by that claim (gone with the claim, empty on a new claim).
- stanza-create and backup Jobs (`conf/postgres-operator/backrest-job.json`,
  `pgo-backrest/pgo-backrest.go`, `operator/backrest/backup.go`, `stanza.go`): the
  `pgo-backrest` binary execs `pgbackrest $COMMAND $COMMAND_OPTS` in container `database`
  of pod `$PODNAME` (the repository pod). The database host is `--db-host` in COMMAND_OPTS
  (the backup: the primary's pod IP) or the repository pod's `PGBACKREST_DB_HOST` (the
  cluster's Service, for stanza-create). Here: stanza-create records the database's system
  identifier in the repository (refusing a repository that holds another database's
  stanza, as pgBackRest does); a backup needs that stanza and stores a consistent copy of
  the running database (`NodeBackend.backup_data`, pg_basebackup) as the latest backup.
- Repo sync Job of clone step 1 (`operator/cluster/clone.go` createPgBackRestRepoSyncJob,
  image `pgo-backrest-repo-sync`): rsync from `$PGBACKREST_REPO1_HOST` (the source's
  repository Service) `$PGBACKREST_REPO1_PATH` into `$NEW_PGBACKREST_REPO` on the claim
  mounted at `/backrestrepo`. Here: the target repository becomes a copy of the source's.
- Restore Job (`conf/postgres-operator/backrest-restore-job.json`, clone step 2): a
  pgBackRest (delta) restore of the latest backup of the repository at
  `$PGBACKREST_REPO1_HOST` into `$PGBACKREST_DB_PATH` on the claim mounted at `/pgdata`.
  Here: that claim's data directory becomes a copy of the latest backup
  (`NodeBackend.restore_data`). No WAL archive is kept, so a restore holds exactly what the
  backup held (upstream replays archived WAL on top; the package takes a fresh backup first).

A pod whose spec cannot be honoured fails as the container would: exit code 1 (2 for the
`pgo-backrest` exits) with the reason in its log, so its Job reaches `Failed` (backoffLimit 0).
Slow copies run on a small pool off the reconcile thread.
"""

from __future__ import annotations

import json
import shlex
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from sandbox.nodes import NodeBackend

from .common import POD, PVC, SERVICE, Api, EventRecorder, Snapshot, labels_of, log, name_of, ns_of, \
    pod_ready, selector_matches, uid_of
from .dbspec import missing_mounts, scrub
from .podstatus import WAITING, PodState, completed, running
from .workloads import TERMINAL, phase

REPO_VOLUME, PGDATA_VOLUME = "backrestrepo", "pgdata"
RSYNC_VOLUME = "backrestrepo"            # clone.go: config.VOLUME_PGBACKREST_REPO_NAME
STANZA_FILE, LATEST_FILE = "stanza.json", "latest"
BACKUP_DIR = "backup"


class JobFailed(Exception):
    """What the container prints before it exits non-zero; `code` is its exit code."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def env_of(container: dict) -> dict[str, str]:
    return {e["name"]: str(e.get("value", "")) for e in container.get("env") or [] if "name" in e}


def claim_of(pod: dict, volume: str) -> str | None:
    for item in pod["spec"].get("volumes") or []:
        if item.get("name") == volume and "persistentVolumeClaim" in item:
            return item["persistentVolumeClaim"].get("claimName")
    return None


def option(opts: str, *names: str) -> str | None:
    """The value of `--name=value` (or `--name value`) in a pgBackRest option string."""
    words = shlex.split(opts or "")
    for i, word in enumerate(words):
        for name in names:
            if word.startswith(f"{name}="):
                return word.split("=", 1)[1]
            if word == name and i + 1 < len(words):
                return words[i + 1]
    return None


def pod_kind(pod: dict) -> str | None:
    """Which pgBackRest pod this is, from the labels the operator's templates set."""
    labels = labels_of(pod)
    if labels.get("pgo-backrest-repo") == "true":
        return "repo"
    if labels.get("pgo-backrest-job") == "true":
        return "backrest"
    if labels.get("pgo-clone-step-1") == "true":
        return "rsync"
    if labels.get("pgo-backrest-restore") == "true":
        return "restore"
    return None


@dataclass
class Run:
    future: Future
    describe: str


class BackrestPods:
    """The kubelet's side of the pgBackRest pods (module docstring)."""

    def __init__(self, api: Api, events: EventRecorder, backend: NodeBackend, wake: Callable[[], None]) -> None:
        self.api, self.events, self.backend, self._wake = api, events, backend, wake
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="sim-backrest")
        self._runs: dict[str, Run] = {}              # Job pod uid -> its work
        self._repos: dict[tuple[str, str], str] = {}  # (namespace, claim) -> claim uid
        self._snap: Snapshot | None = None
        self._mount_reported: set[str] = set()

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def reconcile(self, snap: Snapshot) -> int:
        """Remember this pass's view; drop repositories whose claim was deleted or replaced."""
        self._snap = snap
        live = {uid_of(p) for p in snap.all(POD)}
        for uid in set(self._runs) - live:
            self._runs.pop(uid)
        self._mount_reported &= live
        for key, claim_uid in list(self._repos.items()):
            claim = snap.find(PVC, *key)
            if claim is None or uid_of(claim) != claim_uid:
                log.info("pgBackRest repository on claim %s/%s released (claim deleted)", *key)
                self.backend.remove_tree(self.backend.repo_dir(*key))
                del self._repos[key]
        return sum(1 for r in self._runs.values() if not r.future.done())

    # ------------------------------------------------------------ kubelet entry points

    def handles(self, pod: dict) -> bool:
        return pod_kind(pod) is not None

    def run(self, pod: dict, ip: str) -> tuple[PodState, str | None, int]:
        """(state, log text or None, pending) for one live pgBackRest pod."""
        snap = self._snap
        if snap is None:
            return WAITING, None, 1
        missing = missing_mounts(pod, snap)
        if missing:
            self._report_mounts(pod, missing)
            return WAITING, None, 0
        if pod_kind(pod) == "repo":
            self._repo(ns_of(pod), claim_of(pod, REPO_VOLUME) or "", snap, create=True)
            return running(ip), None, 0
        return self._job(pod, ip, snap)

    def _report_mounts(self, pod: dict, missing: list[tuple[str, str]]) -> None:
        if uid_of(pod) in self._mount_reported:
            return
        self._mount_reported.add(uid_of(pod))
        for volume, message in missing:
            self.events.emit(pod, "FailedMount", f'MountVolume.SetUp failed for volume "{volume}" : {message}',
                             warning=True, host=pod["spec"].get("nodeName", ""))

    def _job(self, pod: dict, ip: str, snap: Snapshot) -> tuple[PodState, str | None, int]:
        run = self._runs.get(uid_of(pod))
        if run is None:
            try:
                work, describe = self._plan(pod, snap)
            except JobFailed as exc:
                return completed(exc.code, ip), f"{pod_kind(pod)}: ERROR: {exc}\n", 0
            log.info("pgBackRest pod %s/%s: %s", ns_of(pod), name_of(pod), describe)
            future = self._pool.submit(work)
            future.add_done_callback(lambda _f: self._wake())
            run = self._runs[uid_of(pod)] = Run(future, describe)
        if not run.future.done():
            return WAITING, None, 1
        error = run.future.exception()
        if error is None:
            return completed(0, ip), f"{run.describe}: completed\n", 0
        code = error.code if isinstance(error, JobFailed) else 1
        return completed(code, ip), f"{run.describe}: ERROR: {type(error).__name__}: {scrub(str(error))}\n", 0

    def _plan(self, pod: dict, snap: Snapshot) -> tuple[Callable[[], None], str]:
        """What the pod's container will do (a callable for the pool), or JobFailed now."""
        kind = pod_kind(pod)
        container = (pod["spec"].get("containers") or [{}])[0]
        env = env_of(container)
        if kind == "backrest":
            return self._plan_backrest(pod, env, snap)
        if kind == "rsync":
            return self._plan_rsync(pod, env, snap)
        return self._plan_restore(pod, env, snap)

    # ------------------------------------------------------------ resolving names

    def _repo(self, namespace: str, claim: str, snap: Snapshot, *, create: bool = False) -> Path:
        found = snap.find(PVC, namespace, claim)
        if not claim or found is None:
            raise JobFailed(f'persistentvolumeclaim "{claim}" not found')
        path = self.backend.repo_dir(namespace, claim)
        if self._repos.get((namespace, claim)) != uid_of(found):
            self.backend.remove_tree(path)           # a new claim is an empty volume
            self._repos[(namespace, claim)] = uid_of(found)
            create = True
        if create and not path.is_dir():
            self.backend.make_dir(path)
        return path

    def _running_pods(self, namespace: str, snap: Snapshot, selector: dict) -> list[dict]:
        return [p for p in snap.all(POD, namespace) if phase(p) not in TERMINAL and pod_ready(p)
                and selector_matches(selector, labels_of(p))]

    def _host_pod(self, namespace: str, host: str, snap: Snapshot) -> dict:
        """The Ready pod behind `host`: a Service name (its selector) or a pod IP."""
        service = snap.find(SERVICE, namespace, host.split(".")[0])
        if service is not None:
            pods = self._running_pods(namespace, snap, (service.get("spec") or {}).get("selector") or {})
            if not pods:
                raise JobFailed(f"ssh: connect to host {host} port 2022: Connection refused (no Ready pod)")
            return pods[0]
        pods = [p for p in snap.all(POD, namespace) if (p.get("status") or {}).get("podIP") == host
                and phase(p) not in TERMINAL]
        if not pods:
            raise JobFailed(f"ssh: Could not resolve hostname {host}: Name or service not known")
        if not pod_ready(pods[0]):
            raise JobFailed(f"unable to connect to the database on {host}: pod {name_of(pods[0])} is not Ready")
        return pods[0]

    def _repo_of_pod(self, pod: dict, snap: Snapshot) -> Path:
        if labels_of(pod).get("pgo-backrest-repo") != "true":
            raise JobFailed(f"pod {name_of(pod)} is not a pgBackRest repository pod")
        return self._repo(ns_of(pod), claim_of(pod, REPO_VOLUME) or "", snap)

    # ------------------------------------------------------------ stanza-create and backup

    def _plan_backrest(self, pod: dict, env: dict, snap: Snapshot) -> tuple[Callable[[], None], str]:
        namespace, command, opts = ns_of(pod), env.get("COMMAND", ""), env.get("COMMAND_OPTS", "")
        for required in ("NAMESPACE", "COMMAND", "PODNAME"):
            if required != "NAMESPACE" and not env.get(required):
                raise JobFailed(f"{required} env var not set", 2)
        if command not in ("stanza-create", "backup"):
            raise JobFailed(f"unsupported backup command specified {command}", 2)
        repo_pod = snap.find(POD, namespace, env["PODNAME"])
        if repo_pod is None or phase(repo_pod) in TERMINAL:
            raise JobFailed(f'pods "{env["PODNAME"]}" not found', 2)
        repo = self._repo_of_pod(repo_pod, snap)
        db_host = option(opts, "--db-host", "--pg1-host") or \
            env_of((repo_pod["spec"].get("containers") or [{}])[0]).get("PGBACKREST_DB_HOST", "")
        node = labels_of(self._host_pod(namespace, db_host, snap)).get("pg-cluster", "")
        if command == "stanza-create":
            return (lambda: self._stanza_create(namespace, node, repo)), f"stanza-create of {node} in {repo.name}"
        return (lambda: self._backup(namespace, node, repo, opts)), f"backup of {node} into {repo.name}"

    def _system_id(self, namespace: str, node: str) -> str:
        control = self.backend.data_dir(namespace, node) / "global" / "pg_control"
        if not control.is_file():
            raise JobFailed(f"unable to read the control file of {node}")
        return control.read_bytes()[:8].hex()     # ControlFileData.system_identifier comes first

    def _stanza_create(self, namespace: str, node: str, repo: Path) -> None:
        system_id = self._system_id(namespace, node)
        stanza = repo / STANZA_FILE
        if stanza.is_file():
            held = json.loads(stanza.read_text()).get("system-id")
            if held != system_id:
                raise JobFailed(f"[028]: backup and archive info files exist but do not match the database "
                                f"(repository holds system-id {held}, {node} has {system_id})")
            return
        self.backend.write_file(stanza, json.dumps({"stanza": "db", "system-id": system_id, "node": node}))

    def _backup(self, namespace: str, node: str, repo: Path, opts: str) -> None:
        stanza = repo / STANZA_FILE
        if not stanza.is_file():
            raise JobFailed("[055]: unable to load info file: the stanza does not exist (run stanza-create)")
        if json.loads(stanza.read_text()).get("system-id") != self._system_id(namespace, node):
            raise JobFailed(f"[051]: database {node} does not match the stanza in the repository")
        label = f"{len(list((repo / BACKUP_DIR).glob('*'))) + 1:06d}F" if (repo / BACKUP_DIR).is_dir() else "000001F"
        self.backend.backup_data(namespace, node, repo / BACKUP_DIR / label)
        self.backend.write_file(repo / LATEST_FILE, label)

    # ------------------------------------------------------------ clone: repo sync and restore

    def _plan_rsync(self, pod: dict, env: dict, snap: Snapshot) -> tuple[Callable[[], None], str]:
        namespace = ns_of(pod)
        for required in ("PGBACKREST_REPO1_HOST", "NEW_PGBACKREST_REPO"):
            if not env.get(required):
                raise JobFailed(f"{required} is not set")
        source = self._repo_of_pod(self._host_pod(namespace, env["PGBACKREST_REPO1_HOST"], snap), snap)
        mount = next((m for m in (pod["spec"].get("containers") or [{}])[0].get("volumeMounts") or []
                      if m.get("name") == RSYNC_VOLUME), None)
        if mount is None or not env["NEW_PGBACKREST_REPO"].startswith(mount.get("mountPath", "/") + "/"):
            raise JobFailed(f"rsync: {env['NEW_PGBACKREST_REPO']} is not on a mounted volume")
        target = self._repo(namespace, claim_of(pod, RSYNC_VOLUME) or "", snap)
        return (lambda: self.backend.copy_tree(source, target)), f"repo sync {source.name} -> {target.name}"

    def _plan_restore(self, pod: dict, env: dict, snap: Snapshot) -> tuple[Callable[[], None], str]:
        namespace = ns_of(pod)
        if not env.get("PGBACKREST_REPO1_HOST"):
            raise JobFailed("PGBACKREST_REPO1_HOST is not set")
        repo = self._repo_of_pod(self._host_pod(namespace, env["PGBACKREST_REPO1_HOST"], snap), snap)
        claim = claim_of(pod, PGDATA_VOLUME)
        db_path = env.get("PGBACKREST_DB_PATH", "")
        if not claim or snap.find(PVC, namespace, claim) is None:
            raise JobFailed(f'persistentvolumeclaim "{claim}" not found')
        if db_path.rstrip("/") != f"/pgdata/{claim}":
            raise JobFailed(f"restore path {db_path!r} is not the data directory of claim {claim} (/pgdata/{claim})")
        return (lambda: self._restore(namespace, claim, repo)), f"restore of {repo.name} into {claim}"

    def _restore(self, namespace: str, claim: str, repo: Path) -> None:
        latest = repo / LATEST_FILE
        if not latest.is_file():
            raise JobFailed("[075]: no backup set found to restore")
        self.backend.restore_data(namespace, claim, repo / BACKUP_DIR / latest.read_text().strip())
