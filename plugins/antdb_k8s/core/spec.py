"""The `deploy_antdb` conf: its schema, defaults and the semantic checks JSON schema can't express.

`parse_spec` is the single gate between a user's conf and anything that touches a cluster:
every error names the field it is about, all errors are reported at once, and nothing
downstream re-validates. The JSON schemas in `core.params` feed the Airflow trigger form
(sections, titles, descriptions) and reject malformed confs before a run is created.
The limits and patterns live in `core.bounds` and the defaults in `core.defaults` (both
imported here), so the form is built without this module.
"""

from __future__ import annotations

import copy
import ipaddress
import re
import reprlib
from dataclasses import dataclass, field
from typing import Any, Mapping

from antdb_k8s.core.bounds import (
    ACCESS_MODES,
    IMAGE_NAME_PATTERN,
    IMAGE_PREFIX_PATTERN,
    IMAGE_TAG_PATTERN,
    MAX_COORDINATORS,
    MAX_DATANODES,
    PREPARE_HOSTS_MODES,
    QUANTITY_PATTERN,
    SECONDS,
)
from antdb_k8s.core.defaults import (
    DEFAULT_IMAGES,
    DEFAULT_OPERATOR,
    DEFAULT_POSTGRES_PARAMETERS,
    DEFAULT_STORAGE,
    DEFAULT_TIMEOUTS,
    DEFAULTS,
)
from antdb_k8s.core.names import is_dns1123_label
from antdb_k8s.core.topology import NodeRole

RESERVED_PARAMETERS = ("agtm_host", "agtm_port")
QUANTITY_RE = re.compile(QUANTITY_PATTERN)
IMAGE_TAG_RE = re.compile(IMAGE_TAG_PATTERN)
IMAGE_NAME_RE = re.compile(IMAGE_NAME_PATTERN)
IMAGE_PREFIX_RE = re.compile(IMAGE_PREFIX_PATTERN)
PARAMETER_NAME_RE = re.compile(r"^[a-z_][a-z0-9_.]{0,62}$")
ROLE_KEYS = ("gc", "cn", "dn")
# The deepest legitimate conf value is three levels (storage.dn.size). Anything far deeper
# is refused before any recursive step (merge, deepcopy, repr) could exhaust the stack.
MAX_CONF_DEPTH = 8
SIMPLE_KEY_RE = re.compile(r"^[A-Za-z0-9_.-]{1,63}$")

HBA_TYPES = ("local", "host", "hostssl", "hostnossl", "hostgssenc", "hostnogssenc")
OPEN_ADDRESSES = ("0.0.0.0/0", "::/0", "all", "0.0.0.0", "samenet")


