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

from tests.support.nodes import NodeProcessSpec

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


def mounted_configmaps(pod: dict) -> list[str]:
    return [name for v in pod["spec"].get("volumes") or [] for kind, name in _volume_refs(v) if kind == "configmap"]


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


def _bootstrap_dcs(pod: dict, snap: Snapshot) -> dict:
    """bootstrap.dcs of the mounted custom postgres-ha.yaml, else of the operator's default."""
    cluster = cluster_of(pod)
    names = mounted_configmaps(pod)
    ordered = [n for n in names if n != f"{cluster}-pgha-default-config"] + \
              [n for n in names if n == f"{cluster}-pgha-default-config"]
    for name in ordered:
        data = (snap.find(CONFIGMAP, ns_of(pod), name) or {}).get("data") or {}
        text = data.get(CUSTOM_CONFIG_KEY) or data.get("pgha-default-config.yaml")
        if text is None:
            continue
        try:
            document = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise StartError(f'configmap "{name}": postgres-ha.yaml is not valid YAML: {exc}') from None
        return ((document.get("bootstrap") or {}).get("dcs") or {}) if isinstance(document, dict) else {}
    return {}


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

