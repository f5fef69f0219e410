"""core.bootstrap: when a node counts as left un-bootstrapped by the operator, and what re-runs it."""

from __future__ import annotations

from antdb_k8s.core.bootstrap import (
    INITIALIZED,
    PROCESSED,
    BootstrapJob,
    BootstrapState,
    bootstrap_states,
    bootstrap_verdict,
    creation_abandoned,
    epoch,
    rerun_steps,
)

T0 = epoch("2026-12-02T13:00:00Z")


def pod(node: str, ready_at: str | None, **labels) -> dict:
    conditions = [{"type": "Ready", "status": "True", "lastTransitionTime": ready_at}] if ready_at else \
        [{"type": "Ready", "status": "False"}]
    return {"metadata": {"name": f"{node}-abc", "labels": {"pg-cluster": node, "pgo-pg-database": "true", **labels}},
            "status": {"conditions": conditions}}


def job(name: str, node: str, done_at: str | None) -> dict:
    conditions = [{"type": "Complete", "status": "True", "lastTransitionTime": done_at}] if done_at else []
    return {"metadata": {"name": name, "labels": {"pg-cluster": node}},
            "status": {"startTime": "2026-12-02T13:00:01Z", "conditions": conditions}}


def test_epoch_reads_kubernetes_timestamps():
    assert epoch("2026-12-02T13:00:10Z") - T0 == 10


def test_initialized_and_not_yet_ready_nodes_are_fine_whatever_the_time():
    assert bootstrap_verdict(BootstrapState("gc", INITIALIZED, T0), T0 + 10**6)[0]
    ok, detail = bootstrap_verdict(BootstrapState("gc", "pgcluster Processed", None), T0 + 10**6)
    assert ok and "primary pod" in detail


def test_a_running_job_is_progress():
    state = BootstrapState("gc", "pgcluster Processed", T0, (BootstrapJob("gc-stanza-create", True, T0),))
    ok, detail = bootstrap_verdict(state, T0 + 10**6)
    assert ok and "gc-stanza-create running" in detail


def test_stuck_is_nothing_moving_for_the_grace_counted_from_the_last_step():
    state = BootstrapState("gc", "pgcluster Processed", T0, (BootstrapJob("gc-stanza-create", False, T0 + 100),))
    assert bootstrap_verdict(state, T0 + 100 + 299, grace=300)[0]
    ok, detail = bootstrap_verdict(state, T0 + 100 + 301, grace=300)
    assert not ok
    assert "never finished bootstrapping gc" in detail and "'pgcluster Processed'" in detail
    assert "repair=full" in detail and "gc-stanza-create" in detail


def test_states_pair_each_node_with_its_primary_pod_and_its_own_jobs_only():
    pods = [pod("gc", "2026-12-02T13:00:00Z"), pod("gc", "2026-12-02T12:00:00Z", **{"pgo-backrest-repo": "true"}),
            pod("dn1", None)]
    jobs = [job("gc-stanza-create", "gc", "2026-12-02T13:00:05Z"), job("backrest-backup-dn1", "dn1", None)]
    states = {s.node: s for s in bootstrap_states({"gc": "pgcluster Processed", "dn1": "pgcluster Processed"},
                                                  pods, jobs)}
    assert states["gc"].ready_since == T0
    assert states["gc"].jobs == (BootstrapJob("gc-stanza-create", False, T0 + 5),)
    assert states["dn1"].ready_since is None
    assert states["dn1"].jobs == (BootstrapJob("backrest-backup-dn1", True, T0 + 1),)


def test_rerun_deletes_only_the_records_of_the_stanza_and_the_first_backup():
    assert rerun_steps("cn2") == [("crunchydata.com/v1", "Pgtask", "cn2-stanza-create"),
                                  ("batch/v1", "Job", "cn2-stanza-create"),
                                  ("crunchydata.com/v1", "Pgtask", "backrest-backup-cn2"),
                                  ("batch/v1", "Job", "backrest-backup-cn2")]


def _pgcluster(state: str | None, created: str = "2026-12-02T13:00:00Z") -> dict:
    return {"metadata": {"name": "dn1", "creationTimestamp": created}, **({"status": {"state": state}} if state else {})}


def test_an_abandoned_creation_is_processed_without_a_deployment_for_longer_than_the_grace():
    assert creation_abandoned(_pgcluster(PROCESSED), has_deployment=False, now=T0 + 60, grace=60)
    assert not creation_abandoned(_pgcluster(PROCESSED), has_deployment=False, now=T0 + 59, grace=60), \
        "the operator makes the Deployment just after marking Processed: young ones are pending"
    assert not creation_abandoned(_pgcluster(PROCESSED), has_deployment=True, now=T0 + 600, grace=60)
    assert not creation_abandoned(_pgcluster(None), has_deployment=False, now=T0 + 600, grace=60), \
        "no status: the operator has not seen it yet (not running, or another installation)"
    assert not creation_abandoned(_pgcluster(INITIALIZED), has_deployment=False, now=T0 + 600, grace=60)
    assert not creation_abandoned({"metadata": {"name": "dn1"}, "status": {"state": PROCESSED}},
                                  has_deployment=False, now=T0 + 600, grace=60)
