"""The AntDB page's data: the agreement matrix follows the deploy planner, node rows and health."""

from __future__ import annotations

from antdb_k8s.core.cluster_view import Cell, Health, agreement_matrix, agreement_row, build_view, pod_facts
from antdb_k8s.core.pgxc import PgxcRow
from antdb_k8s.core.topology import NodeAddress, NodeRole, Topology
from antdb_k8s.hooks.antdb import NodeIdentity
from antdb_k8s.ui.render import cluster_page, topology_svg

GC = NodeAddress("gc", NodeRole.GTM_COORD, "127.0.10.1")
CN1 = NodeAddress("cn1", NodeRole.COORDINATOR, "127.0.10.11")
DN1 = NodeAddress("dn1", NodeRole.DATANODE, "127.0.10.21")
DN2 = NodeAddress("dn2", NodeRole.DATANODE, "127.0.10.22")
TOPOLOGY = Topology.of([GC, CN1, DN1, DN2])
MEMBERS = {n.name: n.role for n in TOPOLOGY.nodes}


def healthy_rows() -> list[PgxcRow]:
    return [PgxcRow("gc", "C", GC.host, 5432, is_gtm=True), PgxcRow("cn1", "C", CN1.host, 5432),
            PgxcRow("dn1", "D", DN1.host, 5432, is_primary=True), PgxcRow("dn2", "D", DN2.host, 5432)]


def pod(node: str, ready: bool = True, restarts: int = 0) -> dict:
    return {"metadata": {"name": f"{node}-7d9f-abcde", "labels": {"pg-cluster": node, "pgo-pg-database": "true"}},
            "spec": {"containers": [{"name": "database", "image": f"antdb/{node}:5.0"}]},
            "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
                       "containerStatuses": [{"name": "database", "restartCount": restarts}]}}


def identity(address: NodeAddress, agtm_host: str = GC.host) -> NodeIdentity:
    return NodeIdentity(address, "PostgreSQL 11.6 (AntDB 5.0) on x86_64-pc-linux-gnu", address.name, agtm_host, 5432)


def test_a_catalog_matching_kubernetes_is_all_ok():
    row = agreement_row(TOPOLOGY, "cn1", healthy_rows())
    assert {name: cell.state for name, cell in row.cells.items()} == {n: Cell.OK for n in TOPOLOGY.names()}


def test_each_planned_change_names_its_cell():
    rows = healthy_rows()
    rows[1] = PgxcRow("cn1", "C", "127.0.10.99", 5432)           # moved host
    rows[2] = PgxcRow("dn1", "D", DN1.host, 5432)               # lost its primary flag
    rows = [r for r in rows if r.node_name != "dn2"]            # missing
    rows.append(PgxcRow("cn9", "C", "127.0.10.19", 5432))       # coordinator Kubernetes no longer has
    rows.append(PgxcRow("dn9", "D", "127.0.10.29", 5432))       # datanode the planner refuses to drop
    cells = agreement_row(TOPOLOGY, "gc", rows).cells
    assert cells["cn1"].state is Cell.WRONG_ADDRESS and "127.0.10.99" in cells["cn1"].detail
    assert cells["dn1"].state is Cell.WRONG_FLAG
    assert cells["dn2"].state is Cell.MISSING
    assert cells["cn9"].state is Cell.EXTRA and cells["dn9"].state is Cell.EXTRA
    assert cells["gc"].state is Cell.OK


def test_a_type_conflict_is_its_own_state():
    rows = healthy_rows()
    rows[3] = PgxcRow("dn2", "C", DN2.host, 5432)
    assert agreement_row(TOPOLOGY, "cn1", rows).cells["dn2"].state is Cell.WRONG_TYPE


