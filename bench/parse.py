"""P1: DAG file parse time against two baselines, each file parsed in a fresh process.

A fresh interpreter (bytecode cached, outside the checkout, after one warm-up parse) imports
Airflow's task SDK first (the DAG processor has it loaded
before it reads any file), then times the parse of one file as the DAG processor does it
(`DagBag` on that one file). Two baselines, timed the same way in the same run:

* the empty DAG: a DAG file with one `EmptyOperator` task (the issue's literal baseline);
* the same-shape no-op DAG, one per DAG file: generated from the real DAG (loaded once in a
  child process) with one `EmptyOperator` per task id and the same upstream edges; a mapped
  task becomes a mapped `EmptyOperator` (`.partial(...).expand_kwargs([{}])`). No params, no
  docs. Its time is the floor for building that graph, so the ratio against it is the package's
  own cost (imports, forms, operator constructors).

Goal: every file <= 1.3x, printed for both baselines.

Each file's time is also split, in its own fresh processes: the package modules the file
imports (`antdb_k8s.*`, found in its source), imported first and timed alone, then the parse
with them loaded. Airflow's DAG processor pre-imports, before it forks a parse process, the
`airflow.*` modules a file names, never a plugin package's, so that first part is paid at
every parse; the second is what building the DAG costs over the same-shape floor.
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
HEADER = '''from airflow.sdk import DAG
from airflow.providers.standard.operators.empty import EmptyOperator
'''
EMPTY_DAG = HEADER + '''
with DAG(dag_id="empty_baseline", schedule=None):
    EmptyOperator(task_id="only")
'''
CHILD = r'''
import json, sys, time
sys.path[:0] = [sys.argv[2], sys.argv[3]]
import airflow.sdk  # loaded before any DAG file, as in the DAG processor
from airflow.dag_processing.dagbag import DagBag
before = set(sys.modules)
started = time.perf_counter()
bag = DagBag(dag_folder=sys.argv[1], safe_mode=False)
elapsed = time.perf_counter() - started
loaded = sorted(set(sys.modules) - before)
heavy = [m for m in loaded if m.split(".")[0] in ("kubernetes", "kubernetes_asyncio", "psycopg", "cryptography", "yaml")
         or m.startswith(("airflow.providers.cncf", "airflow.providers.postgres", "antdb_k8s.hooks.kube", "antdb_k8s.hooks.antdb"))]
print(json.dumps({"seconds": elapsed, "dags": len(bag.dags), "errors": {k: str(v)[:300] for k, v in bag.import_errors.items()},
                  "heavy": heavy[:5], "package_modules": sum(m.startswith("antdb_k8s") for m in loaded)}))
'''
SPLIT = r'''
import ast, importlib, json, sys, time
sys.path[:0] = [sys.argv[2], sys.argv[3]]
import airflow.sdk
from airflow.dag_processing.dagbag import DagBag
tree = ast.parse(open(sys.argv[1]).read())
names = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and (n.module or "").startswith("antdb_k8s")]
started = time.perf_counter()
for name in names:
    importlib.import_module(name)
imported = time.perf_counter()
DagBag(dag_folder=sys.argv[1], safe_mode=False)
print(json.dumps({"imports": imported - started, "build": time.perf_counter() - imported}))
'''
SHAPE = r'''
import json, sys
sys.path[:0] = [sys.argv[2], sys.argv[3]]
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1], safe_mode=False)
assert bag.dags and not bag.import_errors, bag.import_errors
print(json.dumps({dag_id: [[t.task_id, bool(getattr(t, "is_mapped", False)), sorted(t.upstream_task_ids)]
                           for t in dag.tasks] for dag_id, dag in bag.dags.items()}))
'''


def run_child(script: str, path: Path, home: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env = {**env, "AIRFLOW_HOME": home, "PYTHONPYCACHEPREFIX": str(Path(home, "pycache")), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"), "AIRFLOW__CORE__UNIT_TEST_MODE": "True"}
    out = subprocess.run([sys.executable, "-c", script, str(path), str(ROOT / "plugins"), str(ROOT)],
                         env=env, capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"parsing {path} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def median_parse(path: Path, home: str, repeats: int) -> tuple[float, dict]:
    run_child(CHILD, path, home)  # warm-up: compiles and caches bytecode, as a long-running DAG processor has it
    runs = [run_child(CHILD, path, home) for _ in range(repeats)]
    return statistics.median(r["seconds"] for r in runs), runs[-1]


def median_split(path: Path, home: str, repeats: int) -> tuple[float, float]:
    """Median seconds importing the file's package modules, then parsing it with them loaded."""
    runs = [run_child(SPLIT, path, home) for _ in range(repeats)]
    return statistics.median(r["imports"] for r in runs), statistics.median(r["build"] for r in runs)


