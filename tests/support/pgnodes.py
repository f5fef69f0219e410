"""Vanilla PostgreSQL nodes for the test-side kubelet, shaped like AntDB where the product looks.

`VanillaPostgresBackend` implements `tests.support.nodes.NodeBackend` on Debian's
PostgreSQL. Each node is a plain server listening only on its Service address; the AntDB
shim (`antdb_shim.sql`, installed on first start) adds what the product reads or relies on:
`pgxc_node`, `pgxc_pool_reload()`, AntDB's settings in `pg_settings`, and CREATE/DROP TABLE
on a coordinator distributing over the datanodes listed in that coordinator's `pgxc_node`.

Vanilla PostgreSQL has no node DDL, so tests substitute `AntDBHook.apply_node_change` with
`vanilla_apply_node_change`, which makes the equivalent change through shim functions that
refuse what AntDB refuses, with AntDB's messages and SQLSTATEs.

Identity (`pgxc_node_name`, `adb_node_type`) and `agtm_host`/`agtm_port` are written as
`antdb_shim.*` placeholder settings into an included config file on every start, so they
are the same in every database and change when the kubelet restarts a node with a new spec.

Data dirs, pg_ctl, locks, cloning and teardown are shared with the AntDB backend in
`tests/support/pgserver.py`; this module holds only what makes vanilla PostgreSQL look
like AntDB.
"""

from __future__ import annotations

import glob
import logging
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import psycopg
from psycopg import sql

from antdb_k8s.core.pgxc import ALTERABLE_FIELDS, ChangeKind, NodeChange
from tests.support.nodes import NodeProcessSpec
from tests.support.pgserver import (
    PostgresNodeError,
    PostgresStyleBackend,
    ServerNode,
    check_parameter_name,
    render_settings,
)

log = logging.getLogger(__name__)

SHIM_SQL = Path(__file__).with_name("antdb_shim.sql")
SHIM_DATABASES = ("template1", "postgres")
BACKEND_CONF = "pgnodes_backend.conf"
# Settings the backend owns: the node's address and the AntDB identity the shim exposes.
_FIXED_PARAMS = frozenset({
    "listen_addresses", "port", "unix_socket_directories", "logging_collector",
    "agtm_host", "agtm_port", "pgxc_node_name", "adb_node_type",
})
# Small and fast: 6-10 of these run at once in tests. spec.parameters override them.
_DEFAULTS: dict[str, object] = {
    "shared_buffers": "16MB",
    "max_connections": 50,
    "max_prepared_transactions": 10,
    "fsync": False,
    "synchronous_commit": False,
    "full_page_writes": False,
    "min_wal_size": "32MB",
    "max_wal_size": "128MB",
    "password_encryption": "scram-sha-256",
}
# ALTER NODE field -> the antdb_shim.alter_node() parameter that sets its column.
_FIELD_PARAMS = {"host": "p_host", "port": "p_port", "primary": "p_primary",
                 "preferred": "p_preferred", "gtm": "p_gtm"}


class VanillaNodeError(PostgresNodeError):
    """A node failed to init, start, stop or be shaped; carries the server log tail."""


@dataclass
class _Node(ServerNode):
    ignored: dict[str, object] = field(default_factory=dict)  # AntDB-only parameters of the last start


def find_bindir() -> Path:
    """The newest Debian PostgreSQL server bindir (`/usr/lib/postgresql/<ver>/bin`), else pg_config's."""
    found = [Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")]
    found.sort(key=lambda p: [int(x) for x in re.findall(r"\d+", p.parent.name)] or [0])
    if found:
        return found[-1]
    try:
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, timeout=30, check=True)
    except (OSError, subprocess.SubprocessError) as exc:
        raise VanillaNodeError(f"no PostgreSQL server binaries found: {exc}") from exc
    return Path(out.stdout.strip())


