"""The vanilla PostgreSQL node backend and its AntDB shim, on a real 6-node cluster.

One gc, two coordinators and three datanodes on 127.0.21.x (this module's own range),
port 5432 each. The catalog holders' `pgxc_node` is filled the way the product fills it:
the planner's changes, applied one by one through `vanilla_apply_node_change`. Every
assertion is about what the servers answer, nothing is stubbed.
"""

from __future__ import annotations

import dataclasses
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest

from antdb_k8s.core.pgxc import ChangeKind, NodeChange, PgxcRow, desired_rows, plan_pgxc_changes
from antdb_k8s.core.smoke import SmokeSql
from antdb_k8s.core.sql import READ_PGXC_NODE_SQL, row_from_record
from antdb_k8s.core.topology import NodeAddress, NodeRole, Topology
from tests.support.nodes import NodeProcessSpec
from tests.support.pgnodes import VanillaNodeError, VanillaPostgresBackend, find_bindir, vanilla_apply_node_change

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

NAMESPACE = "pgnodes-test"
SUPERUSER = "antdb_admin"
PASSWORD = "Vanilla-Shim-Pw-7c1e"  # asserted absent from every server log at the end
ROWS = 3000
TOPOLOGY = Topology.of([
    NodeAddress("gc", NodeRole.GTM_COORD, "127.0.21.1"),
    NodeAddress("cn1", NodeRole.COORDINATOR, "127.0.21.11"),
    NodeAddress("cn2", NodeRole.COORDINATOR, "127.0.21.12"),
    NodeAddress("dn1", NodeRole.DATANODE, "127.0.21.21"),
    NodeAddress("dn2", NodeRole.DATANODE, "127.0.21.22"),
    NodeAddress("dn3", NodeRole.DATANODE, "127.0.21.23"),
])
NOBODY_HOST = "127.0.21.99"  # nothing listens here: a stale pgxc_node host


class FakeHook:
    """The one AntDBHook method `vanilla_apply_node_change` needs, with the cluster's credentials."""

    def connect_to(self, address: NodeAddress) -> psycopg.Connection:
        return psycopg.connect(host=address.host, port=address.port, user=SUPERUSER, password=PASSWORD,
                               dbname="postgres", autocommit=True, connect_timeout=10)


HOOK = FakeHook()


def node_spec(node: NodeAddress, **changes) -> NodeProcessSpec:
    gc = TOPOLOGY.gtm_coord
    spec = NodeProcessSpec(namespace=NAMESPACE, name=node.name, role=node.role.value, host=node.host,
                           port=node.port, agtm_host=gc.host, agtm_port=gc.port, superuser=SUPERUSER,
                           superuser_password=PASSWORD,
                           parameters={"max_prepared_transactions": 20, "adb_example_only_param": "on"})
    return dataclasses.replace(spec, **changes)


def query(node: NodeAddress, statement: str, params=None) -> list[tuple]:
    with HOOK.connect_to(node) as conn:
        cur = conn.execute(statement, params)
        return cur.fetchall() if cur.description else []


def read_rows(node: NodeAddress) -> list[PgxcRow]:
    return [row_from_record(r) for r in query(node, READ_PGXC_NODE_SQL)]


def restart(backend: VanillaPostgresBackend, node: NodeAddress, **changes) -> None:
    backend.stop_node(NAMESPACE, node.name)
    backend.start_node(node_spec(node, **changes))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Six running nodes with every catalog holder's pgxc_node filled; all stopped at the end."""
    try:
        find_bindir()
    except VanillaNodeError as exc:
        pytest.skip(f"no PostgreSQL server binaries: {exc}")
    base_dir = tmp_path_factory.mktemp("pgnodes")
    backend = VanillaPostgresBackend(str(base_dir))
    try:
        with ThreadPoolExecutor(max_workers=3) as pool:  # the kubelet starts pods concurrently too
            list(pool.map(lambda node: backend.start_node(node_spec(node)), TOPOLOGY.nodes))
        initial = {node.name: read_rows(node) for node in TOPOLOGY.nodes}
        for holder in TOPOLOGY.catalog_holders:
            plan = plan_pgxc_changes(TOPOLOGY, read_rows(holder), holder.name)
            for change in plan.changes:
                vanilla_apply_node_change(HOOK, holder, change)
            query(holder, "SELECT pgxc_pool_reload()")
        yield {"backend": backend, "initial": initial}
    finally:
        backend.stop_all()  # raises if a server would not stop: its data dir is then kept
        shutil.rmtree(base_dir, ignore_errors=True)


