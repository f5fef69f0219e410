"""A test that hangs after loading a DAG is stopped by the suite's timeout, not left to hang CI.

Airflow's DAG import timeout arms SIGALRM and disarms it on the way out, which silently
cancels pytest-timeout's default (signal) alarm. The suite therefore uses the thread
method; this runs a deliberately hung DAG test under the project's own pytest settings in a
child pytest and checks the child is stopped with a timeout report.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHILD_TIMEOUT = 15  # seconds the hung test may run before pytest-timeout ends it
OUTER_BOUND = 180  # the child must be gone long before this, even on a loaded machine

HUNG_DAG = """
from airflow.sdk import DAG
from airflow.providers.standard.operators.empty import EmptyOperator

with DAG(dag_id="hung_probe", schedule=None):
    EmptyOperator(task_id="only")
"""

HUNG_TEST = """
import os, tempfile, time
os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="hung-probe-home-", dir={home!r})
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
from airflow.models import DagBag  # imported at collection: the timeout is for the hang, not a slow import
from airflow.providers.standard.operators.empty import EmptyOperator  # noqa: F401

def test_loads_a_dag_then_hangs():
    bag = DagBag(dag_folder={dag!r})
    assert "hung_probe" in bag.dag_ids, bag.import_errors
    time.sleep(3600)
"""


def test_a_test_hanging_after_a_dag_import_is_stopped_by_the_timeout(tmp_path):
    dag_file = tmp_path / "hung_probe_dag.py"
    dag_file.write_text(HUNG_DAG)
    test_file = tmp_path / "test_hung_probe.py"
    test_file.write_text(textwrap.dedent(HUNG_TEST.format(dag=str(dag_file), home=str(tmp_path))))
    command = [sys.executable, "-m", "pytest", "-c", str(ROOT / "pyproject.toml"), "--rootdir", str(ROOT),
               "-p", "no:cacheprovider", "-o", f"timeout={CHILD_TIMEOUT}", "-q", str(test_file)]
    started = time.monotonic()
    child = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=OUTER_BOUND,
                           env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    elapsed = time.monotonic() - started
    report = child.stdout + child.stderr
    assert child.returncode != 0, report
    assert "Timeout" in report and "test_loads_a_dag_then_hangs" in report, report
    assert "time.sleep(3600)" in report, "the report shows where the test hung:\n" + report
    assert elapsed < OUTER_BOUND, elapsed
