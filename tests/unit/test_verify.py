"""Verification as data: findings, the report's verdict and table, and each judgement."""

from __future__ import annotations

import json

import yaml

from antdb_k8s.core.manifests import agtm_from_dcs, agtm_from_postgres_ha, dcs_with_agtm, postgres_ha_with_agtm
from antdb_k8s.core.pgxc import PgxcRow, plan_pgxc_changes
from antdb_k8s.core.readiness import NodeReadiness, ReadinessReport
from antdb_k8s.core.smoke import judge_smoke
from antdb_k8s.core.topology import NodeAddress, NodeRole, Topology
from antdb_k8s.core.verify import (
    CLUSTER,
    Finding,
    VerificationReport,
    agtm_drift_nodes,
    agtm_finding,
    config_map_finding,
    data_finding,
    dcs_agtm_finding,
    first_line,
    pgxc_findings,
    pod_findings,
    reachable_finding,
    service_finding,
    sorted_findings,
    version_finding,
)

GC = NodeAddress("gc", NodeRole.GTM_COORD, "127.0.10.1")
CN1 = NodeAddress("cn1", NodeRole.COORDINATOR, "127.0.10.11")
DN1 = NodeAddress("dn1", NodeRole.DATANODE, "127.0.10.21")
DN2 = NodeAddress("dn2", NodeRole.DATANODE, "127.0.10.22")
TOPOLOGY = Topology.of([GC, CN1, DN1, DN2])


def healthy_rows() -> list[PgxcRow]:
    return [PgxcRow("gc", "C", GC.host, 5432, is_gtm=True), PgxcRow("cn1", "C", CN1.host, 5432),
            PgxcRow("dn1", "D", DN1.host, 5432, is_primary=True), PgxcRow("dn2", "D", DN2.host, 5432)]


def report(*findings: Finding) -> VerificationReport:
    return VerificationReport("pgouser1", tuple(findings))


# --------------------------------------------------------------------------- report

def test_report_is_clean_only_when_every_finding_passed():
    ok = Finding("gc", "pod", True, "pod gc-1 Ready")
    bad = Finding("cn1", "pgxc_node", False, "ALTER cn2 [host] needed")
    assert report(ok).clean
    assert not report(ok, bad).clean
    assert report(ok, bad).drift == ["cn1 pgxc_node: ALTER cn2 [host] needed"]
    assert report(ok, bad).problems == (bad,)


def test_an_empty_report_is_not_clean_and_says_nothing_was_verified():
    empty = report()
    assert not empty.clean
    assert empty.drift == ["cluster topology: nothing was verified in namespace pgouser1"]


def test_report_round_trips_through_xcom_json():
    original = report(Finding("gc", "pod", True, "ok"), Finding(CLUSTER, "data", False, "lost 3 rows"))
    data = json.loads(json.dumps(original.to_dict()))
    assert data["clean"] is False and data["drift"] == ["cluster data: lost 3 rows"]
    assert VerificationReport.from_dict(data) == original


def test_summary_names_the_nodes_and_every_drift_line():
    bad = report(Finding("gc", "pod", True, "ok"), Finding("cn1", "agtm_host", False, "stale"),
                 Finding("dn1", "agtm_host", False, "stale"))
    assert bad.summary() == "pgouser1: 2 drift finding(s) on cn1, dn1: cn1 agtm_host: stale; dn1 agtm_host: stale"
    assert report(Finding("gc", "pod", True, "ok")).summary() == "pgouser1: clean: 1 nodes, 1 checks"


def test_table_has_one_row_per_finding_and_wraps_long_details():
    long_detail = "word " * 40
    text = report(Finding("gc", "pod", True, "pod gc-1 Ready"), Finding("cn1", "pgxc_node", False, long_detail)).table()
    lines = text.splitlines()
    assert lines[1].split() == ["NODE", "CHECK", "RESULT", "DETAIL"]
    assert lines[3].split()[:3] == ["gc", "pod", "ok"]
    assert lines[4].split()[:3] == ["cn1", "pgxc_node", "DRIFT"]
    assert lines[5].startswith(" " * 30 + "word"), "wrapped detail continues under DETAIL"
    assert max(len(line) for line in lines) <= 100
    assert lines[-1] == "result: 1 drift finding(s)"
    assert " ".join(line.strip() for line in lines[4:-2]).count("word") == 40


