"""The DAGs' conf defaults: the trigger forms (`core.params`) and the checks (`spec.parse_spec`,
`scale.timeouts_from`) share them.

Plain data with no imports, so the form can be built at DAG-parse time without loading `core.spec`.
"""

from __future__ import annotations

from typing import Any

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

# deploy_antdb's conf (`spec.parse_spec` merges a conf over it).
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

# scale_antdb_coordinators' timeouts (seconds).
SCALE_TIMEOUTS = {"clone_ready": 1800, "removal": 300, "poke_interval": 10}
