"""Rendering plans as AntDB node DDL, and reading pgxc_node records back."""

from __future__ import annotations

import pytest

from antdb_k8s.core.names import InvalidName
from antdb_k8s.core.pgxc import ChangeKind, NodeChange, PgxcPlan, PgxcRow, plan_pgxc_changes
from antdb_k8s.core.sql import READ_PGXC_NODE_SQL, render_node_change, render_plan, row_from_record
from antdb_k8s.core.topology import NodeAddress, NodeRole, Topology

GC = PgxcRow("gc", "C", "127.0.10.1", 5432, is_gtm=True)
CN1 = PgxcRow("cn1", "C", "127.0.10.11", 5432)
DN1 = PgxcRow("dn1", "D", "127.0.10.21", 5432, is_primary=True)
DN2 = PgxcRow("dn2", "D", "127.0.10.22", 5432)


def create(row: PgxcRow) -> NodeChange:
    return NodeChange(ChangeKind.CREATE, row)


def alter(row: PgxcRow, *fields: str) -> NodeChange:
    return NodeChange(ChangeKind.ALTER, row, fields)


def topology() -> Topology:
    return Topology.of([
        NodeAddress("gc", NodeRole.GTM_COORD, "127.0.10.1"),
        NodeAddress("cn1", NodeRole.COORDINATOR, "127.0.10.11"),
        NodeAddress("cn-a", NodeRole.COORDINATOR, "127.0.10.12"),
        NodeAddress("dn1", NodeRole.DATANODE, "127.0.10.21"),
        NodeAddress("dn2", NodeRole.DATANODE, "127.0.10.22"),
    ])


def test_create_datanode():
    assert render_node_change(create(DN1)) == (
        "CREATE NODE \"dn1\" WITH (TYPE = 'datanode', HOST = '127.0.10.21', PORT = 5432, "
        "PRIMARY = true, PREFERRED = false)"
    )
    assert render_node_change(create(DN2)).endswith("PRIMARY = false, PREFERRED = false)")


def test_create_gc_carries_gtm_and_no_datanode_flags():
    assert render_node_change(create(GC)) == (
        "CREATE NODE \"gc\" WITH (TYPE = 'coordinator', HOST = '127.0.10.1', PORT = 5432, GTM = true)"
    )


def test_create_coordinator_is_minimal():
    assert render_node_change(create(CN1)) == (
        "CREATE NODE \"cn1\" WITH (TYPE = 'coordinator', HOST = '127.0.10.11', PORT = 5432)"
    )


def test_create_accepts_a_service_dns_name():
    row = PgxcRow("cn1", "C", "cn1.pgouser1.svc.cluster.local", 5432)
    assert "HOST = 'cn1.pgouser1.svc.cluster.local'" in render_node_change(create(row))


def test_create_datanode_slave_is_refused():
    with pytest.raises(ValueError, match="type 'E' is not supported"):
        render_node_change(create(PgxcRow("dn1s", "E", "127.0.10.31", 5432)))


def test_alter_renders_only_the_named_fields():
    assert render_node_change(alter(CN1, "host", "port")) == (
        "ALTER NODE \"cn1\" WITH (HOST = '127.0.10.11', PORT = 5432)"
    )
    assert render_node_change(alter(DN1, "primary")) == 'ALTER NODE "dn1" WITH (PRIMARY = true)'
    assert render_node_change(alter(GC, "gtm")) == 'ALTER NODE "gc" WITH (GTM = true)'


def test_alter_fields_render_in_canonical_order():
    assert render_node_change(alter(DN1, "preferred", "host")) == (
        "ALTER NODE \"dn1\" WITH (HOST = '127.0.10.21', PREFERRED = false)"
    )


@pytest.mark.parametrize("fields,message", [((), "names no field"), (("type",), "unknown field")])
def test_alter_without_valid_fields_is_refused(fields, message):
    with pytest.raises(ValueError, match=message):
        render_node_change(alter(CN1, *fields))


def test_drop():
    assert render_node_change(NodeChange(ChangeKind.DROP, PgxcRow("cn3", "C", "127.0.10.13", 5432))) == 'DROP NODE "cn3"'


def test_names_are_quoted_and_embedded_quotes_doubled():
    assert render_node_change(create(PgxcRow("cn-a", "C", "127.0.10.12", 5432))).startswith('CREATE NODE "cn-a" WITH')
    drop = NodeChange(ChangeKind.DROP, PgxcRow('cn"x', "C", "127.0.10.13", 5432))
    assert render_node_change(drop) == 'DROP NODE "cn""x"'


@pytest.mark.parametrize("host", ["'; DROP TABLE x; --", "127.0.10.1' , GTM = true, HOST = '127.0.10.2", "a\\", ""])
def test_hostile_host_is_rejected_in_create_and_alter(host):
    row = PgxcRow("cn1", "C", host, 5432)
    for change in (create(row), alter(row, "host")):
        with pytest.raises(InvalidName, match="node cn1 host"):
            render_node_change(change)


