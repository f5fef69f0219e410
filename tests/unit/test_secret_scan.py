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


def test_the_log_tap_writes_every_record_to_a_file(tmp_path):
    tap = secret_scan.LogTap(tmp_path / "logs" / "tap.log")
    logger = logging.getLogger("antdb_k8s.test_tap")
    logger.addHandler(tap)
    try:
        logger.warning("connecting as %s", "someone")
    finally:
        logger.removeHandler(tap)
        tap.close()
    assert "antdb_k8s.test_tap WARNING connecting as someone" in (tmp_path / "logs" / "tap.log").read_text()


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


def test_a_session_whose_test_printed_the_password_fails_naming_the_test(tmp_path):
    root = Path(__file__).resolve().parents[2]
    (tmp_path / "test_leaky.py").write_text(LEAKY_TEST)
    child = subprocess.run(
        [sys.executable, "-m", "pytest", "-c", str(root / "pyproject.toml"), "--rootdir", str(root), "-p", "tests.conftest",
         "-p", "no:cacheprovider", "-q", str(tmp_path / "test_leaky.py")],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(root), str(root / "plugins")])})
    report = child.stdout + child.stderr
    assert child.returncode != 0, report
    assert "a password was left behind by a DAG run" in report, report
    assert "::test_prints_the_password_like_a_leaky_task_log call stdout)" in report, report
    scan_message = report.split("left behind")[1].split("Captured stdout")[0]  # pytest then shows the output itself
    assert "s3cret" not in scan_message, "the scan names places, never the value"
