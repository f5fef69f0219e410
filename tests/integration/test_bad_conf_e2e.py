"""Bad confs through a real `deploy_antdb` run: refused, and not one object written to Kubernetes.

The unit properties (`tests/unit/test_spec_properties.py`) push hundreds of generated confs
through the DAG's gates; here a few of each kind run the whole DAG against the test API: the
package sends no request at all (the real operator has an API listener of its own, so its
start-up writes are not counted), and nothing the package makes exists afterwards.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

from tests.unit.test_spec_properties import confs

pytestmark = pytest.mark.integration


def _nested(depth: int):
    value: object = "x"
    for _ in range(depth):
        value = {"a": value}
    return value


@pytest.fixture(scope="module")
def cluster(module_cluster):
    return module_cluster


def run_refused(cluster, conf: dict) -> str:
    """Run deploy_antdb with `conf`; return how it was refused, after checking nothing was written."""
    from airflow.sdk.exceptions import ParamValidationError

    cluster.api.requests.clear()
    try:
        run = cluster.run_dag("deploy_antdb", conf)
    except ParamValidationError as refused:
        outcome = f"param gate: {str(refused).splitlines()[0][:120]}"
    else:
        states = {ti.task_id: ti.state for ti in run.get_task_instances()}
        assert run.state == "failed", states
        assert states["validate"] == "failed", states
        assert states.pop("summary") == "failed", "summary runs whatever happened, and fails with the run"
        assert all(state in ("upstream_failed", None) for task, state in states.items() if task != "validate"), states
        outcome = "validate task failed"
    writes = [(r.method, r.path) for r in cluster.api.requests if r.method != "GET"]
    assert writes == [], f"a refused conf wrote to Kubernetes: {writes}"
    assert cluster.api.requests == [], "a refused conf does not even read the cluster"
    assert cluster.store.list("crunchydata.com/v1", "Pgcluster") == []
    assert cluster.store.list("v1", "Secret", None, label_selector="pg-cluster") == []
    return outcome


@pytest.mark.parametrize("conf, how", [
    ({"prepare_hosts": "off", "colour": "blue"}, "validate task failed"),
    ({"prepare_hosts": "off", "pg_hba": ["host all all ::0/0 trust"]}, "validate task failed"),
    ({"coordinators": "two"}, "param gate: Invalid input for param coordinators"),
    ({"storage": _nested(300)}, "param gate: Invalid input for param storage"),
    # Deeper than Airflow's execution API can serialize (~254 levels): the validate task
    # cannot even start, so the run fails there; nothing downstream runs either.
    ({"prepare_hosts": "off", "extra": _nested(300)}, "validate task failed"),
], ids=["unknown-key", "open-trust", "wrong-type", "deep-known-key", "deep-unknown-key"])
def test_a_bad_conf_is_refused_before_anything_exists(cluster, conf, how):
    assert run_refused(cluster, conf).startswith(how)


@settings(max_examples=4, deadline=None, suppress_health_check=list(HealthCheck))
@given(conf=confs.filter(lambda c: any(key not in ("prepare_hosts",) for key in c)))
def test_generated_bad_confs_create_nothing(cluster, conf):
    from antdb_k8s.core.spec import SpecError, parse_spec

    try:
        parse_spec(conf)
    except SpecError:
        run_refused(cluster, {**conf, "prepare_hosts": conf.get("prepare_hosts", "off")})
