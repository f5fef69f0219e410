"""Process management shared by the node backends that run PostgreSQL-style servers.

`pgnodes.VanillaPostgresBackend` (Debian's PostgreSQL) and `antdb_nodes.AntDBBackend`
(real AntDB) keep their nodes the same way: one data dir per (namespace, name) (the
"PVC"), one short unix socket dir per node, the servers run as the `postgres` OS user
when we are root, initdb gets the password through a temporary 0600 file, pg_ctl starts
and stops them, and a node counts as up only once its Service address accepts TCP.
`PostgresStyleBackend` holds that machinery once, so a fix to how a node is started,
stopped, cloned or forgotten reaches both backends.

What differs between the two products is left to small hooks a subclass overrides:
initdb options, the config and pg_hba it writes, `pg_ctl start` options and environment,
how pg_basebackup reaches a source, and what happens after a start, a clone or a destroy.
"""

from __future__ import annotations

import abc
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
from typing import ClassVar

from sandbox.nodes import NodeProcessSpec

log = logging.getLogger(__name__)

SERVICE_OS_USER = "postgres"      # PostgreSQL (and AntDB) refuse to run as root
ROLES = ("gtm_coord", "coordinator", "datanode")
LOG_NAME = "server.log"
PARAM_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")
_SOCKET_PATH_MAX = 107            # sizeof(sun_path) - 1 on Linux
_CLONE_LEFTOVERS = ("postmaster.pid", "postmaster.opts", LOG_NAME)
_TCP_POLL_INTERVAL = 0.1


class PostgresNodeError(RuntimeError):
    """A node failed to init, start, stop or be copied; carries the server log tail where it helps."""


@dataclass
class ServerNode:
    """One node this backend knows: its current spec, where its files live, whether it runs."""

    spec: NodeProcessSpec
    data_dir: Path
    socket_dir: Path
    running: bool = False
    # One operation per node at a time; reentrant so a hook may call a locked helper safely.
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False, compare=False)


def conf_value(value: object) -> str:
    """Render a postgresql.conf value; quoting works for every GUC type."""
    text = ("on" if value else "off") if isinstance(value, bool) else str(value)
    return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


def render_settings(settings: dict[str, object]) -> str:
    """`name = 'value'` lines, in the dict's order (later lines win in postgresql.conf)."""
    return "".join(f"{name} = {conf_value(value)}\n" for name, value in settings.items())


def check_parameter_name(node_name: str, name: object) -> None:
    """Refuse a parameter name that could smuggle other lines into the written config."""
    if not PARAM_NAME.match(str(name)):
        raise ValueError(f"{node_name}: bad parameter name {name!r}")