def test_sorted_findings_groups_by_node_order_then_check_order():
    findings = [Finding(CLUSTER, "data", True, ""), Finding("cn1", "agtm_host", True, ""),
                Finding("gc", "reachable", True, ""), Finding("cn1", "pod", True, ""), Finding("gc", "pod", True, "")]
    ordered = sorted_findings(findings, ["gc", "cn1"])
    assert [(f.node, f.check) for f in ordered] == [("gc", "pod"), ("gc", "reachable"), ("cn1", "pod"),
                                                    ("cn1", "agtm_host"), (CLUSTER, "data")]


def test_agtm_drift_nodes_are_the_stale_and_the_unreachable():
    r = report(Finding("gc", "agtm_host", True, ""), Finding("cn1", "reachable", False, "refused"),
               Finding("dn1", "agtm_host", False, "stale"), Finding("dn2", "agtm_host", True, ""))
    assert agtm_drift_nodes(r) == ["cn1", "dn1"]


# --------------------------------------------------------------------------- judgements

def test_pod_findings_follow_the_readiness_decision():
    readiness = ReadinessReport((NodeReadiness("gc", True, "gc-1", "Ready"),
                                 NodeReadiness("cn1", False, "cn1-1", "CrashLoopBackOff"),
                                 NodeReadiness("dn1", False, None, "no pod")))
    findings = pod_findings(readiness)
    assert [(f.node, f.ok) for f in findings] == [("gc", True), ("cn1", False), ("dn1", False)]
    assert findings[1].detail == "pod cn1-1: CrashLoopBackOff"
    assert findings[2].detail == "pod -: no pod"


def test_service_finding_needs_a_cluster_ip():
    assert service_finding("gc", None) == Finding("gc", "service", False, "Service gc not found")
    headless = {"spec": {"clusterIP": "None"}}
    assert not service_finding("gc", headless).ok
    assert service_finding("gc", {"spec": {"clusterIP": "127.0.10.1"}}) == Finding("gc", "service", True,
                                                                                   "ClusterIP 127.0.10.1")


def test_reachable_and_version_findings():
    assert reachable_finding(CN1, "OperationalError: refused") == Finding(
        "cn1", "reachable", False, "cannot query 127.0.10.11:5432: OperationalError: refused")
    assert reachable_finding(CN1, None).ok
    vanilla = "PostgreSQL 15.6 (Debian 15.6-0+deb12u1) on x86_64-pc-linux-gnu"
    assert version_finding(CN1, vanilla, "cn1") == Finding("cn1", "version", True, vanilla), "reported, not judged"
    renamed = version_finding(CN1, "PostgreSQL 11.6 ADB 5.0.0", "cn7")
    assert not renamed.ok and "'cn7'" in renamed.detail


def test_first_line_is_typed_and_bounded():
    assert first_line(ValueError("boom\nsecond line")) == "ValueError: boom"
    assert first_line(RuntimeError()) == "RuntimeError"
    assert len(first_line("x" * 1000)) == 300


def test_a_matching_catalog_is_one_ok_finding():
    plan = plan_pgxc_changes(TOPOLOGY, healthy_rows(), "cn1")
    assert pgxc_findings(plan, 4) == [Finding("cn1", "pgxc_node", True, "4 rows match Kubernetes")]


def test_every_planned_change_is_a_drift_finding():
    rows = healthy_rows()
    rows[1] = PgxcRow("cn1", "C", "localhost", 5432)                          # own row as initdb left it
    rows[2] = PgxcRow("dn1", "D", DN1.host, 5432)                             # lost its primary flag
    rows = [r for r in rows if r.node_name != "dn2"]                           # missing
    rows.append(PgxcRow("cn9", "C", "127.0.10.99", 5432))                     # stale extra coordinator
    findings = pgxc_findings(plan_pgxc_changes(TOPOLOGY, rows, "cn1"), len(rows))
    details = [f.detail for f in findings]
    assert all(not f.ok and f.node == "cn1" and f.check == "pgxc_node" for f in findings)
    assert details[0].startswith("ALTER cn1 [host] needed: ")
    assert details[1].startswith("ALTER dn1 [primary] needed: ")
    assert details[2].startswith("CREATE dn2 needed: ") and "missing from pgxc_node on cn1" in details[2]
    assert details[3].startswith("DROP cn9 needed: ")