class VanillaPostgresBackend(PostgresStyleBackend):
    """Runs shaped vanilla PostgreSQL nodes under `base_dir`, one data dir per (namespace, name).

    Layout and process handling are `PostgresStyleBackend`'s. What this class adds: the
    AntDB shim installed on first start, AntDB-only parameters shown (not applied) through
    the shim's pg_settings, trust on the unix socket (pg_basebackup and `connect_local`
    use it), and scram-sha-256 over TCP.
    """

    error_class = VanillaNodeError
    node_class = _Node
    label = "vanilla"
    written_by = "tests/support/pgnodes.py"
    backend_conf = BACKEND_CONF
    initdb_timeout = 120.0

    def __init__(self, base_dir: str, *, bindir: str | None = None, start_timeout: float = 60.0,
                 stop_timeout: float = 30.0) -> None:
        super().__init__(base_dir, Path(bindir) if bindir else find_bindir(),
                         start_timeout=start_timeout, stop_timeout=stop_timeout)
        self._known_params: frozenset[str] | None = None

    # ----------------------------------------------------------------- helpers for tests
    def ignored_parameters(self, namespace: str, name: str) -> dict[str, object]:
        """spec.parameters vanilla PostgreSQL does not know (exposed only through the shim's pg_settings)."""
        node = self._nodes.get((namespace, name))
        return dict(node.ignored) if isinstance(node, _Node) else {}

    def connect_local(self, namespace: str, name: str, dbname: str = "postgres") -> psycopg.Connection:
        """An autocommit superuser connection over the node's unix socket (trust auth)."""
        node = self._nodes[(namespace, name)]
        return psycopg.connect(host=str(node.socket_dir), port=node.spec.port, user=node.spec.superuser,
                               dbname=dbname, autocommit=True, connect_timeout=10)

    # ----------------------------------------------------------------- hooks
    def _initdb_options(self, spec: NodeProcessSpec) -> list[str]:
        return ["--no-sync", "--auth-local=trust", "--auth-host=scram-sha-256"]

    def _hba_rules(self) -> str:
        return ("local all all trust\n"
                "local replication all trust\n"  # clone_data's pg_basebackup, over the socket only
                "host all all 127.0.0.0/8 scram-sha-256\n")

    def _after_start(self, node: ServerNode) -> None:
        self._install_shim(node)

    # ----------------------------------------------------------------- configuration
    def _vanilla_params(self) -> frozenset[str]:
        """Every parameter name this PostgreSQL accepts in a config file (cached per backend)."""
        with self._lock:
            return self._known_params or self._describe_config()

    def _describe_config(self) -> frozenset[str]:
        res = self._run([self._tool("postgres"), "--describe-config"], timeout=60)
        if res.returncode != 0:
            raise VanillaNodeError(f"postgres --describe-config failed: {res.stderr[-500:]}")
        self._known_params = frozenset(line.split("\t", 1)[0].lower() for line in res.stdout.splitlines() if line)
        return self._known_params

    def _split_parameters(self, node: ServerNode) -> tuple[dict[str, object], dict[str, object]]:
        """spec.parameters as (what vanilla PostgreSQL understands, AntDB-only ones)."""
        known, antdb_only = {}, {}
        for name, value in node.spec.parameters.items():
            key = str(name).lower()
            check_parameter_name(node.spec.name, key)
            if key in _FIXED_PARAMS:
                log.warning("%s: ignoring parameter %s, the backend owns it", node.spec.name, key)
            elif key in self._vanilla_params() or "." in key:
                known[key] = value
            else:
                antdb_only[key] = value
        if antdb_only:
            log.info("%s: AntDB-only parameters shown in pg_settings but not applied: %s",
                     node.spec.name, ", ".join(sorted(antdb_only)))
        return known, antdb_only

    def _render_conf(self, node: ServerNode) -> str:
        spec = node.spec
        known, antdb_only = self._split_parameters(node)
        if isinstance(node, _Node):
            node.ignored = dict(antdb_only)
        settings: dict[str, object] = {
            "listen_addresses": spec.host, "port": spec.port,
            "unix_socket_directories": str(node.socket_dir), "logging_collector": False,
            **_DEFAULTS, **known,
        }
        shim = {"pgxc_node_name": spec.name, "adb_node_type": spec.role,
                "agtm_host": spec.agtm_host, "agtm_port": spec.agtm_port, **antdb_only}
        settings["antdb_shim.names"] = ",".join(shim)
        settings.update({f"antdb_shim.{k}": v for k, v in shim.items()})
        return render_settings(settings)

    # ----------------------------------------------------------------- the shim
    def _install_shim(self, node: ServerNode) -> None:
        """Install the shim into each database that lacks it (first start; idempotent)."""
        for dbname in SHIM_DATABASES:
            with self.connect_local(*node.spec.key, dbname=dbname) as conn:
                if conn.execute("SELECT to_regnamespace('antdb_shim')").fetchone()[0] is not None:
                    continue
                conn.autocommit = False
                with conn.transaction():
                    self._shim_one_database(conn, node.spec, dbname)
                log.info("%s: AntDB shim installed in database %s", node.spec.name, dbname)

    @staticmethod
    def _shim_one_database(conn: psycopg.Connection, spec: NodeProcessSpec, dbname: str) -> None:
        """The SQL file, then what needs the spec: credentials, AntDB's self row, search_path."""
        conn.execute(SHIM_SQL.read_text())
        # The next statement carries the password: keep it out of the server log even if it fails.
        conn.execute("SET LOCAL log_statement = 'none'")
        conn.execute("SET LOCAL log_min_error_statement = 'panic'")
        conn.execute(sql.SQL("CREATE USER MAPPING FOR {} SERVER antdb_shim_credentials OPTIONS (user {}, password {})")
                     .format(sql.Identifier(spec.superuser), sql.Literal(spec.superuser),
                             sql.Literal(spec.superuser_password)))
        conn.execute("RESET log_min_error_statement")
        conn.execute("INSERT INTO public.pgxc_node (node_name, node_type, node_port, node_host) "
                     "VALUES (%s, 'C', 5432, 'localhost')", (spec.name,))
        conn.execute(sql.SQL("ALTER DATABASE {} SET search_path = public, pg_catalog").format(sql.Identifier(dbname)))