def by_name(name: str) -> NodeAddress:
    node = TOPOLOGY.by_name(name)
    assert node is not None
    return node


def test_initdb_self_row_on_every_node_and_datanodes_keep_it(cluster):
    for node in TOPOLOGY.nodes:
        assert cluster["initial"][node.name] == [PgxcRow(node.name, "C", "localhost", 5432)]
    for node in TOPOLOGY.datanodes:
        assert read_rows(node) == [PgxcRow(node.name, "C", "localhost", 5432)]


def test_catalog_holders_list_the_whole_cluster_with_shared_node_ids(cluster):
    want = sorted(desired_rows(TOPOLOGY).values(), key=lambda r: r.node_name)
    ids = {}
    for holder in TOPOLOGY.catalog_holders:
        assert read_rows(holder) == want
        ids[holder.name] = dict(query(holder, "SELECT node_name::text, node_id FROM pgxc_node"))
    assert ids["gc"] == ids["cn1"] == ids["cn2"]
    for node in TOPOLOGY.datanodes:
        assert query(node, "SELECT node_id, hashtext(node_name) FROM pgxc_node")[0] == (ids["gc"][node.name],) * 2


def smoke_counts(sql: SmokeSql) -> dict[str, int]:
    return {holder.name: query(holder, sql.count)[0][0] for holder in TOPOLOGY.catalog_holders}


def test_smoke_test_distributes_survives_restarts_and_drop_propagates(cluster):
    backend, gc = cluster["backend"], TOPOLOGY.gtm_coord
    sql = SmokeSql("pgnodes_smoke", ROWS)
    query(gc, sql.create)
    query(gc, sql.fill)
    per_datanode = dict(query(gc, sql.per_datanode))
    assert set(per_datanode) == {"dn1", "dn2", "dn3"} and all(n > 0 for n in per_datanode.values())
    assert sum(per_datanode.values()) == ROWS
    for dn in TOPOLOGY.datanodes:  # the rows really live on the datanodes
        assert query(dn, f"SELECT count(*) FROM {sql.table}")[0][0] == per_datanode[dn.name]
    assert smoke_counts(sql) == {"gc": ROWS, "cn1": ROWS, "cn2": ROWS}

    restart(backend, by_name("dn2"))
    restart(backend, gc)
    assert smoke_counts(sql) == {"gc": ROWS, "cn1": ROWS, "cn2": ROWS}
    assert dict(query(by_name("cn2"), sql.per_datanode)) == per_datanode

    query(gc, sql.drop)
    for node in TOPOLOGY.nodes:
        assert query(node, "SELECT to_regclass(%s)", (f"public.{sql.table}",)) == [(None,)], node.name


def test_stale_datanode_host_fails_queries_until_fixed_and_reloaded(cluster):
    gc, cn1, dn2 = TOPOLOGY.gtm_coord, by_name("cn1"), by_name("dn2")
    query(gc, "CREATE TABLE pgnodes_stale (id int, payload text)")
    try:
        query(gc, "INSERT INTO pgnodes_stale SELECT g, 'x' FROM generate_series(1, 300) g")
        good = next(r for r in read_rows(cn1) if r.node_name == "dn2")
        stale = dataclasses.replace(good, node_host=NOBODY_HOST)
        vanilla_apply_node_change(HOOK, cn1, NodeChange(ChangeKind.ALTER, stale, ("host",)))
        assert query(cn1, "SELECT count(*) FROM pgnodes_stale") == [(300,)]  # pool not reloaded yet
        assert query(cn1, "SELECT pgxc_pool_reload()") == [(True,)]
        with pytest.raises(psycopg.OperationalError, match="pgxc_dn2"):
            query(cn1, "SELECT count(*) FROM pgnodes_stale")
        assert query(gc, "SELECT count(*) FROM pgnodes_stale") == [(300,)]  # only cn1 is stale
        vanilla_apply_node_change(HOOK, cn1, NodeChange(ChangeKind.ALTER, good, ("host",)))
        query(cn1, "SELECT pgxc_pool_reload()")
        assert query(cn1, "SELECT count(*) FROM pgnodes_stale") == [(300,)]
        assert query(dn2, "SELECT count(*) FROM pgnodes_stale")[0][0] > 0
    finally:
        query(gc, "DROP TABLE IF EXISTS pgnodes_stale")