def test_blockers_are_drift_findings_too():
    rows = healthy_rows() + [PgxcRow("dn9", "D", "127.0.10.29", 5432)]
    rows[1] = PgxcRow("cn1", "D", CN1.host, 5432)
    findings = pgxc_findings(plan_pgxc_changes(TOPOLOGY, rows, "gc"), len(rows))
    blockers = [f.detail for f in findings if f.detail.startswith("BLOCKER: ")]
    assert len(blockers) == 2
    assert any("cannot change a node's type" in b for b in blockers)
    assert any("refusing to drop a datanode" in b for b in blockers)


def test_agtm_host_must_be_gcs_service_address():
    assert agtm_finding(CN1, GC.host, 5432, GC).ok
    assert agtm_finding(CN1, GC.host, None, GC).ok
    stale = agtm_finding(CN1, "127.0.10.7", 5432, GC)
    assert not stale.ok and "127.0.10.7:5432" in stale.detail and "127.0.10.1:5432" in stale.detail
    assert not agtm_finding(CN1, GC.host, 6666, GC).ok, "a wrong port is drift too"
    assert not agtm_finding(DN1, None, None, GC).ok and "unset" in agtm_finding(DN1, None, None, GC).detail


def test_gc_may_name_itself_by_a_loopback_alias_but_other_nodes_may_not():
    assert agtm_finding(GC, "localhost", 5432, GC).ok
    assert agtm_finding(GC, GC.host, 5432, GC).ok
    assert not agtm_finding(CN1, "localhost", 5432, GC).ok
    assert not agtm_finding(GC, "127.0.10.7", 5432, GC).ok


def test_an_unreachable_node_is_explained_by_a_stale_patroni_config():
    stale = dcs_agtm_finding(CN1, "cn1-config", "127.0.10.7", 5432, GC)
    assert stale is not None and not stale.ok and stale.check == "agtm_host"
    assert "cn1-config starts it with agtm_host 127.0.10.7:5432" in stale.detail
    assert dcs_agtm_finding(CN1, "cn1-config", GC.host, 5432, GC) is None, "config right: nothing to add"
    assert dcs_agtm_finding(CN1, "cn1-config", None, None, GC) is None, "no config: nothing to add"


def test_config_map_finding():
    assert not config_map_finding("cfg", None, None, None, GC).ok
    assert config_map_finding("cfg", "text", GC.host, 5432, GC).ok
    stale = config_map_finding("cfg", "text", "127.0.10.7", 5432, GC)
    assert stale.node == CLUSTER and not stale.ok and "repair: full" in stale.detail


def test_data_finding_reports_the_spread_or_the_problems():
    good = judge_smoke(TOPOLOGY, "t", 100, {"dn1": 40, "dn2": 60}, {"gc": 100, "cn1": 100})
    assert data_finding(good) == Finding(CLUSTER, "data", True,
                                         "100 scratch rows over dn1=40, dn2=60; counted by cn1=100, gc=100")
    bad = judge_smoke(TOPOLOGY, "t", 100, {"dn1": 100}, {"gc": 100, "cn1": 0})
    finding = data_finding(bad)
    assert not finding.ok and "dn2 holds no rows" in finding.detail and "cn1 counts 0 rows" in finding.detail


# --------------------------------------------------------------------------- repair helpers (core.manifests)

POSTGRES_HA = """
bootstrap:
  dcs:
    postgresql:
      parameters:
        agtm_host: 127.0.10.1
        agtm_port: 5432
        max_connections: 300
        work_mem: 8MB
postgresql:
  pg_hba:
  - local all postgres peer
  - host all all 127.0.0.0/8 md5
"""


def test_postgres_ha_with_agtm_changes_only_the_address():
    updated = yaml.safe_load(postgres_ha_with_agtm(POSTGRES_HA, "127.0.10.9", 5432))
    original = yaml.safe_load(POSTGRES_HA)
    original["bootstrap"]["dcs"]["postgresql"]["parameters"]["agtm_host"] = "127.0.10.9"
    assert updated == original
    assert agtm_from_postgres_ha(postgres_ha_with_agtm(POSTGRES_HA, "127.0.10.9")) == ("127.0.10.9", 5432)


