"""Topology: canonical order, catalog holders, XCom round trip, and reading it from Kubernetes objects."""

from __future__ import annotations

import json
import random

import pytest

from antdb_k8s.core.topology import (
    NodeAddress,
    NodeRole,
    Topology,
    TopologyError,
    UnsafeTopologyError,
    members_from_pgclusters,
    role_from_pgcluster,
    topology_from_services,
)

ROLES = {"gc": NodeRole.GTM_COORD, "cn": NodeRole.COORDINATOR, "dn": NodeRole.DATANODE}


def node(name: str, host: str | None = None, port: int = 5432) -> NodeAddress:
    return NodeAddress(name, ROLES[name[:2]], host or "127.0.60.1", port)


def service(name: str, cluster_ip: str | None = "127.0.60.1", ports: list[dict] | None = None) -> dict:
    """A Service as the operator creates it for Pgcluster `name` (crunchy-pgo-v4.md)."""
    if ports is None:
        ports = [{"name": "postgres", "port": 5432}, {"name": "pgbadger", "port": 10000},
                 {"name": "sshd", "port": 2022}, {"name": "postgres-exporter", "port": 9187},
                 {"name": "patroni", "port": 8009}]
    spec = {"type": "ClusterIP", "ports": ports, "selector": {"pg-cluster": name, "role": "master"}}
    if cluster_ip is not None:
        spec["clusterIP"] = cluster_ip
    return {"metadata": {"name": name, "labels": {"pg-cluster": name}}, "spec": spec}


def pgcluster(name: str, image: str = "", labels: dict | None = None) -> dict:
    return {"metadata": {"name": name, "labels": labels or {}}, "spec": {"ccpimage": image}}


# --- order and views ---------------------------------------------------------------------

CANONICAL = ["gc", "cn1", "cn2", "cn10", "dn1", "dn2", "dn3", "dn10", "dn32"]


def test_canonical_order_is_numeric_within_each_role():
    nodes = [node(n) for n in CANONICAL]
    for seed in range(5):
        random.Random(seed).shuffle(nodes)
        assert Topology.of(nodes).names() == CANONICAL


def test_role_views():
    topo = Topology.of(node(n) for n in reversed(CANONICAL))
    assert topo.gtm_coord.name == "gc"
    assert [n.name for n in topo.coordinators] == ["cn1", "cn2", "cn10"]
    assert [n.name for n in topo.datanodes] == ["dn1", "dn2", "dn3", "dn10", "dn32"]
    assert [n.name for n in topo.catalog_holders] == ["gc", "cn1", "cn2", "cn10"]
    assert topo.by_name("dn3") == node("dn3") and topo.by_name("dn4") is None


def test_without_gc():
    topo = Topology.of([node("dn1"), node("cn1")])
    assert topo.gtm_coord is None
    assert [n.name for n in topo.catalog_holders] == ["cn1"]


@pytest.mark.parametrize(("role", "pgxc_type", "short"), [
    (NodeRole.GTM_COORD, "C", "gc"), (NodeRole.COORDINATOR, "C", "cn"), (NodeRole.DATANODE, "D", "dn")])
def test_role_properties(role, pgxc_type, short):
    assert role.pgxc_type == pgxc_type and role.short == short


def test_to_list_from_list_round_trip_through_json():
    topo = Topology.of([node("dn2", "127.0.60.22"), node("gc", "127.0.60.2", 5433), node("cn1", "::1")])
    data = json.loads(json.dumps(topo.to_list()))
    assert data[0] == {"name": "gc", "role": "gtm_coord", "host": "127.0.60.2", "port": 5433}
    assert Topology.from_list(data) == topo


def test_from_list_accepts_string_ports_and_any_order():
    data = [{"name": "dn1", "role": "datanode", "host": "127.0.60.21", "port": "5432"},
            {"name": "gc", "role": "gtm_coord", "host": "127.0.60.2", "port": 5432}]
    topo = Topology.from_list(data)
    assert topo.names() == ["gc", "dn1"] and topo.by_name("dn1").port == 5432


def test_from_list_rejects_an_unknown_role():
    with pytest.raises(ValueError):
        Topology.from_list([{"name": "x1", "role": "proxy", "host": "127.0.0.1", "port": 5432}])


