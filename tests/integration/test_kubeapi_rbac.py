"""Authentication and RBAC of the test API, through the real `kubernetes` client."""

from __future__ import annotations

import json

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from sandbox.kubeapi import KubeApiServer, ObjectStore

pytestmark = pytest.mark.integration
RBAC = "rbac.authorization.k8s.io/v1"


@pytest.fixture
def server():
    with KubeApiServer(ObjectStore()) as api:
        api.store.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "airflow"}})
        api.store.create({"apiVersion": "v1", "kind": "ServiceAccount",
                          "metadata": {"name": "worker", "namespace": "airflow"}})
        yield api


def api_client(server: KubeApiServer, tmp_path, token: str | None) -> client.ApiClient:
    path = server.write_kubeconfig(tmp_path / f"kubeconfig-{len(list(tmp_path.iterdir()))}", token=token)
    return config.new_client_from_config(config_file=path)


def grant(server: KubeApiServer, rules: list[dict]) -> None:
    server.store.create({"apiVersion": RBAC, "kind": "ClusterRole", "metadata": {"name": "worker"}, "rules": rules})
    server.store.create({"apiVersion": RBAC, "kind": "RoleBinding", "metadata": {"name": "worker", "namespace": "airflow"},
                         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "worker"},
                         "subjects": [{"kind": "ServiceAccount", "name": "worker", "namespace": "airflow"}]})


def test_missing_or_unknown_tokens_get_401(server, tmp_path):
    with pytest.raises(ApiException) as err:
        client.CoreV1Api(api_client(server, tmp_path, "not-a-token")).list_namespace()
    assert err.value.status == 401
    assert json.loads(err.value.body)["reason"] == "Unauthorized"
    anonymous = client.ApiClient(client.Configuration(host=server.url))
    with pytest.raises(ApiException) as err:
        client.VersionApi(anonymous).get_code()
    assert err.value.status == 401


def test_a_service_account_token_is_authorized_by_stored_rbac(server, tmp_path):
    sa = api_client(server, tmp_path, server.service_account_token("airflow", "worker"))
    assert client.VersionApi(sa).get_code().minor == "30", "discovery needs no grant"
    core = client.CoreV1Api(sa)
    with pytest.raises(ApiException) as err:
        core.list_namespaced_config_map("airflow")
    assert err.value.status == 403
    body = json.loads(err.value.body)
    assert body["message"] == ('configmaps is forbidden: User "system:serviceaccount:airflow:worker" cannot list '
                               'resource "configmaps" in API group "" in the namespace "airflow"')
    grant(server, [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list", "create"]}])
    assert core.list_namespaced_config_map("airflow").items == []
    core.create_namespaced_config_map("airflow", {"metadata": {"name": "c"}, "data": {"k": "v"}})
    with pytest.raises(ApiException) as err:
        core.read_namespaced_config_map("c", "airflow")
    assert err.value.status == 403 and 'cannot get resource "configmaps"' in json.loads(err.value.body)["message"]
    with pytest.raises(ApiException) as err:
        core.list_namespaced_config_map("default")
    assert err.value.status == 403, "a RoleBinding grants one namespace"
    assert [r.user for r in server.requests][-1] == "system:serviceaccount:airflow:worker"


def test_escalation_through_the_api_is_refused(server, tmp_path):
    grant(server, [{"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles"], "verbs": ["create"]},
                   {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}])
    rbac = client.RbacAuthorizationV1Api(api_client(server, tmp_path, server.service_account_token("airflow", "worker")))
    rbac.create_namespaced_role("airflow", {"metadata": {"name": "ok"},
                                            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]})
    with pytest.raises(ApiException) as err:
        rbac.create_namespaced_role("airflow", {"metadata": {"name": "more"},
                                                "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]})
    assert err.value.status == 403
    assert "attempting to grant RBAC permissions not currently held" in json.loads(err.value.body)["message"]


def test_a_token_dies_with_its_service_account(server, tmp_path):
    sa = api_client(server, tmp_path, server.service_account_token("airflow", "worker"))
    client.VersionApi(sa).get_code()
    server.store.delete("v1", "ServiceAccount", "airflow", "worker")
    with pytest.raises(ApiException) as err:
        client.VersionApi(sa).get_code()
    assert err.value.status == 401
    with pytest.raises(Exception) as missing:
        server.service_account_token("airflow", "worker")
    assert "not found" in str(missing.value)
