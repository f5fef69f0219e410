"""Real AntDB nodes for the test-side kubelet: one server process per `NodeProcessSpec`.

`AntDBBackend` implements `tests.support.nodes.NodeBackend` on an installed AntDB
(`ANTDB_HOME`, e.g. built from ADBSQL/AntDB a8a0374). Where the vanilla backend only
imitates AntDB, this one runs the real thing, so node DDL, the pooler and the GTM are
exercised for real.

What AntDB needs that plain PostgreSQL does not, and why this module does it:
- `initdb --nodename`: mandatory; it becomes `pgxc_node_name`.
- `pg_ctl -Z <role>`: the node type is chosen at start, it is not a config setting.
- `agtm_host`/`agtm_port` on every node (gc included) and `max_prepared_transactions > 0`.
  They are rewritten on every start because the kubelet may restart a node with a new
  gc address.
- Node-to-node connections (the coordinator pooler, the rxact manager, the GTM client)
  are opened by libpq inside the server *without a password*. With
  password authentication in pg_hba they only succeed when libpq finds the password in
  a password file, so every server is started with `PGPASSFILE` pointing at one file
  per backend that lists every node it runs (host:port:*:user:password).
- The pooler logs in as the session user; the rxact manager's connection to gc uses the
  hard-coded role `postgres`. Queries, DDL and two-phase inserts work with any superuser
  name (verified), but `postgres` is the name AntDB expects (and what Crunchy uses).
  Single-user mode is read-only in AntDB, so the role cannot be added at initdb time.
- The snapshot/gxid receivers reach gc over a special protocol version that the gc's
  senders accept without pg_hba authentication.
"""

from __future__ import annotations

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

from tests.support.nodes import NodeProcessSpec

log = logging.getLogger(__name__)

ANTDB_HOME_ENV = "ANTDB_HOME"
SERVICE_OS_USER = "postgres"      # PostgreSQL refuses to run as root
INTERNAL_ROLE = "postgres"        # AntDB's own node-to-node connections log in as this role
ROLES = ("gtm_coord", "coordinator", "datanode")
BACKEND_CONF = "antdb_backend.conf"
LOG_NAME = "server.log"
_SOCKET_PATH_MAX = 107            # sizeof(sun_path) - 1 on Linux
_PARAM_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")
_FIXED_PARAMS = frozenset({
    "listen_addresses", "port", "unix_socket_directories", "agtm_host", "agtm_port",
})


def antdb_home_or_skip_reason() -> tuple[str | None, str]:
    """Return (ANTDB_HOME, "") when it holds an installed AntDB, else (None, why not).

    Tests call this to skip with a precise reason instead of failing on a machine that
    has no AntDB build; a vanilla PostgreSQL install is rejected because its initdb has
    no `--nodename`.
    """
    home = os.environ.get(ANTDB_HOME_ENV, "")
    if not home:
        return None, f"{ANTDB_HOME_ENV} is not set (point it at an installed AntDB, e.g. /opt/antdb)"
    for tool in ("initdb", "pg_ctl", "postgres"):
        path = Path(home, "bin", tool)
        if not (path.is_file() and os.access(path, os.X_OK)):
            return None, f"{ANTDB_HOME_ENV}={home} has no executable bin/{tool}"
    try:
        out = subprocess.run([str(Path(home, "bin", "initdb")), "--help"], capture_output=True,
                             text=True, timeout=30, check=False).stdout
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"{ANTDB_HOME_ENV}={home}: bin/initdb --help failed: {exc}"
    if "--nodename" not in out:
        return None, f"{ANTDB_HOME_ENV}={home}: bin/initdb has no --nodename, not AntDB"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(SERVICE_OS_USER)
        except KeyError:
            return None, f"running as root but there is no '{SERVICE_OS_USER}' OS user to run AntDB"
    return home, ""


class AntDBError(RuntimeError):
    """A node failed to init, start or stop; the message carries the server log tail."""


@dataclass
class _Node:
    spec: NodeProcessSpec
    data_dir: Path
    socket_dir: Path
    running: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)


def _conf_value(value: object) -> str:
    """Render a postgresql.conf value; quoting works for every GUC type."""
    if isinstance(value, bool):
        text = "on" if value else "off"
    else:
        text = str(value)
    return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


def _pgpass_field(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace(":", "\\:")


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no server log)"


