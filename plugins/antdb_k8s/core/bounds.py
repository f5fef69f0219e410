"""Every limit a DAG's params are checked against, in one table: the forms' schemas and the
semantic checks (`spec.parse_spec`) both read it, so they cannot disagree.
"""

from __future__ import annotations

# DNS-1123 label: what a namespace, a node name and an installation name must be.
DNS1123_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
# The same, or empty: for a namespace param where empty means "every cluster".
DNS1123_LABEL_OR_EMPTY_PATTERN = "^(" + DNS1123_LABEL_PATTERN[1:-1] + ")?$"

# deploy_antdb: node counts, the patterns of image names, tags, prefixes and volume sizes
# (Kubernetes quantities), and the enums; `spec` compiles the patterns, `params` puts them in the form.
MAX_COORDINATORS = 16
MAX_DATANODES = 32
QUANTITY_PATTERN = r"^([0-9]+(\.[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$"
IMAGE_TAG_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$"
IMAGE_NAME_PATTERN = r"^[a-z0-9]+([._-][a-z0-9]+)*$"
IMAGE_PREFIX_PATTERN = r"^[a-z0-9]+([._:/-][a-z0-9]+)*$"
# The package's Pgcluster CRD (include/crd) only admits these; anything else fails at create time.
ACCESS_MODES = ("ReadWriteOnce", "ReadWriteMany")
PREPARE_HOSTS_MODES = ("off", "check", "apply")
# verify_antdb_topology's `repair` levels.
REPAIR_LEVELS = ("off", "safe", "full")

# (minimum, maximum) seconds of every timeout param, by key.
SECONDS: dict[str, tuple[int, int]] = {
    "gc_ready": (10, 86400),
    "nodes_ready": (10, 86400),
    "clone_ready": (10, 86400),
    "removal": (10, 86400),
    "poke_interval": (1, 300),
    "restart": (10, 7200),
    "teardown": (10, 3600),
    "bootstrap_grace": (0, 86400),
}


def seconds_schema(key: str, **extra) -> dict:
    """A JSON schema for a whole number of seconds within `SECONDS[key]`."""
    low, high = SECONDS[key]
    return {"type": "integer", "minimum": low, "maximum": high, **extra}


def namespace_schema(description: str, default: str | None = None, *, empty_means_all: bool = False) -> dict:
    """The one namespace param of every DAG: a DNS-1123 label (or empty, when that means every cluster)."""
    pattern = DNS1123_LABEL_OR_EMPTY_PATTERN if empty_means_all else DNS1123_LABEL_PATTERN
    schema = {"type": "string", "pattern": pattern, "section": "Cluster", "title": "Namespace",
              "description": description}
    return schema if default is None else {"default": default, **schema}
