"""Fixtures that assemble a test cluster for end-to-end DAG runs.

Every node is real AntDB (`sandbox.antdb_nodes`) and the operator is the real
postgres-operator 4.2.1: nothing in the product is substituted.
"""

from __future__ import annotations

from contextlib import contextmanager

import pytest

from sandbox.world import operator_log_report
from tests.support.cluster import start_cluster, stop_cluster

_ACTIVE: list = []          # clusters whose real operator logs go into a failing test's report


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failing test's report carries the postgres-operator log of every running test cluster."""
    outcome = yield
    report = outcome.get_result()
    if report.failed and _ACTIVE:
        for cluster in _ACTIVE:
            report.sections.append((f"postgres-operator log ({cluster.workdir})", operator_log_report(cluster)))


@contextmanager
def running_cluster(**options):
    """A started cluster whose connections are the Airflow defaults, stopped on exit."""
    cluster = start_cluster(**options)
    _ACTIVE.append(cluster)
    mp = pytest.MonkeyPatch()
    for key, value in cluster.env.items():
        mp.setenv(key, value)
    try:
        yield cluster
    finally:
        mp.undo()
        _ACTIVE.remove(cluster)
        stop_cluster(cluster)


@pytest.fixture(scope="module")
def module_cluster(airflow_db):
    """One cluster shared by a module's tests, which run in order (deploy, re-run, restart...)."""
    with running_cluster() as cluster:
        yield cluster


@pytest.fixture
def fresh_cluster(airflow_db):
    """A cluster of its own for one test."""
    with running_cluster() as cluster:
        yield cluster


@pytest.fixture
def bare_cluster(airflow_db):
    """A cluster with no postgres-operator installed yet."""
    with running_cluster(operator_installed=False) as cluster:
        yield cluster