def log_tail(path: Path, lines: int = 30) -> str:
    """The end of a server log, for error messages (the start of a log rarely says why)."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no server log)"


def _digest(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:10]


class PostgresStyleBackend(abc.ABC):
    """Runs pg_ctl-managed servers under `base_dir`, one data dir per (namespace, name).

    Layout: `base_dir/data/<namespace>/<name>` (`server.log` inside) and `base_dir/s/<hash>`
    (unix socket dir, short because of the 107-byte socket path limit). As root, servers
    run as the `postgres` OS user, which owns `base_dir`; each ancestor of `base_dir` gets
    o+x so that user can reach it.
    """

    error_class: ClassVar[type[PostgresNodeError]] = PostgresNodeError
    node_class: ClassVar[type[ServerNode]] = ServerNode
    label: ClassVar[str] = "PostgreSQL"       # names the product in log lines
    written_by: ClassVar[str] = __name__       # header of the files rewritten on every start
    backend_conf: ClassVar[str] = "backend.conf"
    initdb_timeout: ClassVar[float] = 120.0

    def __init__(self, base_dir: str, bindir: Path, *, start_timeout: float, stop_timeout: float) -> None:
        self.bindir = bindir
        self.base_dir = Path(base_dir).resolve()
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self._nodes: dict[tuple[str, str], ServerNode] = {}
        self._lock = threading.Lock()  # guards _nodes: the kubelet drives several nodes from threads
        self._as_root = os.geteuid() == 0
        self.base_dir.mkdir(parents=True, exist_ok=True)
        if self._as_root:
            self._make_reachable(self.base_dir)
            self._chown(self.base_dir)

    # ----------------------------------------------------------------- protocol
    def start_node(self, spec: NodeProcessSpec) -> None:
        """Init on first start, (re)write the config, start, wait for TCP on host:port."""
        if spec.role not in ROLES:
            raise ValueError(f"{spec.name}: role {spec.role!r} is not one of {ROLES}")
        node = self._node_for(spec)
        with node.lock:
            self._start(node, spec)

    def _start(self, node: ServerNode, spec: NodeProcessSpec) -> None:
        """Same spec and running: only the TCP check. Another spec (say a new gc address):
        restarted so the rewritten config applies, as the kubelet restarts pods on changes."""
        if self._is_running(node):
            if node.running and node.spec == spec:
                self._wait_tcp(node, time.monotonic() + self.start_timeout)
                return
            self._stop(node)
        node.spec = spec
        first_start = not (node.data_dir / "PG_VERSION").exists()
        if first_start:
            self._initdb(node)
        self._before_config(node)
        self._write_config(node)
        self._pg_ctl_start(node)
        node.running = True
        self._wait_tcp(node, time.monotonic() + self.start_timeout)
        self._after_start(node)
        log.info("%s node %s/%s (%s) up on %s:%s%s", self.label, spec.namespace, spec.name, spec.role,
                 spec.host, spec.port, " (new data dir)" if first_start else "")

    def stop_node(self, namespace: str, name: str) -> None:
        """Fast shutdown; data kept. Unknown or stopped nodes are fine."""
        node = self._lookup(namespace, name)
        if node is not None:
            with node.lock:
                self._stop(node)

    def destroy_data(self, namespace: str, name: str) -> None:
        """Stop the node and delete its data dir and socket dir (the PVC is gone)."""
        with self._lock:
            node = self._nodes.pop((namespace, name), None)
        node = node or self._unregistered(namespace, name)
        if node is None:
            shutil.rmtree(self.data_dir(namespace, name), ignore_errors=True)
        else:
            with node.lock:
                self._stop(node)
                shutil.rmtree(node.socket_dir, ignore_errors=True)
                shutil.rmtree(node.data_dir, ignore_errors=True)
        self._after_destroy()

    def clone_data(self, namespace: str, source: str, target: str) -> None:
        """target's data dir becomes a consistent copy of source's, straight from source."""
        staging = self.repo_dir(namespace, f".clone-{target}")
        try:
            self.backup_data(namespace, source, staging)
            self.restore_data(namespace, target, staging)
        finally:
            self.remove_tree(staging)

    def backup_data(self, namespace: str, source: str, dest: Path) -> None:
        """`dest` (replaced if present) becomes a consistent copy of source's data dir.

        A running source is copied online with pg_basebackup and keeps serving (what a
        pgBackRest backup of a live primary gives: a restorable, consistent copy); a
        stopped one is copied file by file under its lock so it cannot start half-way.
        """
        source_dir = self.data_dir(namespace, source)
        if not (source_dir / "PG_VERSION").exists():
            raise self.error_class(f"backup of {source}: {source} has no data directory")
        shutil.rmtree(dest, ignore_errors=True)
        self._mkdir_owned(dest.parent)
        self._copy_data(self._lookup(namespace, source), source_dir, dest, source)
        for leftover in _CLONE_LEFTOVERS:
            (dest / leftover).unlink(missing_ok=True)
        log.info("%s node %s/%s copied to %s", self.label, namespace, source, dest)

    def restore_data(self, namespace: str, target: str, backup: Path) -> None:
        """target's data dir (its PVC) is replaced by a copy of `backup` (a `backup_data` result).

        Then `_after_clone` gives the copy target's identity where the product needs that, so
        it starts under its own name with the backup's catalog. Target must not be running.
        """
        if not (backup / "PG_VERSION").exists():
            raise self.error_class(f"restore of {target}: {backup} holds no backup")
        target_dir, target_node = self.data_dir(namespace, target), self._lookup(namespace, target)
        if target_node is not None and self._is_running(target_node):
            raise self.error_class(f"restore of {target}: {target} is running; stop it first")
        shutil.rmtree(target_dir, ignore_errors=True)
        self._mkdir_owned(target_dir.parent)
        self._copy_stopped(backup, target_dir)
        self._after_clone(target_dir, target)
        log.info("%s node %s/%s restored from %s", self.label, namespace, target, backup)

    def copy_tree(self, source: Path, dest: Path) -> None:
        """`dest` becomes a copy of directory `source` (a repository sync); owned like the data."""
        if not source.is_dir():
            raise self.error_class(f"copy of {source}: no such directory")
        shutil.rmtree(dest, ignore_errors=True)
        self._mkdir_owned(dest.parent)
        self._copy_stopped(source, dest)

    def repo_dir(self, namespace: str, claim: str) -> Path:
        """Where the volume `claim` of a non-database pod (a pgBackRest repository) lives."""
        return self.base_dir / "repo" / namespace / claim

    def make_dir(self, path: Path) -> None:
        """A directory the servers' OS user owns (for files the test-side pods write)."""
        self._mkdir_owned(path)

    def write_file(self, path: Path, text: str) -> None:
        self._mkdir_owned(path.parent)
        self._write_owned(path, text, 0o644)

    @staticmethod
    def remove_tree(path: Path) -> None:
        shutil.rmtree(path, ignore_errors=True)

    def stop_all(self) -> None:
        """Stop every node; try them all, then report the failures together."""
        errors = []
        with self._lock:
            nodes = list(self._nodes.values())
        for node in nodes:
            try:
                with node.lock:
                    self._stop(node)
            except (PostgresNodeError, OSError, subprocess.SubprocessError) as exc:
                errors.append(str(exc))
        if errors:
            raise self.error_class("; ".join(errors))

    # ----------------------------------------------------------------- helpers for tests
    def data_dir(self, namespace: str, name: str) -> Path:
        return self.base_dir / "data" / namespace / name

    def log_file(self, namespace: str, name: str) -> Path:
        return self.data_dir(namespace, name) / LOG_NAME

    # ----------------------------------------------------------------- hooks
    @abc.abstractmethod
    def _render_conf(self, node: ServerNode) -> str:
        """The body of `backend_conf`: listen address, port, socket dir, product settings."""

    @abc.abstractmethod
    def _hba_rules(self) -> str:
        """The body of pg_hba.conf (rewritten on every start)."""

    def _initdb_options(self, spec: NodeProcessSpec) -> list[str]:
        """initdb options beyond data dir, superuser, password file, encoding and locale."""
        return []

    def _pg_ctl_start_options(self, spec: NodeProcessSpec) -> list[str]:
        """Options placed before `-D` in `pg_ctl start`."""
        return []

    def _server_env(self) -> dict[str, str]:
        """Environment for the server and for pg_basebackup (libpq reads it)."""
        return {}

    def _basebackup_connection(self, source: ServerNode, target: str) -> tuple[str, list[str]]:
        """(pg_basebackup's -h, extra options); default: over the source's socket, no fsync."""
        return str(source.socket_dir), ["--no-sync"]

    def _unregistered(self, namespace: str, name: str) -> ServerNode | None:
        """A node this instance never started; None means there is nothing to stop or copy under a lock."""
        return None

    def _before_config(self, node: ServerNode) -> None:
        """Runs on every start after initdb, before the config is written."""

    def _after_start(self, node: ServerNode) -> None:
        """Runs on every start once the node accepts TCP."""

    def _after_clone(self, target_dir: Path, target: str) -> None:
        """Runs on the copied data dir before its first start."""

    def _after_destroy(self) -> None:
        """Runs after a node's data is gone and the node is forgotten."""

    # ----------------------------------------------------------------- registry and filesystem
    def _lookup(self, namespace: str, name: str) -> ServerNode | None:
        with self._lock:
            node = self._nodes.get((namespace, name))
        return node or self._unregistered(namespace, name)

    def _node_for(self, spec: NodeProcessSpec) -> ServerNode:
        with self._lock:
            node = self._nodes.get(spec.key)
            if node is None:
                node = self.node_class(spec=spec, data_dir=self.data_dir(*spec.key),
                                       socket_dir=self._socket_dir(spec.namespace, spec.name, spec.port))
                self._nodes[spec.key] = node
            return node

    def _socket_dir(self, namespace: str, name: str, port: int) -> Path:
        """Named by a hash: the socket path must fit sun_path, whatever the node is called."""
        path = self.base_dir / "s" / _digest(f"{namespace}/{name}")
        if len(str(path / f".s.PGSQL.{port}")) > _SOCKET_PATH_MAX:
            raise self.error_class(f"base_dir {self.base_dir} is too long for a unix socket path")
        return path

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
        """Atomic replace; the temporary file is 0600 from birth, as it may hold a password."""
        tmp = path.with_name(path.name + ".tmp")
        tmp.unlink(missing_ok=True)
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as fh:
            fh.write(text)
        os.chmod(tmp, mode)
        if self._as_root:
            self._chown(tmp)
        os.replace(tmp, path)

    # ----------------------------------------------------------------- server tools
    def _tool(self, name: str) -> str:
        return str(self.bindir / name)

    def _run(self, argv: list[str], *, env: dict[str, str] | None = None,
             timeout: float) -> subprocess.CompletedProcess:
        """Run a server tool, as the postgres OS user when we are root (runuser resets the env)."""
        prefix = ["env", *(f"{k}={v}" for k, v in env.items())] if env else []
        if self._as_root:
            argv = ["runuser", "-u", SERVICE_OS_USER, "--", *prefix, *argv]
        else:
            argv = [*prefix, *argv]
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False,
                              stdin=subprocess.DEVNULL, cwd=str(self.base_dir))

    def _initdb(self, node: ServerNode) -> None:
        """initdb; the password goes through a 0600 file deleted right after, never argv."""
        spec = node.spec
        self._mkdir_owned(node.data_dir.parent)
        pwfile = self.base_dir / f".pw-{_digest(repr(spec.key))}"
        self._write_owned(pwfile, spec.superuser_password + "\n")
        try:
            res = self._run([self._tool("initdb"), "-D", str(node.data_dir), "-U", spec.superuser,
                             f"--pwfile={pwfile}", "-E", "UTF8", "--locale=C", *self._initdb_options(spec)],
                            timeout=self.initdb_timeout)
        finally:
            pwfile.unlink(missing_ok=True)
        if res.returncode != 0:
            raise self.error_class(f"initdb of {spec.name} failed (rc={res.returncode}): {res.stderr[-2000:]}")

    def _write_config(self, node: ServerNode) -> None:
        """Rewrite the backend's include file and pg_hba.conf from the spec (every start)."""
        self._mkdir_owned(node.socket_dir)
        conf = node.data_dir / "postgresql.conf"
        include = f"include_if_exists = '{self.backend_conf}'"
        if include not in conf.read_text():
            with conf.open("a") as fh:
                fh.write(f"\n{include}\n")
        header = f"# written by {self.written_by} on every start\n"
        self._write_owned(node.data_dir / self.backend_conf, header + self._render_conf(node))
        self._write_owned(node.data_dir / "pg_hba.conf", header + self._hba_rules())

    def _pg_ctl_start(self, node: ServerNode) -> None:
        spec, server_log = node.spec, node.data_dir / LOG_NAME
        res = self._run([self._tool("pg_ctl"), *self._pg_ctl_start_options(spec), "-D", str(node.data_dir),
                         "-l", str(server_log), "-w", "-t", str(int(self.start_timeout)), "start"],
                        env=self._server_env(), timeout=self.start_timeout + 30)
        if res.returncode != 0:
            raise self.error_class(f"pg_ctl start of {spec.name} failed (rc={res.returncode}): "
                                   f"{res.stderr.strip()[-500:]}\n--- {LOG_NAME} ---\n{log_tail(server_log)}")

    def _is_running(self, node: ServerNode) -> bool:
        if not (node.data_dir / "postmaster.pid").exists():
            return False
        res = self._run([self._tool("pg_ctl"), "-D", str(node.data_dir), "status"], timeout=30)
        return res.returncode == 0

    def _stop(self, node: ServerNode) -> None:
        node.running = False
        if not self._is_running(node):
            return
        res = self._run([self._tool("pg_ctl"), "-D", str(node.data_dir), "-m", "fast", "-w",
                         "-t", str(int(self.stop_timeout)), "stop"], timeout=self.stop_timeout + 30)
        if res.returncode != 0 and self._is_running(node):
            raise self.error_class(f"pg_ctl stop of {node.spec.name} failed (rc={res.returncode}): "
                                   f"{res.stderr.strip()[-500:]}")

    def _wait_tcp(self, node: ServerNode, deadline: float) -> None:
        """pg_ctl -w waits for 'ready'; this proves the address the kubelet advertises works."""
        spec = node.spec
        while True:
            try:
                with socket.create_connection((spec.host, spec.port), timeout=1.0):
                    return
            except OSError as exc:
                if time.monotonic() >= deadline:
                    raise self.error_class(f"{spec.name} not accepting TCP on {spec.host}:{spec.port}: {exc}\n"
                                           f"--- {LOG_NAME} ---\n{log_tail(node.data_dir / LOG_NAME)}") from exc
                time.sleep(_TCP_POLL_INTERVAL)

    # ----------------------------------------------------------------- copies
    def _copy_data(self, source_node: ServerNode | None, source_dir: Path, target_dir: Path, target: str) -> None:
        if source_node is None:
            self._copy_stopped(source_dir, target_dir)
            return
        with source_node.lock:
            if self._is_running(source_node):
                self._basebackup(source_node, target_dir, target)
            else:
                self._copy_stopped(source_dir, target_dir)

    def _basebackup(self, source: ServerNode, target_dir: Path, target: str) -> None:
        spec = source.spec
        host, options = self._basebackup_connection(source, target)
        res = self._run([self._tool("pg_basebackup"), "-h", host, "-p", str(spec.port), "-U", spec.superuser,
                         "-D", str(target_dir), "-X", "stream", "-c", "fast", *options, "-w"],
                        env=self._server_env(), timeout=600)
        if res.returncode != 0:
            shutil.rmtree(target_dir, ignore_errors=True)
            raise self.error_class(f"pg_basebackup of {spec.name} failed (rc={res.returncode}): "
                                   f"{res.stderr[-1000:]}")

    def _copy_stopped(self, source_dir: Path, target_dir: Path) -> None:
        res = self._run(["cp", "-a", str(source_dir), str(target_dir)], timeout=600)
        if res.returncode != 0:
            shutil.rmtree(target_dir, ignore_errors=True)
            raise self.error_class(f"copy of {source_dir} failed (rc={res.returncode}): {res.stderr[-1000:]}")
