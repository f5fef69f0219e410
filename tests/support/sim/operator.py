"""The Crunchy postgres-operator v4.2 controller, as far as the product can observe it.

Rules kept from the real one (see shared/reference/crunchy-pgo-v4.md): nothing happens without
a running operator Deployment and the CRD; only namespaces labelled `vendor=crunchydata` are
watched; a Pgcluster is built once (skipped when its status says "pgcluster Processed" or a
Deployment of its name exists); deleting a Pgcluster does nothing; there is no drift repair.
The objects are the v4.2 set, trimmed to the fields the product and the kubelet read.
Patroni's DCS ConfigMaps (`<c>-config`, `<c>-leader`) are written by the database pod when it
bootstraps, so they live in the kubelet (dbspec.py), not here.
"""

from __future__ import annotations

import yaml

from tests.support.kubeapi.store import ApiError

from .common import (DEPLOYMENT, JOB, NAMESPACE, PGCLUSTER, PGCLUSTER_CRD_NAME, Api, EventRecorder, Snapshot,
                     condition_true, labels_of, log, name_of, ns_of, uid_of)

PROCESSED = "pgcluster Processed"
PROCESSED_MESSAGE = "Successfully processed Pgcluster by controller"
PGO_IMAGE = "crunchydata/{}:centos7-4.2.1"
SERVICE_PORTS = (("postgres", None), ("pgbadger", 10000), ("sshd", 2022), ("postgres-exporter", 9187),
                 ("patroni", 8009))
DEFAULT_CONFIG_KEY = "pgha-default-config.yaml"
DEFAULT_PGHA = {
    "bootstrap": {"dcs": {"loop_wait": 10, "ttl": 30, "postgresql": {
        "use_pg_rewind": True, "use_slots": False,
        "parameters": {"max_connections": 100, "max_wal_senders": 6}}}},
    "postgresql": {"pg_hba": ["local all postgres peer", "host all all 127.0.0.0/8 md5"]},
}


def operator_running(snap: Snapshot) -> bool:
    """A Deployment `postgres-operator` that is Available, and the pgclusters CRD."""
    deployments = [d for d in snap.all(DEPLOYMENT) if name_of(d) == "postgres-operator"]
    return PGCLUSTER_CRD_NAME in snap.crd_names and any(condition_true(d, "Available") for d in deployments)


def _labels(cluster: str, **extra: str) -> dict[str, str]:
    return {"vendor": "crunchydata", "pg-cluster": cluster, **extra}


def _meta(name: str, namespace: str, labels: dict[str, str]) -> dict:
    return {"name": name, "namespace": namespace, "labels": labels}


def service_manifest(cluster: str, namespace: str, port: int, role: str) -> dict:
    name = cluster if role == "master" else f"{cluster}-replica"
    ports = [{"name": n, "protocol": "TCP", "port": p or port, "targetPort": p or port} for n, p in SERVICE_PORTS]
    return {"apiVersion": "v1", "kind": "Service", "metadata": _meta(name, namespace, _labels(cluster, name=name)),
            "spec": {"type": "ClusterIP", "ports": ports, "selector": {"pg-cluster": cluster, "role": role}}}


def pvc_manifest(name: str, namespace: str, cluster: str, storage: dict) -> dict | None:
    """None for `emptydir` (no claim) and `existing` (the claim is the user's)."""
    kind = storage.get("storagetype") or "create"
    if kind in ("emptydir", "existing"):
        return None
    spec: dict = {"accessModes": [storage.get("accessmode") or "ReadWriteOnce"],
                  "resources": {"requests": {"storage": storage.get("size") or "1Gi"}}}
    if kind == "dynamic" and storage.get("storageclass"):
        spec["storageClassName"] = storage["storageclass"]
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": _meta(name, namespace, _labels(cluster)), "spec": spec}


def _data_volume(cluster: str, storage: dict) -> dict:
    if (storage.get("storagetype") or "create") == "emptydir":
        return {"name": "pgdata", "emptyDir": {}}
    claim = storage.get("name") if storage.get("storagetype") == "existing" and storage.get("name") else cluster
    return {"name": "pgdata", "persistentVolumeClaim": {"claimName": claim}}


def secret_names(cluster: str, spec: dict) -> dict[str, str]:
    return {"root": spec.get("rootsecretname") or f"{cluster}-postgres-secret",
            "primary": spec.get("primarysecretname") or f"{cluster}-primaryuser-secret",
            "user": spec.get("usersecretname") or f"{cluster}-{spec.get('user') or 'testuser'}-secret",
            "backrest": f"{cluster}-backrest-repo-config"}


