"""Kubernetes objects for one AntDB cluster, rendered as plain dicts from a `ClusterSpec`.

Rendering is pure so that `dry_run` shows exactly what a real run would send and tests
can compare manifests without a cluster. Secret material is passed in, never generated
here. Names follow the Crunchy v4 conventions the operator and the AntDB images rely on.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Mapping

import yaml

from antdb_k8s.core.names import require_dns1123_label, require_dns1123_subdomain
from antdb_k8s.core.spec import ClusterSpec
from antdb_k8s.core.topology import CRUNCHY_API, NodeRole

INCLUDE_DIR = Path(__file__).resolve().parents[3] / "include"
CUSTOM_CONFIG_NAME = "pgo-custom-antdb-config"
MANAGED_BY = {"app.kubernetes.io/managed-by": "antdb-airflow", "app.kubernetes.io/part-of": "antdb"}
# Finds every namespace the package deployed into (verification of all clusters, the AntDB page).
MANAGED_SELECTOR = ",".join(f"{key}={value}" for key, value in MANAGED_BY.items())
ROLE_LABEL = "antdb.io/role"
PGO_VERSION = "4.2.1"
APP_USER = "antdb"
ARCHIVE_TIMEOUT = "60"          # pgo.yaml Cluster.ArchiveTimeout (include/operator)


def include_path(*parts: str) -> Path:
    return INCLUDE_DIR.joinpath(*parts)


def load_yaml_documents(*parts: str) -> list[dict]:
    """Every non-empty YAML document of a file under include/."""
    with include_path(*parts).open(encoding="utf-8") as handle:
        return [doc for doc in yaml.safe_load_all(handle) if doc]


def namespace_manifest(spec: ClusterSpec) -> dict:
    """The operator only watches namespaces carrying these two labels (crunchy-pgo-v4.md)."""
    labels = {"vendor": "crunchydata", "pgo-installation-name": spec.installation_name, **MANAGED_BY}
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": spec.namespace, "labels": labels}}


def _b64(value: str) -> str:
    return base64.b64encode(value.encode()).decode()


def secret_manifest(spec: ClusterSpec, name: str, cluster: str, data: Mapping[str, str], extra_labels=None) -> dict:
    labels = {"pg-cluster": cluster, "vendor": "crunchydata", **MANAGED_BY, **(extra_labels or {})}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {"name": require_dns1123_subdomain(name, "secret name"), "namespace": spec.namespace, "labels": labels},
        "data": {key: _b64(value) for key, value in data.items()},
    }


def user_secret_names(cluster: str) -> dict[str, str]:
    """The three credential Secrets a Pgcluster names, keyed by the user they hold."""
    return {
        "postgres": f"{cluster}-postgres-secret",
        "primaryuser": f"{cluster}-primaryuser-secret",
        APP_USER: f"{cluster}-{APP_USER}-secret",
    }


def backrest_secret_name(cluster: str) -> str:
    return f"{cluster}-backrest-repo-config"


def _storage_block(spec: ClusterSpec, role: NodeRole, claim_name: str) -> dict:
    storage = spec.storage[role.short]
    storagetype = "dynamic" if storage.storage_class else "create"
    return {
        "name": claim_name,
        "storageclass": storage.storage_class,
        "accessmode": storage.access_mode,
        "size": storage.size,
        "storagetype": storagetype,
        "fsgroup": "26",
        "supplementalgroups": "",
        "matchLabels": "",
    }


def pgcluster_manifest(spec: ClusterSpec, name: str) -> dict:
    """One `Pgcluster` per AntDB node, as `examples/create-by-resource` shows for v4.2.

    The image prefix is not here: in 4.2.1 it comes from pgo.yaml (`CCPImagePrefix`).
    gc carries no custom config: it is created before its own address is known, and the
    AntDB gc image points agtm_host at itself. Coordinators and datanodes read
    `pgo-custom-antdb-config`, which carries gc's ClusterIP as agtm_host.
    """
    role = spec.role_of(require_dns1123_label(name, "node name"))
    image = spec.images[role.short]
    secrets = user_secret_names(name)
    backrest = _storage_block(spec, role, "")
    return {
        "apiVersion": CRUNCHY_API,
        "kind": "Pgcluster",
        "metadata": {"name": name, "namespace": spec.namespace, "labels": _pgcluster_labels(name, role)},
        "spec": {
            "name": name, "clustername": name, "namespace": spec.namespace,
            "ccpimage": image["name"], "ccpimagetag": image["tag"],
            "port": "5432", "pgbadgerport": "10000", "exporterport": "9187",
            "primaryhost": name, "database": "postgres", "user": APP_USER, "replicas": "0", "strategy": "1",
            "rootsecretname": secrets["postgres"], "primarysecretname": secrets["primaryuser"],
            "usersecretname": secrets[APP_USER], "customconfig": "" if role is NodeRole.GTM_COORD else CUSTOM_CONFIG_NAME,
            # archive-timeout: set by the apiserver from pgo.yaml; without it the 4.2.1 operator renders
            # `archive_timeout:` empty into <c>-pgha-default-config (clusterutilities.go) and the node
            # refuses to start ("invalid value for parameter archive_timeout").
            "userlabels": {ROLE_LABEL: role.value, "pgo-version": PGO_VERSION, "archive-timeout": ARCHIVE_TIMEOUT},
            "PrimaryStorage": _storage_block(spec, role, name),
            "ReplicaStorage": _storage_block(spec, role, ""),
            "BackrestStorage": backrest,
            "ArchiveStorage": {**backrest, "size": ""},
            "ContainerResources": {"requestsmemory": "", "requestscpu": "", "limitsmemory": "", "limitscpu": ""},
            "status": "", "policies": "", "secretfrom": "", "nodename": "", "podPodAntiAffinity": "",
        },
        # What the apiserver writes on create; the operator moves it on ("pgcluster Processed").
        "status": {"state": "pgcluster Created", "message": "Created, not processed yet"},
    }


def _pgcluster_labels(name: str, role: NodeRole) -> dict[str, str]:
    """The labels pgo's apiserver would put on a Pgcluster it created, plus the package's own."""
    return {
        "name": name, "pg-cluster": name, "deployment-name": name, "current-primary": name,
        "crunchy-pgha-scope": name, "pgo-version": PGO_VERSION, "autofail": "true",
        "crunchy_collect": "false", "crunchy-pgbadger": "false", "archive": "false",
        # Set by pgo's apiserver on every cluster (apiserver/clusterservice/clusterimpl.go): without
        # it the operator builds no pgBackRest repo, stanza or backup, and so no clone.
        "pgo-backrest": "true",
        ROLE_LABEL: role.value, **MANAGED_BY,
    }


def render_postgres_ha(spec: ClusterSpec, agtm_host: str, agtm_port: int = 5432) -> str:
    """postgres-ha.yaml: the template, the merged parameters, then the addresses the package owns."""
    document = load_yaml_documents("templates", "postgres-ha.yaml")[0]
    parameters = spec.merged_parameters()
    parameters["agtm_host"] = agtm_host
    parameters["agtm_port"] = int(agtm_port)
    document.setdefault("bootstrap", {}).setdefault("dcs", {}).setdefault("postgresql", {})["parameters"] = parameters
    document.setdefault("postgresql", {})["pg_hba"] = list(spec.pg_hba)
    return yaml.safe_dump(document, sort_keys=True, default_flow_style=False)


def custom_config_manifest(spec: ClusterSpec, agtm_host: str, agtm_port: int = 5432) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": CUSTOM_CONFIG_NAME, "namespace": spec.namespace,
                     "labels": {"vendor": "crunchydata", **MANAGED_BY}},
        "data": {"postgres-ha.yaml": render_postgres_ha(spec, agtm_host, agtm_port)},
    }


def agtm_from_postgres_ha(text: str) -> tuple[str | None, int | None]:
    """Read agtm_host/agtm_port back out of a postgres-ha.yaml (verification and repair)."""
    document = yaml.safe_load(text) or {}
    dcs = (document.get("bootstrap") or {}).get("dcs") or {}
    parameters = (dcs.get("postgresql") or {}).get("parameters") or {}
    host, port = parameters.get("agtm_host"), parameters.get("agtm_port")
    return (str(host) if host is not None else None, int(port) if port is not None else None)


def host_path_volume_manifest(spec: ClusterSpec, name: str) -> dict | None:
    """A hostPath PV pre-bound to node `name`'s claim, sized for its role; None without host_path.

    Binding through `claimRef` is what gives each node a volume of its own role's size,
    which is the runbook's open problem (every PV the same size).
    """
    role = spec.role_of(name)
    storage = spec.storage[role.short]
    if not storage.host_path:
        return None
    pv_name = f"antdb-{spec.namespace}-{name}"
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": pv_name, "labels": {"pg-cluster": name, ROLE_LABEL: role.value,
                                                 "antdb.io/namespace": spec.namespace, **MANAGED_BY}},
        "spec": {
            "capacity": {"storage": storage.size},
            "accessModes": [storage.access_mode],
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": "",
            "hostPath": {"path": f"{storage.host_path.rstrip('/')}/{spec.namespace}/{name}", "type": "DirectoryOrCreate"},
            "claimRef": {"namespace": spec.namespace, "name": name},
        },
    }


def postgres_ha_with_agtm(text: str, agtm_host: str, agtm_port: int = 5432) -> str:
    """`text` (a live postgres-ha.yaml) with only agtm_host/agtm_port changed.

    Repair rewrites the address of gc in place rather than re-rendering from the conf:
    the nightly verification has no deploy conf, and the user's other parameters and
    pg_hba lines in the ConfigMap must survive.
    """
    document = yaml.safe_load(text) or {}
    if not isinstance(document, dict):
        raise ValueError("postgres-ha.yaml is not a YAML mapping")
    dcs = document.setdefault("bootstrap", {}).setdefault("dcs", {})
    parameters = dcs.setdefault("postgresql", {}).setdefault("parameters", {})
    parameters["agtm_host"] = agtm_host
    parameters["agtm_port"] = int(agtm_port)
    return yaml.safe_dump(document, sort_keys=True, default_flow_style=False)


def dcs_config_name(cluster: str) -> str:
    """Patroni's dynamic-config ConfigMap of one node (annotation `config`, JSON)."""
    return f"{cluster}-config"


