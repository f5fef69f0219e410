"""The pgxc_node planner: Kubernetes is the truth, existing nodes are only ever ALTERed."""

from __future__ import annotations

import json
import random

import pytest

from antdb_k8s.core.pgxc import (
    ChangeKind,
    NodeChange,
    PgxcPlan,
    PgxcRow,
    desired_rows,
    diff_summary,
    plan_pgxc_changes,
    row_differences,
)
from antdb_k8s.core.topology import NodeAddress, NodeRole, Topology

HOSTS = {
    "gc": "127.0.10.1",
    "cn1": "127.0.10.11",
    "cn2": "127.0.10.12",
    "dn1": "127.0.10.21",
    "dn2": "127.0.10.22",
    "dn3": "127.0.10.23",
}


def role_of(name: str) -> NodeRole:
    return {"gc": NodeRole.GTM_COORD, "cn": NodeRole.COORDINATOR, "dn": NodeRole.DATANODE}[name[:2]]


def topology(hosts: dict[str, str] = HOSTS) -> Topology:
    return Topology.of(NodeAddress(name, role_of(name), host) for name, host in hosts.items())


def row(name: str, host: str | None = None, port: int = 5432, **flags) -> PgxcRow:
    """A catalog row shaped the way a correctly registered node looks, with overrides."""
    defaults = {"is_primary": name == "dn1", "is_gtm": name == "gc"}
    defaults.update(flags)
    node_type = defaults.pop("node_type", "D" if name.startswith("dn") else "C")
    return PgxcRow(name, node_type, host or HOSTS[name], port, **defaults)


def reconciled() -> list[PgxcRow]:
    return [row(name) for name in HOSTS]


def kinds(plan: PgxcPlan) -> list[tuple[str, str]]:
    return [(c.kind.value, c.row.node_name) for c in plan.changes]


def change_for(plan: PgxcPlan, name: str) -> NodeChange:
    (change,) = [c for c in plan.changes if c.row.node_name == name]
    return change


# --------------------------------------------------------------------------- desired rows

def test_desired_rows_match_the_runbook_catalog():
    rows = desired_rows(topology())
    assert list(rows) == ["gc", "cn1", "cn2", "dn1", "dn2", "dn3"]
    assert rows["gc"] == PgxcRow("gc", "C", "127.0.10.1", 5432, False, False, True)
    assert rows["cn2"] == PgxcRow("cn2", "C", "127.0.10.12", 5432, False, False, False)
    assert rows["dn1"] == PgxcRow("dn1", "D", "127.0.10.21", 5432, True, False, False)
    assert [r.node_name for r in rows.values() if r.is_primary] == ["dn1"]
    assert not any(r.is_preferred for r in rows.values())


def test_primary_is_lowest_numbered_datanode_not_lexically_first():
    hosts = {"gc": "127.0.10.1", "cn1": "127.0.10.11", "dn10": "127.0.10.30", "dn2": "127.0.10.22"}
    rows = desired_rows(topology(hosts))
    assert [r.node_name for r in rows.values() if r.is_primary] == ["dn2"]


# --------------------------------------------------------------------------- scenarios

def test_empty_catalog_creates_everything_including_self():
    plan = plan_pgxc_changes(topology(), [], "cn1")
    assert kinds(plan) == [("create", n) for n in ["gc", "cn1", "cn2", "dn1", "dn2", "dn3"]]
    assert plan.blockers == ()
    assert plan.reload_pool
    assert change_for(plan, "dn1").row.is_primary


def test_fresh_cluster_alters_self_row_and_creates_the_rest():
    initdb_self = PgxcRow("cn1", "C", "localhost", 5432)
    plan = plan_pgxc_changes(topology(), [initdb_self], "cn1")
    assert kinds(plan) == [("alter", "cn1")] + [("create", n) for n in ["gc", "cn2", "dn1", "dn2", "dn3"]]
    self_change = plan.changes[0]
    assert self_change.fields == ("host",)
    assert self_change.row.node_host == "127.0.10.11"
    assert "localhost" in self_change.reason and "own row" in self_change.reason


def test_fresh_gc_alters_its_own_row_with_host_and_gtm():
    plan = plan_pgxc_changes(topology(), [PgxcRow("gc", "C", "localhost", 5432)], "gc")
    assert plan.changes[0].kind is ChangeKind.ALTER
    assert plan.changes[0].row.node_name == "gc"
    assert plan.changes[0].fields == ("host", "gtm")
    assert ("create", "gc") not in kinds(plan)


