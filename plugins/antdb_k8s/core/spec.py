"""The `deploy_antdb` conf: its schema, defaults and the semantic checks JSON schema can't express.

`parse_spec` is the single gate between a user's conf and anything that touches a cluster:
every error names the field it is about, all errors are reported at once, and nothing
downstream re-validates. The JSON schemas in `PARAM_SCHEMAS` feed the Airflow trigger form
(sections, titles, descriptions) and reject malformed confs before a run is created.
"""

from __future__ import annotations

import copy
import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from antdb_k8s.core.names import is_dns1123_label
from antdb_k8s.core.topology import NodeRole

MAX_COORDINATORS = 16
MAX_DATANODES = 32
RESERVED_PARAMETERS = ("agtm_host", "agtm_port")
QUANTITY_RE = re.compile(r"^([0-9]+(\.[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$")
IMAGE_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
IMAGE_NAME_RE = re.compile(r"^[a-z0-9]+([._-][a-z0-9]+)*$")
IMAGE_PREFIX_RE = re.compile(r"^[a-z0-9]+([._:/-][a-z0-9]+)*$")
PARAMETER_NAME_RE = re.compile(r"^[a-z_][a-z0-9_.]{0,62}$")
ROLE_KEYS = ("gc", "cn", "dn")

DEFAULT_IMAGES = {
    "gc": {"name": "antdb.cluster.gc-ha", "tag": "21.0"},
    "cn": {"name": "antdb.cluster.cn-ha", "tag": "21.0"},
    "dn": {"name": "antdb.cluster.db-ha", "tag": "21.0"},
}
# Each role's volume has a different job: datanodes hold the data, gc and coordinators
# mostly catalog and WAL. The runbook's open problem was one PV size for all of them.
DEFAULT_STORAGE = {
    "gc": {"size": "10Gi", "storage_class": "", "access_mode": "ReadWriteOnce", "host_path": ""},
    "cn": {"size": "10Gi", "storage_class": "", "access_mode": "ReadWriteOnce", "host_path": ""},
    "dn": {"size": "100Gi", "storage_class": "", "access_mode": "ReadWriteOnce", "host_path": ""},
}
DEFAULT_POSTGRES_PARAMETERS = {
    "max_prepared_transactions": 1000,
    "max_wal_senders": 6,
    "logging_collector": "on",
    "log_directory": "pg_log",
    "log_destination": "csvlog",
    "log_min_messages": "info",
    "shared_preload_libraries": "pg_stat_statements.so",
}
# Secure by default: peer auth on the socket, password auth over TCP, no `trust` for anyone
# off the pod. AntDB's own inter-node connections authenticate like any client (ADR 0004).
DEFAULT_PG_HBA = [
    "local all postgres peer",
    "local all crunchyadm peer",
    "host replication primaryuser 0.0.0.0/0 md5",
    "host all primaryuser 0.0.0.0/0 reject",
    "host all all 0.0.0.0/0 md5",
]
DEFAULT_OPERATOR = {"namespace": "pgo", "install": False, "installation_name": "devtest"}
DEFAULT_TIMEOUTS = {"gc_ready": 900, "nodes_ready": 1800, "poke_interval": 10}
# The package's Pgcluster CRD (include/crd) only admits these; anything else fails at create time.
ACCESS_MODES = ("ReadWriteOnce", "ReadWriteMany")
PREPARE_HOSTS_MODES = ("off", "check", "apply")
HBA_TYPES = ("local", "host", "hostssl", "hostnossl", "hostgssenc", "hostnogssenc")
OPEN_ADDRESSES = ("0.0.0.0/0", "::/0", "all", "0.0.0.0", "samenet")

DEFAULTS: dict[str, Any] = {
    "namespace": "pgouser1",
    "coordinators": 2,
    "datanodes": 3,
    "image_prefix": "crunchydata",
    "images": DEFAULT_IMAGES,
    "storage": DEFAULT_STORAGE,
    "postgres_parameters": {},
    "pg_hba": DEFAULT_PG_HBA,
    "operator": DEFAULT_OPERATOR,
    "prepare_hosts": "check",
    "dry_run": False,
    "timeouts": DEFAULT_TIMEOUTS,
}


