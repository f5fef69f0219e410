"""The test API's RBAC engine decides like kube-apiserver: request attributes from the URL,
rules by verb/group/resource/subresource/name, bindings by namespace, and escalation checks."""

from __future__ import annotations

import pytest

from sandbox.kubeapi import ApiError, ObjectStore
from sandbox.kubeapi.rbac import (
    RBAC_V1,
    RbacAuthorizer,
    UserInfo,
    check_escalation,
    forbidden,
    request_attributes,
)

SA = UserInfo("system:serviceaccount:airflow:worker",
              ("system:serviceaccounts", "system:serviceaccounts:airflow", "system:authenticated"))
ADMIN = UserInfo("admin", ("system:masters", "system:authenticated"))


def attrs(method: str, path: str, user: UserInfo = SA, **query: str):
    return request_attributes(user, method, path, query)


@pytest.mark.parametrize("method,path,query,expected", [
    ("GET", "/api/v1/namespaces/ns1/pods", {}, ("list", "", "pods", "", "", "ns1")),
    ("GET", "/api/v1/namespaces/ns1/pods", {"watch": "true"}, ("watch", "", "pods", "", "", "ns1")),
    ("GET", "/api/v1/watch/namespaces/ns1/pods", {}, ("watch", "", "pods", "", "", "ns1")),
    ("GET", "/api/v1/namespaces/ns1/pods/p1/log", {}, ("get", "", "pods", "log", "p1", "ns1")),
    ("POST", "/api/v1/namespaces/ns1/pods/p1/exec", {}, ("create", "", "pods", "exec", "p1", "ns1")),
    ("PUT", "/apis/apps/v1/namespaces/ns1/deployments/d/scale", {}, ("update", "apps", "deployments", "scale", "d", "ns1")),
    ("PATCH", "/apis/crunchydata.com/v1/namespaces/ns1/pgclusters/gc", {}, ("patch", "crunchydata.com", "pgclusters", "", "gc", "ns1")),
    ("DELETE", "/api/v1/namespaces/ns1/pods", {}, ("deletecollection", "", "pods", "", "", "ns1")),
    ("DELETE", "/api/v1/namespaces/ns1", {}, ("delete", "", "namespaces", "", "ns1", "ns1")),
    ("GET", "/api/v1/nodes", {}, ("list", "", "nodes", "", "", "")),
])
def test_request_attributes_follow_the_url_like_the_real_request_info(method, path, query, expected):
    a = request_attributes(SA, method, path, query)
    assert a.resource_request
    assert (a.verb, a.api_group, a.resource, a.subresource, a.name, a.namespace) == expected


def test_non_resource_paths_are_non_resource_requests():
    a = attrs("GET", "/version/")
    assert (a.resource_request, a.verb, a.path) == (False, "get", "/version/")
    assert not attrs("GET", "/apis").resource_request


def role(kind: str, name: str, rules: list[dict], namespace: str | None = None) -> dict:
    meta = {"name": name} | ({"namespace": namespace} if namespace else {})
    return {"apiVersion": RBAC_V1, "kind": kind, "metadata": meta, "rules": rules}


def binding(kind: str, name: str, role_kind: str, role_name: str, subjects: list[dict],
            namespace: str | None = None) -> dict:
    meta = {"name": name} | ({"namespace": namespace} if namespace else {})
    return {"apiVersion": RBAC_V1, "kind": kind, "metadata": meta,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role_name},
            "subjects": subjects}


SUBJECT = {"kind": "ServiceAccount", "name": "worker", "namespace": "airflow"}


@pytest.fixture
def store():
    s = ObjectStore()
    for ns in ("airflow", "ns1", "ns2"):
        s.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    return s


def test_cluster_role_binding_grants_everywhere_and_role_binding_one_namespace(store):
    store.create(role("ClusterRole", "reader", [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]))
    store.create(binding("RoleBinding", "rb", "ClusterRole", "reader", [SUBJECT], "ns1"))
    authz = RbacAuthorizer(store)
    assert authz.allowed(attrs("GET", "/api/v1/namespaces/ns1/pods"))
    assert not authz.allowed(attrs("GET", "/api/v1/namespaces/ns2/pods"))
    assert not authz.allowed(attrs("GET", "/api/v1/pods")), "a RoleBinding grants nothing cluster-wide"
    assert not authz.allowed(attrs("GET", "/api/v1/namespaces/ns1/pods", watch="true")), "watch is its own verb"
    store.create(binding("ClusterRoleBinding", "crb", "ClusterRole", "reader", [SUBJECT]))
    assert authz.allowed(attrs("GET", "/api/v1/namespaces/ns2/pods"))
    assert authz.allowed(attrs("GET", "/api/v1/pods"))


def test_subresources_need_their_own_rule(store):
    store.create(role("Role", "r", [{"apiGroups": [""], "resources": ["pods"], "verbs": ["*"]},
                                     {"apiGroups": ["apps"], "resources": ["*/scale"], "verbs": ["get"]}], "ns1"))
    store.create(binding("RoleBinding", "rb", "Role", "r", [SUBJECT], "ns1"))
    authz = RbacAuthorizer(store)
    assert authz.allowed(attrs("DELETE", "/api/v1/namespaces/ns1/pods/p"))
    assert not authz.allowed(attrs("GET", "/api/v1/namespaces/ns1/pods/p/log"))
    assert not authz.allowed(attrs("POST", "/api/v1/namespaces/ns1/pods/p/exec"))
    assert authz.allowed(attrs("GET", "/apis/apps/v1/namespaces/ns1/deployments/d/scale"))
    assert not authz.allowed(attrs("PUT", "/apis/apps/v1/namespaces/ns1/deployments/d/scale"))
    assert not authz.allowed(attrs("GET", "/apis/apps/v1/namespaces/ns1/deployments/d"))


