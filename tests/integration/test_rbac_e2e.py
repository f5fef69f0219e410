"""include/rbac/airflow-antdb.yaml is what every e2e DAG run is authorized by (the fixtures
run `kubernetes_default` as that ServiceAccount); here, one rule removed from a copy makes
a named task fail fast with the API's 403, and the operator's own ServiceAccount token is
held to include/operator's ClusterRole."""

from __future__ import annotations

import json
import time

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from tests.integration.conftest import running_cluster
from sandbox.world import airflow_rbac_documents, operator_kubeconfig
from tests.support.users import AIRFLOW as AIRFLOW_SA

pytestmark = pytest.mark.integration
NS = "pgouser1"
CONF = {"coordinators": 1, "datanodes": 1, "prepare_hosts": "off",
        "timeouts": {"gc_ready": 120, "nodes_ready": 120, "poke_interval": 1}}


def task_states(run) -> dict[str, str]:
    return {ti.task_id: str(getattr(ti.state, "value", ti.state)) for ti in run.get_task_instances()}


def without_pgcluster_create(documents: list[dict]) -> list[dict]:
    role = next(d for d in documents if d["kind"] == "ClusterRole" and d["metadata"]["name"] == "antdb-airflow")
    rule = next(r for r in role["rules"] if r["resources"] == ["pgclusters"])
    role["rules"].remove(rule)
    role["rules"].append({**rule, "verbs": [v for v in rule["verbs"] if v != "create"]})
    return documents


def test_without_create_on_pgclusters_create_gc_fails_with_a_403_naming_verb_and_resource(airflow_db, capfd):
    with running_cluster(airflow_rbac=without_pgcluster_create(airflow_rbac_documents())) as cluster:
        run = cluster.run_dag("deploy_antdb", CONF)
        output = "".join(capfd.readouterr())
        assert run.state == "failed"
        states = task_states(run)
        assert states["ensure_namespace"] == "success" and states["create_gc"] == "failed"
        assert (f'User "{AIRFLOW_SA}" cannot create resource "pgclusters" in API group "crunchydata.com" '
                f'in the namespace "{NS}"') in output
        posts = [r for r in cluster.api.requests if r.method == "POST" and r.path.endswith("/pgclusters")]
        assert [(r.user, r.code) for r in posts] == [(AIRFLOW_SA, 403)], "a refusal is sent once, never retried"
        assert cluster.store.list("crunchydata.com/v1", "Pgcluster", NS) == []
        assert cluster.get("v1", "Namespace", None, NS) is not None, "the tasks before it ran as the ServiceAccount"


def test_the_operator_token_has_exactly_the_operators_cluster_role(fresh_cluster, tmp_path):
    operator = config.new_client_from_config(config_file=operator_kubeconfig(fresh_cluster, tmp_path / "kc"))
    custom = client.CustomObjectsApi(operator)
    assert custom.list_namespaced_custom_object("crunchydata.com", "v1", NS, "pgclusters")["items"] == []
    assert client.CoreV1Api(operator).list_namespace().items, "the operator lists namespaces"
    with pytest.raises(ApiException) as err:
        client.ApiextensionsV1Api(operator).delete_custom_resource_definition("pgclusters.crunchydata.com")
    assert err.value.status == 403
    assert json.loads(err.value.body)["message"] == (
        'customresourcedefinitions.apiextensions.k8s.io "pgclusters.crunchydata.com" is forbidden: User '
        '"system:serviceaccount:pgo:postgres-operator" cannot delete resource "customresourcedefinitions" in API '
        'group "apiextensions.k8s.io" at the cluster scope')
    # The real operator process itself runs as that ServiceAccount, and is never refused.
    deadline = time.monotonic() + 60
    while not any(r.path.endswith("/pgclusters") for r in fresh_cluster.operator_api.requests):
        assert time.monotonic() < deadline, "the operator never listed Pgclusters"
        time.sleep(0.5)
    users = {(r.user, r.code) for r in fresh_cluster.operator_api.requests}
    assert users and {user for user, _ in users} == {"system:serviceaccount:pgo:postgres-operator"}
    assert not {code for _, code in users} & {401, 403}, users
