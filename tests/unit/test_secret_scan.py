"""The session-end password scan finds what it should, names where, and ignores the rest."""

from __future__ import annotations

import base64
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

from tests.support import secret_scan

SECRET = "s3cret:'pw\\x"


def test_a_secret_is_found_raw_or_json_escaped_and_named_by_place():
    rows = [("xcom run=a task=plan", {"hosts": ["gc"]}),
            ("xcom run=a task=leak", {"note": f"pw is {SECRET}"}),
            ("rendered_task_instance_fields task=t", json.dumps({"sql": f"ALTER ROLE x PASSWORD '{SECRET}'"}))]
    assert secret_scan.scan_rows(rows, {SECRET}) == ["xcom run=a task=leak", "rendered_task_instance_fields task=t"]


def test_log_files_are_scanned_line_by_line(tmp_path):
    (tmp_path / "dag_id=x").mkdir()
    (tmp_path / "dag_id=x" / "attempt=1.log").write_text("fine\nconnecting with password s3cret:'pw\\x\nfine\n")
    (tmp_path / "other.log").write_text("nothing here\n")
    assert secret_scan.scan_log_files(tmp_path, {SECRET}) == [f"log {tmp_path}/dag_id=x/attempt=1.log:2"]


def test_secrets_written_to_a_test_cluster_are_remembered_but_not_short_or_public_values():
    password, key = "Zx9-generated-password", "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAAbody1\nAAAAbody2\n-----END OPENSSH PRIVATE KEY-----\n"
    secret = {"kind": "Secret", "data": {k: base64.b64encode(v.encode()).decode() for k, v in
                                         {"password": password, "username": "postgres", "id_rsa": key,
                                          "config": "Port 2022"}.items()}}
    secret_scan.remember_secrets("ADDED", secret)
    known = secret_scan.known_secrets()
    assert {password, "AAAAbody1", "AAAAbody2"} <= known
    assert "postgres" not in known and "Port 2022" not in known


def test_the_log_tap_keeps_every_record_even_after_logging_is_reconfigured(tmp_path):
    """`dictConfig` (what starting Airflow's API server does) closes and detaches every handler;
    the tap still gets the records made after it, from any logger, with their tracebacks."""
    import logging.config

    root = logging.getLogger()
    saved_handlers, saved_level, factory_before = root.handlers[:], root.level, logging.getLogRecordFactory()
    tap = secret_scan.LogTap(tmp_path / "logs" / "tap.log").install()
    try:
        logging.getLogger("antdb_k8s.test_tap").warning("connecting as %s", "someone")
        logging.config.dictConfig({"version": 1, "disable_existing_loggers": False,
                                   "root": {"level": "INFO", "handlers": []}})
        quiet = logging.getLogger("antdb_k8s.test_tap.quiet")
        quiet.propagate = False
        quiet.info("after the reconfiguration, as %s", "someone else")
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            quiet.exception("failed")
        quiet.info("%s %s", "one argument short")  # a caller's bad format string breaks neither it nor the tap
    finally:
        tap.close()
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
    text = (tmp_path / "logs" / "tap.log").read_text()
    assert "antdb_k8s.test_tap WARNING connecting as someone" in text
    assert "antdb_k8s.test_tap.quiet INFO after the reconfiguration, as someone else" in text
    assert "RuntimeError: boom" in text and "'%s %s' ('one argument short',)" in text
    assert logging.getLogRecordFactory() == factory_before  # closed: the factory is what it was


def test_captured_test_output_is_kept_and_a_leak_names_the_test(tmp_path):
    log = tmp_path / "test-output.log"
    secret_scan.write_test_output(log, "tests/a.py::test_one", "call", [("stdout", "fine\n"), ("log", "")])
    secret_scan.write_test_output(log, "tests/a.py::test_two", "call", [("stdout", f"task log: {SECRET}\n")])
    assert secret_scan.scan_log_files(tmp_path, {SECRET}) == [f"log {log}:5 (tests/a.py::test_two call stdout)"]


LEAKY_TEST = """
from tests.support.cluster import PASSWORD

def test_prints_the_password_like_a_leaky_task_log():
    print("task log: connecting with", PASSWORD)
"""


def _run_session(tmp_path: Path, name: str, source: str, expect_failure: bool = True) -> str:
    """A pytest session of one test file with the suite's conftest: what it printed."""
    root = Path(__file__).resolve().parents[2]
    (tmp_path / name).write_text(source)
    child = subprocess.run(
        [sys.executable, "-m", "pytest", "-c", str(root / "pyproject.toml"), "--rootdir", str(root), "-p", "tests.conftest",
         "-p", "no:cacheprovider", "-q", str(tmp_path / name)],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(root), str(root / "plugins")]),
             "TMPDIR": str(tmp_path)})  # the failed session keeps its Airflow home: here, not in /tmp
    report = child.stdout + child.stderr
    assert (child.returncode != 0) is expect_failure, report
    homes = [p for p in tmp_path.iterdir() if p.name.startswith("antdb-airflow-home-")]
    assert len(homes) == (1 if expect_failure else 0), "a failed session keeps its Airflow home, a clean one removes it"
    return report


def test_a_session_whose_test_printed_the_password_fails_naming_the_test(tmp_path):
    report = _run_session(tmp_path, "test_leaky.py", LEAKY_TEST)
    assert "a password was left behind by a DAG run" in report, report
    assert "::test_prints_the_password_like_a_leaky_task_log call stdout)" in report, report
    scan_message = report.split("left behind")[1].split("Captured stdout")[0]  # pytest then shows the output itself
    assert "s3cret" not in scan_message, "the scan names places, never the value"


LEAKY_LAST_TEARDOWN = """
import pytest

from tests.support.cluster import PASSWORD

@pytest.fixture
def cleanup_that_talks():
    yield
    print("dropping the scratch role, which had", PASSWORD)

def test_the_last_test_of_the_session(cleanup_that_talks):
    assert True
"""


def test_a_password_printed_by_the_last_tests_teardown_fails_the_session(tmp_path):
    """The scan runs after the last test's teardown report is written, so that is scanned too."""
    report = _run_session(tmp_path, "test_leaky_teardown.py", LEAKY_LAST_TEARDOWN)
    assert "1 passed" in report and "a password was left behind by a DAG run" in report, report
    assert "::test_the_last_test_of_the_session teardown stdout)" in report, report


LEAKY_AFTER_RECONFIGURATION = """
import logging
import logging.config

from tests.support.cluster import PASSWORD

def test_logs_the_password_after_logging_was_reconfigured():
    logging.config.dictConfig({"version": 1, "disable_existing_loggers": False,
                               "root": {"level": "INFO", "handlers": []}})
    logging.getLogger("antdb_k8s.leaky").info("connecting with %s", PASSWORD)
"""


def test_a_password_logged_after_logging_was_reconfigured_still_fails_the_session(tmp_path):
    """Nothing is printed and no handler is left to capture the record (the API server's start
    does the same to the suite's logging): only the session's log tap sees it, and that is enough."""
    report = _run_session(tmp_path, "test_leaky_log.py", LEAKY_AFTER_RECONFIGURATION)
    assert "a password was left behind by a DAG run" in report, report
    assert "session-tap.log:" in report, report
    assert "call stdout" not in report and "call log" not in report, report


def test_a_clean_session_removes_its_airflow_home(tmp_path):
    report = _run_session(tmp_path, "test_clean.py", "def test_nothing_to_hide():\n    assert True\n",
                          expect_failure=False)
    assert "1 passed" in report, report
