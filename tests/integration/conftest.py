"""Fixtures that assemble a test cluster for end-to-end DAG runs.

`backend_kind` is `vanilla` (Debian's PostgreSQL, node DDL substituted by one method) and,
when ANTDB_HOME points at an installed AntDB, `antdb` (real nodes, nothing substituted).
"""

from __future__ import annotations

from contextlib import contextmanager

import pytest

from tests.support.cluster import antdb_home, operator_log_report, start_cluster, stop_cluster

_ACTIVE: list = []          # clusters whose real operator logs go into a failing test's report


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failing test's report carries the postgres-operator log of every running test cluster."""
    outcome = yield
    report = outcome.get_result()
    if report.failed and _ACTIVE:
        for cluster in _ACTIVE:
            report.sections.append((f"postgres-operator log ({cluster.workdir})", operator_log_report(cluster)))


def _antdb_param():
    home, reason = antdb_home()
    marks = [pytest.mark.antdb] + ([] if home else [pytest.mark.skip(reason=f"real AntDB: {reason}")])
    return pytest.param("antdb", marks=marks)


@pytest.fixture(params=["vanilla", _antdb_param()], scope="module")
def backend_kind(request):
    return request.param


@contextmanager
def running_cluster(kind: str, **options):
    """A started cluster whose connections are the Airflow defaults, stopped on exit."""
    cluster = start_cluster(kind, **options)
    _ACTIVE.append(cluster)
    mp = pytest.MonkeyPatch()
    for key, value in cluster.env.items():
        mp.setenv(key, value)
    if cluster.kind == "vanilla":
        from antdb_k8s.hooks.antdb import AntDBHook
        from tests.support.pgnodes import vanilla_apply_node_change

        # Vanilla PostgreSQL has no CREATE/ALTER/DROP NODE: substitute the one method that runs it.
        mp.setattr(AntDBHook, "apply_node_change", vanilla_apply_node_change)
    try:
        yield cluster
    finally:
        mp.undo()
        _ACTIVE.remove(cluster)
        stop_cluster(cluster)


@pytest.fixture(scope="module")
def module_cluster(backend_kind, airflow_db):
    """One cluster shared by a module's tests, which run in order (deploy, re-run, restart...)."""
    with running_cluster(backend_kind) as cluster:
        yield cluster


@pytest.fixture
def fresh_cluster(airflow_db):
    """A cluster of its own for one test (vanilla nodes)."""
    with running_cluster("vanilla") as cluster:
        yield cluster


@pytest.fixture
def bare_cluster(airflow_db):
    """A cluster with no postgres-operator installed yet (vanilla nodes)."""
    with running_cluster("vanilla", operator_installed=False) as cluster:
        yield cluster
