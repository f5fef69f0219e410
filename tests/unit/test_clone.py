"""The clone workflow decisions (core.clone): the backup Pgtask, where a clone stands or which
step failed (from Pgtasks and Jobs shaped as operator 4.2.1 writes them), and the customconfig
the clone drops."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from antdb_k8s.core.clone import (STEP_GRACE_SECONDS, backup_job_selector, backup_request, backup_verdict,
                                  clone_verdict, custom_bootstrap_dcs, dcs_is_stale, pgconf_volumes_with,
                                  source_ready_verdict)
from sandbox.kubeapi.selectors import labels_match, parse_label_selector

NOW = datetime(2026, 12, 2, 6, 0, 0, tzinfo=timezone.utc)
WF = "3f1c2b9e-0000-4000-8000-000000000001"


def stamp(seconds_ago: float) -> str:
    return (NOW - timedelta(seconds=seconds_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def task(tasktype: str, step_label: str, *, age: float = 5, processed=True, completed=False, workflow=WF) -> dict:
    """A clone Pgtask as util.CloneTask.Create and the task controller leave it."""
    return {"metadata": {"name": f"{tasktype}-cn3-abcd", "creationTimestamp": stamp(age),
                         "labels": {"pg-cluster": "cn3", "pgo-clone": "true", step_label: "true"}},
            "spec": {"tasktype": tasktype, "parameters": {"workflowid": workflow},
                     **({"status": "completed"} if completed else {})},
            **({"status": {"state": "pgtask Processed"}} if processed else {})}


def job(name: str, step_label: str, state: str | None, *, done_ago: float = 1, workflow=WF) -> dict:
    status: dict = {"active": 1}
    if state == "Complete":
        status = {"succeeded": 1, "completionTime": stamp(done_ago),
                  "conditions": [{"type": "Complete", "status": "True", "lastTransitionTime": stamp(done_ago)}]}
    elif state == "Failed":
        status = {"failed": 1, "conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]}
    return {"metadata": {"name": name, "labels": {"pg-cluster": "cn3", step_label: "true", "workflowid": workflow}},
            "status": status}


def verdict(tasks, jobs, exists=False):
    return clone_verdict("cn3", WF, tasks, jobs, exists, NOW)


STEP1 = ("clone-step1", "pgo-clone-step-1")
STEP2 = ("clone-step2", "pgo-clone-step-2")
STEP3 = ("clone-step3", "pgo-clone-step-3")


def test_a_clone_that_ran_all_three_steps_is_done():
    tasks = [task(*STEP1, completed=True), task(*STEP2, completed=True), task(*STEP3, completed=True)]
    jobs = [job("pgo-backrest-repo-sync-cn3-x", STEP1[1], "Complete"), job("restore-cn3-y", STEP2[1], "Complete")]
    assert verdict(tasks, jobs, exists=True).done


def test_a_failed_restore_job_fails_at_once_naming_step_2_and_the_job():
    tasks = [task(*STEP1, completed=True), task(*STEP2, age=3, completed=True)]
    jobs = [job("pgo-backrest-repo-sync-cn3-x", STEP1[1], "Complete"), job("restore-cn3-y", STEP2[1], "Failed")]
    result = verdict(tasks, jobs)
    assert not result.done and result.job == "restore-cn3-y"
    assert "step 2 (pgBackRest restore" in result.failure and "Job restore-cn3-y failed" in result.failure


def test_a_failed_repo_sync_names_step_1():
    result = verdict([task(*STEP1, completed=True)], [job("pgo-backrest-repo-sync-cn3-x", STEP1[1], "Failed")])
    assert "step 1 (PVCs and pgBackRest repo sync)" in result.failure


def test_running_steps_are_waited_for_not_failed():
    assert verdict([task(*STEP1, processed=False)], []).waiting
    result = verdict([task(*STEP1, completed=True)], [job("pgo-backrest-repo-sync-cn3-x", STEP1[1], None)])
    assert result.failure is None and "running" in result.waiting
    # step 2's Pgtask not there yet, a second after the sync finished
    result = verdict([task(*STEP1, completed=True)], [job("pgo-backrest-repo-sync-cn3-x", STEP1[1], "Complete")])
    assert result.failure is None and "clone-step2" in result.waiting


def test_a_step_the_operator_took_but_never_completed_fails_after_the_grace_only():
    young = verdict([task(*STEP1, age=STEP_GRACE_SECONDS - 10)], [])
    assert young.failure is None
    old = verdict([task(*STEP1, age=STEP_GRACE_SECONDS + 10)], [])
    assert "took Pgtask clone-step1-cn3-abcd but did not complete it" in old.failure


def test_a_completed_step_without_its_job_fails_after_the_grace():
    result = verdict([task(*STEP1, age=STEP_GRACE_SECONDS + 1, completed=True)], [])
    assert "completed without creating its Job" in result.failure


def test_step_3_completed_without_a_pgcluster_is_a_failure():
    tasks = [task(*STEP1, completed=True), task(*STEP2, completed=True), task(*STEP3, completed=True)]
    jobs = [job("pgo-backrest-repo-sync-cn3-x", STEP1[1], "Complete"), job("restore-cn3-y", STEP2[1], "Complete")]
    assert "no Pgcluster cn3" in verdict(tasks, jobs, exists=False).failure


def test_an_older_failed_attempt_does_not_fail_the_new_one():
    old = "00000000-0000-4000-8000-000000000000"
    tasks = [task(*STEP1, completed=True, workflow=old), task(*STEP1, processed=False)]
    jobs = [job("pgo-backrest-repo-sync-cn3-old", STEP1[1], "Failed", workflow=old)]
    assert verdict(tasks, jobs).failure is None


def test_the_job_controller_not_creating_the_next_task_is_a_failure_after_the_grace():
    jobs = [job("pgo-backrest-repo-sync-cn3-x", STEP1[1], "Complete", done_ago=STEP_GRACE_SECONDS + 5)]
    assert "no Pgtask clone-step2 appeared" in verdict([task(*STEP1, completed=True)], jobs).failure


# ------------------------------------------------------------------ backup

def test_backup_request_is_the_pgtask_pgo_backup_creates():
    request = backup_request("pgouser1", "cn1", "cn1-backrest-shared-repo-5d8-x7k2p", pgouser="antdb-airflow")
    assert request["metadata"]["name"] == "backrest-backup-cn1"
    assert request["spec"]["tasktype"] == "backrest"
    params = request["spec"]["parameters"]
    assert params["job-name"] == "backrest-backup-cn1" and params["backrest-command"] == "backup"
    assert params["podname"] == "cn1-backrest-shared-repo-5d8-x7k2p" and params["pg-cluster"] == "cn1"
    assert request["metadata"]["labels"]["pg-cluster"] == "cn1"
    # The job controller completes it with a JSON-patch replace of /spec/status: the key must exist.
    assert request["spec"]["status"] == "" and request["spec"]["storagespec"]["storagetype"] == ""
    selector = parse_label_selector(backup_job_selector("cn1"))
    # backrest-job.json's labels: the selector finds cn1's backup Job and not its stanza-create Job
    backup_labels = {"vendor": "crunchydata", "pgo-backrest": "true", "pgo-backrest-job": "true",
                     "backrest-command": "backup", "pg-cluster": "cn1"}
    assert labels_match(selector, {"metadata": {"labels": backup_labels}})
    assert not labels_match(selector, {"metadata": {"labels": {**backup_labels, "backrest-command": "stanza-create"}}})


def test_backup_verdicts():
    task_obj = {"metadata": {"name": "backrest-backup-cn1", "creationTimestamp": stamp(STEP_GRACE_SECONDS + 1)},
                "status": {"state": "pgtask Processed"}}
    assert backup_verdict(None, None, NOW).waiting
    assert "created no backup Job" in backup_verdict(task_obj, None, NOW).failure
    failed = job("backrest-backup-cn1", "pgo-backrest", "Failed")
    assert "Job backrest-backup-cn1 failed" in backup_verdict(task_obj, failed, NOW).failure
    assert backup_verdict(task_obj, job("backrest-backup-cn1", "pgo-backrest", "Complete"), NOW).done


# ------------------------------------------------------------------ the dropped customconfig

def test_the_custom_config_goes_first_in_the_pgconf_volume_once():
    volumes = [{"name": "pgdata", "persistentVolumeClaim": {"claimName": "cn3"}},
               {"name": "pgconf-volume",
                "projected": {"sources": [{"configMap": {"name": "cn3-pgha-default-config"}}]}}]
    patched = pgconf_volumes_with(volumes, "pgo-custom-antdb-config")
    assert patched[0] == volumes[0]
    assert [s["configMap"]["name"] for s in patched[1]["projected"]["sources"]] == \
        ["pgo-custom-antdb-config", "cn3-pgha-default-config"]
    assert pgconf_volumes_with(patched, "pgo-custom-antdb-config") is None


def test_a_dcs_config_bootstrapped_from_another_file_is_stale():
    text = ("bootstrap:\n  dcs:\n    loop_wait: 10\n    postgresql:\n      parameters:\n"
            "        agtm_host: 127.10.0.1\n        agtm_port: 5432\n")
    custom = custom_bootstrap_dcs(text)
    assert custom["postgresql"]["parameters"] == {"agtm_host": "127.10.0.1", "agtm_port": 5432}
    from_custom = json.dumps(custom)
    from_default = json.dumps({"loop_wait": 10, "postgresql": {"parameters": {"archive_timeout": None}}})
    assert not dcs_is_stale(from_custom, custom)
    assert dcs_is_stale(from_default, custom)
    assert dcs_is_stale("not json", custom)
    assert custom_bootstrap_dcs("not: [valid") == {}


def test_a_backup_is_requested_only_once_the_stanza_exists_and_no_earlier_backup_runs():
    stanza_done = job("cn1-stanza-create", "pgo-backrest", "Complete", done_ago=60)
    assert source_ready_verdict("cn1", None, None, NOW, waited=5).waiting
    late = source_ready_verdict("cn1", None, None, NOW, waited=STEP_GRACE_SECONDS + 1)
    assert "no Job cn1-stanza-create" in late.failure
    running_stanza = job("cn1-stanza-create", "pgo-backrest", None)
    assert "running" in source_ready_verdict("cn1", running_stanza, None, NOW, 5).waiting
    failed = source_ready_verdict("cn1", job("cn1-stanza-create", "pgo-backrest", "Failed"), None, NOW, 5)
    assert "stanza-create: Job cn1-stanza-create failed" in failed.failure
    just_done = job("cn1-stanza-create", "pgo-backrest", "Complete", done_ago=2)
    assert "initial backup" in source_ready_verdict("cn1", just_done, None, NOW, 5).waiting
    earlier = job("backrest-backup-cn1", "pgo-backrest", None)
    assert "is running" in source_ready_verdict("cn1", stanza_done, earlier, NOW, 5).waiting
    assert source_ready_verdict("cn1", stanza_done, job("backrest-backup-cn1", "x", "Complete"), NOW, 5).done
    assert source_ready_verdict("cn1", stanza_done, None, NOW, 5).done