def test_an_unreadable_catalog_is_a_row_of_not_checked_with_the_reason():
    matrix = agreement_matrix(TOPOLOGY, {"gc": healthy_rows(), "cn1": ConnectionError("timeout expired")})
    assert [r.holder for r in matrix] == ["gc", "cn1"]
    assert matrix[1].error == "ConnectionError: timeout expired"
    assert {c.state for c in matrix[1].cells.values()} == {Cell.UNKNOWN}


def test_pod_facts_read_the_primary_database_pod_only():
    repo = {"metadata": {"name": "dn1-backrest-shared-repo-x", "labels": {"pg-cluster": "dn1", "pgo-pg-database":
                                                                          "true", "pgo-backrest-repo": "true"}}}
    facts = pod_facts([repo, pod("dn1", restarts=3)], "dn1")
    assert (facts.name, facts.ready, facts.restarts, facts.image) == ("dn1-7d9f-abcde", True, 3, "antdb/dn1:5.0")
    assert pod_facts([repo], "dn1").name is None


def view_with(catalogs=None, identities=None, pods=None):
    identities = identities if identities is not None else {n.name: identity(n) for n in TOPOLOGY.nodes}
    catalogs = catalogs if catalogs is not None else {"gc": healthy_rows(), "cn1": healthy_rows()}
    pods = pods if pods is not None else [pod(n) for n in TOPOLOGY.names()]
    return build_view("pgouser1", MEMBERS, TOPOLOGY, pods, identities, catalogs)


def test_a_healthy_cluster_is_green_everywhere():
    view = view_with()
    assert view.health is Health.OK and (view.ready, view.expected) == (4, 4)
    assert [n.health for n in view.nodes] == [Health.OK] * 4
    assert view.nodes[0].version == "PostgreSQL 11.6 (AntDB 5.0)" and view.nodes[1].agtm_ok


def test_drift_down_and_wrong_agtm_colour_the_nodes():
    gc_rows = healthy_rows()
    gc_rows[3] = PgxcRow("dn2", "D", DN2.host, 6543)
    identities = {n.name: identity(n) for n in TOPOLOGY.nodes}
    identities["cn1"] = identity(CN1, agtm_host="127.0.10.250")
    identities["dn1"] = OSError("connection refused password=s3cret")
    view = build_view("pgouser1", MEMBERS, TOPOLOGY, [pod(n) for n in TOPOLOGY.names()], identities,
                      {"gc": gc_rows, "cn1": healthy_rows()}, scrub=lambda t: t.replace("s3cret", "******"))
    health = {n.name: n.health for n in view.nodes}
    assert health == {"gc": Health.DRIFT, "cn1": Health.DRIFT, "dn1": Health.DOWN, "dn2": Health.DRIFT}
    assert view.health is Health.DOWN
    dn1 = next(n for n in view.nodes if n.name == "dn1")
    assert dn1.reachable is False and "s3cret" not in dn1.error and "******" in dn1.error


def test_the_page_and_picture_show_the_drifted_cell_in_red():
    gc_rows = healthy_rows()
    gc_rows[1] = PgxcRow("cn1", "C", "127.0.10.99", 5432)
    view = view_with(catalogs={"gc": gc_rows, "cn1": healthy_rows()})
    html = cluster_page(view, None, "/antdb", "")
    assert "data-cell='gc/cn1' title='pgxc_node on gc has cn1 out of date" in html
    assert "<td class='bad' data-cell='gc/cn1'" in html
    assert "<td class='ok' data-cell='cn1/cn1'" in html
    svg = topology_svg(view)
    assert "data-node='cn1' data-health='drift'" in svg and "data-node='dn1' data-health='ok'" in svg


def test_cluster_values_are_escaped():
    members = {"gc": NodeRole.GTM_COORD}
    hostile = pod("gc")
    hostile["spec"]["containers"][0]["image"] = "<script>alert(1)</script>"
    html = cluster_page(build_view("pgouser1", members, None, [hostile], {}, {}), None, "/antdb", "")
    assert "<script>" not in html and "&lt;script&gt;" in html
