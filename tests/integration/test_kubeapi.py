"""The test Kubernetes API server, exercised through the real `kubernetes` client and the
provider's KubernetesHook, so the rest of the suite can trust it behaves like a cluster's API.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import re
import threading
import time
import uuid

import pytest
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException
from kubernetes.dynamic import DynamicClient

from sandbox.kubeapi import ApiError, KubeApiServer, ObjectStore

pytestmark = pytest.mark.integration

GROUP, VERSION, PLURAL = "crunchydata.com", "v1", "pgclusters"


def pgcluster_crd(status_subresource: bool = False) -> dict:
    """A small structural CRD for Pgclusters (the package ships the real one in include/crd)."""
    version = {
        "name": VERSION, "served": True, "storage": True,
        "schema": {"openAPIV3Schema": {"type": "object", "properties": {
            "spec": {"type": "object", "required": ["name", "port"], "properties": {
                "name": {"type": "string"},
                "port": {"type": "string", "pattern": "^[0-9]+$"},
                "ccpimagetag": {"type": "string", "default": "centos7-12.4"},
                "role": {"type": "string", "enum": ["gtm_coord", "coordinator", "datanode"]},
                "userlabels": {"type": "object", "additionalProperties": {"type": "string"}},
                "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            }},
            "status": {"type": "object", "properties": {
                "state": {"type": "string"}, "message": {"type": "string"}}},
        }}},
    }
    if status_subresource:
        version["subresources"] = {"status": {}}
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{PLURAL}.{GROUP}"},
            "spec": {"group": GROUP, "scope": "Namespaced", "versions": [version],
                     "names": {"plural": PLURAL, "singular": "pgcluster", "kind": "Pgcluster",
                               "listKind": "PgclusterList"}}}


def pgcluster(name: str, **spec: object) -> dict:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Pgcluster", "metadata": {"name": name},
            "spec": {"name": name, "port": "5432", **spec}}


def pod(name: str, labels: dict | None = None, **meta: object) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": labels or {}, **meta},
            "spec": {"containers": [{"name": "db", "image": "antdb:5.0"}]}}


def service(name: str, **spec: object) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"selector": {"app": name}, "ports": [{"port": 5432}], **spec}}


def deployment(name: str, image: str = "antdb:5.0") -> dict:
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"selector": {"matchLabels": labels}, "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "database", "image": image},
                                        {"name": "exporter", "image": "exporter:1"}]}}}}


def status_of(exc: ApiException) -> dict:
    return json.loads(exc.body)


@pytest.fixture
def api(tmp_path):
    with KubeApiServer(ObjectStore()) as server:
        server.kubeconfig = server.write_kubeconfig(tmp_path / "kubeconfig")
        yield server


@pytest.fixture
def k8s(api):
    """A kubernetes ApiClient configured from the server's kubeconfig, like the product's."""
    api_client = config.new_client_from_config(api.kubeconfig)
    yield api_client
    api_client.close()


@pytest.fixture
def core(k8s):
    return client.CoreV1Api(k8s)


@pytest.fixture
def custom(k8s):
    return client.CustomObjectsApi(k8s)


# ---------------------------------------------------------------- connection and discovery

def test_hook_connects_through_kubeconfig_connection(api, monkeypatch):
    from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook

    monkeypatch.setenv("AIRFLOW_CONN_KUBEAPI_TEST", json.dumps(
        {"conn_type": "kubernetes", "extra": {"kube_config_path": api.kubeconfig}}))
    hook = KubernetesHook(conn_id="kubeapi_test")
    ok, message = hook.test_connection()
    assert ok is True, message
    assert ("GET", "/version/", {}) in [(r.method, r.path, r.query) for r in api.requests]
    names = [ns.metadata.name for ns in hook.core_v1_client.list_namespace().items]
    assert names == ["default", "kube-public", "kube-system"]


def test_version_and_discovery_serve_builtins_and_registered_crds(api, k8s):
    assert client.VersionApi(k8s).get_code().minor == "30"
    client.ApiextensionsV1Api(k8s).create_custom_resource_definition(pgcluster_crd())
    dyn = DynamicClient(k8s)
    deployments = dyn.resources.get(api_version="apps/v1", kind="Deployment")
    assert (deployments.name, deployments.namespaced) == ("deployments", True)
    pgclusters = dyn.resources.get(api_version=f"{GROUP}/{VERSION}", kind="Pgcluster")
    created = pgclusters.create(body=pgcluster("gc"), namespace="default")
    assert created.metadata.name == "gc"
    groups = {g.name for g in client.ApisApi(k8s).get_api_versions().groups}
    assert {"apps", "batch", "rbac.authorization.k8s.io", GROUP} <= groups


# ---------------------------------------------------------------- create / get / list

def test_create_sets_server_fields_and_generation(api, core, k8s):
    first = core.create_namespaced_config_map("default", {"metadata": {"name": "a"}, "data": {}})
    created = client.AppsV1Api(k8s).create_namespaced_deployment("default", deployment("gc"))
    meta = created.metadata
    assert uuid.UUID(meta.uid).version == 4
    assert int(meta.resource_version) > int(first.metadata.resource_version)
    assert meta.namespace == "default" and meta.generation == 1
    raw = api.store.get("apps/v1", "Deployment", "default", "gc")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", raw["metadata"]["creationTimestamp"])
    assert raw["spec"]["replicas"] == 1                       # server-side default
    patched = client.AppsV1Api(k8s).patch_namespaced_deployment(
        "gc", "default", {"metadata": {"labels": {"x": "y"}}})
    assert patched.metadata.generation == 1                   # metadata-only change
    patched = client.AppsV1Api(k8s).patch_namespaced_deployment("gc", "default", {"spec": {"replicas": 0}})
    assert patched.metadata.generation == 2
    generated = core.create_namespaced_pod("default", pod("", generateName="gc-"))
    assert re.fullmatch(r"gc-[bcdfghjklmnpqrstvwxz2456789]{5}", generated.metadata.name)


@pytest.mark.parametrize("selector, expected", [
    ("role=coordinator", ["cn1", "cn2"]),
    ("role==coordinator", ["cn1", "cn2"]),
    ("role!=coordinator", ["dn1", "gc", "plain"]),
    ("role in (gtm_coord, datanode)", ["dn1", "gc"]),
    ("role notin (coordinator)", ["dn1", "gc", "plain"]),
    ("role", ["cn1", "cn2", "dn1", "gc"]),
    ("!role", ["plain"]),
    ("role=coordinator,primary=true", ["cn1"]),
    ("role in (coordinator,datanode),!primary", ["cn2"]),
])
def test_list_label_selectors(api, core, selector, expected):
    for name, labels in {"gc": {"role": "gtm_coord", "primary": "true"},
                         "cn1": {"role": "coordinator", "primary": "true"},
                         "cn2": {"role": "coordinator"}, "dn1": {"role": "datanode", "primary": "true"},
                         "plain": {}}.items():
        api.store.create(pod(name, labels))
    listed = core.list_namespaced_pod("default", label_selector=selector)
    assert [p.metadata.name for p in listed.items] == expected
    assert listed.kind == "PodList" and int(listed.metadata.resource_version) >= 5


def test_list_field_selectors_and_bad_selectors(api, core):
    api.store.create(pod("a"))
    api.store.create(pod("b"))
    api.store.update_status("v1", "Pod", "default", "b", {"phase": "Running"})
    api.store.create({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "b.1"},
                      "involvedObject": {"kind": "Pod", "name": "b", "namespace": "default"},
                      "reason": "Started", "message": "started"})
    names = lambda **kw: [p.metadata.name for p in core.list_namespaced_pod("default", **kw).items]  # noqa: E731
    assert names(field_selector="status.phase=Running") == ["b"]
    assert names(field_selector="status.phase!=Running,metadata.name=a") == ["a"]
    assert names(field_selector="spec.nodeName=") == ["a", "b"]
    events = core.list_namespaced_event("default", field_selector="involvedObject.name=b,involvedObject.kind=Pod")
    assert [e.reason for e in events.items] == ["Started"]
    for kwargs in ({"field_selector": "spec.containers=x"}, {"label_selector": "a in ("},
                   {"label_selector": "bad key=x"}):
        with pytest.raises(ApiException) as exc:
            core.list_namespaced_pod("default", **kwargs)
        assert exc.value.status == 400 and status_of(exc.value)["reason"] == "BadRequest"


# ---------------------------------------------------------------- errors

def test_error_status_bodies_match_the_real_api(api, core, custom):
    with pytest.raises(ApiException) as exc:
        core.read_namespaced_pod("x", "default")
    assert exc.value.status == 404
    assert status_of(exc.value) == {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": 'pods "x" not found', "reason": "NotFound",
        "details": {"name": "x", "kind": "pods"}, "code": 404}
    core.create_namespaced_pod("default", pod("p"))
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_pod("default", pod("p"))
    assert (exc.value.status, status_of(exc.value)["reason"]) == (409, "AlreadyExists")
    assert status_of(exc.value)["message"] == 'pods "p" already exists'
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_pod("missing", pod("p"))
    assert status_of(exc.value)["message"] == 'namespaces "missing" not found'
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_config_map("default", {"metadata": {"name": "Bad_Name"}})
    body = status_of(exc.value)
    assert (exc.value.status, body["reason"], body["details"]["kind"]) == (422, "Invalid", "ConfigMap")
    assert body["details"]["causes"][0]["field"] == "metadata.name"
    assert body["message"].startswith('ConfigMap "Bad_Name" is invalid: metadata.name: Invalid value')
    api.store.create(pgcluster_crd())
    custom.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, pgcluster("gc"))
    with pytest.raises(ApiException) as exc:
        custom.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, pgcluster("gc"))
    assert status_of(exc.value)["message"] == 'pgclusters.crunchydata.com "gc" already exists'
    assert status_of(exc.value)["details"]["group"] == GROUP


def test_unknown_field_of_a_builtin_kind_is_rejected(api, core):
    bad = pod("p")
    bad["spec"]["containerz"] = bad["spec"].pop("containers")
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_pod("default", bad)
    causes = {c["field"]: c for c in status_of(exc.value)["details"]["causes"]}
    assert exc.value.status == 422
    assert causes["spec.containerz"]["message"] == 'unknown field "spec.containerz"'
    assert causes["spec.containers"]["reason"] == "FieldValueRequired"
    assert api.store.list("v1", "Pod") == []


def test_semantic_validation_of_workloads(api, k8s):
    apps = client.AppsV1Api(k8s)
    mismatched = deployment("gc")
    mismatched["spec"]["template"]["metadata"]["labels"] = {"app": "other"}
    with pytest.raises(ApiException) as exc:
        apps.create_namespaced_deployment("default", mismatched)
    assert status_of(exc.value)["details"]["causes"][0]["field"] == "spec.template.metadata.labels"
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "init"},
           "spec": {"template": {"spec": {"restartPolicy": "Always",
                                          "containers": [{"name": "c", "image": "i:1"}]}}}}
    with pytest.raises(ApiException) as exc:
        client.BatchV1Api(k8s).create_namespaced_job("default", job)
    assert status_of(exc.value)["details"]["causes"][0]["field"] == "spec.template.spec.restartPolicy"
    job["spec"]["template"]["spec"]["restartPolicy"] = "Never"
    created = client.BatchV1Api(k8s).create_namespaced_job("default", job)
    assert created.spec.selector.match_labels == {"batch.kubernetes.io/controller-uid": created.metadata.uid}


def test_cluster_admission_rules(api, core, custom):
    assert [sa.metadata.name for sa in core.list_namespaced_service_account("default").items] == ["default"]
    bad_sa = pod("p")
    bad_sa["spec"]["serviceAccountName"] = "pgo-pg"
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_pod("default", bad_sa)
    assert exc.value.status == 403 and 'serviceaccount "pgo-pg" not found' in status_of(exc.value)["message"]
    assert core.create_namespaced_pod("default", pod("q")).spec.service_account_name == "default"
    api.store.create(pgcluster_crd())
    created = custom.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, pgcluster("gc"))
    del created["metadata"]["resourceVersion"]
    with pytest.raises(ApiException) as exc:                  # CRs allow no unconditional update
        custom.replace_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "gc", created)
    assert status_of(exc.value)["details"]["causes"][0]["field"] == "metadata.resourceVersion"


def test_list_paging(api, core):
    for i in range(5):
        api.store.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"c{i}"}})
    first = core.list_namespaced_config_map("default", limit=2)
    assert [c.metadata.name for c in first.items] == ["c0", "c1"]
    assert first.metadata.remaining_item_count == 3
    rest = core.list_namespaced_config_map("default", _continue=first.metadata._continue)
    assert [c.metadata.name for c in rest.items] == ["c2", "c3", "c4"] and not rest.metadata._continue


# ---------------------------------------------------------------- services

def test_cluster_ip_allocation(api, core):
    network = ipaddress.ip_network("127.0.10.0/24")
    ips = [core.create_namespaced_service("default", service(f"s{i}")).spec.cluster_ip for i in range(3)]
    assert len(set(ips)) == 3 and all(ipaddress.ip_address(ip) in network for ip in ips)
    assert network.network_address.compressed not in ips
    svc = core.read_namespaced_service("s0", "default")
    assert svc.spec.cluster_ips == [ips[0]] and svc.spec.ports[0].target_port == 5432
    headless = core.create_namespaced_service("default", service("h", clusterIP="None"))
    assert headless.spec.cluster_ip == "None"
    for requested, fragment in ((ips[1], "already allocated"), ("127.0.11.5", "not in the valid range")):
        with pytest.raises(ApiException) as exc:
            core.create_namespaced_service("default", service("dup", clusterIP=requested))
        assert exc.value.status == 422 and fragment in status_of(exc.value)["message"]
    with pytest.raises(ApiException) as exc:
        core.patch_namespaced_service("s0", "default", {"spec": {"clusterIP": "127.0.10.200"}})
    assert exc.value.status == 422
    core.delete_namespaced_service("s0", "default")
    recreated = core.create_namespaced_service("default", service("s0"))
    assert recreated.spec.cluster_ip not in ips               # a new address, not the released one
    updated = core.replace_namespaced_service("s0", "default", service("s0"))   # clusterIP omitted
    assert updated.spec.cluster_ip == recreated.spec.cluster_ip


def test_released_cluster_ips_are_reused_only_when_the_pool_is_exhausted():
    store = ObjectStore(cluster_ip_network="127.0.20.0/29")    # 6 usable addresses
    first = [store.create(service(f"s{i}"))["spec"]["clusterIP"] for i in range(6)]
    assert first == [f"127.0.20.{i}" for i in range(1, 7)]
    store.delete("v1", "Service", "default", "s2")
    assert store.create(service("again"))["spec"]["clusterIP"] == "127.0.20.3"
    with pytest.raises(ApiError) as exc:
        store.create(service("full"))
    assert exc.value.code == 500


# ---------------------------------------------------------------- patch / replace

def test_patch_kinds(api, core, k8s, custom):
    apps = client.AppsV1Api(k8s)
    apps.create_namespaced_deployment("default", deployment("gc"))
    patched = apps.patch_namespaced_deployment(       # dict body: strategic merge, by container name
        "gc", "default", {"spec": {"template": {"spec": {"containers": [
            {"name": "database", "image": "antdb:5.1"}]}}}})
    images = {c.name: c.image for c in patched.spec.template.spec.containers}
    assert images == {"database": "antdb:5.1", "exporter": "exporter:1"}
    assert api.requests[-1].method == "PATCH"
    core.create_namespaced_config_map("default", {"metadata": {"name": "cm"}, "data": {"a": "1", "b": "2"}})
    cm = core.patch_namespaced_config_map("cm", "default", {"data": {"a": None, "c": "3"}})
    assert cm.data == {"b": "2", "c": "3"}
    cm = core.patch_namespaced_config_map("cm", "default", [
        {"op": "test", "path": "/data/b", "value": "2"}, {"op": "replace", "path": "/data/b", "value": "4"},
        {"op": "add", "path": "/metadata/labels", "value": {"x/y": "z"}}, {"op": "remove", "path": "/data/c"}])
    assert cm.data == {"b": "4"} and cm.metadata.labels == {"x/y": "z"}
    with pytest.raises(ApiException) as exc:
        core.patch_namespaced_config_map("cm", "default", [{"op": "test", "path": "/data/b", "value": "9"}])
    assert exc.value.status == 422
    api.store.create(pgcluster_crd())
    custom.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, pgcluster("gc"))
    merged = custom.patch_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "gc",
                                                   {"spec": {"userlabels": {"a": "b"}}})
    assert merged["spec"]["userlabels"] == {"a": "b"} and merged["spec"]["port"] == "5432"
    with pytest.raises(ApiException) as exc:                 # CRs do not accept strategic merge
        custom.patch_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "gc", {"spec": {}},
                                              _content_type="application/strategic-merge-patch+json")
    assert exc.value.status == 415


def test_replace_with_stale_resource_version_conflicts(api, core):
    cm = core.create_namespaced_config_map("default", {"metadata": {"name": "cm"}, "data": {"a": "1"}})
    stale_rv = cm.metadata.resource_version
    cm.data = {"a": "2"}
    fresh = core.replace_namespaced_config_map("cm", "default", cm)
    assert int(fresh.metadata.resource_version) > int(stale_rv)
    cm.data = {"a": "3"}
    cm.metadata.resource_version = stale_rv
    with pytest.raises(ApiException) as exc:
        core.replace_namespaced_config_map("cm", "default", cm)
    assert (exc.value.status, status_of(exc.value)["reason"]) == (409, "Conflict")
    assert status_of(exc.value)["message"].startswith('Operation cannot be fulfilled on configmaps "cm"')
    same = core.replace_namespaced_config_map("cm", "default", fresh)       # a no-op write
    assert same.metadata.resource_version == fresh.metadata.resource_version


def test_status_subresource_and_pod_immutability(api, core):
    core.create_namespaced_pod("default", pod("p"))
    ignored = core.patch_namespaced_pod("p", "default", {"status": {"phase": "Running"}})
    assert ignored.status.phase == "Pending"
    running = core.patch_namespaced_pod_status("p", "default", {"status": {"phase": "Running"}})
    assert running.status.phase == "Running"
    with pytest.raises(ApiException) as exc:
        core.patch_namespaced_pod("p", "default", {"spec": {"restartPolicy": "Never"}})
    assert status_of(exc.value)["details"]["causes"][0]["reason"] == "FieldValueForbidden"


def test_secret_string_data_is_stored_as_base64_data(api, core):
    core.create_namespaced_secret("default", {"metadata": {"name": "gc-postgres-secret"},
                                              "stringData": {"username": "postgres"}})
    stored = core.read_namespaced_secret("gc-postgres-secret", "default")
    assert base64.b64decode(stored.data["username"]) == b"postgres"
    assert stored.type == "Opaque"


# ---------------------------------------------------------------- delete

def _owned(obj: dict, owner: dict) -> dict:
    obj["metadata"]["ownerReferences"] = [{"apiVersion": owner["apiVersion"], "kind": owner["kind"],
                                           "name": owner["metadata"]["name"],
                                           "uid": owner["metadata"]["uid"], "controller": True}]
    return obj


def test_delete_cascades_through_owner_references(api, k8s, core):
    store = api.store
    dep = store.create(deployment("gc"))
    rs = deployment("gc-1")
    rs.update(kind="ReplicaSet")
    rs["spec"].pop("strategy", None)
    rs = store.create(_owned(rs, dep))
    store.create(_owned(pod("gc-1-abcde", {"app": "gc-1"}), rs))
    shared = _owned(pod("shared"), rs)
    shared["metadata"]["ownerReferences"].append({"apiVersion": "v1", "kind": "ConfigMap", "name": "keep",
                                                  "uid": store.create({"apiVersion": "v1", "kind": "ConfigMap",
                                                                       "metadata": {"name": "keep"}})["metadata"]["uid"]})
    store.create(shared)
    client.AppsV1Api(k8s).delete_namespaced_deployment("gc", "default")
    assert store.list("apps/v1", "ReplicaSet") == []
    assert [p["metadata"]["name"] for p in store.list("v1", "Pod")] == ["shared"]   # another owner lives
    orphan_owner = store.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "owner"}})
    store.create(_owned({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "child"}}, orphan_owner))
    core.delete_namespaced_config_map("owner", "default", propagation_policy="Orphan")
    assert "ownerReferences" not in store.get("v1", "ConfigMap", "default", "child")["metadata"]


def test_delete_collection_and_namespace_cascade(api, core):
    core.create_namespace({"metadata": {"name": "antdb"}})
    for name, role in (("a", "x"), ("b", "x"), ("c", "y")):
        api.store.create(pod(name, {"role": role}), namespace="antdb")
    core.delete_collection_namespaced_pod("antdb", label_selector="role=x")
    assert [p["metadata"]["name"] for p in api.store.list("v1", "Pod", "antdb")] == ["c"]
    core.delete_namespace("antdb")
    assert api.store.list("v1", "Pod") == []
    with pytest.raises(ApiException) as exc:
        core.delete_namespace("default")
    assert exc.value.status == 403


def test_dry_run_validates_but_does_not_persist(api, core):
    seen: list[str] = []
    api.store.add_listener(lambda etype, obj: seen.append(etype))
    preview = core.create_namespaced_service("default", service("gc"), dry_run="All")
    assert preview.spec.cluster_ip and core.list_namespaced_service("default").items == []
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_pod("default", {**pod("Bad"), "metadata": {"name": "Bad"}}, dry_run="All")
    assert exc.value.status == 422
    real = core.create_namespaced_service("default", service("gc"))
    assert real.spec.cluster_ip == preview.spec.cluster_ip          # the preview reserved nothing
    core.patch_namespaced_service("gc", "default", {"metadata": {"labels": {"a": "b"}}}, dry_run="All")
    core.delete_namespaced_service("gc", "default", dry_run="All")
    assert core.read_namespaced_service("gc", "default").metadata.labels is None
    assert seen == ["ADDED"]


# ---------------------------------------------------------------- custom resources

def test_pgcluster_validated_against_crd_schema(api, custom):
    with pytest.raises(ApiException) as exc:                  # no CRD yet: the type is unknown
        custom.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, pgcluster("gc"))
    assert exc.value.status == 404
    client.ApiextensionsV1Api(config.new_client_from_config(api.kubeconfig)).create_custom_resource_definition(
        pgcluster_crd())
    created = custom.create_namespaced_custom_object(
        GROUP, VERSION, "default", PLURAL, pgcluster("gc", role="gtm_coord", extra={"any": {"thing": 1}}))
    assert created["spec"]["ccpimagetag"] == "centos7-12.4"     # schema default applied
    for spec, field in (({"port": 5432}, "spec.port"), ({"role": "leader"}, "spec.role"),
                        ({"replicaz": "1"}, "spec.replicaz"), ({"port": "54x"}, "spec.port")):
        with pytest.raises(ApiException) as exc:
            custom.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, pgcluster("bad", **spec))
        body = status_of(exc.value)
        assert (exc.value.status, body["reason"]) == (422, "Invalid")
        assert body["message"].startswith('Pgcluster.crunchydata.com "bad" is invalid')
        assert [c["field"] for c in body["details"]["causes"]] == [field]
    missing = pgcluster("bad")
    del missing["spec"]["port"]
    with pytest.raises(ApiException) as exc:
        custom.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, missing)
    assert status_of(exc.value)["details"]["causes"][0]["field"] == "spec.port"
    api.store.delete("apiextensions.k8s.io/v1", "CustomResourceDefinition", None, f"{PLURAL}.{GROUP}")
    with pytest.raises(ApiError) as gone:                     # instances go with their CRD
        api.store.list(f"{GROUP}/{VERSION}", "Pgcluster")
    assert gone.value.code == 404


def test_preregistered_crd_schema_and_status_subresource(tmp_path):
    store = ObjectStore(crd_schemas={(GROUP, "Pgcluster"): pgcluster_crd(status_subresource=True)})
    created = store.create({**pgcluster("gc"), "status": {"state": "ignored"}})
    assert "status" not in created                            # create cannot set status
    updated = store.update_status(f"{GROUP}/{VERSION}", "Pgcluster", "default", "gc",
                                  {"state": "pgcluster Initialized"})
    assert updated["status"]["state"] == "pgcluster Initialized"
    kept = store.patch(f"{GROUP}/{VERSION}", "Pgcluster", "default", "gc", {"status": {"state": "x"}})
    assert kept["status"]["state"] == "pgcluster Initialized"
    with pytest.raises(ApiError) as exc:
        store.update_status(f"{GROUP}/{VERSION}", "Pgcluster", "default", "gc", {"state": 5})
    assert exc.value.code == 422 and exc.value.causes[0].field == "status.state"


# ---------------------------------------------------------------- events, watch, logs

def test_listener_receives_added_modified_deleted(api, core):
    seen: list[tuple[str, str, str]] = []
    api.store.add_listener(lambda etype, obj: seen.append((etype, obj["kind"], obj["metadata"]["name"])))
    core.create_namespaced_config_map("default", {"metadata": {"name": "cm"}, "data": {"a": "1"}})
    core.patch_namespaced_config_map("cm", "default", {"data": {"a": "2"}})
    core.patch_namespaced_config_map("cm", "default", {"data": {"a": "2"}})      # no-op: no event
    core.delete_namespaced_config_map("cm", "default")
    assert seen == [("ADDED", "ConfigMap", "cm"), ("MODIFIED", "ConfigMap", "cm"),
                    ("DELETED", "ConfigMap", "cm")]
    assert api.store.listener_errors == []


def test_watch_streams_events_with_selectors(api, core):
    api.store.create(pod("before", {"app": "db"}))
    received: list[tuple[str, str]] = []

    def consume() -> None:
        for event in watch.Watch().stream(core.list_namespaced_pod, "default", label_selector="app=db",
                                          timeout_seconds=2):
            received.append((event["type"], event["object"].metadata.name))

    consumer = threading.Thread(target=consume, daemon=True)
    consumer.start()
    deadline = time.monotonic() + 5
    while not received and time.monotonic() < deadline:
        time.sleep(0.02)
    api.store.create(pod("other", {"app": "web"}))
    api.store.create(pod("p", {"app": "db"}))
    api.store.patch("v1", "Pod", "default", "p", {"metadata": {"labels": {"app": "moved"}}})
    api.store.delete("v1", "Pod", "default", "before")
    consumer.join(timeout=10)
    assert ("GET", "/api/v1/namespaces/default/pods") in [(r.method, r.path) for r in api.requests]
    assert any(r.query.get("watch") == "True" for r in api.requests)
    assert received == [("ADDED", "before"), ("ADDED", "p"), ("DELETED", "p"), ("DELETED", "before")]


def test_watch_resumes_from_a_resource_version(api, core):
    listed = core.list_namespaced_config_map("default")
    api.store.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "late"}})
    events = list(watch.Watch().stream(core.list_namespaced_config_map, "default",
                                       resource_version=listed.metadata.resource_version, timeout_seconds=1))
    assert [(e["type"], e["object"].metadata.name) for e in events] == [("ADDED", "late")]


def test_pod_log_subresource(api, core, monkeypatch):
    from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook

    api.store.create(pod("gc-0"))
    api.store.set_pod_log("default", "gc-0", "line 1\n")
    api.store.append_pod_log("default", "gc-0", "line 2\n")
    # kubernetes 36 returns the repr of the bytes for preloaded logs (kubernetes-client/python#2596):
    # read raw bodies, as the hook does.
    raw = core.read_namespaced_pod_log("gc-0", "default", _preload_content=False)
    assert raw.data == b"line 1\nline 2\n" and raw.headers["Content-Type"] == "text/plain"
    tail = core.read_namespaced_pod_log("gc-0", "default", tail_lines=1, _preload_content=False)
    assert tail.data == b"line 2\n"
    monkeypatch.setenv("AIRFLOW_CONN_KUBEAPI_TEST", json.dumps(
        {"conn_type": "kubernetes", "extra": {"kube_config_path": api.kubeconfig}}))
    hook = KubernetesHook(conn_id="kubeapi_test")
    assert hook.get_pod_logs("gc-0", namespace="default").data == b"line 1\nline 2\n"
    api.store.update_status("v1", "Pod", "default", "gc-0", {"phase": "Succeeded"})
    _, lines = hook.get_pod_log_stream("gc-0", namespace="default")
    assert list(lines) == ["line 1", "line 2"]
    with pytest.raises(ApiException) as exc:
        core.read_namespaced_pod_log("gc-0", "default", container="nope")
    assert exc.value.status == 400


def test_scale_subresource(api, k8s):
    apps = client.AppsV1Api(k8s)
    apps.create_namespaced_deployment("default", deployment("gc"))
    scale = apps.patch_namespaced_deployment_scale("gc", "default", {"spec": {"replicas": 0}})
    assert scale.spec.replicas == 0 and scale.status.selector == "app=gc"
    assert apps.read_namespaced_deployment("gc", "default").spec.replicas == 0


def test_validated_writes_and_reads_are_fast_over_http(api, k8s):
    """Whole-cluster tests create hundreds of objects: each call must cost milliseconds."""
    apps = client.AppsV1Api(k8s)
    started = time.monotonic()
    for i in range(100):
        apps.create_namespaced_deployment("default", deployment(f"d{i}"))
        apps.read_namespaced_deployment(f"d{i}", "default")
    assert time.monotonic() - started < 3.0


def test_stop_ends_open_watches(tmp_path):
    server = KubeApiServer().start()
    core = client.CoreV1Api(config.new_client_from_config(server.write_kubeconfig(tmp_path / "kc")))
    ended = threading.Event()

    def consume() -> None:
        try:
            for _ in watch.Watch().stream(core.list_namespaced_pod, "default"):
                pass
        except Exception:                                    # noqa: BLE001 - the stream may be cut
            pass
        finally:
            ended.set()

    threading.Thread(target=consume, daemon=True).start()
    deadline = time.monotonic() + 5
    while not any(r.query.get("watch") for r in server.requests) and time.monotonic() < deadline:
        time.sleep(0.02)
    started = time.monotonic()
    server.stop()
    assert ended.wait(5) and time.monotonic() - started < 3