@pytest.mark.parametrize("port", [0, 65536, -5432])
def test_port_out_of_range_is_rejected(port):
    with pytest.raises(InvalidName, match=r"node dn2 port: .*out of range"):
        render_node_change(alter(PgxcRow("dn2", "D", "127.0.10.22", port), "port"))


def test_name_with_control_character_is_rejected():
    with pytest.raises(InvalidName):
        render_node_change(NodeChange(ChangeKind.DROP, PgxcRow("cn3\n; DROP", "C", "127.0.10.13", 5432)))


def test_no_statement_has_a_trailing_semicolon():
    plan = plan_pgxc_changes(topology(), [PgxcRow("cn1", "C", "localhost", 5432)], "cn1")
    assert all(not s.rstrip().endswith(";") for s in render_plan(plan))


def test_render_plan_fresh_coordinator():
    plan = plan_pgxc_changes(topology(), [PgxcRow("cn1", "C", "localhost", 5432)], "cn1")
    assert render_plan(plan) == [
        "ALTER NODE \"cn1\" WITH (HOST = '127.0.10.11')",
        "CREATE NODE \"gc\" WITH (TYPE = 'coordinator', HOST = '127.0.10.1', PORT = 5432, GTM = true)",
        "CREATE NODE \"cn-a\" WITH (TYPE = 'coordinator', HOST = '127.0.10.12', PORT = 5432)",
        "CREATE NODE \"dn1\" WITH (TYPE = 'datanode', HOST = '127.0.10.21', PORT = 5432, PRIMARY = true, PREFERRED = false)",
        "CREATE NODE \"dn2\" WITH (TYPE = 'datanode', HOST = '127.0.10.22', PORT = 5432, PRIMARY = false, PREFERRED = false)",
        "SELECT pgxc_pool_reload()",
    ]


def test_render_plan_noop_is_empty():
    plan = plan_pgxc_changes(topology(), [], "gc")
    current = [c.row for c in plan.changes]
    assert render_plan(plan_pgxc_changes(topology(), current, "gc")) == []


def test_render_plan_with_blockers_still_renders_for_dry_runs():
    current = [
        PgxcRow("gc", "C", "127.0.10.1", 5432, is_gtm=True),
        PgxcRow("dn9", "D", "127.0.10.29", 5432),
    ]
    plan = plan_pgxc_changes(topology(), current, "gc")
    assert plan.blockers
    statements = render_plan(plan)
    assert statements[-1] == "SELECT pgxc_pool_reload()"
    assert not any("dn9" in s for s in statements)


def test_render_plan_from_a_deserialised_plan_revalidates():
    tampered = {
        "target": "gc",
        "changes": [{"kind": "alter", "fields": ["host"],
                     "row": {"node_name": "dn1", "node_type": "D", "node_host": "x'; DROP TABLE t; --",
                             "node_port": 5432}}],
        "blockers": [],
    }
    with pytest.raises(InvalidName):
        render_plan(PgxcPlan.from_dict(tampered))


def test_read_query_selects_columns_in_row_from_record_order():
    columns = READ_PGXC_NODE_SQL.split("SELECT ", 1)[1].split(" FROM", 1)[0].split(", ")
    assert columns == ["node_name", "node_type", "node_host", "node_port",
                       "nodeis_primary", "nodeis_preferred", "nodeis_gtm"]
    assert READ_PGXC_NODE_SQL.endswith("FROM pgxc_node ORDER BY node_name")


def test_row_from_record_with_adapted_types():
    assert row_from_record(("dn1", "D", "127.0.10.21", 5432, True, False, False)) == DN1


def test_row_from_record_with_text_protocol_values():
    record = (b"gc", "C", "127.0.10.1", "5432", "f", "f", "t")
    assert row_from_record(record) == GC


@pytest.mark.parametrize(
    "record,message",
    [
        (("dn1", "D", "127.0.10.21", 5432, True, False), "expected 7 columns"),
        (("dn1", "D", "127.0.10.21", 5432, "maybe", False, False), "nodeis_primary"),
        (("dn1", "D", "127.0.10.21", True, True, False, False), "node_port"),
        ((None, "D", "127.0.10.21", 5432, True, False, False), "node_name"),
    ],
)
def test_row_from_record_rejects_malformed_records(record, message):
    with pytest.raises(ValueError, match=message):
        row_from_record(record)


def test_rows_read_back_make_the_plan_a_noop():
    """Round trip: what CREATE registers, read back through row_from_record, needs nothing."""
    created = [c.row for c in plan_pgxc_changes(topology(), [], "cn1").changes]
    records = [(r.node_name, r.node_type, r.node_host, r.node_port, r.is_primary, r.is_preferred, r.is_gtm)
               for r in created]
    assert plan_pgxc_changes(topology(), [row_from_record(rec) for rec in records], "cn1").is_noop