class SpecError(ValueError):
    """Every problem found in a conf, each as `field: message`."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid deploy_antdb conf:\n  - " + "\n  - ".join(problems))


@dataclass(frozen=True)
class RoleStorage:
    size: str
    storage_class: str
    access_mode: str
    host_path: str


@dataclass(frozen=True)
class ClusterSpec:
    """A validated conf. Everything in it is safe to put into manifests and SQL."""

    namespace: str
    coordinators: int
    datanodes: int
    image_prefix: str
    images: dict[str, dict[str, str]]
    storage: dict[str, RoleStorage]
    postgres_parameters: dict[str, Any]
    pg_hba: tuple[str, ...]
    operator_namespace: str
    operator_install: bool
    installation_name: str
    prepare_hosts: str
    dry_run: bool
    timeouts: dict[str, int]
    warnings: tuple[str, ...] = field(default=())

    def node_names(self) -> list[str]:
        """gc, cn1..cnN, dn1..dnM: the runbook fixes these names (design limits, 1.6)."""
        return ["gc"] + self.coordinator_names() + self.datanode_names()

    def coordinator_names(self) -> list[str]:
        return [f"cn{i}" for i in range(1, self.coordinators + 1)]

    def datanode_names(self) -> list[str]:
        return [f"dn{i}" for i in range(1, self.datanodes + 1)]

    def role_of(self, name: str) -> NodeRole:
        return role_from_node_name(name)

    def to_dict(self) -> dict[str, Any]:
        """The validated conf, every key present (defaults filled in), plus its warnings: JSON for XCom."""
        return {
            "namespace": self.namespace, "coordinators": self.coordinators, "datanodes": self.datanodes,
            "image_prefix": self.image_prefix, "images": copy.deepcopy(self.images),
            "storage": {role: dict(vars(storage)) for role, storage in self.storage.items()},
            "postgres_parameters": copy.deepcopy(self.postgres_parameters), "pg_hba": list(self.pg_hba),
            "operator": {"namespace": self.operator_namespace, "install": self.operator_install,
                         "installation_name": self.installation_name},
            "prepare_hosts": self.prepare_hosts, "dry_run": self.dry_run, "timeouts": dict(self.timeouts),
            "warnings": list(self.warnings),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ClusterSpec":
        """Rebuild what `to_dict` gave: trusted, not checked again (`parse_spec` did that, once per run)."""
        return _build({k: v for k, v in data.items() if k != "warnings"}, list(data.get("warnings") or ()))

    def merged_parameters(self) -> dict[str, Any]:
        merged = dict(DEFAULT_POSTGRES_PARAMETERS)
        merged.update(self.postgres_parameters)
        return merged


def role_from_node_name(name: str) -> NodeRole:
    if name == "gc":
        return NodeRole.GTM_COORD
    if re.fullmatch(r"cn[1-9][0-9]*", name):
        return NodeRole.COORDINATOR
    if re.fullmatch(r"dn[1-9][0-9]*", name):
        return NodeRole.DATANODE
    raise ValueError(f"{name!r} is not an AntDB node name (gc, cnN or dnN)")


def _merge(defaults: Any, given: Any) -> Any:
    if isinstance(defaults, dict) and isinstance(given, dict):
        out = copy.deepcopy(defaults)
        for key, value in given.items():
            out[key] = _merge(defaults.get(key), value) if key in defaults else copy.deepcopy(value)
        return out
    return copy.deepcopy(given)


def _unknown_keys(given: Mapping, allowed: Mapping, prefix: str) -> list[str]:
    return [f"{prefix}{key}: unknown key (allowed: {', '.join(allowed)})" for key in given if key not in allowed]


def _check_count(value: Any, field_name: str, maximum: int) -> list[str]:
    if isinstance(value, bool) or not isinstance(value, int):
        return [f"{field_name}: must be a whole number, got {value!r}"]
    if value < 1:
        return [f"{field_name}: must be at least 1, got {value}"]
    if value > maximum:
        return [f"{field_name}: at most {maximum} are supported, got {value}"]
    return []


def _check_images(prefix: Any, images: Any) -> list[str]:
    problems = []
    if not isinstance(prefix, str) or not IMAGE_PREFIX_RE.match(prefix):
        problems.append(f"image_prefix: {prefix!r} is not a registry path (lowercase, digits, '.', '-', '_', '/', ':')")
    if not isinstance(images, dict):
        return problems + ["images: must be an object with keys gc, cn, dn"]
    problems += _unknown_keys(images, DEFAULT_IMAGES, "images.")
    for role, image in images.items():
        if role not in DEFAULT_IMAGES:
            continue
        if not isinstance(image, dict):
            problems.append(f"images.{role}: must be an object with keys name, tag")
            continue
        problems += _unknown_keys(image, DEFAULT_IMAGES[role], f"images.{role}.")
        name, tag = image.get("name"), image.get("tag")
        if not isinstance(name, str) or not IMAGE_NAME_RE.match(name):
            problems.append(f"images.{role}.name: {name!r} is not an image name")
        if not isinstance(tag, str) or not IMAGE_TAG_RE.match(tag):
            problems.append(f"images.{role}.tag: {tag!r} is not an image tag (letters, digits, '_', '.', '-'; no spaces)")
    return problems


def _check_storage(storage: Any) -> list[str]:
    if not isinstance(storage, dict):
        return ["storage: must be an object with keys gc, cn, dn"]
    problems = _unknown_keys(storage, DEFAULT_STORAGE, "storage.")
    for role, block in storage.items():
        if role not in DEFAULT_STORAGE:
            continue
        where = f"storage.{role}"
        if not isinstance(block, dict):
            problems.append(f"{where}: must be an object")
            continue
        problems += _unknown_keys(block, DEFAULT_STORAGE[role], f"{where}.")
        size = block.get("size")
        if not isinstance(size, str) or not QUANTITY_RE.match(size):
            problems.append(f"{where}.size: {size!r} is not a Kubernetes quantity (e.g. 10Gi, 500Mi)")
        sc = block.get("storage_class", "")
        if not isinstance(sc, str) or (sc and not _is_dns1123_subdomain(sc)):
            problems.append(f"{where}.storage_class: {sc!r} is not a valid StorageClass name")
        if block.get("access_mode") not in ACCESS_MODES:
            problems.append(f"{where}.access_mode: {block.get('access_mode')!r} is not {' or '.join(ACCESS_MODES)}")
        host_path = block.get("host_path", "")
        if not isinstance(host_path, str) or (host_path and not _is_safe_host_path(host_path)):
            problems.append(f"{where}.host_path: {host_path!r} must be an absolute path without '..'")
        if host_path and sc:
            problems.append(f"{where}: host_path and storage_class are exclusive (host_path pre-creates PVs)")
    return problems


def _is_safe_host_path(path: str) -> bool:
    return bool(re.fullmatch(r"/[A-Za-z0-9_./-]*", path)) and ".." not in path


def _is_dns1123_subdomain(value: str) -> bool:
    return len(value) <= 253 and all(is_dns1123_label(part) for part in value.split("."))


def _check_parameters(parameters: Any) -> list[str]:
    if not isinstance(parameters, dict):
        return ["postgres_parameters: must be an object of name: value"]
    problems = []
    for name, value in parameters.items():
        where = f"postgres_parameters.{name}"
        if name in RESERVED_PARAMETERS:
            problems.append(f"{where}: set by the package from gc's Service address; remove it from the conf")
        elif not isinstance(name, str) or not PARAMETER_NAME_RE.match(name):
            problems.append(f"{where}: not a PostgreSQL parameter name")
        elif isinstance(value, (dict, list)) or value is None:
            problems.append(f"{where}: must be a string, number or boolean")
        elif isinstance(value, str) and ("\n" in value or "\x00" in value):
            problems.append(f"{where}: must be a single line")
    mpt = parameters.get("max_prepared_transactions", 1)
    if "max_prepared_transactions" in parameters and (isinstance(mpt, bool) or not isinstance(mpt, int) or mpt < 1):
        problems.append("postgres_parameters.max_prepared_transactions: AntDB needs two-phase commit, so it must be an integer >= 1")
    return problems


def _is_zero_address(text: str) -> bool:
    try:
        return int(ipaddress.ip_address(text)) == 0
    except ValueError:
        return False


def _is_open_address(words: list[str]) -> bool:
    """True when a host line's address matches every client, however it is spelled.

    `::0/0`, `127.0.0.1/0` and an address with mask `0.0.0.0` open as wide as `0.0.0.0/0`.
    """
    address = words[3] if len(words) > 3 else ""
    if address in OPEN_ADDRESSES:
        return True
    if "/" not in address and len(words) > 4 and _is_zero_address(words[4]):
        return True
    try:
        return ipaddress.ip_network(address, strict=False).prefixlen == 0
    except ValueError:
        return False


def _check_pg_hba(lines: Any) -> tuple[list[str], list[str]]:
    if not isinstance(lines, list) or not lines:
        return ["pg_hba: must be a non-empty list of pg_hba.conf lines"], []
    problems, warnings = [], []
    for index, line in enumerate(lines):
        where = f"pg_hba[{index}]"
        if not isinstance(line, str) or "\n" in line or not line.strip():
            problems.append(f"{where}: must be one non-empty line")
            continue
        words = line.split()
        if words[0] not in HBA_TYPES:
            problems.append(f"{where}: {words[0]!r} is not a pg_hba connection type")
            continue
        if words[0] == "local" or "trust" not in words:
            continue
        address = words[3] if len(words) > 3 else ""
        if _is_open_address(words):
            problems.append(f"{where}: 'trust' for {address} lets anyone on the network in without a password; use md5/scram-sha-256, or trust a narrow CIDR")
        else:
            warnings.append(f"{where}: 'trust' for {address}; make sure that range holds only the cluster's pods")
    return problems, warnings


def _check_operator(operator: Any) -> list[str]:
    if not isinstance(operator, dict):
        return ["operator: must be an object with keys namespace, install, installation_name"]
    problems = _unknown_keys(operator, DEFAULT_OPERATOR, "operator.")
    if not isinstance(operator.get("namespace"), str) or not is_dns1123_label(operator.get("namespace", "")):
        problems.append(f"operator.namespace: {operator.get('namespace')!r} is not a DNS-1123 label")
    if not isinstance(operator.get("install"), bool):
        problems.append("operator.install: must be true or false")
    name = operator.get("installation_name")
    if not isinstance(name, str) or not is_dns1123_label(name):
        problems.append(f"operator.installation_name: {name!r} is not a DNS-1123 label")
    return problems


def _check_timeouts(timeouts: Any) -> list[str]:
    if not isinstance(timeouts, dict):
        return ["timeouts: must be an object of seconds"]
    problems = _unknown_keys(timeouts, DEFAULT_TIMEOUTS, "timeouts.")
    bounds = {"gc_ready": (10, 86400), "nodes_ready": (10, 86400), "poke_interval": (1, 300)}
    for key, (low, high) in bounds.items():
        value = timeouts.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            problems.append(f"timeouts.{key}: must be a whole number of seconds between {low} and {high}, got {value!r}")
    return problems


def _check_scalars(conf: Mapping) -> list[str]:
    problems = []
    namespace = conf["namespace"]
    if not isinstance(namespace, str) or not is_dns1123_label(namespace):
        problems.append(f"namespace: {namespace!r} is not a DNS-1123 label (lowercase letters, digits, '-', at most 63)")
    problems += _check_count(conf["coordinators"], "coordinators", MAX_COORDINATORS)
    problems += _check_count(conf["datanodes"], "datanodes", MAX_DATANODES)
    if conf["prepare_hosts"] not in PREPARE_HOSTS_MODES:
        problems.append(f"prepare_hosts: must be one of {', '.join(PREPARE_HOSTS_MODES)}, got {conf['prepare_hosts']!r}")
    if not isinstance(conf["dry_run"], bool):
        problems.append(f"dry_run: must be true or false, got {conf['dry_run']!r}")
    return problems


def parse_spec(conf: Mapping[str, Any] | None) -> ClusterSpec:
    """Merge `conf` over the defaults, check all of it, and return a `ClusterSpec`.

    Raises `SpecError` listing every problem (each prefixed with its field path), so a
    user fixes a bad conf in one round trip rather than one error per run.
    """
    given = dict(conf or {})
    problems = _unknown_keys(given, DEFAULTS, "")
    merged = _merge(DEFAULTS, {k: v for k, v in given.items() if k in DEFAULTS})
    problems += _check_scalars(merged)
    problems += _check_images(merged["image_prefix"], merged["images"])
    problems += _check_storage(merged["storage"])
    problems += _check_parameters(merged["postgres_parameters"])
    hba_problems, warnings = _check_pg_hba(merged["pg_hba"])
    problems += hba_problems + _check_operator(merged["operator"]) + _check_timeouts(merged["timeouts"])
    if problems:
        raise SpecError(problems)
    return _build(merged, warnings)


def _build(merged: dict, warnings: list[str]) -> ClusterSpec:
    return ClusterSpec(
        namespace=merged["namespace"],
        coordinators=merged["coordinators"],
        datanodes=merged["datanodes"],
        image_prefix=merged["image_prefix"],
        images={role: dict(merged["images"][role]) for role in ROLE_KEYS},
        storage={role: RoleStorage(**merged["storage"][role]) for role in ROLE_KEYS},
        postgres_parameters=dict(merged["postgres_parameters"]),
        pg_hba=tuple(merged["pg_hba"]),
        operator_namespace=merged["operator"]["namespace"],
        operator_install=merged["operator"]["install"],
        installation_name=merged["operator"]["installation_name"],
        prepare_hosts=merged["prepare_hosts"],
        dry_run=merged["dry_run"],
        timeouts=dict(merged["timeouts"]),
        warnings=tuple(warnings),
    )
