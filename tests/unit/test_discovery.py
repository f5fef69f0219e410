"""ClusterFacts: one listing of Pgclusters, Services and pods, and every view derived from it."""

from __future__ import annotations

import pytest

from antdb_k8s.core.topology import NodeRole, TopologyError
from antdb_k8s.services.discovery import DATABASE_POD_SELECTOR, discover

NS = "pgouser1"


def _pgcluster(name: str, role: str) -> dict:
    return {"metadata": {"name": name, "labels": {"antdb.io/role": role}}}


def _service(name: str, ip: str | None) -> dict:
    return {"metadata": {"name": name}, "spec": {"clusterIP": ip, "ports": [{"name": "postgres", "port": 5432}]}}


def _pod(node: str, name: str, ready: bool) -> dict:
    return {"metadata": {"name": name, "labels": {"pg-cluster": node, "pgo-pg-database": "true"}},
            "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


class ListingKube:
    """Answers `list` from fixed objects and records each call (kind, selector)."""

    def __init__(self, pgclusters, services, pods):
        self.objects = {"Pgcluster": pgclusters, "Service": services, "Pod": pods}
        self.calls: list[tuple] = []

    def list(self, api_version, kind, namespace=None, label_selector=None, field_selector=None):
        self.calls.append((kind, namespace, label_selector))
        return list(self.objects[kind])


def _kube() -> ListingKube:
    return ListingKube(
        [_pgcluster("gc", "gtm_coord"), _pgcluster("cn1", "coordinator"), _pgcluster("dn1", "datanode")],
        [_service("gc", "127.0.10.1"), _service("cn1", "127.0.10.11"), _service("dn1", "None")],
        [_pod("gc", "gc-a", True), _pod("cn1", "cn1-a", False), _pod("dn1", "dn1-a", True)],
    )


def test_one_read_lists_each_kind_once_with_the_database_pod_selector():
    kube = _kube()
    facts = discover(kube, NS)
    assert kube.calls == [("Pgcluster", NS, None), ("Service", NS, None), ("Pod", NS, DATABASE_POD_SELECTOR)]
    assert facts.members == {"gc": NodeRole.GTM_COORD, "cn1": NodeRole.COORDINATOR, "dn1": NodeRole.DATANODE}


def test_views_agree_with_the_listing():
    facts = discover(_kube(), NS)
    assert facts.unaddressed == ["dn1"] and not facts.complete
    assert facts.partial_topology.names() == ["gc", "cn1"]
    with pytest.raises(TopologyError, match="dn1: Service dn1 has no ClusterIP"):
        facts.topology()
    assert facts.topology({"gc": NodeRole.GTM_COORD}).gtm_coord.host == "127.0.10.1"
    assert facts.readiness().ready == ("gc", "dn1")
    cn1 = facts.readiness(["cn1"])
    assert not cn1.done and cn1.nodes[0].pod == "cn1-a"


def test_no_pgclusters_is_an_empty_cluster_not_a_guess():
    facts = discover(ListingKube([], [_service("gc", "127.0.10.1")], []), NS, pods=False)
    assert not facts.complete and facts.partial_topology is None
    with pytest.raises(TopologyError, match=f"no AntDB Pgclusters in namespace {NS}"):
        facts.topology()