def test_already_reconciled_is_a_noop():
    plan = plan_pgxc_changes(topology(), reconciled(), "cn2")
    assert plan.is_noop
    assert not plan.reload_pool
    assert diff_summary(plan) == ["pgxc_node on cn2: up to date with Kubernetes, nothing to do"]


def test_moved_datanode_host_is_altered_never_recreated():
    current = [r if r.node_name != "dn2" else row("dn2", host="127.0.20.22") for r in reconciled()]
    plan = plan_pgxc_changes(topology(), current, "gc")
    assert kinds(plan) == [("alter", "dn2")]
    assert plan.changes[0].fields == ("host",)
    assert plan.changes[0].row.node_host == "127.0.10.22"
    assert "'127.0.20.22' -> '127.0.10.22'" in plan.changes[0].reason


def test_moved_port_is_altered_alone():
    current = [r if r.node_name != "cn2" else row("cn2", port=6432) for r in reconciled()]
    plan = plan_pgxc_changes(topology(), current, "cn1")
    assert kinds(plan) == [("alter", "cn2")]
    assert plan.changes[0].fields == ("port",)
    assert plan.changes[0].row.node_port == 5432


def test_every_node_moved_only_alters():
    moved = {n: h.replace("127.0.10.", "127.0.30.") for n, h in HOSTS.items()}
    plan = plan_pgxc_changes(topology(moved), reconciled(), "cn1")
    assert {c.kind for c in plan.changes} == {ChangeKind.ALTER}
    assert plan.changes[0].row.node_name == "cn1"  # self row first
    assert len(plan.changes) == len(HOSTS)


def test_extra_coordinator_is_dropped_last():
    current = reconciled() + [row("cn3", host="127.0.10.13")]
    current[1] = row("cn1", host="localhost")
    plan = plan_pgxc_changes(topology(), current, "gc")
    assert kinds(plan) == [("alter", "cn1"), ("drop", "cn3")]
    assert "Kubernetes no longer has it" in plan.changes[-1].reason
    assert plan.blockers == ()


def test_extra_datanode_blocks_and_is_never_dropped():
    current = reconciled() + [row("dn4", host="127.0.10.24", is_primary=False)]
    current[0] = row("gc", host="127.0.20.1")
    plan = plan_pgxc_changes(topology(), current, "cn1")
    assert all(c.kind is not ChangeKind.DROP for c in plan.changes)
    assert kinds(plan) == [("alter", "gc")]  # the full picture is still planned
    (blocker,) = plan.blockers
    assert blocker.startswith("datanode dn4 is in pgxc_node on cn1 but not in Kubernetes")
    assert "its data would be lost" in blocker
    assert not plan.is_noop


def test_extra_datanode_slave_blocks_too():
    plan = plan_pgxc_changes(topology(), reconciled() + [row("dn1s", host="127.0.10.31", node_type="E")], "gc")
    assert plan.changes == ()
    assert plan.blockers[0].startswith("datanode slave dn1s")


def test_extra_row_of_unknown_type_blocks():
    plan = plan_pgxc_changes(topology(), reconciled() + [row("x1", host="127.0.10.40", node_type="Z")], "gc")
    assert plan.changes == ()
    assert "unknown node_type 'Z'" in plan.blockers[0]


def test_type_conflict_blocks_without_touching_the_row():
    current = [r if r.node_name != "dn3" else row("dn3", node_type="C", is_primary=False) for r in reconciled()]
    plan = plan_pgxc_changes(topology(), current, "cn1")
    assert plan.changes == ()
    (blocker,) = plan.blockers
    assert "dn3 is registered in pgxc_node on cn1 as a coordinator but Kubernetes runs it as a datanode" in blocker


def test_coordinator_registered_as_datanode_blocks():
    current = [r if r.node_name != "cn2" else row("cn2", node_type="D") for r in reconciled()]
    plan = plan_pgxc_changes(topology(), current, "cn1")
    assert "cn2" in plan.blockers[0] and "cannot change a node's type" in plan.blockers[0]
    assert all(c.row.node_name != "cn2" for c in plan.changes)


