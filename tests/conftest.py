"""Session-wide test setup: an isolated Airflow home on SQLite, configured before Airflow is imported.

At session end every DAG run the suite made is scanned for passwords (`tests/support/secret_scan.py`,
`pytest_sessionfinish`).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_AIRFLOW_HOME = tempfile.mkdtemp(prefix="antdb-airflow-home-")
os.environ["AIRFLOW_HOME"] = _AIRFLOW_HOME
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(ROOT / "dags")
os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(ROOT / "plugins")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "True"
os.environ["AIRFLOW__LOGGING__LOGGING_LEVEL"] = os.environ.get("ANTDB_TEST_LOG_LEVEL", "INFO")
for path in (str(ROOT / "plugins"), str(ROOT)):
    if path not in sys.path:
        sys.path.insert(0, path)


@pytest.fixture(scope="session")
def airflow_db():
    """A migrated metadata database (SQLite) for `dag.test()` runs, made once per session."""
    from airflow.utils import db

    db.resetdb()
    return _AIRFLOW_HOME


@pytest.fixture(scope="session", autouse=True)
def session_log_tap():
    """Every stdlib log record of the session into AIRFLOW_HOME/logs, for the secret scan."""
    from tests.support import secret_scan

    tap = secret_scan.LogTap(Path(_AIRFLOW_HOME) / "logs" / "session-tap.log").install()
    yield
    tap.close()


def pytest_runtest_logreport(report):
    """Keep each test's captured output (task logs included) under AIRFLOW_HOME for the secret scan."""
    from tests.support.secret_scan import write_test_output

    write_test_output(Path(_AIRFLOW_HOME) / "logs" / "test-output.log", report.nodeid, report.when,
                      [("stdout", report.capstdout), ("stderr", report.capstderr), ("log", report.caplog)])


def pytest_sessionfinish(session, exitstatus):
    """Fail the session, naming each place, if any DAG run left a password behind; then remove
    the session's Airflow home after a clean session (kept to be read after any failure).

    Looks for the connection's PASSWORD and every secret any test cluster's Secrets held, in XCom,
    rendered template fields, every test's captured output and every log record of the session.
    It runs here, after the last test's teardown report is written, so that report is scanned too.
    """
    from tests.support import secret_scan
    from tests.support.cluster import PASSWORD

    if session.config.option.collectonly:
        return
    secret_scan.remember(PASSWORD)
    found = secret_scan.scan(Path(_AIRFLOW_HOME), secret_scan.known_secrets())
    if found:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        message = ("a password was left behind by a DAG run (shown here by place, never by value):\n  "
                   + "\n  ".join(found[:50]))
        reporter.write_line(message, red=True, bold=True) if reporter else print(message)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    elif session.exitstatus == 0:
        shutil.rmtree(_AIRFLOW_HOME, ignore_errors=True)
