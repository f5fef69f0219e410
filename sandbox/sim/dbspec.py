"""What the kubelet (and the AntDB image's entrypoint, and Patroni) learn from Kubernetes
before a database can start: mounted volumes, the image's role, the superuser Secret and
the Patroni dynamic configuration.

Why the DCS ConfigMap matters: Patroni bootstraps `<c>-config` (annotation `config`) from
`bootstrap.dcs` of postgres-ha.yaml the first time the node starts, and from then on that
annotation, not the custom ConfigMap, is what the database runs with. A product that fixes
agtm_host only in `pgo-custom-antdb-config` after a node bootstrapped has not fixed it.
"""

from __future__ import annotations

import base64
import binascii
import json
import re

import yaml

from sandbox.nodes import NodeProcessSpec

from .common import CONFIGMAP, PVC, SECRET, SERVICE, Api, Snapshot, labels_of, ns_of

POSTGRES_PORT = 5432
CUSTOM_CONFIG_KEY = "postgres-ha.yaml"
_ROLE_TOKENS = {"gc": "gtm_coord", "cn": "coordinator", "db": "datanode", "dn": "datanode"}


class StartError(Exception):
    """Why a database container would crash on start; the message is safe to publish."""


def cluster_of(pod: dict) -> str:
    return labels_of(pod).get("pg-cluster", "")


def database_container(pod: dict) -> dict:
    containers = pod["spec"].get("containers") or [{}]
    return next((c for c in containers if c.get("name") == "database"), containers[0])


def role_from_image(image: str) -> str | None:
    """gtm_coord / coordinator / datanode from an AntDB image such as
    `crunchydata/antdb.cluster.gc-ha:21.0` (whole tokens first: `antdb` contains `db`)."""
    repo = image.rsplit("/", 1)[-1].split("@")[0].split(":")[0].lower()
    tokens = re.split(r"[._\-]", repo)
    for token in tokens:
        if token in _ROLE_TOKENS:
            return _ROLE_TOKENS[token]
    stripped = repo.replace("antdb", "")
    for token in ("gc", "cn", "dn", "db"):
        if token in stripped:
            return _ROLE_TOKENS[token]
    return None


def _volume_refs(volume: dict) -> list[tuple[str, str]]:
    """(kind, name) of each Secret / ConfigMap / claim a volume needs (optional ones skipped)."""
    refs = []
    if "secret" in volume and not volume["secret"].get("optional"):
        refs.append(("secret", volume["secret"].get("secretName", "")))
    if "configMap" in volume and not volume["configMap"].get("optional"):
        refs.append(("configmap", volume["configMap"].get("name", "")))
    if "persistentVolumeClaim" in volume:
        refs.append(("persistentvolumeclaim", volume["persistentVolumeClaim"].get("claimName", "")))
    for source in (volume.get("projected") or {}).get("sources") or []:
        for key, kind in (("secret", "secret"), ("configMap", "configmap")):
            if key in source and not source[key].get("optional"):
                refs.append((kind, source[key].get("name", "")))
    return refs


def missing_mounts(pod: dict, snap: Snapshot) -> list[tuple[str, str]]:
    """(volume name, kubelet message) for every volume that cannot be set up yet."""
    kinds = {"secret": SECRET, "configmap": CONFIGMAP, "persistentvolumeclaim": PVC}
    missing = []
    for volume in pod["spec"].get("volumes") or []:
        for kind, name in _volume_refs(volume):
            if snap.find(kinds[kind], ns_of(pod), name) is None:
                missing.append((volume["name"], f'{kind} "{name}" not found'))
    return missing


def data_claim(pod: dict) -> str | None:
    """The claim holding PGDATA (volume `pgdata`, else the first claim); None for emptyDir."""
    claims = [(v["name"], v["persistentVolumeClaim"].get("claimName")) for v in pod["spec"].get("volumes") or []
              if "persistentVolumeClaim" in v]
    return next((c for n, c in claims if n == "pgdata"), claims[0][1] if claims else None)


