"""Real AntDB nodes for the test-side kubelet: one server process per `NodeProcessSpec`.

`AntDBBackend` implements `sandbox.nodes.NodeBackend` on an installed AntDB: the
build of ADBSQL/AntDB a8a0374 that `scripts/ensure-antdb.sh` caches outside the checkout,
or `ANTDB_HOME`. It is the only node backend: node DDL, the pooler and the GTM are
exercised for real in every end-to-end test.

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

Data dirs, pg_ctl, locks, cloning and teardown live in `sandbox/pgserver.py` (plain
PostgreSQL-style process handling); this module holds only what AntDB needs on top.
"""

from __future__ import annotations

import logging
import os
import pwd
import re
import subprocess
from pathlib import Path

from sandbox.nodes import NodeProcessSpec
from sandbox.pgserver import (
    SERVICE_OS_USER,
    PostgresNodeError,
    PostgresStyleBackend,
    ServerNode,
    check_parameter_name,
    conf_value,
    render_settings,
)

log = logging.getLogger(__name__)

ANTDB_HOME_ENV = "ANTDB_HOME"
INTERNAL_ROLE = "postgres"        # AntDB's own node-to-node connections log in as this role
BACKEND_CONF = "antdb_backend.conf"
_FIXED_PARAMS = frozenset({
    "listen_addresses", "port", "unix_socket_directories", "agtm_host", "agtm_port",
})


_found_home: list[str] = []   # the first successful lookup, kept for the life of the process


