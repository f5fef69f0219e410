"""Every DAG imports cleanly, does no I/O at parse time, and carries docs, tags and retries."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

DAGS_DIR = Path(__file__).resolve().parents[2] / "dags"
DAG_FILES = sorted(p for p in DAGS_DIR.glob("*.py") if not p.name.startswith("_"))


@pytest.fixture(scope="module")
def dagbag():
    from airflow.models import DagBag

    return DagBag(dag_folder=str(DAGS_DIR))


def test_dag_files_import_without_errors(dagbag):
    assert dagbag.import_errors == {}
    assert "deploy_antdb" in dagbag.dag_ids


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_parsing_opens_no_socket_and_runs_no_subprocess(path, monkeypatch):
    """Parse-time I/O would run on every scheduler loop: forbid network and subprocesses."""
    from airflow.models import DagBag

    def refuse(*args, **kwargs):
        raise AssertionError(f"{path.name} does I/O at parse time: {args[:1]}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(subprocess.Popen, "__init__", refuse)
    bag = DagBag(dag_folder=str(path))
    assert bag.import_errors == {}
    assert bag.dag_ids, f"{path.name} defines no DAG"


# What parsing a DAG file may load of the package: the DAG processor pays every module-level import
# on every parse, so operators and sensors import core, services, triggers and hooks where they run.
PARSE_TIME_MODULES = ("antdb_k8s", "antdb_k8s.core", "antdb_k8s.core.params", "antdb_k8s.core.bounds",
                      "antdb_k8s.core.defaults")


def test_parsing_loads_only_operators_sensors_and_the_forms():
    script = ("import sys, airflow.sdk\nfrom airflow.dag_processing.dagbag import DagBag\nbefore = set(sys.modules)\n"
              f"bag = DagBag(dag_folder={str(DAGS_DIR)!r}, safe_mode=False)\nassert not bag.import_errors\n"
              "print(' '.join(m for m in set(sys.modules) - before if m.startswith('antdb_k8s')))")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(DAGS_DIR.parent / "plugins"), str(DAGS_DIR.parent)])}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    loaded = out.stdout.strip().splitlines()[-1].split()  # the last line: Airflow may log before it
    assert "antdb_k8s.operators.cluster" in loaded
    assert [m for m in loaded if m not in PARSE_TIME_MODULES
            and not m.startswith(("antdb_k8s.operators", "antdb_k8s.sensors"))] == []


def test_every_dag_has_docs_tags_and_retries(dagbag):
    for dag_id, dag in dagbag.dags.items():
        assert dag.doc_md and len(dag.doc_md.strip()) > 80, f"{dag_id} needs doc_md"
        assert "antdb" in dag.tags, f"{dag_id} must be tagged antdb"
        retried = [t.task_id for t in dag.tasks if t.retries > 0]
        assert retried, f"{dag_id}: no task retries transient failures"


def test_deploy_antdb_follows_the_runbook_order(dagbag):
    dag = dagbag.dags["deploy_antdb"]
    order = ["validate", "preflight", "prepare_hosts", "ensure_operator", "ensure_namespace", "create_gc",
             "wait_gc_ready", "read_gc_address", "write_custom_config", "create_nodes", "wait_nodes_ready", "collect_topology",
             "reconcile_pgxc_node", "smoke_test", "summary"]
    for upstream, downstream in zip(order, order[1:]):
        assert upstream in dag.get_task(downstream).upstream_task_ids, f"{upstream} must precede {downstream}"
    assert dag.get_task("validate").retries == 0, "a bad conf does not fix itself: no retries"


def test_deploy_antdb_params_cover_the_public_conf(dagbag):
    from antdb_k8s.core.spec import DEFAULTS

    dag = dagbag.dags["deploy_antdb"]
    assert set(dag.params.keys()) == set(DEFAULTS)
    for key in DEFAULTS:
        param = dag.params.get_param(key)
        assert param.description and param.schema.get("section"), f"param {key} needs a description and section"


def test_every_dag_documents_itself_from_its_file_and_tags_alike(dagbag):
    import ast

    for path in DAG_FILES:
        docstring = ast.get_docstring(ast.parse(path.read_text()), clean=False)
        dags = [d for d in dagbag.dags.values() if Path(d.fileloc).name == path.name]
        assert dags, f"{path.name} defines no DAG"
        for dag in dags:
            assert dag.doc_md == docstring, f"{dag.dag_id}: doc_md must be the file's docstring"
            assert {"antdb", "kubernetes"} < set(dag.tags), dag.tags
            assert ("day-2" in dag.tags) == (dag.dag_id != "deploy_antdb"), f"{dag.dag_id}: tags {dag.tags}"
            assert "day2" not in dag.tags


def test_every_dag_has_one_namespace_param_with_the_same_pattern(dagbag):
    from antdb_k8s.core.bounds import DNS1123_LABEL_OR_EMPTY_PATTERN, DNS1123_LABEL_PATTERN

    for dag_id, dag in dagbag.dags.items():
        param = dag.params.get_param("namespace")
        assert param.schema["pattern"] in (DNS1123_LABEL_PATTERN, DNS1123_LABEL_OR_EMPTY_PATTERN), dag_id
        assert param.schema["section"] == "Cluster" and param.description, dag_id