class AntDBBackend:
    """Runs AntDB nodes under `base_dir`, one data dir per (namespace, name).

    Layout: `base_dir/data/<namespace>/<name>` (the "PVC", log file `server.log` inside),
    `base_dir/s/<hash>` (unix socket dir, short because of the 107-byte socket path limit),
    `base_dir/pgpass` (the node-to-node password file). When running as root every
    server runs as the `postgres` OS user, which then owns all of `base_dir`, and each
    ancestor of `base_dir` gets the other-execute bit so that user can reach it.

    `auth_method` is what pg_hba.conf requires for 127.0.0.0/8 (TCP, replication
    included) and the unix socket; `password_encryption` follows it.
    """

    def __init__(self, antdb_home: str, base_dir: str, *, auth_method: str = "scram-sha-256",
                 start_timeout: float = 90.0, stop_timeout: float = 60.0) -> None:
        if auth_method not in ("scram-sha-256", "md5", "trust"):
            raise ValueError(f"unsupported auth_method {auth_method!r}")
        self.bindir = Path(antdb_home, "bin")
        self.base_dir = Path(base_dir).resolve()
        self.auth_method = auth_method
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.pgpass = self.base_dir / "pgpass"
        self._nodes: dict[tuple[str, str], _Node] = {}
        self._lock = threading.Lock()   # guards _nodes and the password file
        self._as_root = os.geteuid() == 0
        self.base_dir.mkdir(parents=True, exist_ok=True)
        if self._as_root:
            self._make_reachable(self.base_dir)
            self._chown(self.base_dir)

    # ----------------------------------------------------------------- protocol
    def start_node(self, spec: NodeProcessSpec) -> None:
        """Init on first start, (re)write the config, start, wait for TCP on host:port.

        Already running with the same spec: only the TCP check. Running with another
        spec (say a new gc address): restarted so the rewritten config applies.
        """
        if spec.role not in ROLES:
            raise ValueError(f"{spec.name}: role {spec.role!r} is not one of {ROLES}")
        node = self._node_for(spec)
        with node.lock:
            if self._is_running(node):
                if node.running and node.spec == spec:
                    self._wait_tcp(node, time.monotonic() + self.start_timeout)
                    return
                self._stop(node)
            node.spec = spec
            if not (node.data_dir / "PG_VERSION").exists():
                self._initdb(node)
            self._write_pgpass()
            self._write_config(node)
            self._pg_ctl_start(node)
            node.running = True
            self._wait_tcp(node, time.monotonic() + self.start_timeout)
        log.info("AntDB node %s/%s (%s) up on %s:%s", spec.namespace, spec.name, spec.role,
                 spec.host, spec.port)

    def stop_node(self, namespace: str, name: str) -> None:
        """Fast shutdown; data kept. Unknown or stopped nodes are fine."""
        node = self._known_or_on_disk(namespace, name)
        if node is not None:
            with node.lock:
                self._stop(node)

    def destroy_data(self, namespace: str, name: str) -> None:
        """Stop the node and delete its data dir and socket dir (the PVC is gone)."""
        node = self._known_or_on_disk(namespace, name)
        if node is None:
            return
        with node.lock:
            self._stop(node)
            shutil.rmtree(node.data_dir, ignore_errors=True)
            shutil.rmtree(node.socket_dir, ignore_errors=True)
        with self._lock:
            self._nodes.pop((namespace, name), None)
        self._write_pgpass()

    def clone_data(self, namespace: str, source: str, target: str) -> None:
        """target's data dir becomes a consistent copy of source's, as AntDB's manager does
        for "append coordinator": pg_basebackup from the running source (it keeps serving;
        a stopped source is copied file by file under its lock), then `pgxc_node_name` is
        set to target in postgresql.conf, so the copy starts under its own name with
        source's catalog (pgxc_node included: source's self row, no row for target yet).
        """
        source_node, target_dir = self._known_or_on_disk(namespace, source), self.data_dir(namespace, target)
        if source_node is None or not (source_node.data_dir / "PG_VERSION").exists():
            raise AntDBError(f"clone {source} -> {target}: {source} has no data directory")
        target_node = self._known_or_on_disk(namespace, target)
        if target_node is not None and self._is_running(target_node):
            raise AntDBError(f"clone {source} -> {target}: {target} is running; stop it first")
        shutil.rmtree(target_dir, ignore_errors=True)
        self._mkdir_owned(target_dir.parent)
        with source_node.lock:
            if self._is_running(source_node):
                self._basebackup(source_node, target_dir, target)
            else:
                self._copy_stopped(source_node.data_dir, target_dir)
        for leftover in ("postmaster.pid", "postmaster.opts", LOG_NAME):
            (target_dir / leftover).unlink(missing_ok=True)
        self._set_node_name(target_dir, target)
        log.info("AntDB node %s/%s cloned from %s", namespace, target, source)

    def _basebackup(self, source: _Node, target_dir: Path, target: str) -> None:
        """AntDB's pg_basebackup insists on --nodename (it names tablespace directories)."""
        spec = source.spec
        res = self._run([str(self.bindir / "pg_basebackup"), "-h", spec.host, "-p", str(spec.port),
                         "-U", spec.superuser, "-D", str(target_dir), "-X", "stream", "-c", "fast",
                         "--nodename", target, "-w"], env={"PGPASSFILE": str(self.pgpass)}, timeout=600)
        if res.returncode != 0:
            shutil.rmtree(target_dir, ignore_errors=True)
            raise AntDBError(f"pg_basebackup of {spec.name} failed (rc={res.returncode}): {res.stderr[-1000:]}")

    def _copy_stopped(self, source_dir: Path, target_dir: Path) -> None:
        res = self._run(["cp", "-a", str(source_dir), str(target_dir)], timeout=600)
        if res.returncode != 0:
            shutil.rmtree(target_dir, ignore_errors=True)
            raise AntDBError(f"copy of {source_dir} failed (rc={res.returncode}): {res.stderr[-1000:]}")

    def _set_node_name(self, data_dir: Path, name: str) -> None:
        """Replace initdb's `pgxc_node_name = '...'` line (the node's identity is a postmaster GUC)."""
        conf = data_dir / "postgresql.conf"
        lines = [line for line in conf.read_text().splitlines()
                 if not re.match(r"\s*pgxc_node_name\s*=", line)]
        lines.append(f"pgxc_node_name = {_conf_value(name)}")
        self._write_owned(conf, "\n".join(lines) + "\n")

    def stop_all(self) -> None:
        """Stop every node; try them all, then report the failures together."""
        errors = []
        with self._lock:
            nodes = list(self._nodes.values())
        for node in nodes:
            try:
                with node.lock:
                    self._stop(node)
            except AntDBError as exc:
                errors.append(str(exc))
        if errors:
            raise AntDBError("; ".join(errors))

    # ----------------------------------------------------------------- helpers for tests
    def data_dir(self, namespace: str, name: str) -> Path:
        return self.base_dir / "data" / namespace / name

    def log_file(self, namespace: str, name: str) -> Path:
        return self.data_dir(namespace, name) / LOG_NAME

    # ----------------------------------------------------------------- internals
    def _socket_dir(self, namespace: str, name: str, port: int) -> Path:
        digest = hashlib.sha1(f"{namespace}/{name}".encode()).hexdigest()[:10]
        path = self.base_dir / "s" / digest
        if len(str(path / f".s.PGSQL.{port}")) > _SOCKET_PATH_MAX:
            raise AntDBError(f"base_dir {self.base_dir} is too long for a unix socket path")
        return path

    def _node_for(self, spec: NodeProcessSpec) -> _Node:
        with self._lock:
            node = self._nodes.get(spec.key)
            if node is None:
                node = _Node(spec=spec, data_dir=self.data_dir(*spec.key),
                             socket_dir=self._socket_dir(spec.namespace, spec.name, spec.port))
                self._nodes[spec.key] = node
            return node

    def _known_or_on_disk(self, namespace: str, name: str) -> _Node | None:
        """A node this backend started, or a data dir left by an earlier backend instance."""
        with self._lock:
            node = self._nodes.get((namespace, name))
        if node is not None or not self.data_dir(namespace, name).is_dir():
            return node
        stub = NodeProcessSpec(namespace=namespace, name=name, role="datanode", host="", port=0,
                               agtm_host="", agtm_port=0, superuser="", superuser_password="")
        return _Node(spec=stub, data_dir=self.data_dir(namespace, name),
                     socket_dir=self._socket_dir(namespace, name, 0))

    def _mkdir_owned(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        if self._as_root:
            for part in [path, *path.parents]:
                if part == self.base_dir:
                    break
                self._chown(part)

    def _chown(self, path: Path) -> None:
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

    def _run(self, argv: list[str], *, env: dict | None = None, timeout: float) -> subprocess.CompletedProcess:
        """Run a server tool, as the postgres OS user when we are root."""
        extra = [f"{k}={v}" for k, v in (env or {}).items()]
        if self._as_root:
            argv = ["runuser", "-u", SERVICE_OS_USER, "--", "env", *extra, *argv]
        elif extra:
            argv = ["env", *extra, *argv]
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False,
                              stdin=subprocess.DEVNULL, cwd=str(self.base_dir))

    def _initdb(self, node: _Node) -> None:
        """initdb with --nodename; the password goes through a 0600 file, never argv."""
        spec = node.spec
        self._mkdir_owned(node.data_dir.parent)
        pwfile = self.base_dir / f".pw-{spec.namespace}-{spec.name}"
        pwfile.write_text(spec.superuser_password + "\n")
        os.chmod(pwfile, 0o600)
        if self._as_root:
            self._chown(pwfile)
        auth = self.auth_method
        try:
            res = self._run([str(self.bindir / "initdb"), "-D", str(node.data_dir),
                             "--nodename", spec.name, "-U", spec.superuser, f"--pwfile={pwfile}",
                             "-E", "UTF8", "--locale=C", f"--auth-host={auth}", f"--auth-local={auth}"],
                            timeout=300)
        finally:
            pwfile.unlink(missing_ok=True)
        if res.returncode != 0:
            raise AntDBError(f"initdb of {spec.name} failed (rc={res.returncode}): {res.stderr[-2000:]}")
        if spec.superuser != INTERNAL_ROLE:
            log.warning("%s: superuser %s is not %s; AntDB's rxact manager logs in to gc as %s, "
                        "so in-doubt two-phase transactions cannot be resolved automatically",
                        spec.name, spec.superuser, INTERNAL_ROLE, INTERNAL_ROLE)

    def _write_owned(self, path: Path, text: str, mode: int = 0o600) -> None:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text)
        os.chmod(tmp, mode)
        if self._as_root:
            self._chown(tmp)
        os.replace(tmp, path)

    def _write_pgpass(self) -> None:
        """One line per node, so the pooler (which sends no password) finds each node's.

        Host-specific lines come first; a `*` line per superuser follows when every node
        shares that user's password, for node_host values that are names, not addresses.
        Only superusers are listed: a session as any other role gets `fe_sendauth: no
        password supplied` from the pooler unless its password is added here too.
        """
        with self._lock:
            specs = [node.spec for node in self._nodes.values()]
            lines = [(s.host, s.port, "*", s.superuser, s.superuser_password) for s in specs]
            for user in dict.fromkeys(s.superuser for s in specs):
                passwords = {s.superuser_password for s in specs if s.superuser == user}
                if len(passwords) == 1:
                    lines.append(("*", "*", "*", user, passwords.pop()))
            text = "".join(":".join(_pgpass_field(v) for v in line) + "\n" for line in lines)
            self._write_owned(self.pgpass, text)

    def _write_config(self, node: _Node) -> None:
        """Rewrite the backend's include file and pg_hba.conf from the spec (every start)."""
        spec = node.spec
        self._mkdir_owned(node.socket_dir)
        conf = node.data_dir / "postgresql.conf"
        include = f"include_if_exists = '{BACKEND_CONF}'"
        if include not in conf.read_text():
            with conf.open("a") as fh:
                fh.write(f"\n{include}\n")
        self._write_owned(node.data_dir / BACKEND_CONF, self._render_conf(node))
        method = self.auth_method
        self._write_owned(node.data_dir / "pg_hba.conf", (
            "# written by tests/support/antdb_nodes.py on every start\n"
            f"local all all {method}\n"
            f"local replication all {method}\n"
            f"host all all 127.0.0.0/8 {method}\n"
            f"host replication all 127.0.0.0/8 {method}\n"))

    def _render_conf(self, node: _Node) -> str:
        spec = node.spec
        settings: dict[str, object] = {
            "listen_addresses": spec.host,
            "port": spec.port,
            "unix_socket_directories": str(node.socket_dir),
            "agtm_host": spec.agtm_host,
            "agtm_port": spec.agtm_port,
            "max_prepared_transactions": 100,
            "password_encryption": "md5" if self.auth_method == "md5" else "scram-sha-256",
            "logging_collector": False,
        }
        for name, value in spec.parameters.items():
            if not _PARAM_NAME.match(str(name)):
                raise ValueError(f"{spec.name}: bad parameter name {name!r}")
            if name in _FIXED_PARAMS:
                log.warning("%s: ignoring parameter %s, the backend owns it", spec.name, name)
                continue
            settings[name] = value
        if int(str(settings["max_prepared_transactions"])) <= 0:
            raise ValueError(f"{spec.name}: AntDB needs max_prepared_transactions > 0")
        body = "".join(f"{k} = {_conf_value(v)}\n" for k, v in settings.items())
        return "# written by tests/support/antdb_nodes.py on every start\n" + body

    def _pg_ctl_start(self, node: _Node) -> None:
        spec = node.spec
        res = self._run([str(self.bindir / "pg_ctl"), "-Z", spec.role, "-D", str(node.data_dir),
                         "-l", str(node.data_dir / LOG_NAME), "-w", "-t", str(int(self.start_timeout)),
                         "start"], env={"PGPASSFILE": str(self.pgpass)}, timeout=self.start_timeout + 30)
        if res.returncode != 0:
            raise AntDBError(f"pg_ctl start of {spec.name} failed (rc={res.returncode}): "
                             f"{res.stderr.strip()[-500:]}\n--- {LOG_NAME} ---\n"
                             f"{_tail(node.data_dir / LOG_NAME)}")

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
            raise AntDBError(f"pg_ctl stop of {node.spec.name} failed (rc={res.returncode}): "
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
                    raise AntDBError(f"{spec.name} not accepting TCP on {spec.host}:{spec.port}: "
                                     f"{exc}\n--- {LOG_NAME} ---\n{_tail(node.data_dir / LOG_NAME)}")
                time.sleep(0.2)