def _built_home() -> tuple[str, str]:
    """(the cached build of scripts/ensure-antdb.sh or "", why not); never builds.

    A found build is remembered: it does not move during a session, and asking the script
    again from a busy test process only adds ways to fail (fork under load, descriptors)."""
    if _found_home:
        return _found_home[0], ""
    script = Path(__file__).resolve().parents[1] / "scripts" / "ensure-antdb.sh"
    try:
        out = subprocess.run([str(script), "--where"], capture_output=True, text=True, timeout=120, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return "", f"{script} --where could not run: {exc}"
    if out.returncode != 0:
        return "", f"{script} --where exited {out.returncode}: {out.stderr.strip()[-500:]}"
    _found_home.append(out.stdout.strip())
    return _found_home[0], ""


def antdb_home() -> str:
    """The AntDB installation the tests run: `ANTDB_HOME`, else the cached build.

    Raises `AntDBUnavailable` with what to do when there is none: AntDB is the only node
    backend, so a machine without it cannot run the end-to-end tests at all, and saying so
    beats skipping them (`make test` builds it first).
    """
    home, why = os.environ.get(ANTDB_HOME_ENV, ""), ""
    if not home:
        home, why = _built_home()
    if not home:
        raise AntDBUnavailable(f"no AntDB installation: {ANTDB_HOME_ENV} is not set and scripts/ensure-antdb.sh "
                               "has not built one. Run `make test` (it builds AntDB once, ~10 min) or "
                               f"`scripts/ensure-antdb.sh`, or point ANTDB_HOME at an installed AntDB ({why})")
    problem = _installation_problem(home)
    if problem:
        raise AntDBUnavailable(problem)
    return home


def _installation_problem(home: str) -> str:
    for tool in ("initdb", "pg_ctl", "postgres"):
        path = Path(home, "bin", tool)
        if not (path.is_file() and os.access(path, os.X_OK)):
            return f"{ANTDB_HOME_ENV}={home} has no executable bin/{tool}"
    try:
        out = subprocess.run([str(Path(home, "bin", "initdb")), "--help"], capture_output=True,
                             text=True, timeout=30, check=False).stdout
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{ANTDB_HOME_ENV}={home}: bin/initdb --help failed: {exc}"
    if "--nodename" not in out:
        return f"{ANTDB_HOME_ENV}={home}: bin/initdb has no --nodename, not AntDB"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(SERVICE_OS_USER)
        except KeyError:
            return f"running as root but there is no '{SERVICE_OS_USER}' OS user to run AntDB"
    return ""


def antdb_version(home: str) -> str:
    """`postgres --version` of the installation, e.g. `postgres (PostgreSQL) 11.6 ADB 5.0.0 ...`."""
    out = subprocess.run([str(Path(home, "bin", "postgres")), "--version"], capture_output=True, text=True,
                         timeout=30, check=False)
    return out.stdout.strip()


class AntDBUnavailable(RuntimeError):
    """No usable AntDB installation; the message says how to get one."""


class AntDBError(PostgresNodeError):
    """A node failed to init, start or stop; the message carries the server log tail."""


def _pgpass_field(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace(":", "\\:")


class AntDBBackend(PostgresStyleBackend):
    """Runs AntDB nodes under `base_dir`, one data dir per (namespace, name).

    Layout and process handling are `PostgresStyleBackend`'s, plus `base_dir/pgpass`
    (the node-to-node password file, see the module docstring).

    `auth_method` is what pg_hba.conf requires for 127.0.0.0/8 (TCP, replication
    included) and the unix socket; `password_encryption` follows it.
    """

    error_class = AntDBError
    label = "AntDB"
    written_by = "sandbox/antdb_nodes.py"
    backend_conf = BACKEND_CONF
    initdb_timeout = 300.0

    def __init__(self, antdb_home: str, base_dir: str, *, auth_method: str = "scram-sha-256",
                 start_timeout: float = 90.0, stop_timeout: float = 60.0) -> None:
        if auth_method not in ("scram-sha-256", "md5", "trust"):
            raise ValueError(f"unsupported auth_method {auth_method!r}")
        super().__init__(base_dir, Path(antdb_home, "bin"), start_timeout=start_timeout,
                         stop_timeout=stop_timeout)
        self.auth_method = auth_method
        self.pgpass = self.base_dir / "pgpass"

    # ----------------------------------------------------------------- hooks
    def _initdb_options(self, spec: NodeProcessSpec) -> list[str]:
        """--nodename is mandatory in AntDB: it becomes `pgxc_node_name`."""
        auth = self.auth_method
        return ["--nodename", spec.name, f"--auth-host={auth}", f"--auth-local={auth}"]

    def _initdb(self, node: ServerNode) -> None:
        super()._initdb(node)
        spec = node.spec
        if spec.superuser != INTERNAL_ROLE:
            log.warning("%s: superuser %s is not %s; AntDB's rxact manager logs in to gc as %s, "
                        "so in-doubt two-phase transactions cannot be resolved automatically",
                        spec.name, spec.superuser, INTERNAL_ROLE, INTERNAL_ROLE)

    def _before_config(self, node: ServerNode) -> None:
        self._write_pgpass()

    def _pg_ctl_start_options(self, spec: NodeProcessSpec) -> list[str]:
        """The node type is chosen at start (`-Z`), it is not a config setting."""
        return ["-Z", spec.role]

    def _server_env(self) -> dict[str, str]:
        """The password file for the connections AntDB opens without a password."""
        return {"PGPASSFILE": str(self.pgpass)}

    def _basebackup_connection(self, source: ServerNode, target: str) -> tuple[str, list[str]]:
        """Over TCP (pg_hba wants a password, found in pgpass); AntDB's pg_basebackup insists
        on --nodename (it names tablespace directories)."""
        return source.spec.host, ["--nodename", target]

    def _after_clone(self, target_dir: Path, target: str) -> None:
        """As AntDB's manager does for "append coordinator": `pgxc_node_name` becomes target
        in postgresql.conf, so the copy starts under its own name with source's catalog
        (pgxc_node included: source's self row, no row for target yet)."""
        self._set_node_name(target_dir, target)

    def _after_destroy(self) -> None:
        self._write_pgpass()

    def _unregistered(self, namespace: str, name: str) -> ServerNode | None:
        """A data dir left by an earlier backend instance can still be stopped, cloned, destroyed."""
        if not self.data_dir(namespace, name).is_dir():
            return None
        stub = NodeProcessSpec(namespace=namespace, name=name, role="datanode", host="", port=0,
                               agtm_host="", agtm_port=0, superuser="", superuser_password="")
        return ServerNode(spec=stub, data_dir=self.data_dir(namespace, name),
                          socket_dir=self._socket_dir(namespace, name, 0))

    # ----------------------------------------------------------------- files
    def _set_node_name(self, data_dir: Path, name: str) -> None:
        """Replace initdb's `pgxc_node_name = '...'` line (the node's identity is a postmaster GUC)."""
        conf = data_dir / "postgresql.conf"
        lines = [line for line in conf.read_text().splitlines()
                 if not re.match(r"\s*pgxc_node_name\s*=", line)]
        lines.append(f"pgxc_node_name = {conf_value(name)}")
        self._write_owned(conf, "\n".join(lines) + "\n")

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

    def _hba_rules(self) -> str:
        method = self.auth_method
        return (f"local all all {method}\n"
                f"local replication all {method}\n"
                f"host all all 127.0.0.0/8 {method}\n"
                f"host replication all 127.0.0.0/8 {method}\n")

    def _render_conf(self, node: ServerNode) -> str:
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
            check_parameter_name(spec.name, name)
            if name in _FIXED_PARAMS:
                log.warning("%s: ignoring parameter %s, the backend owns it", spec.name, name)
                continue
            settings[name] = value
        if int(str(settings["max_prepared_transactions"])) <= 0:
            raise ValueError(f"{spec.name}: AntDB needs max_prepared_transactions > 0")
        return render_settings(settings)
