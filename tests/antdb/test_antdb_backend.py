"""The real-AntDB backend runs a working distributed cluster: 1 gc + 1 cn + 2 dn on loopback.

On the AntDB build `make test` caches (or ANTDB_HOME). What it proves:
nodes start with the right identity and GTM settings, node DDL wires pgxc_node, data is
hash-distributed over both datanodes through the password-authenticated pooler, gc and
cn1 agree, and everything survives a gc restart.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import psycopg
import pytest

from sandbox.antdb_nodes import AntDBBackend, antdb_home
from sandbox.nodes import NodeProcessSpec

pytestmark = [pytest.mark.antdb, pytest.mark.timeout(600)]

NAMESPACE = "antdb-test"
PASSWORD = "t3st-Secret:with\\odd'chars"
GC_HOST = "127.0.32.1"
NODES = {  # name -> (role, host); start order gc, datanodes, coordinators
    "gc": ("gtm_coord", GC_HOST),
    "dn1": ("datanode", "127.0.32.21"),
    "dn2": ("datanode", "127.0.32.22"),
    "cn1": ("coordinator", "127.0.32.11"),
}
CATALOG_HOLDERS = ("gc", "cn1")
ROWS = 10000


def _spec(name: str) -> NodeProcessSpec:
    role, host = NODES[name]
    return NodeProcessSpec(namespace=NAMESPACE, name=name, role=role, host=host, port=5432,
                           agtm_host=GC_HOST, agtm_port=5432, superuser="postgres",
                           superuser_password=PASSWORD, parameters={"shared_buffers": "32MB"})


def _connect(name: str) -> psycopg.Connection:
    return psycopg.connect(host=NODES[name][1], port=5432, user="postgres", password=PASSWORD,
                           dbname="postgres", autocommit=True, connect_timeout=10)


def _node_ddl(holder: str) -> list[str]:
    """What the reconciler would run on one catalog holder: ALTER self, CREATE the rest."""
    stmts = []
    for name, (role, host) in NODES.items():
        opts = [f"HOST='{host}'", "PORT=5432"]
        if role == "gtm_coord":
            opts.append("GTM=true")
        if name == "dn1":
            opts += ["PRIMARY=true", "PREFERRED=true"]
        if name == holder:
            stmts.append(f'ALTER NODE "{name}" WITH ({", ".join(opts)})')
        else:
            node_type = "datanode" if role == "datanode" else "coordinator"
            stmts.append(f'CREATE NODE "{name}" WITH (TYPE=\'{node_type}\', {", ".join(opts)})')
    return stmts


def _retry(fn, timeout: float = 60.0):
    """A coordinator reconnects to a restarted gc by itself, but not instantly."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return fn()
        except psycopg.Error:
            if time.monotonic() >= deadline:
                raise
            time.sleep(1.0)


def _snapshot_taken(name: str) -> None:
    """A query on `name` itself, which needs a snapshot from its stream from gc.

    AntDB a8a0374 (upstream, not this package): a node whose snapshot stream reconnects to a
    restarted gc after a coordinator's transaction committed starts from gc's own last
    completed xid, so it waits for that commit to "start" and fails reading its rows
    ("local committed but global uncommitted transaction") until a later commit. Waiting
    for every node's stream before writing is what a restart needs.
    """
    with _connect(name) as conn:
        conn.execute("SELECT count(*) FROM pg_class").fetchone()


def _count(name: str, table: str = "test01") -> int:
    with _connect(name) as conn:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def _per_datanode(name: str) -> dict[str, int]:
    with _connect(name) as conn:
        rows = conn.execute(
            "SELECT b.node_name, count(*) FROM test01 a, pgxc_node b "
            "WHERE a.xc_node_id = b.node_id GROUP BY b.node_name").fetchall()
    return dict(rows)


def _wire_and_load() -> None:
    """Node DDL on every catalog holder (autocommit, one statement each), then the smoke table."""
    for holder in CATALOG_HOLDERS:
        with _connect(holder) as conn:
            for stmt in _node_ddl(holder):
                conn.execute(stmt)
            assert conn.execute("SELECT pgxc_pool_reload()").fetchone()[0] is True
    with _connect("cn1") as conn:
        conn.execute("CREATE TABLE test01 (id int, name text)")
        conn.execute(f"INSERT INTO test01 SELECT id, md5(id::text) FROM generate_series(1, {ROWS}) id")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[AntDBBackend]:
    """1 gc + 2 dn + 1 cn, started in AntDB's order; pgxc_node untouched."""
    backend = AntDBBackend(antdb_home(), str(tmp_path_factory.mktemp("antdb")))
    try:
        for name in NODES:
            backend.start_node(_spec(name))
        yield backend
    finally:
        backend.stop_all()