def test_stale_primary_is_cleared_before_the_new_primary_is_set():
    current = [row(n, is_primary=(n == "dn2")) for n in HOSTS]
    plan = plan_pgxc_changes(topology(), current, "cn1")
    assert kinds(plan) == [("alter", "dn2"), ("alter", "dn1")]
    clear, set_ = plan.changes
    assert clear.fields == ("primary",) and clear.row.is_primary is False
    assert set_.fields == ("primary",) and set_.row.is_primary is True
    assert "only one datanode may be primary" in clear.reason


def test_stale_primary_cleared_before_primary_datanode_is_created():
    current = [row(n, is_primary=(n == "dn3")) for n in HOSTS if n not in ("dn1", "cn1")]
    current.append(PgxcRow("cn1", "C", "localhost", 5432))
    plan = plan_pgxc_changes(topology(), current, "cn1")
    assert kinds(plan) == [("alter", "dn3"), ("alter", "cn1"), ("create", "dn1")]
    assert plan.changes[2].row.is_primary


def test_gtm_flag_missing_on_gc_row():
    current = [r if r.node_name != "gc" else row("gc", is_gtm=False) for r in reconciled()]
    plan = plan_pgxc_changes(topology(), current, "cn2")
    assert kinds(plan) == [("alter", "gc")]
    assert plan.changes[0].fields == ("gtm",)
    assert plan.changes[0].row.is_gtm


def test_stray_preferred_flag_is_cleared():
    current = [r if r.node_name != "dn1" else row("dn1", is_preferred=True) for r in reconciled()]
    plan = plan_pgxc_changes(topology(), current, "gc")
    assert kinds(plan) == [("alter", "dn1")]
    assert plan.changes[0].fields == ("preferred",)


def test_several_differences_on_one_row_are_one_alter():
    current = [r if r.node_name != "dn2" else row("dn2", host="127.0.20.22", port=6000, is_primary=True)
               for r in reconciled()]
    current = [r if r.node_name != "dn1" else row("dn1", is_primary=False) for r in current]
    plan = plan_pgxc_changes(topology(), current, "gc")
    assert kinds(plan) == [("alter", "dn2"), ("alter", "dn1")]
    assert plan.changes[0].fields == ("host", "port", "primary")


def test_self_row_is_never_dropped_and_target_must_be_in_topology():
    plan = plan_pgxc_changes(topology(), [PgxcRow("cn2", "C", "localhost", 5432)], "cn2")
    assert change_for(plan, "cn2").kind is ChangeKind.ALTER
    without_cn2 = {n: h for n, h in HOSTS.items() if n != "cn2"}
    with pytest.raises(ValueError, match="target 'cn2' is not a node of the topology"):
        plan_pgxc_changes(topology(without_cn2), [PgxcRow("cn2", "C", "localhost", 5432)], "cn2")


def test_creates_follow_topology_order_with_numeric_names():
    hosts = {"gc": "127.0.10.1", "cn1": "127.0.10.11", "cn10": "127.0.10.20", "cn2": "127.0.10.12",
             "dn1": "127.0.10.21"}
    plan = plan_pgxc_changes(topology(hosts), [], "gc")
    assert [c.row.node_name for c in plan.changes] == ["gc", "cn1", "cn2", "cn10", "dn1"]


def test_drops_are_in_natural_name_order():
    extras = [row(n, host="127.0.10.99") for n in ("cn10", "cn3", "cn9")]
    plan = plan_pgxc_changes(topology(), reconciled() + extras, "gc")
    assert kinds(plan) == [("drop", "cn3"), ("drop", "cn9"), ("drop", "cn10")]


# --------------------------------------------------------------------------- invalid input

@pytest.mark.parametrize(
    "hosts,target,message",
    [
        ({"cn1": "127.0.10.11", "dn1": "127.0.10.21"}, "cn1", "no gtm_coord"),
        ({"gc": "127.0.10.1", "cn1": "127.0.10.11"}, "cn1", "no datanode"),
        (HOSTS, "dn1", "is a datanode"),
        (HOSTS, "cn9", "not a node of the topology"),
    ],
)
def test_invalid_topology_or_target_raises(hosts, target, message):
    with pytest.raises(ValueError, match=message):
        plan_pgxc_changes(topology(hosts), [], target)


