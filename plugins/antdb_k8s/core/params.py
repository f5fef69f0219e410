"""JSON schemas for every DAG's trigger form: one table per DAG, one entry per conf key.

The DAG files build their forms from these on every parse, so this module imports only the
limits (`core.bounds`) and defaults (`core.defaults`), never the modules that check or act.

The schemas reject malformed confs when a run is triggered (the UI and the REST API both
apply them) and give the forms their sections and help text. The tasks still check every
value themselves (`spec.parse_spec` for deploy_antdb), because `airflow dags test -c` and
older clients may bypass the form.
"""

from __future__ import annotations

import copy

from antdb_k8s.core.bounds import (
    ACCESS_MODES,
    DNS1123_LABEL_PATTERN,
    IMAGE_NAME_PATTERN,
    IMAGE_PREFIX_PATTERN,
    IMAGE_TAG_PATTERN,
    MAX_COORDINATORS,
    MAX_DATANODES,
    PREPARE_HOSTS_MODES,
    QUANTITY_PATTERN,
    REPAIR_LEVELS,
    namespace_schema,
    seconds_schema,
)
from antdb_k8s.core.defaults import DEFAULTS, SCALE_TIMEOUTS


# deploy_antdb. No `required`: Airflow replaces a param's whole value with the conf's, and parse_spec
# deep-merges it over the defaults, so `{"gc": {"tag": "22.0"}}` is a complete answer.
_IMAGE = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "pattern": IMAGE_NAME_PATTERN},
        "tag": {"type": "string", "pattern": IMAGE_TAG_PATTERN},
    },
}
_STORAGE = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "size": {"type": "string", "pattern": QUANTITY_PATTERN},
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
        "type": "string", "pattern": IMAGE_PREFIX_PATTERN, "section": "Images", "title": "Image prefix",
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


# Trigger-form schemas of verify_antdb_topology (the DAG builds its Params from these).
VERIFY_PARAMS: dict[str, dict] = {
    "namespace": namespace_schema("Kubernetes namespace holding the AntDB cluster to verify; empty: every cluster "
                                  "the package deployed.", default="", empty_means_all=True),
    "repair": {
        "default": "off", "type": "string", "enum": list(REPAIR_LEVELS), "title": "Repair", "section": "Repair",
        "description": "off: report only. safe: fix pgxc_node with the deploy planner/applier. full: safe, plus "
                       "move every node to gc's current address (ConfigMaps, one pod restart at a time).",
    },
    "data_check": {
        "default": True, "type": "boolean", "title": "Data check", "section": "Checks",
        "description": "Write a small scratch table from gc and count it from every coordinator (touches every "
                       "datanode; the table is always dropped).",
    },
    "bootstrap_grace": {
        "default": 300, **seconds_schema("bootstrap_grace"), "title": "Bootstrap grace (seconds)", "section": "Checks",
        "description": "A node the postgres-operator has not marked Initialized is reported once nothing of its "
                       "bootstrap (stanza-create, first backup) has moved for this long.",
    },
}


# Trigger-form schemas of antdb_restart_check (the DAG builds its Params from these).
RESTART_CHECK_PARAMS: dict[str, dict] = {
    "namespace": namespace_schema("Namespace holding the AntDB cluster to check.", default="pgouser1"),
    "pod": {
        "default": "gc", "type": "string", "pattern": DNS1123_LABEL_PATTERN,
        "section": "Restart", "title": "Node to restart",
        "description": "The node whose primary database pod is deleted (gc, cn1, dn2, ...), or 'all' for every "
                       "node one at a time. A name the cluster does not have is refused before anything changes.",
    },
    "rows": {
        "default": 10000, "type": "integer", "minimum": 1, "maximum": 10_000_000, "section": "Restart",
        "title": "Rows in the check table",
        "description": "Rows written to the run's own check table before the restart.",
    },
    "timeout": {
        "default": 600, **seconds_schema("restart"), "section": "Restart",
        "title": "Timeout per node (seconds)",
        "description": "How long one node may take to have a new Ready pod and answer queries again.",
    },
}


# Trigger-form schemas of scale_antdb_coordinators. `coordinators` has no schema minimum on purpose:
# a count below 1 reaches the plan task, which refuses it with a message saying why (a schema error would not).
SCALE_PARAMS: dict[str, dict] = {
    "namespace": namespace_schema("Namespace of the deployed AntDB cluster (as given to deploy_antdb)."),
    "coordinators": {"type": "integer", "maximum": MAX_COORDINATORS, "section": "Cluster",
                     "title": "Target coordinators",
                     "description": f"How many coordinators (cn1..cnN) the cluster has afterwards, 1 to "
                                    f"{MAX_COORDINATORS}. New ones are cloned from cn1 (catalog included); the "
                                    "highest-numbered ones are removed first."},
    "datanodes": {"type": ["null", "integer"], "section": "Cluster", "title": "Datanodes (leave empty)",
                  "description": "AntDB 5 does not support datanode scaling here. Empty, or the current count."},
    "delete_data": {"type": "boolean", "section": "Scale-in", "title": "Delete data of removed coordinators",
                    "description": "false keeps the PVCs of removed coordinators (a later scale-out overwrites "
                                   "them with a fresh clone); true deletes PVCs and the package's hostPath PVs."},
    "data_check": {"type": "boolean", "section": "Verification", "title": "Data round trip",
                   "description": "After scaling, write and read a scratch table through every coordinator."},
    "timeouts": {"type": "object", "additionalProperties": False, "section": "Run", "title": "Timeouts (seconds)",
                 "description": "clone_ready bounds each clone (restore + Ready pod); removal bounds waiting for "
                                "removed pods to go; poke_interval is how often progress is checked.",
                 "properties": {key: seconds_schema(key) for key in ("clone_ready", "removal", "poke_interval")}},
}
SCALE_PARAM_DEFAULTS: dict[str, object] = {"namespace": "pgouser1", "coordinators": 2, "datanodes": None,
                                           "delete_data": False, "data_check": True, "timeouts": SCALE_TIMEOUTS}


# Trigger-form schemas of teardown_antdb (the DAG builds its Params from these).
TEARDOWN_PARAMS: dict[str, dict] = {
    "namespace": namespace_schema("Namespace holding the AntDB cluster to delete.", default="pgouser1"),
    "confirm_namespace": {
        "default": "", "type": "string", "section": "Cluster", "title": "Confirm namespace",
        "description": "Type the namespace again. Anything else (or nothing) refuses before any object is touched; "
                       "a dry run does not need it.",
    },
    "delete_data": {
        "default": False, "type": "boolean", "section": "Data", "title": "Delete data",
        "description": "Also delete the PVCs (every row in the cluster), the package's hostPath PVs and, if the "
                       "package created it and nothing else lives there, the namespace. Off: all of them are kept "
                       "and deploying again into the namespace brings the data back.",
    },
    "dry_run": {
        "default": False, "type": "boolean", "section": "Run", "title": "Dry run",
        "description": "List what would be deleted and what is kept; delete nothing.",
    },
    "timeout": {
        "default": 300, **seconds_schema("teardown"), "section": "Run",
        "title": "Timeout (seconds)", "description": "How long to wait for the nodes' pods to be gone.",
    },
}