def test_resource_names_restrict_to_named_objects_and_never_match_lists(store):
    store.create(role("Role", "r", [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "patch"],
                                      "resourceNames": ["kube-proxy"]}], "ns1"))
    store.create(binding("RoleBinding", "rb", "Role", "r", [SUBJECT], "ns1"))
    authz = RbacAuthorizer(store)
    assert authz.allowed(attrs("PATCH", "/api/v1/namespaces/ns1/configmaps/kube-proxy"))
    assert not authz.allowed(attrs("PATCH", "/api/v1/namespaces/ns1/configmaps/other"))
    assert not authz.allowed(attrs("GET", "/api/v1/namespaces/ns1/configmaps"))


def test_subjects_match_by_user_group_and_service_account_defaulting_to_the_binding_namespace(store):
    store.create(role("ClusterRole", "lister", [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["list"]}]))
    store.create(binding("RoleBinding", "by-group", "ClusterRole", "lister",
                         [{"kind": "Group", "name": "system:serviceaccounts:airflow"}], "ns1"))
    store.create(binding("RoleBinding", "local-sa", "ClusterRole", "lister",
                         [{"kind": "ServiceAccount", "name": "worker"}], "airflow"))
    authz = RbacAuthorizer(store)
    assert authz.allowed(attrs("GET", "/api/v1/namespaces/ns1/secrets"))
    assert authz.allowed(attrs("GET", "/api/v1/namespaces/airflow/secrets"))
    other = UserInfo("system:serviceaccount:ns2:worker", ("system:serviceaccounts:ns2", "system:authenticated"))
    assert not authz.allowed(attrs("GET", "/api/v1/namespaces/airflow/secrets", other))


def test_discovery_is_granted_to_every_authenticated_user_and_masters_bypass_rbac(store):
    authz = RbacAuthorizer(store)
    for path in ("/version", "/api", "/apis", "/apis/apps/v1", "/api/v1"):
        assert authz.allowed(attrs("GET", path)), path
    assert not authz.allowed(attrs("GET", "/metrics"))
    assert not authz.allowed(attrs("GET", "/api/v1/namespaces"))
    assert authz.allowed(attrs("DELETE", "/api/v1/namespaces/ns1", ADMIN))


def test_a_binding_to_a_missing_role_grants_nothing(store):
    store.create(binding("ClusterRoleBinding", "dangling", "ClusterRole", "absent", [SUBJECT]))
    assert not RbacAuthorizer(store).allowed(attrs("GET", "/api/v1/nodes"))


def test_the_denial_is_the_real_forbidden_status():
    namespaced = forbidden(attrs("GET", "/api/v1/namespaces/ns1/pods/p1/log")).to_status()
    assert namespaced["code"] == 403 and namespaced["reason"] == "Forbidden"
    assert namespaced["message"] == ('pods "p1" is forbidden: User "system:serviceaccount:airflow:worker" cannot get '
                                     'resource "pods/log" in API group "" in the namespace "ns1"')
    assert namespaced["details"] == {"name": "p1", "kind": "pods"}
    cluster = forbidden(attrs("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions")).to_status()
    assert cluster["message"] == ('customresourcedefinitions.apiextensions.k8s.io is forbidden: User '
                                  '"system:serviceaccount:airflow:worker" cannot create resource '
                                  '"customresourcedefinitions" in API group "apiextensions.k8s.io" at the cluster scope')
    path = forbidden(attrs("GET", "/metrics")).to_status()
    assert path["message"] == 'forbidden: User "system:serviceaccount:airflow:worker" cannot get path "/metrics"'


def test_granting_more_than_one_holds_is_refused_unless_escalate_or_bind(store):
    store.create(role("ClusterRole", "mine", [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]},
                                               {"apiGroups": ["rbac.authorization.k8s.io"],
                                                "resources": ["clusterroles", "clusterrolebindings"], "verbs": ["create"]}]))
    store.create(binding("ClusterRoleBinding", "mine", "ClusterRole", "mine", [SUBJECT]))
    authz = RbacAuthorizer(store)
    check_escalation(authz, SA, role("ClusterRole", "sub", [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]))
    wider = role("ClusterRole", "wider", [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "delete"]}])
    with pytest.raises(ApiError) as err:
        check_escalation(authz, SA, wider)
    assert err.value.code == 403 and "attempting to grant RBAC permissions not currently held" in err.value.message
    assert 'Verbs:["get" "delete"]' in err.value.message
    store.create(wider)
    with pytest.raises(ApiError):
        check_escalation(authz, SA, binding("ClusterRoleBinding", "b", "ClusterRole", "wider", [SUBJECT]))
    check_escalation(authz, SA, binding("ClusterRoleBinding", "b", "ClusterRole", "mine", [SUBJECT]))
    store.patch(RBAC_V1, "ClusterRole", None, "mine", {"rules": store.get(RBAC_V1, "ClusterRole", None, "mine")["rules"] + [
        {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles"], "verbs": ["escalate", "bind"]}]})
    check_escalation(authz, SA, wider)
    check_escalation(authz, SA, binding("ClusterRoleBinding", "b", "ClusterRole", "wider", [SUBJECT]))
    check_escalation(authz, ADMIN, role("ClusterRole", "all", [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]))
