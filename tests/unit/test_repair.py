"""Repair decisions without a cluster: which level does what, refusals, and the bounded pod restart."""

from __future__ import annotations

import json

import pytest
import yaml

from antdb_k8s.core.pgxc import PgxcRow, PlanBlockedError
from antdb_k8s.core.topology import NodeAddress, NodeRole, Topology
from antdb_k8s.core.verify import Finding, VerificationReport
from antdb_k8s.hooks.antdb import NodeIdentity
from antdb_k8s.services import repair
from antdb_k8s.services.repair import (
    RepairError,
    patch_dcs_configs,
    repair_catalogs,
    repair_cluster,
    restart_node_pod,
    rewrite_custom_config,
    stale_agtm_nodes,
)

NS = "pgouser1"
IPS = {"gc": "127.0.10.1", "cn1": "127.0.10.11", "dn1": "127.0.10.21"}
ROLES = {"gc": "gtm_coord", "cn1": "coordinator", "dn1": "datanode"}
DRIFT = VerificationReport(NS, (Finding("cn1", "pgxc_node", False, "ALTER gc [host] needed"),))


def _pod(node: str, name: str, ready: bool = True) -> dict:
    return {"metadata": {"name": name, "labels": {"pg-cluster": node, "pgo-pg-database": "true"}},
            "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


class FakeKube:
    """The AntDBKubeHook calls repair makes, over dicts; records every write."""

    def __init__(self, services: dict[str, str] | None = None):
        self.services = dict(IPS if services is None else services)
        self.configmaps: dict[str, dict] = {}
        self.pods = {n: _pod(n, f"{n}-pod-1") for n in ROLES}
        self.writes: list[tuple] = []

    def list(self, api_version, kind, namespace=None, label_selector=None, field_selector=None):
        if kind == "Pgcluster":
            return [{"metadata": {"name": n, "labels": {"antdb.io/role": r}}} for n, r in ROLES.items()]
        if kind == "Service":
            return [{"metadata": {"name": n}, "spec": {"clusterIP": ip, "ports": [{"name": "postgres", "port": 5432}]}}
                    for n, ip in self.services.items()]
        if kind == "Pod":
            return list(self.pods.values())
        raise AssertionError(kind)

    def get(self, api_version, kind, name, namespace=None):
        return self.configmaps.get(name) if kind == "ConfigMap" else None

    def patch(self, api_version, kind, name, patch, namespace=None):
        self.writes.append(("patch", kind, name, patch))

    def apply(self, obj):
        self.writes.append(("apply", obj["kind"], obj["metadata"]["name"]))
        return "created"

    def delete(self, api_version, kind, name, namespace=None):
        self.writes.append(("delete", kind, name))
        node, _, number = name.rsplit("-", 2)
        self.pods[node] = _pod(node, f"{node}-pod-{int(number) + 1}")
        return True


class FakeAntDB:
    """Per-holder catalogs and agtm settings; apply_plan refuses blocked plans like the real one."""

    def __init__(self, catalogs: dict[str, list[PgxcRow]], agtm: dict[str, str] | None = None):
        self.catalogs, self.agtm = catalogs, dict(agtm or {})
        self.applied: dict[str, int] = {}

    def read_pgxc_nodes(self, address):
        return list(self.catalogs[address.name])

    def apply_plan(self, address, plan):
        if plan.blockers:
            raise PlanBlockedError(plan)
        self.applied[address.name] = len(plan.changes)
        return len(plan.changes)

    def identity(self, address):
        host = self.agtm.get(address.name, IPS["gc"])
        if host == "down":
            raise ConnectionError("cannot connect to GTMCOORD")
        return NodeIdentity(address, "PostgreSQL 11.6 ADB 5.0.0", address.name, host, 5432)


def good_catalog() -> list[PgxcRow]:
    return [PgxcRow("gc", "C", IPS["gc"], 5432, is_gtm=True), PgxcRow("cn1", "C", IPS["cn1"], 5432),
            PgxcRow("dn1", "D", IPS["dn1"], 5432, is_primary=True)]


def test_off_and_clean_reports_repair_nothing():
    antdb = FakeAntDB({"gc": [], "cn1": []})
    assert not repair_cluster(FakeKube(), antdb, NS, "off", DRIFT).changed
    clean = VerificationReport(NS, (Finding("gc", "pod", True, "ok"),))
    assert not repair_cluster(FakeKube(), antdb, NS, "safe", clean).changed
    assert antdb.applied == {}
    with pytest.raises(ValueError, match="repair must be one of"):
        repair_cluster(FakeKube(), antdb, NS, "aggressive", DRIFT)


def test_safe_repair_applies_each_plan_and_refuses_a_blocked_one_without_stopping():
    blocked = good_catalog() + [PgxcRow("dn9", "D", "127.0.10.29", 5432)]
    antdb = FakeAntDB({"gc": blocked, "cn1": [r for r in good_catalog() if r.node_name != "gc"]})
    outcome = repair_catalogs(FakeKube(), antdb, NS)
    assert antdb.applied == {"cn1": 1}, "cn1 is still repaired after gc's plan was refused"
    assert outcome.actions == ["cn1: pgxc_node: 1 change(s) applied, pool reloaded"]
    assert len(outcome.refused) == 1 and "refusing to drop a datanode" in outcome.refused[0]


def test_repair_is_refused_when_a_node_has_no_service():
    kube = FakeKube({"gc": IPS["gc"], "dn1": IPS["dn1"]})
    outcome = repair_cluster(kube, FakeAntDB({}), NS, "safe", DRIFT)
    assert outcome.refused == ["cannot repair pgouser1: no Service address for cn1"] and not outcome.changed


def test_custom_config_is_rewritten_only_when_stale():
    gc = NodeAddress("gc", NodeRole.GTM_COORD, "127.0.10.9")
    kube = FakeKube()
    text = yaml.safe_dump({"bootstrap": {"dcs": {"postgresql": {"parameters": {"agtm_host": "127.0.10.1",
                                                                               "work_mem": "8MB"}}}}})
    kube.configmaps["pgo-custom-antdb-config"] = {"data": {"postgres-ha.yaml": text}}
    assert rewrite_custom_config(kube, NS, gc) == "ConfigMap pgo-custom-antdb-config: agtm_host 127.0.10.1:None " \
                                                  "-> 127.0.10.9:5432"
    written = kube.writes[0][3]["data"]["postgres-ha.yaml"]
    assert "agtm_host: 127.0.10.9" in written and "work_mem: 8MB" in written
    kube.configmaps["pgo-custom-antdb-config"] = {"data": {"postgres-ha.yaml": written}}
    assert rewrite_custom_config(kube, NS, gc) is None


def test_dcs_configs_of_non_gc_nodes_get_the_new_address():
    topology = Topology.of([NodeAddress("gc", NodeRole.GTM_COORD, "127.0.10.9"),
                            NodeAddress("cn1", NodeRole.COORDINATOR, IPS["cn1"]),
                            NodeAddress("dn1", NodeRole.DATANODE, IPS["dn1"])])
    kube = FakeKube()
    stale = json.dumps({"postgresql": {"parameters": {"agtm_host": "127.0.10.1", "agtm_port": 5432}}})
    kube.configmaps.update({"gc-config": {"metadata": {"annotations": {"config": "{}"}}},
                            "cn1-config": {"metadata": {"annotations": {"config": stale}}}})
    assert patch_dcs_configs(kube, NS, topology) == ["ConfigMap cn1-config: agtm_host -> 127.0.10.9:5432"]
    assert [w[2] for w in kube.writes] == ["cn1-config"], "gc without agtm_host and dn1 without a config: untouched"


def test_stale_nodes_come_in_start_order_unreachable_included():
    topology = repair._complete_topology(FakeKube(), NS)
    antdb = FakeAntDB({}, {"cn1": "127.0.10.7", "dn1": "down"})
    assert [n.name for n in stale_agtm_nodes(antdb, topology)] == ["dn1", "cn1"]


def test_restart_waits_for_a_new_healthy_pod_and_is_bounded():
    kube = FakeKube()
    assert restart_node_pod(kube, NS, "cn1", lambda: True, timeout=5, poll=0.01) == "cn1-pod-2"
    assert ("delete", "Pod", "cn1-pod-1") in kube.writes
    with pytest.raises(RepairError, match=r"cn1: no healthy replacement for pod cn1-pod-2 within 0s "
                                          r"\(pod cn1-pod-3 Ready but not healthy yet\)"):
        restart_node_pod(kube, NS, "cn1", lambda: False, timeout=0.05, poll=0.01)