@pytest.fixture(scope="module")
def loaded(cluster) -> AntDBBackend:
    _wire_and_load()
    return cluster


def test_nodes_carry_their_identity_and_gtm_settings(cluster):
    for name, (role, _host) in NODES.items():
        with _connect(name) as conn:
            settings = dict(conn.execute(
                "SELECT name, setting FROM pg_settings WHERE name IN "
                "('pgxc_node_name','agtm_host','agtm_port','adb_node_type','max_prepared_transactions')"
            ).fetchall())
        assert settings["pgxc_node_name"] == name
        assert settings["adb_node_type"] == role
        assert (settings["agtm_host"], settings["agtm_port"]) == (GC_HOST, "5432")
        assert int(settings["max_prepared_transactions"]) > 0
        assert (cluster.data_dir(NAMESPACE, name) / "server.log").is_file()


def test_node_ddl_wires_catalogs_and_data_is_distributed(loaded):
    for holder in CATALOG_HOLDERS:
        with _connect(holder) as conn:
            rows = conn.execute("SELECT node_name, node_type, node_host, node_port, nodeis_primary, "
                                "nodeis_gtm FROM pgxc_node ORDER BY node_name").fetchall()
        assert rows == [("cn1", "C", "127.0.32.11", 5432, False, False),
                        ("dn1", "D", "127.0.32.21", 5432, True, False),
                        ("dn2", "D", "127.0.32.22", 5432, False, False),
                        ("gc", "C", GC_HOST, 5432, False, True)]
    spread = _per_datanode("cn1")
    assert set(spread) == {"dn1", "dn2"} and all(n > 0 for n in spread.values())
    assert sum(spread.values()) == ROWS
    assert _count("gc") == _count("cn1") == ROWS


def test_cluster_survives_gc_restart(loaded):
    before = _per_datanode("gc")
    assert sum(before.values()) == ROWS
    loaded.stop_node(NAMESPACE, "gc")
    with pytest.raises(psycopg.OperationalError):
        _connect("gc").close()
    for name in ("cn1", "dn1", "dn2"):
        with pytest.raises(psycopg.Error, match="GTMCOORD"):
            _snapshot_taken(name)  # every query on every node needs a GTM snapshot
    loaded.start_node(_spec("gc"))
    for name in NODES:
        _retry(lambda: _snapshot_taken(name))  # each node's snapshot stream is back
    assert _retry(lambda: _count("gc")) == ROWS
    assert _retry(lambda: _per_datanode("cn1")) == before
    with _connect("cn1") as conn:
        _retry(lambda: conn.execute("CREATE TABLE test02 AS SELECT id FROM generate_series(1, 100) id"))
    assert _retry(lambda: _count("gc", "test02")) == 100


def test_backup_sync_and_restore_give_a_new_coordinator_the_catalog_and_rows(loaded):
    """What the pgBackRest pods do in a clone (sandbox/sim/backrest.py): an online backup of
    cn1 into its repository, a repository sync, a restore into a new data dir, started as cn2."""
    backend = loaded
    with _connect("cn1") as conn:
        conn.execute("CREATE TABLE after_backup_check (id int)")
    repo, synced = backend.repo_dir(NAMESPACE, "cn1-pgbr-repo"), backend.repo_dir(NAMESPACE, "cn2-pgbr-repo")
    backend.backup_data(NAMESPACE, "cn1", repo / "backup" / "000001F")
    assert _count("cn1") == ROWS                       # the source kept serving
    backend.copy_tree(repo, synced)
    backend.restore_data(NAMESPACE, "cn2", synced / "backup" / "000001F")
    NODES["cn2"] = ("coordinator", "127.0.32.12")
    try:
        backend.start_node(_spec("cn2"))
        with _connect("cn2") as conn:
            assert conn.execute("SHOW pgxc_node_name").fetchone()[0] == "cn2"
            tables = {r[0] for r in conn.execute("SELECT relname FROM pg_class WHERE relkind = 'r'")}
        assert {"test01", "after_backup_check"} <= tables
        assert _retry(lambda: _count("cn2")) == ROWS
    finally:
        backend.stop_node(NAMESPACE, "cn2")
        del NODES["cn2"]
    with _connect("cn1") as conn:
        conn.execute("DROP TABLE after_backup_check")