def credentials(pod: dict, snap: Snapshot) -> tuple[str, str]:
    """The superuser from the Secret mounted as `root-volume` (`<c>-postgres-secret`)."""
    volume = next((v for v in pod["spec"].get("volumes") or [] if v.get("name") == "root-volume"), None)
    secret_name = (volume or {}).get("secret", {}).get("secretName") or f"{cluster_of(pod)}-postgres-secret"
    secret = snap.find(SECRET, ns_of(pod), secret_name)
    if secret is None:
        raise StartError(f'secret "{secret_name}" not found')
    values = []
    for key in ("username", "password"):
        raw = (secret.get("data") or {}).get(key)
        if raw is None:
            raise StartError(f'secret "{secret_name}" has no key "{key}"')
        try:
            values.append(base64.b64decode(raw, validate=True).decode())
        except (binascii.Error, UnicodeDecodeError):
            raise StartError(f'secret "{secret_name}" key "{key}" is not valid base64 text') from None
    return values[0], values[1]


def projected_file(pod: dict, snap: Snapshot, volume_name: str, key: str) -> tuple[str, str] | None:
    """(ConfigMap name, text) of file `key` in projected volume `volume_name`, or None.

    Sources are laid out in order and a later one writes over an earlier one's file
    (pkg/volume/projected/projected.go collectData), as the real kubelet does.
    """
    found = None
    for volume in pod["spec"].get("volumes") or []:
        if volume.get("name") != volume_name:
            continue
        for source in (volume.get("projected") or {}).get("sources") or []:
            name = (source.get("configMap") or {}).get("name")
            data = ((snap.find(CONFIGMAP, ns_of(pod), name) if name else None) or {}).get("data") or {}
            if key in data:
                found = (name, data[key])
    return found


def merge_config(base: dict, overlay: dict) -> dict:
    """`yq m -x` of crunchy-containers v4.2.1 bin/postgres-ha/pre-bootstrap.sh: mappings merge
    recursively, the overlay's scalars and lists replace the base's (pg_hba is replaced whole)."""
    merged = dict(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_config(merged[key], value)
        else:
            merged[key] = value
    return merged


def postgres_ha_config(pod: dict, snap: Snapshot) -> dict:
    """The postgres-ha configuration the container bootstraps with.

    pre-bootstrap.sh (crunchy-containers v4.2.1) merges the image's base files and then
    /pgconf/postgres-ha.yaml last. /pgconf is the pod's `pgconf-volume`: the Pgcluster's
    `customconfig` ConfigMap and `<c>-pgha-default-config` (which carries no
    postgres-ha.yaml when the custom one does, operator/cluster/clusterlogic.go). The base
    layer is empty here: crunchy-containers' base files (conf/postgres-ha/*.yaml: pgBackRest
    archive_command, pgaudit preload, Crunchy's pg_hba) belong to Crunchy's PostgreSQL image,
    not to the AntDB `-ha` images, whose own base files are not public; the socket directory
    and pg_hba are the node backend's (sandbox/antdb_nodes.py).
    """
    found = projected_file(pod, snap, "pgconf-volume", CUSTOM_CONFIG_KEY)
    if found is None:
        return {}
    name, text = found
    try:
        document = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise StartError(f'configmap "{name}": postgres-ha.yaml is not valid YAML: {exc}') from None
    if not isinstance(document, dict):
        raise StartError(f'configmap "{name}": postgres-ha.yaml is not a YAML mapping')
    return merge_config({}, document)


def _bootstrap_dcs(pod: dict, snap: Snapshot) -> dict:
    return (postgres_ha_config(pod, snap).get("bootstrap") or {}).get("dcs") or {}


def missing_env_refs(pod: dict, snap: Snapshot) -> list[str]:
    """The kubelet's message for every env `configMapKeyRef`/`secretKeyRef` it cannot resolve."""
    messages = []
    for container in pod["spec"].get("containers") or []:
        for item in container.get("env") or []:
            source = item.get("valueFrom") or {}
            for ref_key, gvk, kind in (("configMapKeyRef", CONFIGMAP, "configmap"), ("secretKeyRef", SECRET, "secret")):
                ref = source.get(ref_key)
                if not ref or ref.get("optional"):
                    continue
                obj = snap.find(gvk, ns_of(pod), ref.get("name", ""))
                if obj is None:
                    messages.append(f'{kind} "{ref.get("name", "")}" not found')
                elif ref.get("key") not in (obj.get("data") or {}):
                    kind_name = "ConfigMap" if kind == "configmap" else "Secret"
                    messages.append(f"couldn't find key {ref.get('key')} in {kind_name} "
                                    f"{ns_of(pod)}/{ref.get('name', '')}")
    return messages


def dcs_config(api: Api, pod: dict, snap: Snapshot) -> dict:
    """Patroni's dynamic config: the `<c>-config` annotation, bootstrapped on first start."""
    cluster, namespace = cluster_of(pod), ns_of(pod)
    existing = snap.find(CONFIGMAP, namespace, f"{cluster}-config")
    if existing is not None:
        raw = (existing["metadata"].get("annotations") or {}).get("config", "{}")
        try:
            config = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise StartError(f'configmap "{cluster}-config": annotation config is not JSON: {exc}') from None
        return config if isinstance(config, dict) else {}
    config = _bootstrap_dcs(pod, snap)
    labels = {"vendor": "crunchydata", "crunchy-pgha-scope": cluster}
    api.create({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": f"{cluster}-config", "namespace": namespace, "labels": labels,
                             "annotations": {"config": json.dumps(config, sort_keys=True, default=str)}}})
    return config