# --- topology_from_services --------------------------------------------------------------

MEMBERS = {"gc": NodeRole.GTM_COORD, "cn1": NodeRole.COORDINATOR, "dn1": NodeRole.DATANODE}


def test_addresses_are_the_services_cluster_ips():
    services = [service("gc", "127.0.60.2"), service("cn1", "127.0.60.11"), service("dn1", "127.0.60.21"),
                service("cn1-replica", "127.0.60.99"), service("gc-backrest-shared-repo", "127.0.60.98")]
    topo = topology_from_services(MEMBERS, services)
    assert topo.to_list() == [
        {"name": "gc", "role": "gtm_coord", "host": "127.0.60.2", "port": 5432},
        {"name": "cn1", "role": "coordinator", "host": "127.0.60.11", "port": 5432},
        {"name": "dn1", "role": "datanode", "host": "127.0.60.21", "port": 5432},
    ]


def test_postgres_port_is_picked_by_name():
    ports = [{"name": "pgbadger", "port": 10000}, {"name": "postgres", "port": 6543}, {"name": "sshd", "port": 2022}]
    topo = topology_from_services({"gc": NodeRole.GTM_COORD}, [service("gc", ports=ports)])
    assert topo.by_name("gc").port == 6543


@pytest.mark.parametrize(("ports", "expected"), [([{"name": "db", "port": 15432}], 15432), ([], 5432)])
def test_port_without_a_postgres_name(ports, expected):
    topo = topology_from_services({"gc": NodeRole.GTM_COORD}, [service("gc", ports=ports)])
    assert topo.by_name("gc").port == expected


def test_missing_service_names_the_node():
    with pytest.raises(TopologyError) as err:
        topology_from_services(MEMBERS, [service("gc"), service("dn1")])
    assert str(err.value) == "incomplete topology: cn1: Service cn1 not found"


@pytest.mark.parametrize("cluster_ip", ["None", "", None])
def test_headless_or_unassigned_service_names_the_node(cluster_ip):
    with pytest.raises(TopologyError, match=r"dn1: Service dn1 has no ClusterIP"):
        topology_from_services(MEMBERS, [service("gc"), service("cn1"), service("dn1", cluster_ip)])


def test_every_missing_piece_is_named_at_once():
    with pytest.raises(TopologyError) as err:
        topology_from_services(MEMBERS, [service("cn1", "None")])
    message = str(err.value)
    assert "gc: Service gc not found" in message
    assert "cn1: Service cn1 has no ClusterIP" in message
    assert "dn1: Service dn1 not found" in message


def test_topology_error_is_a_value_error():
    assert issubclass(TopologyError, ValueError)


# --- roles from Pgclusters ---------------------------------------------------------------


@pytest.mark.parametrize(("item", "role"), [
    (pgcluster("gc", labels={"antdb.io/role": "gtm_coord"}), NodeRole.GTM_COORD),
    (pgcluster("cn1", labels={"antdb.io/role": "coordinator"}), NodeRole.COORDINATOR),
    (pgcluster("dn1", labels={"antdb.io/role": "datanode"}), NodeRole.DATANODE),
    # made by the runbook's scripts: no package label, the image says the role
    (pgcluster("gc", "antdb.cluster.gc-ha"), NodeRole.GTM_COORD),
    (pgcluster("cn1", "antdb.cluster.cn-ha"), NodeRole.COORDINATOR),
    (pgcluster("dn1", "antdb.cluster.db-ha"), NodeRole.DATANODE),
    (pgcluster("dn1", "AntDB.Cluster.DB-HA"), NodeRole.DATANODE),
    # the label wins over the image; an unknown label value falls back to the image
    (pgcluster("cn3", "antdb.cluster.db-ha", {"antdb.io/role": "coordinator"}), NodeRole.COORDINATOR),
    (pgcluster("dn2", "antdb.cluster.db-ha", {"antdb.io/role": "proxy"}), NodeRole.DATANODE),
])
def test_role_from_pgcluster(item, role):
    assert role_from_pgcluster(item) is role


