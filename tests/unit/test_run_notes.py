"""The run note's words (core/run_notes): what a person sees in the Grid view without opening a log."""

from __future__ import annotations

from antdb_k8s.core.run_notes import drift_from_reports, drift_line, may_replace, run_note


def test_a_dry_run_note_says_so_whatever_the_outcome():
    assert run_note(state="success", dry_run=True, failures=[]).startswith("DRY RUN: nothing was changed")
    failed = run_note(state="failed", dry_run=True, failures=[{"task": "preflight", "message": "no kubeconfig"}])
    assert failed.startswith("DRY RUN") and "Failed in preflight: no kubeconfig" in failed


def test_a_failed_run_names_the_first_failure_and_counts_the_rest():
    note = run_note(state="failed", dry_run=False, failures=[{"task": "preflight", "message": "no kubeconfig"},
                                                             {"task": "summary", "message": "x"}])
    assert note == "Failed in preflight: no kubeconfig (1 more task(s) failed)"
    assert run_note(state="success", dry_run=False, failures=[]) is None


def test_drift_becomes_the_notifier_line():
    reports = [{"namespace": "a", "clean": False, "drift": ["cn1 pgxc_node: ALTER cn2 [host]"]},
               {"namespace": "b", "clean": True, "drift": []}]
    drift = drift_from_reports(reports)
    assert drift == ["a: cn1 pgxc_node: ALTER cn2 [host]"]
    line = drift_line("scheduled__1", "task_failure", drift)
    assert run_note(state="failed", dry_run=False, failures=[], drift_note=line) == line
    assert line == "AntDB topology drift (run scheduled__1, task_failure): 1 finding(s): a: cn1 pgxc_node: ALTER cn2 [host]"


def test_a_person_s_note_is_never_replaced():
    assert may_replace(None) and may_replace("") and may_replace("DRY RUN: ...") and may_replace("Failed in x")
    assert not may_replace("investigating, do not re-run -- Ana")