def test_node_ddl_refusals_match_antdb(cluster):
    gc = TOPOLOGY.gtm_coord
    before = read_rows(gc)
    dn2 = next(r for r in before if r.node_name == "dn2")
    with pytest.raises(psycopg.errors.SyntaxError, match="PGXC node dn2: two nodes cannot be primary"):
        vanilla_apply_node_change(HOOK, gc, NodeChange(ChangeKind.ALTER, dataclasses.replace(dn2, is_primary=True),
                                                       ("primary",)))
    dn9 = PgxcRow("dn9", "D", "127.0.21.29", 5432, is_primary=True)
    with pytest.raises(psycopg.errors.SyntaxError, match="two nodes cannot be primary"):
        vanilla_apply_node_change(HOOK, gc, NodeChange(ChangeKind.CREATE, dn9))
    with pytest.raises(psycopg.errors.DuplicateObject, match="PGXC Node dn2: object already defined"):
        vanilla_apply_node_change(HOOK, gc, NodeChange(ChangeKind.CREATE, dn2))
    for kind, fields in ((ChangeKind.ALTER, ("host",)), (ChangeKind.DROP, ())):
        with pytest.raises(psycopg.errors.UndefinedObject, match="PGXC Node dn9: object not defined"):
            vanilla_apply_node_change(HOOK, gc, NodeChange(kind, dn9, fields))
    with pytest.raises(psycopg.errors.SyntaxError, match="PGXC Node gc: cannot drop local node"):
        vanilla_apply_node_change(HOOK, gc, NodeChange(ChangeKind.DROP, PgxcRow("gc", "C", "127.0.21.1", 5432)))
    assert read_rows(gc) == before


def test_node_ddl_create_alter_drop_change_only_what_they_name(cluster):
    cn2 = by_name("cn2")
    row = PgxcRow("cn9", "C", "127.0.21.19", 5432)
    vanilla_apply_node_change(HOOK, cn2, NodeChange(ChangeKind.CREATE, row))
    assert query(cn2, "SELECT node_type::text, node_host::text, node_port, node_id = hashtext('cn9') "
                      "FROM pgxc_node WHERE node_name = 'cn9'") == [("C", "127.0.21.19", 5432, True)]
    moved = dataclasses.replace(row, node_host="127.0.21.18", node_port=6543)
    vanilla_apply_node_change(HOOK, cn2, NodeChange(ChangeKind.ALTER, moved, ("port",)))
    assert [r for r in read_rows(cn2) if r.node_name == "cn9"] == [dataclasses.replace(row, node_port=6543)]
    vanilla_apply_node_change(HOOK, cn2, NodeChange(ChangeKind.DROP, row))
    assert "cn9" not in {r.node_name for r in read_rows(cn2)}


def test_rows_written_through_any_coordinator_are_found_by_key_through_every_other(cluster):
    gc, cn1, cn2 = TOPOLOGY.gtm_coord, by_name("cn1"), by_name("cn2")
    query(cn1, "CREATE TABLE pgnodes_keys (k varchar(20), v int NOT NULL DEFAULT 7)")
    try:
        query(cn2, "INSERT INTO pgnodes_keys (k) SELECT 'key-' || g FROM generate_series(1, 200) g")
        for holder in (gc, cn1, cn2):
            assert query(holder, "SELECT k, v FROM pgnodes_keys WHERE k = 'key-42'") == [("key-42", 7)], holder.name
            assert query(holder, "SELECT count(DISTINCT xc_node_id) FROM pgnodes_keys") == [(3,)]
        with pytest.raises(psycopg.errors.NotNullViolation):
            query(gc, "INSERT INTO pgnodes_keys VALUES ('key-null', NULL)")
    finally:
        query(cn2, "DROP TABLE pgnodes_keys")
    assert query(gc, "SELECT to_regclass('public.pgnodes_keys')") == [(None,)]


