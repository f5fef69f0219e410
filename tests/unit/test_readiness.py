"""Readiness: exactly one Ready primary database pod per node; Crunchy's helper pods never count."""

from __future__ import annotations

import json

import pytest

from antdb_k8s.core.readiness import (
    assess_readiness,
    format_timeout_report,
    is_primary_database_pod,
    pod_is_ready,
    pod_wait_reason,
)

NODES = ["gc", "cn1", "cn2", "dn1", "dn2", "dn3"]


def pod(name: str, cluster: str, *, ready: bool = True, labels: dict | None = None, deleting: bool = False,
        waiting: str | None = None, phase: str = "Running") -> dict:
    """A pod as the operator's Deployment (or a Job) creates it, trimmed to what readiness reads."""
    metadata = {"name": name, "labels": {"pg-cluster": cluster, "vendor": "crunchydata", "pgo-pg-database": "true",
                                         "role": "master", **(labels or {})}}
    if deleting:
        metadata["deletionTimestamp"] = "2024-05-01T10:00:00Z"
    status = {"phase": phase, "conditions": [{"type": "Initialized", "status": "True"},
                                             {"type": "Ready", "status": "True" if ready else "False"}]}
    if waiting:
        status["containerStatuses"] = [{"name": "database", "ready": False, "state": {"waiting": {"reason": waiting}}}]
    return {"metadata": metadata, "status": status}


def backrest_repo_pod(cluster: str, suffix: str) -> dict:
    return pod(f"{cluster}-backrest-shared-repo-{suffix}", cluster, labels={"pgo-backrest-repo": "true"})


def job_pod(name: str, cluster: str) -> dict:
    return pod(name, cluster, ready=False, phase="Succeeded",
               labels={"job-name": name.rsplit("-", 1)[0], "controller-uid": "0f0e", "pgo-backrest-job": "true"})


def runbook_pods() -> list[dict]:
    """`kubectl get pod -n pgouser1` from runbook 2.13, step 5: 24 pods, six of them primaries."""
    primaries = {"gc": "gc-5ccf496dd6-mz7ll", "cn1": "cn1-58dffb454d-wr26j", "cn2": "cn2-6b888cb78f-gtm52",
                 "dn1": "dn1-6dbc9b745b-v8t7g", "dn2": "dn2-6f985d678-q774q", "dn3": "dn3-5d77dbc59d-lnr5l"}
    pods = []
    for node, name in primaries.items():
        pods += [pod(name, node), backrest_repo_pod(node, "b476446d5-5nf9v"),
                 job_pod(f"{node}-stanza-create-5r2tc", node), job_pod(f"backrest-backup-{node}-mkqt5", node)]
    return pods


def test_the_runbooks_cluster_is_ready():
    report = assess_readiness(NODES, runbook_pods())
    assert report.done
    assert report.ready == tuple(NODES)
    assert {n.node: n.pod for n in report.nodes}["gc"] == "gc-5ccf496dd6-mz7ll"
    assert report.progress_line() == "6/6 ready: gc, cn1, cn2, dn1, dn2, dn3"


def test_backrest_repo_pod_never_counts():
    repo = backrest_repo_pod("gc", "69dc8fb5c-pljqw")
    assert pod_is_ready(repo) and not is_primary_database_pod(repo)
    (gc,) = assess_readiness(["gc"], [repo]).nodes
    assert (gc.ready, gc.pod, gc.reason) == (False, None, "no pod")


@pytest.mark.parametrize("labels", [{"job-name": "gc-stanza-create"}, {"controller-uid": "0f0e"}])
def test_job_pods_never_count(labels):
    job = pod("gc-stanza-create-x9g2c", "gc", labels=labels)
    assert pod_is_ready(job) and not is_primary_database_pod(job)
    assert assess_readiness(["gc"], [job]).nodes[0].reason == "no pod"


def test_pod_without_database_label_never_counts():
    other = pod("gc-pgbouncer-1", "gc")
    del other["metadata"]["labels"]["pgo-pg-database"]
    assert not is_primary_database_pod(other)
    assert not is_primary_database_pod({"metadata": {"name": "bare"}})
    assert not is_primary_database_pod({})


def test_helper_pods_do_not_make_a_second_primary():
    pods = [pod("dn1-6dbc9b745b-v8t7g", "dn1"), backrest_repo_pod("dn1", "6c986bd54b-fkcgt"),
            job_pod("dn1-stanza-create-8pk7m", "dn1"), job_pod("backrest-backup-dn1-h5m4d", "dn1")]
    (dn1,) = assess_readiness(["dn1"], pods).nodes
    assert (dn1.ready, dn1.pod, dn1.reason) == (True, "dn1-6dbc9b745b-v8t7g", "Ready")


def test_terminating_pod_never_counts_even_if_ready():
    old = pod("gc-5ccf496dd6-mz7ll", "gc", deleting=True)
    new = pod("gc-5ccf496dd6-q2w3e", "gc", ready=False, waiting="ContainerCreating", phase="Pending")
    assert pod_is_ready(old) and not is_primary_database_pod(old)
    (gc,) = assess_readiness(["gc"], [old, new]).nodes
    assert (gc.ready, gc.pod, gc.reason) == (False, "gc-5ccf496dd6-q2w3e", "ContainerCreating")
    assert assess_readiness(["gc"], [old]).nodes[0].reason == "no pod"


