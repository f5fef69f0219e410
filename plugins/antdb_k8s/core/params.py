"""JSON schemas for the `deploy_antdb` trigger form: one entry per conf key.

They reject malformed confs when a run is triggered (the UI and the REST API both apply
them) and give the form its sections and help text. `spec.parse_spec` still performs every
check itself, because `airflow dags test -c` and older clients may bypass the form.
"""

from __future__ import annotations

import copy

from antdb_k8s.core.bounds import DNS1123_LABEL_PATTERN, namespace_schema, seconds_schema
from antdb_k8s.core.spec import (
    ACCESS_MODES,
    DEFAULTS,
    IMAGE_NAME_RE,
    IMAGE_PREFIX_RE,
    IMAGE_TAG_RE,
    MAX_COORDINATORS,
    MAX_DATANODES,
    PREPARE_HOSTS_MODES,
    QUANTITY_RE,
)


# No `required`: Airflow replaces a param's whole value with the conf's, and parse_spec
# deep-merges it over the defaults, so `{"gc": {"tag": "22.0"}}` is a complete answer.
_IMAGE = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "pattern": IMAGE_NAME_RE.pattern},
        "tag": {"type": "string", "pattern": IMAGE_TAG_RE.pattern},
    },
}
_STORAGE = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "size": {"type": "string", "pattern": QUANTITY_RE.pattern},
        "storage_class": {"type": "string"},
        "access_mode": {"type": "string", "enum": list(ACCESS_MODES)},
        "host_path": {"type": "string"},
    },
}


def _roles(schema: dict) -> dict:
    return {"type": "object", "additionalProperties": False,
            "properties": {role: copy.deepcopy(schema) for role in ("gc", "cn", "dn")}}


PARAM_SCHEMAS: dict[str, dict] = {
    "namespace": namespace_schema("Kubernetes namespace that holds one AntDB cluster (created if missing)."),
    "coordinators": {
        "type": "integer", "minimum": 1, "maximum": MAX_COORDINATORS, "section": "Cluster",
        "title": "Coordinators", "description": f"Number of coordinators cn1..cnN (1 to {MAX_COORDINATORS}); gc is always one.",
    },
    "datanodes": {
        "type": "integer", "minimum": 1, "maximum": MAX_DATANODES, "section": "Cluster",
        "title": "Datanodes", "description": f"Number of datanodes dn1..dnM (1 to {MAX_DATANODES}). AntDB 5 cannot scale datanodes later.",
    },
    "image_prefix": {
        "type": "string", "pattern": IMAGE_PREFIX_RE.pattern, "section": "Images", "title": "Image prefix",
        "description": "Registry/organisation the AntDB images are pulled from.",
    },
    "images": dict(_roles(_IMAGE), section="Images", title="Images",
                   description="Image name and tag for gc (gtm_coord), cn (coordinators) and dn (datanodes)."),
    "storage": dict(_roles(_STORAGE), section="Storage", title="Storage per role",
                    description="Volume size, StorageClass and access mode per role. Datanodes hold the data; "
                                "set host_path (no storage_class) to pre-create hostPath PVs of exactly these sizes."),
    "postgres_parameters": {
        "type": "object", "additionalProperties": {"type": ["string", "number", "boolean"]}, "section": "PostgreSQL", "title": "postgresql.conf parameters",
        "description": "Merged into postgres-ha.yaml. agtm_host/agtm_port are set by the package; "
                       "max_prepared_transactions must stay >= 1.",
    },
    "pg_hba": {
        "type": "array", "items": {"type": "string"}, "minItems": 1, "section": "PostgreSQL",
        "title": "pg_hba.conf lines", "description": "Secure default: no 'trust' beyond local sockets.",
    },
    "operator": {
        "type": "object", "additionalProperties": False, "section": "Operator", "title": "postgres-operator",
        "description": "install: true installs the CRD and operator from the package's manifests; false only verifies them.",
        "properties": {
            "namespace": {"type": "string", "pattern": DNS1123_LABEL_PATTERN},
            "install": {"type": "boolean"},
            "installation_name": {"type": "string", "pattern": DNS1123_LABEL_PATTERN},
        },
    },
    "prepare_hosts": {
        "type": "string", "enum": list(PREPARE_HOSTS_MODES), "section": "Hosts", "title": "Prepare hosts",
        "description": "sysctl and kube-proxy ipvs mode on every node: off, check (report only) or apply.",
    },
    "dry_run": {
        "type": "boolean", "section": "Run", "title": "Dry run",
        "description": "Render every manifest and the planned SQL; change nothing. Works without a reachable cluster.",
    },
    "timeouts": {
        "type": "object", "additionalProperties": False, "section": "Run", "title": "Timeouts (seconds)",
        "description": "gc_ready and nodes_ready bound the readiness waits; poke_interval is how often pods are checked.",
        "properties": {
            "gc_ready": seconds_schema("gc_ready"),
            "nodes_ready": seconds_schema("nodes_ready"),
            "poke_interval": seconds_schema("poke_interval"),
        },
    },
}


def param_defaults() -> dict:
    """Defaults for the trigger form (deep copies: Params must not share mutable state)."""
    return {key: copy.deepcopy(DEFAULTS[key]) for key in PARAM_SCHEMAS}
