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
"""

from __future__ import annotations

import glob
import hashlib
import logging
import os
import pwd
import re
import shutil
import socket
import stat
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import psycopg
from psycopg import sql

from antdb_k8s.core.pgxc import ALTERABLE_FIELDS, ChangeKind, NodeChange
from tests.support.nodes import NodeProcessSpec

log = logging.getLogger(__name__)

SHIM_SQL = Path(__file__).with_name("antdb_shim.sql")
SHIM_DATABASES = ("template1", "postgres")
SERVICE_OS_USER = "postgres"      # PostgreSQL refuses to run as root
ROLES = ("gtm_coord", "coordinator", "datanode")
BACKEND_CONF = "pgnodes_backend.conf"
LOG_NAME = "server.log"
_SOCKET_PATH_MAX = 107            # sizeof(sun_path) - 1 on Linux
_PARAM_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")
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


class VanillaNodeError(RuntimeError):
    """A node failed to init, start, stop or be shaped; carries the server log tail."""


@dataclass
class _Node:
    spec: NodeProcessSpec
    data_dir: Path
    socket_dir: Path
    running: bool = False
    ignored: dict[str, object] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock)  # one operation per node at a time


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


def _conf_value(value: object) -> str:
    """Render a postgresql.conf value; quoting works for every GUC type."""
    text = ("on" if value else "off") if isinstance(value, bool) else str(value)
    return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no server log)"


class VanillaPostgresBackend:
    """Runs shaped vanilla PostgreSQL nodes under `base_dir`, one data dir per (namespace, name).

    Layout: `base_dir/data/<namespace>/<name>` (the "PVC"; `server.log` inside) and
    `base_dir/s/<hash>` (unix socket dir, short for the 107-byte socket path limit). As
    root, servers run as the `postgres` OS user, which owns `base_dir`; each ancestor of
    `base_dir` gets o+x so that user can reach it.
    """

    def __init__(self, base_dir: str, *, bindir: str | None = None, start_timeout: float = 60.0,
                 stop_timeout: float = 30.0) -> None:
        self.bindir = Path(bindir) if bindir else find_bindir()
        self.base_dir = Path(base_dir).resolve()
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self._nodes: dict[tuple[str, str], _Node] = {}
        self._known_params: frozenset[str] | None = None
        self._registry_lock = threading.Lock()  # the kubelet may drive several nodes from threads
        self._as_root = os.geteuid() == 0
        self.base_dir.mkdir(parents=True, exist_ok=True)
        if self._as_root:
            self._make_reachable(self.base_dir)
            self._chown(self.base_dir)

    # ----------------------------------------------------------------- protocol
    def start_node(self, spec: NodeProcessSpec) -> None:
        """Init + shim on first start, (re)write the config, start, wait for TCP on host:port."""
        if spec.role not in ROLES:
            raise ValueError(f"{spec.name}: role {spec.role!r} is not one of {ROLES}")
        node = self._node_for(spec)
        with node.lock:
            self._start(node, spec)

    def _start(self, node: _Node, spec: NodeProcessSpec) -> None:
        """A running node with another spec is restarted: the kubelet restarts pods on config changes."""
        if self._is_running(node):
            if node.running and node.spec == spec:
                self._wait_tcp(node, time.monotonic() + self.start_timeout)
                return
            self._stop(node)
        node.spec = spec
        first_start = not (node.data_dir / "PG_VERSION").exists()
        if first_start:
            self._initdb(node)
        self._write_config(node)
        self._pg_ctl_start(node)
        node.running = True
        self._wait_tcp(node, time.monotonic() + self.start_timeout)
        self._install_shim(node)
        log.info("vanilla node %s/%s (%s) up on %s:%s%s", spec.namespace, spec.name, spec.role,
                 spec.host, spec.port, " (new data dir)" if first_start else "")

    def stop_node(self, namespace: str, name: str) -> None:
        """Fast shutdown; data kept. Unknown or stopped nodes are fine."""
        node = self._nodes.get((namespace, name))
        if node is not None:
            with node.lock:
                self._stop(node)

    def destroy_data(self, namespace: str, name: str) -> None:
        """Stop the node and delete its data dir and socket dir (the PVC is gone)."""
        with self._registry_lock:
            node = self._nodes.pop((namespace, name), None)
        if node is None:
            shutil.rmtree(self.data_dir(namespace, name), ignore_errors=True)
            return
        with node.lock:
            self._stop(node)
            shutil.rmtree(node.socket_dir, ignore_errors=True)
            shutil.rmtree(node.data_dir, ignore_errors=True)

    def clone_data(self, namespace: str, source: str, target: str) -> None:
        """target's data dir becomes a consistent copy of source's (a Crunchy clone restore).

        A running source is copied online with pg_basebackup over its socket and keeps
        serving; a stopped one is copied file by file under its lock so it cannot start
        half-way. The copy takes the name `target` at its first start, because identity
        (pgxc_node_name) is rewritten into BACKEND_CONF on every start.
        """
        source_dir, target_dir = self.data_dir(namespace, source), self.data_dir(namespace, target)
        if not (source_dir / "PG_VERSION").exists():
            raise VanillaNodeError(f"clone {source} -> {target}: {source} has no data directory")
        with self._registry_lock:
            source_node, target_node = self._nodes.get((namespace, source)), self._nodes.get((namespace, target))
        if target_node is not None and self._is_running(target_node):
            raise VanillaNodeError(f"clone {source} -> {target}: {target} is running; stop it first")
        shutil.rmtree(target_dir, ignore_errors=True)
        self._mkdir_owned(target_dir.parent)
        if source_node is not None:
            with source_node.lock:
                if self._is_running(source_node):
                    self._basebackup(source_node, target_dir)
                else:
                    self._copy_stopped(source_dir, target_dir)
        else:
            self._copy_stopped(source_dir, target_dir)
        for leftover in ("postmaster.pid", "postmaster.opts", LOG_NAME):
            (target_dir / leftover).unlink(missing_ok=True)
        log.info("vanilla node %s/%s cloned from %s", namespace, target, source)

    def _basebackup(self, source: _Node, target_dir: Path) -> None:
        spec = source.spec
        res = self._run([str(self.bindir / "pg_basebackup"), "-h", str(source.socket_dir), "-p", str(spec.port),
                         "-U", spec.superuser, "-D", str(target_dir), "-X", "stream", "-c", "fast", "--no-sync",
                         "-w"], timeout=600)
        if res.returncode != 0:
            shutil.rmtree(target_dir, ignore_errors=True)
            raise VanillaNodeError(f"pg_basebackup of {spec.name} failed (rc={res.returncode}): {res.stderr[-1000:]}")

    def _copy_stopped(self, source_dir: Path, target_dir: Path) -> None:
        res = self._run(["cp", "-a", str(source_dir), str(target_dir)], timeout=600)
        if res.returncode != 0:
            shutil.rmtree(target_dir, ignore_errors=True)
            raise VanillaNodeError(f"copy of {source_dir} failed (rc={res.returncode}): {res.stderr[-1000:]}")

    def stop_all(self) -> None:
        """Stop every node; try them all, then report the failures together."""
        errors = []
        for node in list(self._nodes.values()):
            try:
                with node.lock:
                    self._stop(node)
            except (VanillaNodeError, OSError, subprocess.SubprocessError) as exc:
                errors.append(str(exc))
        if errors:
            raise VanillaNodeError("; ".join(errors))

    # ----------------------------------------------------------------- helpers for tests
    def data_dir(self, namespace: str, name: str) -> Path:
        return self.base_dir / "data" / namespace / name

    def log_file(self, namespace: str, name: str) -> Path:
        return self.data_dir(namespace, name) / LOG_NAME

    def ignored_parameters(self, namespace: str, name: str) -> dict[str, object]:
        """spec.parameters vanilla PostgreSQL does not know (exposed only through the shim's pg_settings)."""
        node = self._nodes.get((namespace, name))
        return dict(node.ignored) if node else {}

    def connect_local(self, namespace: str, name: str, dbname: str = "postgres") -> psycopg.Connection:
        """An autocommit superuser connection over the node's unix socket (trust auth)."""
        node = self._nodes[(namespace, name)]
        return psycopg.connect(host=str(node.socket_dir), port=node.spec.port, user=node.spec.superuser,
                               dbname=dbname, autocommit=True, connect_timeout=10)

    # ----------------------------------------------------------------- filesystem
    def _node_for(self, spec: NodeProcessSpec) -> _Node:
        with self._registry_lock:
            return self._nodes.get(spec.key) or self._new_node(spec)

    def _new_node(self, spec: NodeProcessSpec) -> _Node:
        """Register a node; its socket dir name is short because of the socket path limit."""
        digest = hashlib.sha1(f"{spec.namespace}/{spec.name}".encode()).hexdigest()[:10]
        socket_dir = self.base_dir / "s" / digest
        if len(str(socket_dir / f".s.PGSQL.{spec.port}.lock")) > _SOCKET_PATH_MAX:
            raise VanillaNodeError(f"base_dir {self.base_dir} is too long for a unix socket path")
        node = _Node(spec=spec, data_dir=self.data_dir(*spec.key), socket_dir=socket_dir)
        self._nodes[spec.key] = node
        return node

    def _mkdir_owned(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        if self._as_root:
            for part in [path, *path.parents]:
                if part == self.base_dir:
                    break
                self._chown(part)

    @staticmethod
    def _chown(path: Path) -> None:
        entry = pwd.getpwnam(SERVICE_OS_USER)
        os.chown(path, entry.pw_uid, entry.pw_gid)

    @staticmethod
    def _make_reachable(path: Path) -> None:
        """Give every ancestor o+x: root-only 0700 dirs (pytest's tmp root) block `postgres`."""
        for parent in path.parents:
            mode = parent.stat().st_mode
            if not mode & stat.S_IXOTH:
                log.debug("adding o+x to %s so the postgres OS user can reach %s", parent, path)
                os.chmod(parent, stat.S_IMODE(mode) | stat.S_IXOTH)

    def _write_owned(self, path: Path, text: str, mode: int = 0o600) -> None:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text)
        os.chmod(tmp, mode)
        if self._as_root:
            self._chown(tmp)
        os.replace(tmp, path)

    # ----------------------------------------------------------------- server tools
    def _run(self, argv: list[str], *, timeout: float) -> subprocess.CompletedProcess:
        """Run a server tool, as the postgres OS user when we are root."""
        if self._as_root:
            argv = ["runuser", "-u", SERVICE_OS_USER, "--", *argv]
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False,
                              stdin=subprocess.DEVNULL, cwd=str(self.base_dir))

    def _initdb(self, node: _Node) -> None:
        """initdb; the password goes through a 0600 file deleted right after, never argv."""
        spec = node.spec
        self._mkdir_owned(node.data_dir.parent)
        pwfile = self.base_dir / f".pw-{hashlib.sha1(repr(spec.key).encode()).hexdigest()[:10]}"
        self._write_owned(pwfile, spec.superuser_password + "\n")
        try:
            res = self._run([str(self.bindir / "initdb"), "-D", str(node.data_dir), "-U", spec.superuser,
                             f"--pwfile={pwfile}", "-E", "UTF8", "--locale=C", "--no-sync",
                             "--auth-local=trust", "--auth-host=scram-sha-256"], timeout=120)
        finally:
            pwfile.unlink(missing_ok=True)
        if res.returncode != 0:
            raise VanillaNodeError(f"initdb of {spec.name} failed (rc={res.returncode}): {res.stderr[-2000:]}")

    def _vanilla_params(self) -> frozenset[str]:
        """Every parameter name this PostgreSQL accepts in a config file (cached per backend)."""
        with self._registry_lock:
            return self._known_params or self._describe_config()

    def _describe_config(self) -> frozenset[str]:
        res = self._run([str(self.bindir / "postgres"), "--describe-config"], timeout=60)
        if res.returncode != 0:
            raise VanillaNodeError(f"postgres --describe-config failed: {res.stderr[-500:]}")
        self._known_params = frozenset(line.split("\t", 1)[0].lower() for line in res.stdout.splitlines() if line)
        return self._known_params

    def _write_config(self, node: _Node) -> None:
        """Rewrite the backend's include file and pg_hba.conf from the spec (every start)."""
        self._mkdir_owned(node.socket_dir)
        conf = node.data_dir / "postgresql.conf"
        include = f"include_if_exists = '{BACKEND_CONF}'"
        if include not in conf.read_text():
            with conf.open("a") as fh:
                fh.write(f"\n{include}\n")
        self._write_owned(node.data_dir / BACKEND_CONF, self._render_conf(node))
        self._write_owned(node.data_dir / "pg_hba.conf", (
            "# written by tests/support/pgnodes.py on every start\n"
            "local all all trust\n"
            "local replication all trust\n"  # clone_data's pg_basebackup, over the socket only
            "host all all 127.0.0.0/8 scram-sha-256\n"))

    def _split_parameters(self, node: _Node) -> tuple[dict[str, object], dict[str, object]]:
        """spec.parameters as (what vanilla PostgreSQL understands, AntDB-only ones)."""
        known, antdb_only = {}, {}
        for name, value in node.spec.parameters.items():
            key = str(name).lower()
            if not _PARAM_NAME.match(key):
                raise ValueError(f"{node.spec.name}: bad parameter name {name!r}")
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

    def _render_conf(self, node: _Node) -> str:
        spec = node.spec
        known, antdb_only = self._split_parameters(node)
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
        body = "".join(f"{k} = {_conf_value(v)}\n" for k, v in settings.items())
        return "# written by tests/support/pgnodes.py on every start\n" + body

    def _pg_ctl_start(self, node: _Node) -> None:
        res = self._run([str(self.bindir / "pg_ctl"), "-D", str(node.data_dir), "-l", str(node.data_dir / LOG_NAME),
                         "-w", "-t", str(int(self.start_timeout)), "start"], timeout=self.start_timeout + 30)
        if res.returncode != 0:
            raise VanillaNodeError(f"pg_ctl start of {node.spec.name} failed (rc={res.returncode}): "
                                   f"{res.stderr.strip()[-500:]}\n--- {LOG_NAME} ---\n{_tail(node.data_dir / LOG_NAME)}")

    def _is_running(self, node: _Node) -> bool:
        if not (node.data_dir / "postmaster.pid").exists():
            return False
        res = self._run([str(self.bindir / "pg_ctl"), "-D", str(node.data_dir), "status"], timeout=30)
        return res.returncode == 0

    def _stop(self, node: _Node) -> None:
        node.running = False
        if not self._is_running(node):
            return
        res = self._run([str(self.bindir / "pg_ctl"), "-D", str(node.data_dir), "-m", "fast", "-w",
                         "-t", str(int(self.stop_timeout)), "stop"], timeout=self.stop_timeout + 30)
        if res.returncode != 0 and self._is_running(node):
            raise VanillaNodeError(f"pg_ctl stop of {node.spec.name} failed (rc={res.returncode}): "
                                   f"{res.stderr.strip()[-500:]}")

    def _wait_tcp(self, node: _Node, deadline: float) -> None:
        """pg_ctl -w waits for 'ready'; this proves the address the kubelet advertises works."""
        spec = node.spec
        while True:
            try:
                with socket.create_connection((spec.host, spec.port), timeout=1.0):
                    return
            except OSError as exc:
                if time.monotonic() >= deadline:
                    raise VanillaNodeError(f"{spec.name} not accepting TCP on {spec.host}:{spec.port}: {exc}\n"
                                           f"--- {LOG_NAME} ---\n{_tail(node.data_dir / LOG_NAME)}") from exc
                time.sleep(0.1)

    # ----------------------------------------------------------------- the shim
    def _install_shim(self, node: _Node) -> None:
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


def vanilla_apply_node_change(hook: _ConnectsToNodes, address: Any, change: NodeChange) -> None:
    """What `AntDBHook.apply_node_change` does on AntDB, done to the shim's `pgxc_node`.

    Same contract: one change, on `address`, in autocommit, with the hook's credentials.
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
    with hook.connect_to(address) as conn:
        conn.execute(statement, params)