class SpecError(ValueError):
    """Every problem found in a conf, each as `field: message`."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid deploy_antdb conf:\n  - " + "\n  - ".join(problems))


_SHORT = reprlib.Repr()
_SHORT.maxstring = _SHORT.maxother = 60
_SHORT.maxlevel = 2


def _show(value: Any) -> str:
    """A bounded, depth-safe repr for error messages: a 1 MB string must not become a 1 MB error."""
    return _SHORT.repr(value)


def field_label(key: Any) -> str:
    """A conf key as it appears in a field path: as is when plain, else its bounded repr."""
    return key if isinstance(key, str) and SIMPLE_KEY_RE.match(key) else _show(key)


def _depth_exceeds(value: Any, limit: int) -> bool:
    """True when `value` nests dicts/lists deeper than `limit`; iterative, so any depth is safe."""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list, tuple)):
            if depth >= limit:
                return True
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return False


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
    raise ValueError(f"{_show(name)} is not an AntDB node name (gc, cnN or dnN)")


def _merge(defaults: Any, given: Any) -> Any:
    if isinstance(defaults, dict) and isinstance(given, dict):
        out = copy.deepcopy(defaults)
        for key, value in given.items():
            out[key] = _merge(defaults.get(key), value) if key in defaults else copy.deepcopy(value)
        return out
    return copy.deepcopy(given)


def _unknown_keys(given: Mapping, allowed: Mapping, prefix: str) -> list[str]:
    return [f"{prefix}{field_label(key)}: unknown key (allowed: {', '.join(allowed)})"
            for key in given if key not in allowed]


def _check_count(value: Any, field_name: str, maximum: int) -> list[str]:
    if isinstance(value, bool) or not isinstance(value, int):
        return [f"{field_name}: must be a whole number, got {_show(value)}"]
    if value < 1:
        return [f"{field_name}: must be at least 1, got {value}"]
    if value > maximum:
        return [f"{field_name}: at most {maximum} are supported, got {value}"]
    return []


def _check_images(prefix: Any, images: Any) -> list[str]:
    problems = []
    if not isinstance(prefix, str) or not IMAGE_PREFIX_RE.match(prefix):
        problems.append(f"image_prefix: {_show(prefix)} is not a registry path "
                        "(lowercase, digits, '.', '-', '_', '/', ':')")
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
            problems.append(f"images.{role}.name: {_show(name)} is not an image name")
        if not isinstance(tag, str) or not IMAGE_TAG_RE.match(tag):
            problems.append(f"images.{role}.tag: {_show(tag)} is not an image tag "
                            "(letters, digits, '_', '.', '-'; no spaces)")
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
            problems.append(f"{where}.size: {_show(size)} is not a Kubernetes quantity (e.g. 10Gi, 500Mi)")
        sc = block.get("storage_class", "")
        if not isinstance(sc, str) or (sc and not _is_dns1123_subdomain(sc)):
            problems.append(f"{where}.storage_class: {_show(sc)} is not a valid StorageClass name")
        if block.get("access_mode") not in ACCESS_MODES:
            problems.append(f"{where}.access_mode: {_show(block.get('access_mode'))} "
                            f"is not {' or '.join(ACCESS_MODES)}")
        host_path = block.get("host_path", "")
        if not isinstance(host_path, str) or (host_path and not _is_safe_host_path(host_path)):
            problems.append(f"{where}.host_path: {_show(host_path)} must be an absolute path without '..'")
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
        where = f"postgres_parameters.{field_label(name)}"
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
            problems.append(f"{where}: {_show(words[0])} is not a pg_hba connection type")
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
        problems.append(f"operator.namespace: {_show(operator.get('namespace'))} is not a DNS-1123 label")
    if not isinstance(operator.get("install"), bool):
        problems.append("operator.install: must be true or false")
    name = operator.get("installation_name")
    if not isinstance(name, str) or not is_dns1123_label(name):
        problems.append(f"operator.installation_name: {_show(name)} is not a DNS-1123 label")
    return problems


def _check_timeouts(timeouts: Any) -> list[str]:
    if not isinstance(timeouts, dict):
        return ["timeouts: must be an object of seconds"]
    problems = _unknown_keys(timeouts, DEFAULT_TIMEOUTS, "timeouts.")
    for key in DEFAULT_TIMEOUTS:
        low, high = SECONDS[key]
        value = timeouts.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            problems.append(f"timeouts.{key}: must be a whole number of seconds between {low} and {high}, "
                            f"got {_show(value)}")
    return problems


def _check_scalars(conf: Mapping) -> list[str]:
    problems = []
    namespace = conf["namespace"]
    if not isinstance(namespace, str) or not is_dns1123_label(namespace):
        problems.append(f"namespace: {_show(namespace)} is not a DNS-1123 label "
                        "(lowercase letters, digits, '-', at most 63)")
    problems += _check_count(conf["coordinators"], "coordinators", MAX_COORDINATORS)
    problems += _check_count(conf["datanodes"], "datanodes", MAX_DATANODES)
    if conf["prepare_hosts"] not in PREPARE_HOSTS_MODES:
        problems.append(f"prepare_hosts: must be one of {', '.join(PREPARE_HOSTS_MODES)}, "
                        f"got {_show(conf['prepare_hosts'])}")
    if not isinstance(conf["dry_run"], bool):
        problems.append(f"dry_run: must be true or false, got {_show(conf['dry_run'])}")
    return problems


def parse_spec(conf: Mapping[str, Any] | None) -> ClusterSpec:
    """Merge `conf` over the defaults, check all of it, and return a `ClusterSpec`.

    Raises `SpecError` listing every problem (each prefixed with its field path), so a
    user fixes a bad conf in one round trip rather than one error per run.
    """
    if conf is not None and not isinstance(conf, Mapping):
        raise SpecError([f"conf: must be an object of settings, got {type(conf).__name__}"])
    given, problems = _shallow_enough(dict(conf or {}))
    problems += _unknown_keys(given, DEFAULTS, "")
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


def _shallow_enough(given: dict) -> tuple[dict, list[str]]:
    """Drop (and report) every top-level value nested deeper than any conf can be.

    Checked iteratively before anything recursive runs, so a conf nested thousands of
    levels deep is one more named refusal, not a RecursionError.
    """
    problems = [f"{field_label(key)}: nested deeper than {MAX_CONF_DEPTH} levels; no setting is shaped like that"
                for key, value in given.items() if _depth_exceeds(value, MAX_CONF_DEPTH)]
    kept = {key: value for key, value in given.items() if not _depth_exceeds(value, MAX_CONF_DEPTH)}
    return kept, problems


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