def pg_value(value: object) -> str:
    """postgresql.conf spelling of a YAML scalar (YAML 1.1 reads `on` as True)."""
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def service_address(pod: dict, snap: Snapshot) -> str | None:
    service = snap.find(SERVICE, ns_of(pod), cluster_of(pod))
    ip = ((service or {}).get("spec") or {}).get("clusterIP")
    return ip if ip and ip != "None" else None


def build_spec(api: Api, pod: dict, snap: Snapshot, host: str) -> NodeProcessSpec:
    """Everything the database needs, or StartError with what the real pod would complain about."""
    image = database_container(pod).get("image", "")
    role = role_from_image(image)
    if role is None:
        raise StartError(f'image "{image}" is not an AntDB gc/cn/dn image')
    user, password = credentials(pod, snap)
    parameters = ((dcs_config(api, pod, snap).get("postgresql") or {}).get("parameters") or {})
    if role == "gtm_coord":
        agtm_host, agtm_port = host, POSTGRES_PORT
    else:
        agtm_host = str(parameters.get("agtm_host") or "")
        if not agtm_host:
            raise StartError(f'agtm_host is not set in the Patroni DCS config ("{cluster_of(pod)}-config")')
        try:
            agtm_port = int(parameters.get("agtm_port", POSTGRES_PORT))
        except (TypeError, ValueError):
            raise StartError(f"agtm_port {parameters.get('agtm_port')!r} is not a port number") from None
    others = {k: pg_value(v) for k, v in parameters.items() if k not in ("agtm_host", "agtm_port")}
    return NodeProcessSpec(namespace=ns_of(pod), name=cluster_of(pod), role=role, host=host, port=POSTGRES_PORT,
                           agtm_host=agtm_host, agtm_port=agtm_port, superuser=user,
                           superuser_password=password, parameters=others)


def scrub(text: str, *secrets: str) -> str:
    """`text` with every secret value masked (error messages may echo connection strings)."""
    for value in secrets:
        if value:
            text = text.replace(value, "******")
    return text