@pytest.mark.parametrize("item", [pgcluster("hippo", "crunchy-postgres-ha"), pgcluster("x", ""), {"metadata": {}}, {}])
def test_role_from_pgcluster_none_for_other_clusters(item):
    assert role_from_pgcluster(item) is None


def test_members_from_pgclusters_skips_non_antdb_clusters():
    items = [pgcluster("gc", "antdb.cluster.gc-ha"), pgcluster("hippo", "crunchy-postgres-ha"),
             pgcluster("cn1", labels={"antdb.io/role": "coordinator"}), pgcluster("dn1", "antdb.cluster.db-ha")]
    assert members_from_pgclusters(items) == MEMBERS
    assert members_from_pgclusters([]) == {}


# --- names and addresses from Kubernetes that must never reach SQL -------------------------

@pytest.mark.parametrize("name", ["dn1.backup", "DN1", "dn_1", "dn1;drop", "dn1\"x", "", "d" * 64, "дн1", None, 7])
def test_a_pgcluster_whose_name_is_not_a_node_name_is_refused(name):
    items = [pgcluster("gc", labels={"antdb.io/role": "gtm_coord"}),
             {"metadata": {"name": name, "labels": {"antdb.io/role": "datanode"}}, "spec": {}}]
    with pytest.raises(UnsafeTopologyError, match="Pgcluster metadata.name") as refused:
        members_from_pgclusters(items)
    assert "not valid AntDB node names" in str(refused.value)
    assert len(str(refused.value)) < 400, "a hostile name is shown shortened"


def test_every_unsafe_pgcluster_is_named_at_once():
    items = [{"metadata": {"name": n, "labels": {"antdb.io/role": "datanode"}}} for n in ("Dn1", "dn2", "dn.3")]
    with pytest.raises(UnsafeTopologyError) as refused:
        members_from_pgclusters(items)
    assert "'Dn1'" in str(refused.value) and "'dn.3'" in str(refused.value) and "dn2" not in str(refused.value)


@pytest.mark.parametrize("cluster_ip", ["garbage", "127.0.0.1'; DROP NODE dn1; --", "127.0.0.256", "1.2.3.4\n", "x" * 300,
                                        ["127.0.0.1"], 2130706433])
def test_a_service_with_a_garbage_cluster_ip_is_refused_naming_the_service(cluster_ip):
    with pytest.raises(UnsafeTopologyError, match=r"dn1: Service dn1 spec.clusterIP"):
        topology_from_services({"gc": NodeRole.GTM_COORD, "dn1": NodeRole.DATANODE},
                               [service("gc"), service("dn1", cluster_ip=cluster_ip)])


@pytest.mark.parametrize("port", ["5432; x", "abc", -1, 0, 70000, 10**40, True, None, 5432.5, {"x": 1}])
def test_a_service_with_a_garbage_postgres_port_is_refused_naming_the_service(port):
    with pytest.raises(UnsafeTopologyError, match=r"gc: Service gc postgres port"):
        topology_from_services({"gc": NodeRole.GTM_COORD}, [service("gc", ports=[{"name": "postgres", "port": port}])])


@pytest.mark.parametrize("ports", ["5432", [5432], [{"name": "other"}], {"name": "postgres"}])
def test_malformed_port_lists_are_refused_not_a_traceback(ports):
    with pytest.raises(UnsafeTopologyError, match="postgres port"):
        topology_from_services({"gc": NodeRole.GTM_COORD}, [service("gc", ports=ports)])


def test_a_numeric_string_port_is_accepted_as_kubernetes_may_hold_it():
    topology = topology_from_services({"gc": NodeRole.GTM_COORD}, [service("gc", ports=[{"name": "postgres", "port": "6432"}])])
    assert topology.gtm_coord.port == 6432


def test_unsafe_addresses_are_refused_even_when_other_services_are_missing():
    with pytest.raises(UnsafeTopologyError) as refused:
        topology_from_services({"gc": NodeRole.GTM_COORD, "dn1": NodeRole.DATANODE}, [service("gc", cluster_ip="bad host")])
    assert "Service gc spec.clusterIP" in str(refused.value) and "Service dn1 not found" in str(refused.value)
    assert isinstance(refused.value, TopologyError), "callers catching TopologyError still see it"
