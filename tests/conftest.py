"""Session-wide test setup: an isolated Airflow home on SQLite, configured before Airflow is imported."""

from __future__ import annotations

import os
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