def test_duplicate_node_names_raise():
    nodes = topology().nodes + (NodeAddress("dn1", NodeRole.DATANODE, "127.0.10.29"),)
    with pytest.raises(ValueError, match="more than once: dn1"):
        plan_pgxc_changes(Topology(nodes), [], "gc")


def test_two_gtm_coords_raise():
    nodes = topology().nodes + (NodeAddress("gc2", NodeRole.GTM_COORD, "127.0.10.2"),)
    with pytest.raises(ValueError, match="more than one gtm_coord"):
        plan_pgxc_changes(Topology(nodes), [], "gc")


@pytest.mark.parametrize(
    "name,host,port,message",
    [
        ("dn1", "'; DROP TABLE x; --", 5432, "node dn1 host"),
        ("dn1", "127.0.10.21", 70000, "node dn1 port"),
        ('dn"1', "127.0.10.21", 5432, "not a DNS-1123 label"),
    ],
)
def test_hostile_topology_values_are_refused_at_planning(name, host, port, message):
    nodes = [n for n in topology().nodes if n.name != "dn1"] + [NodeAddress(name, NodeRole.DATANODE, host, port)]
    with pytest.raises(ValueError, match=message):
        plan_pgxc_changes(Topology.of(nodes), [], "gc")


def test_duplicate_current_rows_raise():
    with pytest.raises(ValueError, match="'dn1' twice"):
        plan_pgxc_changes(topology(), reconciled() + [row("dn1")], "gc")


# --------------------------------------------------------------------------- determinism & serialisation

def messy_catalog() -> list[PgxcRow]:
    return [
        PgxcRow("cn1", "C", "localhost", 5432),
        row("dn2", host="127.0.20.22", is_primary=True),
        row("dn1", is_primary=False),
        row("cn3", host="127.0.10.13"),
        row("cn4", host="127.0.10.14"),
        row("dn7", host="127.0.10.27", is_primary=False),
        row("gc", is_gtm=False, port=6000),
    ]


def test_same_input_twice_gives_equal_plans():
    assert plan_pgxc_changes(topology(), messy_catalog(), "cn1") == plan_pgxc_changes(topology(), messy_catalog(), "cn1")


def test_order_of_current_rows_does_not_matter():
    expected = plan_pgxc_changes(topology(), messy_catalog(), "cn1")
    shuffler = random.Random(1234)
    for _ in range(20):
        shuffled = messy_catalog()
        shuffler.shuffle(shuffled)
        assert plan_pgxc_changes(topology(), shuffled, "cn1") == expected


def test_messy_catalog_full_order():
    plan = plan_pgxc_changes(topology(), messy_catalog(), "cn1")
    assert kinds(plan) == [
        ("alter", "dn2"),            # clears the stale primary (and moves the host)
        ("alter", "cn1"),            # self row first among the other ALTERs
        ("alter", "gc"),
        ("alter", "dn1"),            # sets the primary
        ("create", "cn2"),
        ("create", "dn3"),
        ("drop", "cn3"),
        ("drop", "cn4"),
    ]
    assert len(plan.blockers) == 1 and "dn7" in plan.blockers[0]


def test_plan_round_trips_through_json():
    plan = plan_pgxc_changes(topology(), messy_catalog(), "cn1")
    restored = PgxcPlan.from_dict(json.loads(json.dumps(plan.to_dict())))
    assert restored == plan
    assert restored.changes[0].kind is ChangeKind.ALTER


def test_row_differences_lists_only_differing_fields_in_canonical_order():
    have = PgxcRow("dn1", "D", "localhost", 6000, False, True, False)
    want = PgxcRow("dn1", "D", "127.0.10.21", 6000, True, False, False)
    assert row_differences(have, want) == ("host", "primary", "preferred")


def test_diff_summary_lists_changes_and_blockers():
    lines = diff_summary(plan_pgxc_changes(topology(), messy_catalog(), "cn1"))
    assert lines[0] == ("pgxc_node on cn1: 8 change(s), 1 blocker(s): "
                        "nothing will be applied until they are resolved")
    assert lines[1].startswith("  1. ALTER dn2 [host, primary]: ")
    assert any(line.startswith("  7. DROP cn3: coordinator cn3") for line in lines)
    assert lines[-1].startswith("  BLOCKER: datanode dn7")