def test_dcs_with_agtm_updates_the_patroni_annotation_once():
    raw = json.dumps({"loop_wait": 10, "postgresql": {"parameters": {"agtm_host": "127.0.10.1", "agtm_port": 5432,
                                                                     "work_mem": "8MB"}}})
    updated = dcs_with_agtm(raw, "127.0.10.9", 5432)
    config = json.loads(updated)
    assert config["postgresql"]["parameters"] == {"agtm_host": "127.0.10.9", "agtm_port": 5432, "work_mem": "8MB"}
    assert config["loop_wait"] == 10
    assert dcs_with_agtm(updated, "127.0.10.9", 5432) is None, "already right: nothing to patch"


def test_dcs_with_agtm_leaves_gc_without_the_setting_alone():
    raw = json.dumps({"postgresql": {"parameters": {"work_mem": "8MB"}}})
    assert dcs_with_agtm(raw, "127.0.10.9", 5432, required=False) is None
    assert json.loads(dcs_with_agtm(raw, "127.0.10.9", 5432))["postgresql"]["parameters"]["agtm_host"] == "127.0.10.9"
    assert json.loads(dcs_with_agtm(None, "127.0.10.9"))["postgresql"]["parameters"]["agtm_port"] == 5432


def test_agtm_from_dcs_reads_what_a_node_starts_with():
    raw = json.dumps({"postgresql": {"parameters": {"agtm_host": "127.0.10.1", "agtm_port": "5432"}}})
    assert agtm_from_dcs(raw) == ("127.0.10.1", 5432)
    assert agtm_from_dcs(json.dumps({"loop_wait": 10})) == (None, None)
    assert agtm_from_dcs("not json") == (None, None)
    assert agtm_from_dcs(None) == (None, None)


# --------------------------------------------------------------------------- failure callback

class _FakeTI:
    def __init__(self, value):
        self.value, self.asked = value, []

    def xcom_pull(self, task_ids=None, key="return_value"):
        self.asked.append((task_ids, key))
        if isinstance(self.value, Exception):
            raise self.value
        return self.value


class _RecordingLog:
    """Stands in for the module logger (Airflow's log setup bypasses pytest's caplog)."""

    def __init__(self):
        self.errors: list[str] = []

    def error(self, message, *args):
        self.errors.append(message % args)

    def debug(self, *args, **kwargs):
        pass


def _notify(monkeypatch, context) -> list[str]:
    from antdb_k8s.operators import verify

    recorder = _RecordingLog()
    monkeypatch.setattr(verify, "log", recorder)
    verify.notify_drift(context)
    return recorder.errors


def test_notify_drift_logs_the_drift_of_the_final_report(monkeypatch):
    ti = _FakeTI({"drift": ["cn1 pgxc_node: ALTER cn2 [host] needed", "cluster data: failed"]})
    errors = _notify(monkeypatch, {"ti": ti, "run_id": "scheduled__1", "reason": "task_failure"})
    assert ti.asked == [("final_verify", "report")]
    assert errors == ["AntDB topology drift (run scheduled__1, task_failure): 2 finding(s): "
                      "cn1 pgxc_node: ALTER cn2 [host] needed; cluster data: failed"]


def test_notify_drift_never_raises_without_a_report(monkeypatch):
    errors = _notify(monkeypatch, {"ti": _FakeTI(ImportError("no comms")), "run_id": "r1"})
    errors += _notify(monkeypatch, {"run_id": "r2"})
    assert errors == ["AntDB topology verification failed (run r1, failure); see the task logs",
                      "AntDB topology verification failed (run r2, failure); see the task logs"]


def test_notify_drift_names_the_drifted_clusters_of_a_mapped_run(monkeypatch):
    reports = [{"namespace": "pgouser1", "clean": True, "drift": []},
               {"namespace": "pgouser2", "clean": False, "drift": ["cn1 pgxc_node: ALTER dn1 [port] needed"]}]
    errors = _notify(monkeypatch, {"ti": _FakeTI(reports), "run_id": "scheduled__2", "reason": "task_failure"})
    assert errors == ["AntDB topology drift (run scheduled__2, task_failure): 1 finding(s): "
                      "pgouser2: cn1 pgxc_node: ALTER dn1 [port] needed"]


def test_final_verify_gets_each_clusters_own_report_and_repair_result():
    from antdb_k8s.operators.verify import final_verify_kwargs

    report, repaired = {"namespace": "pgouser2", "clean": False}, {"changed": False}
    assert final_verify_kwargs((report, repaired)) == {"namespace": "pgouser2", "previous": report,
                                                       "repair_result": repaired}