def test_two_primary_pods_are_not_ready_and_both_are_named():
    pods = [pod("cn1-58dffb454d-wr26j", "cn1"), pod("cn1-7c9d8e7f6a-abcde", "cn1")]
    (cn1,) = assess_readiness(["cn1"], pods).nodes
    assert not cn1.ready and cn1.pod is None
    assert cn1.reason == "2 primary pods (cn1-58dffb454d-wr26j, cn1-7c9d8e7f6a-abcde)"


def test_one_pod_not_ready_reports_its_waiting_reason():
    (cn2,) = assess_readiness(["cn2"], [pod("cn2-6b888cb78f-gtm52", "cn2", ready=False, waiting="ContainerCreating",
                                            phase="Pending")]).nodes
    assert (cn2.ready, cn2.pod, cn2.reason) == (False, "cn2-6b888cb78f-gtm52", "ContainerCreating")


@pytest.mark.parametrize(("status", "reason"), [
    ({"phase": "Pending", "containerStatuses": [{"state": {"waiting": {"reason": "ContainerCreating"}}}]},
     "ContainerCreating"),
    ({"phase": "Running", "containerStatuses": [{"state": {"running": {}}},
                                                {"state": {"waiting": {"reason": "CrashLoopBackOff"}}}]},
     "CrashLoopBackOff"),
    ({"phase": "Running", "containerStatuses": [{"state": {"running": {"startedAt": "now"}}}]}, "Running"),
    ({"phase": "Pending", "containerStatuses": [{"state": {"waiting": {}}}]}, "Pending"),
    ({"phase": "Pending"}, "Pending"),
    ({}, "Unknown"),
])
def test_pod_wait_reason(status, reason):
    assert pod_wait_reason({"metadata": {"name": "p"}, "status": status}) == reason


@pytest.mark.parametrize(("conditions", "ready"), [
    ([{"type": "Ready", "status": "True"}], True),
    ([{"type": "Ready", "status": "False"}], False),
    ([{"type": "ContainersReady", "status": "True"}], False),
    ([], False),
    (None, False),
])
def test_pod_is_ready(conditions, ready):
    assert pod_is_ready({"status": {"conditions": conditions}}) is ready


def test_ready_but_unexpected_nodes_are_ignored():
    report = assess_readiness(["gc"], [pod("gc-1", "gc"), pod("cn9-1", "cn9"), pod("orphan", "")])
    assert [n.node for n in report.nodes] == ["gc"] and report.done


def test_progress_line_names_what_it_waits_for():
    pods = [pod(f"{n}-abc-1", n) for n in ("gc", "cn1", "dn1", "dn2")]
    pods.append(pod("cn2-abc-1", "cn2", ready=False, waiting="ContainerCreating", phase="Pending"))
    report = assess_readiness(NODES, pods)
    assert not report.done
    assert report.ready == ("gc", "cn1", "dn1", "dn2")
    assert [n.node for n in report.not_ready] == ["cn2", "dn3"]
    assert report.progress_line() == "4/6 ready: waiting for cn2 (ContainerCreating), dn3 (no pod)"


def test_report_keeps_the_expected_order_and_serialises():
    report = assess_readiness(["dn1", "gc"], [pod("gc-1", "gc")])
    assert report.expected == ("dn1", "gc")
    data = json.loads(json.dumps(report.to_dict()))
    assert data == {"done": False, "nodes": [
        {"node": "dn1", "ready": False, "pod": None, "reason": "no pod"},
        {"node": "gc", "ready": True, "pod": "gc-1", "reason": "Ready"},
    ]}


def _event(i: int) -> dict:
    return {"type": "Warning" if i % 2 else "Normal", "reason": f"Reason{i}", "message": f"message {i}"}


def test_timeout_report_names_every_waiting_node_its_pod_and_last_five_events():
    pods = [pod(f"{n}-abc-1", n) for n in ("gc", "cn1", "dn1", "dn2")]
    pods.append(pod("cn2-abc-1", "cn2", ready=False, waiting="ImagePullBackOff", phase="Pending"))
    report = assess_readiness(NODES, pods)
    events = {"cn2-abc-1": [_event(i) for i in range(1, 8)], "gc-abc-1": [_event(99)]}
    text = format_timeout_report(report, events, 1800.4)
    lines = text.splitlines()
    assert lines[0] == "timed out after 1800s: 4/6 ready: waiting for cn2 (ImagePullBackOff), dn3 (no pod)"
    assert lines[1] == "  cn2: pod cn2-abc-1 is ImagePullBackOff"
    assert lines[2:7] == [f"    {'Warning' if i % 2 else 'Normal'} Reason{i}: message {i}" for i in range(3, 8)]
    assert lines[7] == "  dn3: pod - is no pod"
    assert len(lines) == 8
    assert "Reason1:" not in text and "Reason2:" not in text and "Reason99" not in text


def test_timeout_report_for_two_primaries():
    report = assess_readiness(["dn1"], [pod("dn1-a", "dn1"), pod("dn1-b", "dn1")])
    assert format_timeout_report(report, {}, 60).splitlines() == [
        "timed out after 60s: 0/1 ready: waiting for dn1 (2 primary pods (dn1-a, dn1-b))",
        "  dn1: pod - is 2 primary pods (dn1-a, dn1-b)",
    ]