# --------------------------------------------------------------------------- node DDL substitute

class _ConnectsToNodes(Protocol):
    def connect_to(self, address: Any) -> psycopg.Connection: ...


def _alter_arguments(change: NodeChange) -> list[tuple[str, object]]:
    """(shim parameter, value) for each field of an ALTER, in canonical order."""
    if not change.fields:
        raise ValueError(f"ALTER of node {change.row.node_name} names no field to change")
    unknown = [f for f in change.fields if f not in ALTERABLE_FIELDS]
    if unknown:
        raise ValueError(f"ALTER of node {change.row.node_name}: unknown field(s) {unknown}")
    row = change.row
    values = {"host": row.node_host, "port": row.node_port, "primary": row.is_primary,
              "preferred": row.is_preferred, "gtm": row.is_gtm}
    return [(_FIELD_PARAMS[f], values[f]) for f in ALTERABLE_FIELDS if f in change.fields]


def vanilla_apply_node_change(hook: _ConnectsToNodes, address: Any, change: NodeChange, connection: Any = None) -> None:
    """What `AntDBHook.apply_node_change` does on AntDB, done to the shim's `pgxc_node`.

    Same contract: one change, on `address`, in autocommit, with the hook's credentials
    (over `connection` when the applier shares one across a plan).
    The shim functions raise AntDB's errors (`PGXC Node x: object already defined` as
    DuplicateObject, `... object not defined` as UndefinedObject, `two nodes cannot be
    primary`), so the product sees the same psycopg exceptions as on AntDB.
    """
    row = change.row
    if change.kind is ChangeKind.CREATE:
        statement = sql.SQL("SELECT antdb_shim.create_node(%s, %s, %s, %s, %s, %s, %s)")
        params: list[object] = [row.node_name, row.node_type, row.node_host, row.node_port,
                                row.is_primary, row.is_preferred, row.is_gtm]
    elif change.kind is ChangeKind.ALTER:
        arguments = _alter_arguments(change)
        named = sql.SQL(", ").join(sql.SQL("{} => %s").format(sql.Identifier(p)) for p, _ in arguments)
        statement = sql.SQL("SELECT antdb_shim.alter_node(%s, {})").format(named)
        params = [row.node_name, *(value for _, value in arguments)]
    elif change.kind is ChangeKind.DROP:
        statement, params = sql.SQL("SELECT antdb_shim.drop_node(%s)"), [row.node_name]
    else:
        raise ValueError(f"unknown change kind {change.kind!r}")
    log.info("%s: %s NODE %s (vanilla shim)", getattr(address, "name", address), change.kind.value.upper(),
             row.node_name)
    if connection is not None:
        connection.execute(statement, params)
        return
    with hook.connect_to(address) as conn:
        conn.execute(statement, params)
