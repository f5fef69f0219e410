"""The restart check's choices and verdict: which nodes restart, and what counts as a change."""

from __future__ import annotations

import json
import re

import pytest

from antdb_k8s.core.restart_check import (
    ClusterRecord,
    UnknownNodeError,
    check_table_name,
    choose_nodes,
    compare_records,
    summary_table,
)
from antdb_k8s.core.topology import NodeAddress, NodeRole, Topology

IPS = {"gc": "127.0.60.1", "cn1": "127.0.60.11", "dn1": "127.0.60.21", "dn2": "127.0.60.22"}


def topology() -> Topology:
    roles = {"gc": NodeRole.GTM_COORD, "cn": NodeRole.COORDINATOR, "dn": NodeRole.DATANODE}
    return Topology.of(NodeAddress(n, roles[n[:2]], ip) for n, ip in IPS.items())


def row(name: str, host: str, **flags) -> dict:
    return {"node_name": name, "node_type": "D" if name.startswith("dn") else "C", "node_host": host,
            "node_port": 5432, "is_primary": False, "is_preferred": False, "is_gtm": False, **flags}


def record(**changes) -> ClusterRecord:
    catalog = [row("gc", IPS["gc"], is_gtm=True), row("cn1", IPS["cn1"]),
               row("dn1", IPS["dn1"], is_primary=True, is_preferred=True), row("dn2", IPS["dn2"])]
    base = {"cluster_ips": dict(IPS), "pgxc": {"gc": list(catalog), "cn1": list(catalog)},
            "counts": {"gc": 100, "cn1": 100}, "per_datanode": {"dn1": 48, "dn2": 52},
            "pods": {n: f"{n}-aaa-bbb" for n in IPS}}
    base.update(changes)
    return ClusterRecord.from_dict(base)


def test_all_restarts_every_node_in_canonical_order():
    assert choose_nodes("all", topology()) == ["gc", "cn1", "dn1", "dn2"]


@pytest.mark.parametrize("name", ["gc", "cn1", "dn2"])
def test_a_named_node_restarts_alone(name):
    assert choose_nodes(name, topology()) == [name]


@pytest.mark.parametrize("name", ["cn9", "ALL", "", None, "gc; drop", 7])
def test_an_unknown_node_is_refused_listing_the_choices(name):
    with pytest.raises(UnknownNodeError, match="choose one of gc, cn1, dn1, dn2 or 'all'"):
        choose_nodes(name, topology())


def test_check_table_name_is_stable_per_run_and_a_plain_identifier():
    name = check_table_name("manual__2026-01-01T00:00:00+00:00")
    assert name == check_table_name("manual__2026-01-01T00:00:00+00:00") != check_table_name("other")
    assert re.fullmatch(r"antdb_restart_check_[0-9a-f]{12}", name)


def test_an_unchanged_cluster_with_new_pods_has_no_differences():
    after = record(pods={n: f"{n}-ccc-ddd" for n in IPS})
    assert compare_records(record(), after) == []


def test_every_kind_of_change_is_named():
    moved = [row("gc", IPS["gc"], is_gtm=True), row("cn1", "127.0.60.99"),
             row("dn1", IPS["dn1"], is_primary=True, is_preferred=True), row("cn7", "127.0.60.7")]
    after = record(cluster_ips={**IPS, "gc": "127.0.60.2"}, pgxc={"gc": moved},
                   counts={"gc": 100, "cn1": 99}, per_datanode={"dn1": 48, "dn2": 51})
    diff = compare_records(record(), after)
    assert "Service ClusterIP of gc: 127.0.60.1 -> 127.0.60.2" in diff
    assert "pgxc_node on gc: row cn1 changed C 127.0.60.11:5432 -> C 127.0.60.99:5432" in diff
    assert "pgxc_node on gc: row dn2 disappeared" in diff
    assert "pgxc_node on gc: row cn7 appeared (C 127.0.60.7:5432)" in diff
    assert "pgxc_node on cn1: not read after the restart" in diff
    assert "row count from cn1: 100 -> 99" in diff
    assert "rows on datanode dn2: 52 -> 51" in diff


def test_a_flag_change_is_a_change():
    catalog = record().pgxc["gc"]
    flipped = [dict(r, is_primary=not r["is_primary"]) if r["node_name"] == "dn2" else r for r in catalog]
    diff = compare_records(record(), record(pgxc={"gc": flipped, "cn1": catalog}))
    assert diff == ["pgxc_node on gc: row dn2 changed D 127.0.60.22:5432 -> D 127.0.60.22:5432 [primary]"]


def test_record_round_trips_through_json_and_the_table_shows_before_and_after():
    before = record()
    assert ClusterRecord.from_dict(json.loads(json.dumps(before.to_dict()))) == before
    table = summary_table(before, record(pods={"gc": "gc-new-pod"}), "antdb_restart_check_x")
    assert "gc-aaa-bbb -> gc-new-pod" in table
    assert re.search(r"^dn2 .* 52$", table, re.MULTILINE)