def _db_volumes(cluster: str, spec: dict) -> list[dict]:
    secrets = secret_names(cluster, spec)
    sources = [{"configMap": {"name": spec["customconfig"]}}] if spec.get("customconfig") else []
    sources.append({"configMap": {"name": f"{cluster}-pgha-default-config"}})
    return [_data_volume(cluster, spec.get("PrimaryStorage") or {}),
            {"name": "root-volume", "secret": {"secretName": secrets["root"]}},
            {"name": "primary-volume", "secret": {"secretName": secrets["primary"]}},
            {"name": "user-volume", "secret": {"secretName": secrets["user"]}},
            {"name": "sshd", "secret": {"secretName": secrets["backrest"]}},
            {"name": "pgconf-volume", "projected": {"sources": sources}},
            {"name": "dshm", "emptyDir": {"medium": "Memory"}}]


def database_deployment(cluster: str, namespace: str, spec: dict) -> dict:
    port = int(spec.get("port") or 5432)
    image = f"{spec.get('ccpimageprefix') or 'crunchydata'}/{spec['ccpimage']}:{spec['ccpimagetag']}"
    selector = {"vendor": "crunchydata", "pg-cluster": cluster, "pgo-pg-database": "true", "deployment-name": cluster}
    pod_labels = {**(spec.get("userlabels") or {}), **selector, "name": cluster, "crunchy-pgha-scope": cluster,
                  "service-name": cluster}
    mounts = [("pgdata", "/pgdata"), ("root-volume", "/pguser"), ("primary-volume", "/pgprimary"),
              ("user-volume", "/pguser-app"), ("sshd", "/sshd"), ("pgconf-volume", "/pgconf"), ("dshm", "/dev/shm")]
    container = {"name": "database", "image": image,
                 "ports": [{"name": "postgres", "containerPort": port}, {"name": "patroni", "containerPort": 8009}],
                 "env": [{"name": "PGHA_SCOPE", "value": cluster}, {"name": "PGHA_PG_PORT", "value": str(port)},
                         {"name": "PGHA_DATABASE", "value": spec.get("database") or "postgres"},
                         {"name": "PGBACKREST_STANZA", "value": "db"}],
                 "readinessProbe": {"exec": {"command": ["/opt/cpm/bin/health/pgha-readiness.sh"]},
                                    "initialDelaySeconds": 15},
                 "volumeMounts": [{"name": n, "mountPath": p} for n, p in mounts]}
    template = {"metadata": {"labels": pod_labels},
                "spec": {"containers": [container], "volumes": _db_volumes(cluster, spec),
                         "securityContext": {"fsGroup": 26, "supplementalGroups": [65534]}}}
    labels = _labels(cluster, name=cluster, **{"deployment-name": cluster, "service-name": cluster,
                                               "pgo-version": "4.2.1"})
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": _meta(cluster, namespace, labels),
            "spec": {"replicas": 1, "selector": {"matchLabels": selector}, "template": template,
                     "strategy": {"type": "Recreate"}}}


def backrest_repo_objects(cluster: str, namespace: str) -> list[dict]:
    name = f"{cluster}-backrest-shared-repo"
    labels = _labels(cluster, name=name, **{"service-name": name, "pgo-backrest-repo": "true"})
    container = {"name": "database", "image": PGO_IMAGE.format("pgo-backrest-repo"),
                 "ports": [{"containerPort": 2022, "protocol": "TCP"}],
                 "volumeMounts": [{"name": "sshd", "mountPath": "/sshd", "readOnly": True},
                                  {"name": "backrestrepo", "mountPath": "/backrestrepo"}]}
    volumes = [{"name": "sshd", "secret": {"secretName": f"{cluster}-backrest-repo-config", "defaultMode": 511}},
               {"name": "backrestrepo", "persistentVolumeClaim": {"claimName": f"{cluster}-pgbr-repo"}}]
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": _meta(name, namespace, dict(labels)),
                  "spec": {"replicas": 1, "selector": {"matchLabels": dict(labels)},
                           "template": {"metadata": {"labels": dict(labels)},
                                        "spec": {"containers": [container], "volumes": volumes}}}}
    service = {"apiVersion": "v1", "kind": "Service", "metadata": _meta(name, namespace, _labels(cluster, name=name)),
               "spec": {"type": "ClusterIP", "selector": {"name": name},
                        "ports": [{"name": "sshd", "protocol": "TCP", "port": 2022, "targetPort": 2022}]}}
    return [deployment, service]


def backrest_job(cluster: str, namespace: str, command: str) -> dict:
    name = f"{cluster}-stanza-create" if command == "stanza-create" else f"backrest-backup-{cluster}"
    labels = _labels(cluster, **{"pgo-backrest": "true", "backrest-command": command,
                                 "pgo-backrest-job": "true"})
    container = {"name": "backrest", "image": PGO_IMAGE.format("pgo-backrest"),
                 "env": [{"name": "COMMAND", "value": command}, {"name": "PODNAME", "value": cluster}]}
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": _meta(name, namespace, dict(labels)),
            "spec": {"backoffLimit": 0, "template": {"metadata": {"labels": dict(labels)},
                                                     "spec": {"restartPolicy": "Never", "containers": [container]}}}}


