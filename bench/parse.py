"""P1: DAG file parse time against an empty DAG file, each file parsed in a fresh process.

A fresh interpreter (bytecode cached, outside the checkout, after one warm-up parse) imports
Airflow's task SDK first (the DAG processor has it loaded
before it reads any file), then times the parse of one file as the DAG processor does it
(`DagBag` on that one file). The baseline is a DAG file with one
`EmptyOperator` task, timed the same way in the same run. Goal: every file <= 1.3x.

Run: `python -m bench.parse [repeats]` (median of `repeats` fresh processes per file).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOAL = 1.3
EMPTY_DAG = '''from airflow.sdk import DAG
from airflow.providers.standard.operators.empty import EmptyOperator

with DAG(dag_id="empty_baseline", schedule=None):
    EmptyOperator(task_id="only")
'''
CHILD = r'''
import json, sys, time
sys.path[:0] = [sys.argv[2], sys.argv[3]]
import airflow.sdk  # loaded before any DAG file, as in the DAG processor
from airflow.dag_processing.dagbag import DagBag
started = time.perf_counter()
bag = DagBag(dag_folder=sys.argv[1], safe_mode=False)
elapsed = time.perf_counter() - started
print(json.dumps({"seconds": elapsed, "dags": len(bag.dags), "errors": {k: str(v)[:300] for k, v in bag.import_errors.items()},
                  "modules": sorted(m for m in sys.modules if m.startswith(("kubernetes", "psycopg", "airflow.providers.cncf", "airflow.providers.postgres", "cryptography")))[:5]}))
'''


def parse_once(path: Path, home: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env = {**env, "AIRFLOW_HOME": home, "PYTHONPYCACHEPREFIX": str(Path(home, "pycache")), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"), "AIRFLOW__CORE__UNIT_TEST_MODE": "True"}
    out = subprocess.run([sys.executable, "-c", CHILD, str(path), str(ROOT / "plugins"), str(ROOT)],
                         env=env, capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"parsing {path} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def median_parse(path: Path, home: str, repeats: int) -> tuple[float, dict]:
    parse_once(path, home)  # warm-up: compiles and caches bytecode, as a long-running DAG processor has it
    runs = [parse_once(path, home) for _ in range(repeats)]
    return statistics.median(r["seconds"] for r in runs), runs[-1]


def main(repeats: int = 5) -> None:
    with tempfile.TemporaryDirectory(prefix="antdb-parse-") as tmp:
        empty = Path(tmp, "empty_dag.py")
        empty.write_text(EMPTY_DAG)
        base, _ = median_parse(empty, tmp, repeats)
        print(f"== P1 parse time (median of {repeats} fresh processes; goal <= {GOAL}x the empty DAG)")
        print(f"  {'empty_dag.py (baseline)':32s} {base * 1000:8.1f} ms   1.00x")
        for dag_file in sorted((ROOT / "dags").glob("*.py")):
            seconds, last = median_parse(dag_file, tmp, repeats)
            heavy = f"  heavy modules loaded: {', '.join(last['modules'])}" if last["modules"] else ""
            errors = f"  IMPORT ERRORS: {last['errors']}" if last["errors"] else ""
            verdict = "ok" if seconds <= GOAL * base else "over goal"
            print(f"  {dag_file.name:32s} {seconds * 1000:8.1f} ms {seconds / base:6.2f}x  {verdict}{heavy}{errors}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