def test_what_stays_local_and_what_is_refused(cluster):
    gc, dn1 = TOPOLOGY.gtm_coord, by_name("dn1")
    with HOOK.connect_to(gc) as conn:  # a temporary table is local to its session, as on AntDB
        conn.execute("CREATE TEMP TABLE pgnodes_tmp (id int)")
        conn.execute("INSERT INTO pgnodes_tmp VALUES (1)")
        assert conn.execute("SELECT count(*) FROM pgnodes_tmp").fetchall() == [(1,)]
    assert query(dn1, "SELECT count(*) FROM pg_class WHERE relname = 'pgnodes_tmp'") == [(0,)]
    query(dn1, "CREATE TABLE pgnodes_dn_only (id int)")  # a datanode does not distribute
    try:
        assert query(gc, "SELECT to_regclass('public.pgnodes_dn_only')") == [(None,)]
    finally:
        query(dn1, "DROP TABLE pgnodes_dn_only")
    with pytest.raises(psycopg.errors.FeatureNotSupported, match="cannot distribute"):
        query(gc, "CREATE TABLE pgnodes_pk (id int PRIMARY KEY)")
    with pytest.raises(psycopg.errors.DuplicateColumn, match="xc_node_id"):
        query(gc, "CREATE TABLE pgnodes_sys (id int, xc_node_id int)")
    for node in TOPOLOGY.nodes:
        assert query(node, "SELECT count(*) FROM pg_class WHERE relname IN ('pgnodes_pk', 'pgnodes_sys')") == [(0,)]


def test_settings_visible_in_pg_settings_and_agtm_rewritten_on_restart(cluster):
    backend, dn3 = cluster["backend"], by_name("dn3")
    settings_sql = ("SELECT name, setting FROM pg_settings "
                    "WHERE name IN ('pgxc_node_name', 'agtm_host', 'agtm_port') ORDER BY name")
    assert query(dn3, settings_sql) == [("agtm_host", "127.0.21.1"), ("agtm_port", "5432"), ("pgxc_node_name", "dn3")]
    assert query(dn3, "SELECT setting FROM pg_settings WHERE name = 'max_prepared_transactions'") == [("20",)]
    assert query(dn3, "SELECT setting FROM pg_settings WHERE name = 'adb_example_only_param'") == [("on",)]
    assert backend.ignored_parameters(NAMESPACE, "dn3") == {"adb_example_only_param": "on"}
    assert query(dn3, "SELECT version()")[0][0].startswith("PostgreSQL ")
    try:
        restart(backend, dn3, agtm_host="127.0.21.2", agtm_port=6666)
        assert query(dn3, settings_sql) == [("agtm_host", "127.0.21.2"), ("agtm_port", "6666"),
                                            ("pgxc_node_name", "dn3")]
    finally:
        restart(backend, dn3)
    assert query(dn3, settings_sql)[0] == ("agtm_host", "127.0.21.1")


def test_listens_only_on_its_own_address(cluster):
    assert query(TOPOLOGY.gtm_coord, "SELECT setting FROM pg_settings WHERE name = 'listen_addresses'") == [
        ("127.0.21.1",)]
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(host="127.0.21.98", port=5432, user=SUPERUSER, password=PASSWORD, dbname="postgres",
                        connect_timeout=5).close()
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(host="127.0.21.1", port=5432, user=SUPERUSER, password="wrong", dbname="postgres",
                        connect_timeout=5).close()


def test_destroy_data_forgets_the_node(cluster):
    backend = cluster["backend"]
    extra = NodeAddress("dn7", NodeRole.DATANODE, "127.0.21.27")
    backend.start_node(node_spec(extra))
    query(extra, "CREATE TABLE left_behind (id int)")
    backend.destroy_data(NAMESPACE, "dn7")
    assert not backend.data_dir(NAMESPACE, "dn7").exists()
    backend.start_node(node_spec(extra))
    try:
        assert query(extra, "SELECT to_regclass('public.left_behind')") == [(None,)]
        assert read_rows(extra) == [PgxcRow("dn7", "C", "localhost", 5432)]
    finally:
        backend.destroy_data(NAMESPACE, "dn7")


def test_password_never_reaches_a_server_log(cluster):
    logs = [cluster["backend"].log_file(NAMESPACE, node.name) for node in TOPOLOGY.nodes]
    assert all(path.exists() for path in logs)
    for path in logs:
        assert PASSWORD not in Path(path).read_text(errors="replace"), path