def dcs_with_agtm(raw: str | None, agtm_host: str, agtm_port: int = 5432, *, required: bool = True) -> str | None:
    """The `<c>-config` annotation with agtm_host/agtm_port set, or None when nothing changes.

    Patroni bootstraps this annotation from postgres-ha.yaml once and runs from it ever
    after, so a node restarted after gc moved reads the new address only from here.
    `required=False` (gc, whose image points agtm_host at itself) only updates a value
    that is already present.
    """
    import json

    config = json.loads(raw or "{}")
    if not isinstance(config, dict):
        raise ValueError("Patroni DCS config is not a JSON object")
    parameters = config.setdefault("postgresql", {}).setdefault("parameters", {})
    if not required and "agtm_host" not in parameters:
        return None
    if parameters.get("agtm_host") == agtm_host and int(parameters.get("agtm_port", agtm_port)) == int(agtm_port):
        return None
    parameters["agtm_host"] = agtm_host
    parameters["agtm_port"] = int(agtm_port)
    return json.dumps(config, sort_keys=True)


def agtm_from_dcs(raw: str | None) -> tuple[str | None, int | None]:
    """agtm_host/agtm_port of a `<c>-config` annotation (what the node starts with); (None, None) if unset."""
    import json

    try:
        config = json.loads(raw or "{}")
    except ValueError:
        return None, None
    parameters = ((config if isinstance(config, dict) else {}).get("postgresql") or {}).get("parameters") or {}
    host, port = parameters.get("agtm_host"), parameters.get("agtm_port")
    return (str(host) if host else None, int(port) if port not in (None, "") else None)