def same_shape_source(dag_file: Path, home: str) -> str:
    """A DAG file with the real DAG's task ids and edges, every task an EmptyOperator (mapped ones mapped)."""
    lines = [HEADER]
    for number, (dag_id, tasks) in enumerate(run_child(SHAPE, dag_file, home).items()):
        names = {task_id: f"t{number}_{i}" for i, (task_id, _, _) in enumerate(tasks)}
        lines.append(f"with DAG(dag_id={'shape_' + dag_id!r}, schedule=None):")
        for task_id, mapped, _ in tasks:
            task = (f"EmptyOperator.partial(task_id={task_id!r}).expand_kwargs([{{}}])" if mapped
                    else f"EmptyOperator(task_id={task_id!r})")
            lines.append(f"    {names[task_id]} = {task}")
        for task_id, _, upstream in tasks:
            if upstream:
                lines.append(f"    {names[task_id]}.set_upstream([{', '.join(names[u] for u in upstream)}])")
    return "\n".join(lines) + "\n"


def verdict(ratio: float) -> str:
    return "ok" if ratio <= GOAL else "over goal"


def main(repeats: int = 5) -> None:
    with tempfile.TemporaryDirectory(prefix="antdb-parse-") as tmp:
        empty = Path(tmp, "empty_dag.py")
        empty.write_text(EMPTY_DAG)
        base, _ = median_parse(empty, tmp, repeats)
        print(f"== P1 parse time (median of {repeats} fresh processes; goal <= {GOAL}x, against each baseline)")
        print(f"  {'empty_dag.py (baseline: one EmptyOperator task)':50s} {base * 1000:8.1f} ms")
        print("  per file: its time | vs the empty DAG | its same-shape no-op DAG (EmptyOperator per task, same edges)"
              " and the file vs it")
        for dag_file in sorted((ROOT / "dags").glob("*.py")):
            shape = Path(tmp, "shape", dag_file.name)
            shape.parent.mkdir(exist_ok=True)
            shape.write_text(same_shape_source(dag_file, tmp))
            seconds, last = median_parse(dag_file, tmp, repeats)
            floor, _ = median_parse(shape, tmp, repeats)
            heavy = f"  heavy modules loaded: {', '.join(last['heavy'])}" if last["heavy"] else ""
            errors = f"  IMPORT ERRORS: {last['errors']}" if last["errors"] else ""
            print(f"  {dag_file.name:30s} {seconds * 1000:6.1f} ms"
                  f" | vs empty DAG {seconds / base:5.2f}x {verdict(seconds / base):9s}"
                  f" | same-shape {floor * 1000:5.1f} ms, vs it {seconds / floor:5.2f}x {verdict(seconds / floor):9s}"
                  f" | {last['package_modules']} package modules imported{heavy}{errors}")
            imports, build = median_split(dag_file, tmp, repeats)
            print(f"  {'':30s} split: package imports {imports * 1000:5.1f} ms, then the parse {build * 1000:5.1f} ms"
                  f" ({build / floor:4.2f}x the same-shape DAG)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