def default_config_map(cluster: str, namespace: str) -> dict:
    labels = _labels(cluster, **{"crunchy-pgha-scope": cluster, "pgha-default-config": "true"})
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": _meta(f"{cluster}-pgha-default-config", namespace, labels),
            "data": {DEFAULT_CONFIG_KEY: yaml.safe_dump(DEFAULT_PGHA, sort_keys=False)}}


class CrunchyOperator:
    """Builds each new Pgcluster once, then runs its stanza-create and first backup Jobs."""

    def __init__(self, api: Api, events: EventRecorder) -> None:
        self.api = api
        self.events = events
        self._built: set[str] = set()           # Pgcluster uids this operator built
        self._stanza: set[str] = set()
        self._backup: set[str] = set()
        self._failed: set[str] = set()
        self.errors: list[str] = []             # Pgclusters that could not be built

    def reconcile(self, snap: Snapshot) -> None:
        if not operator_running(snap):
            return
        watched = {name_of(n) for n in snap.all(NAMESPACE) if labels_of(n).get("vendor") == "crunchydata"}
        for pgcluster in snap.all(PGCLUSTER):
            if ns_of(pgcluster) not in watched or uid_of(pgcluster) in self._failed:
                continue
            cluster, namespace = name_of(pgcluster), ns_of(pgcluster)
            processed = (pgcluster.get("status") or {}).get("state") == PROCESSED
            if not processed and snap.find(DEPLOYMENT, namespace, cluster) is None:
                self._build(pgcluster)
            elif uid_of(pgcluster) in self._built:
                self._backrest_jobs(pgcluster, snap)

    def _build(self, pgcluster: dict) -> None:
        cluster, namespace, spec = name_of(pgcluster), ns_of(pgcluster), pgcluster["spec"]
        log.info("operator: building Pgcluster %s/%s", namespace, cluster)
        port = int(spec.get("port") or 5432)
        objects = [pvc_manifest(cluster, namespace, cluster, spec.get("PrimaryStorage") or {}),
                   pvc_manifest(f"{cluster}-pgbr-repo", namespace, cluster, _repo_storage(spec)),
                   default_config_map(cluster, namespace),
                   service_manifest(cluster, namespace, port, "master"),
                   service_manifest(cluster, namespace, port, "replica"),
                   *backrest_repo_objects(cluster, namespace),
                   database_deployment(cluster, namespace, spec)]
        try:
            for obj in objects:
                if obj is not None:
                    self.api.create(obj)
        except (ApiError, KeyError, ValueError) as exc:
            # The real operator logs and gives up on this Pgcluster; so do we (no retry loop).
            message = exc.message if isinstance(exc, ApiError) else f"invalid spec: {exc!r}"
            log.error("operator: Pgcluster %s/%s not built: %s", namespace, cluster, message)
            self.errors.append(f"{namespace}/{cluster}: {message}")
            self.events.emit(pgcluster, "CreateFailed", message, warning=True, component="postgres-operator")
            self._failed.add(uid_of(pgcluster))
            return
        self._built.add(uid_of(pgcluster))
        self.api.set_status(PGCLUSTER, pgcluster, {"state": PROCESSED, "message": PROCESSED_MESSAGE})

    def _backrest_jobs(self, pgcluster: dict, snap: Snapshot) -> None:
        """stanza-create once the primary is Ready, the first backup once the stanza exists."""
        cluster, namespace, uid = name_of(pgcluster), ns_of(pgcluster), uid_of(pgcluster)
        deployment = snap.find(DEPLOYMENT, namespace, cluster)
        if uid not in self._stanza:
            if deployment and (deployment.get("status") or {}).get("readyReplicas", 0) >= 1:
                self.api.create(backrest_job(cluster, namespace, "stanza-create"))
                self._stanza.add(uid)
            return
        stanza = snap.find(JOB, namespace, f"{cluster}-stanza-create")
        if uid not in self._backup and stanza and condition_true(stanza, "Complete"):
            self.api.create(backrest_job(cluster, namespace, "backup"))
            self._backup.add(uid)


def _repo_storage(spec: dict) -> dict:
    """The pgBackRest repo claim: BackrestStorage over PrimaryStorage; always a real claim."""
    merged = {**(spec.get("PrimaryStorage") or {}),
              **{k: v for k, v in (spec.get("BackrestStorage") or {}).items() if v not in ("", None)}}
    if merged.get("storagetype") in ("emptydir", "existing", None, ""):
        merged["storagetype"] = "create"
    return merged
