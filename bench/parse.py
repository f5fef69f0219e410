"""P1 parse: each DAG file against an empty one-task DAG file, each parsed in a fresh process.

Time is measured inside the child, around `DagBag(file)` only, after Airflow itself is
imported: what the DAG processor pays per file beyond Airflow's own import. Goal <= 1.3x.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNS = 3
EMPTY_DAG = """
from airflow.sdk import DAG
from airflow.providers.standard.operators.empty import EmptyOperator

with DAG(dag_id="empty_one_task", schedule=None):
    EmptyOperator(task_id="only")
"""
CHILD = """
import sys, time
from airflow.models import DagBag
started = time.perf_counter()
bag = DagBag(dag_folder=sys.argv[1])
elapsed = time.perf_counter() - started
assert not bag.import_errors and bag.dag_ids, bag.import_errors
print(elapsed)
"""


def _parse_seconds(path: Path, env: dict) -> float:
    runs = []
    for _ in range(RUNS):
        out = subprocess.run([sys.executable, "-c", CHILD, str(path)], capture_output=True, text=True, env=env,
                             cwd=ROOT, check=True, timeout=300)
        runs.append(float(out.stdout.strip().splitlines()[-1]))
    return statistics.median(runs)


def bench_parse() -> list[tuple[str, float]]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "plugins"), str(ROOT)]),
           "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING"}
    with tempfile.TemporaryDirectory() as tmp:
        empty = Path(tmp) / "empty_one_task.py"
        empty.write_text(EMPTY_DAG)
        base = _parse_seconds(empty, env)
        rows = [(path.name, _parse_seconds(path, env)) for path in sorted((ROOT / "dags").glob("*.py"))]
    print(f"\n== P1 parse: DagBag(file) in a fresh process, median of {RUNS} (goal <= 1.3x)")
    print(f"  {'empty one-task DAG (baseline)':32s} {base * 1000:8.1f} ms  1.00x")
    for name, seconds in rows:
        print(f"  {name:32s} {seconds * 1000:8.1f} ms  {seconds / base:5.1f}x")
    return [(name, seconds / base) for name, seconds in rows]
