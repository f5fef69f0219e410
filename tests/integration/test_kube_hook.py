"""AntDBKubeHook against the test API server, through the provider's KubernetesHook."""

from __future__ import annotations

import json

import pytest

from antdb_k8s.hooks.kube import AntDBKubeHook, KubeError, spec_drift
from sandbox.kubeapi import KubeApiServer, ObjectStore

pytestmark = pytest.mark.integration


@pytest.fixture
def api(tmp_path, monkeypatch):
    server = KubeApiServer(ObjectStore(cluster_ip_network="127.0.60.0/24")).start()
    kubeconfig = server.write_kubeconfig(str(tmp_path / "kubeconfig"))
    monkeypatch.setenv("AIRFLOW_CONN_KUBE_TEST", json.dumps({"conn_type": "kubernetes",
                                                             "extra": {"kube_config_path": kubeconfig}}))
    yield server
    server.stop()


@pytest.fixture
def hook(api):
    return AntDBKubeHook("kube_test")


def config_map(name="cm", data=None, namespace="default"):
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace},
            "data": data or {"k": "v"}}


def test_get_returns_none_on_404_and_other_errors_keep_the_api_reason(hook):
    assert hook.get("v1", "ConfigMap", "missing", "default") is None
    with pytest.raises(KubeError) as err:
        hook.create(config_map(namespace="no-such-namespace"))
    assert err.value.status == 404 and "no-such-namespace" in str(err.value)


def test_apply_creates_then_is_a_no_op_then_patches_only_on_difference(hook, api):
    assert hook.apply(config_map()) == "created"
    version = api.store.get("v1", "ConfigMap", "default", "cm")["metadata"]["resourceVersion"]
    api.requests.clear()

    assert hook.apply(config_map()) == "unchanged"
    assert [r.method for r in api.requests] == ["GET"], "an unchanged object costs one read and no write"
    assert api.store.get("v1", "ConfigMap", "default", "cm")["metadata"]["resourceVersion"] == version

    assert hook.apply(config_map(data={"k": "w"})) == "updated"
    assert api.store.get("v1", "ConfigMap", "default", "cm")["data"] == {"k": "w"}


def test_ensure_never_modifies_an_existing_object(hook, api):
    assert hook.ensure(config_map(data={"password": "first"}))[0] == "created"
    action, live = hook.ensure(config_map(data={"password": "second"}))
    assert action == "exists" and live["data"] == {"password": "first"}
    assert api.store.get("v1", "ConfigMap", "default", "cm")["data"] == {"password": "first"}


def test_create_of_an_existing_object_is_a_409_not_retried_into_success(hook, api):
    hook.create(config_map())
    api.requests.clear()
    with pytest.raises(KubeError) as err:
        hook.create(config_map())
    assert err.value.status == 409 and err.value.reason == "AlreadyExists"
    assert [r.method for r in api.requests] == ["POST"]


def test_list_honours_label_selectors(hook):
    for name, role in (("a", "datanode"), ("b", "coordinator"), ("c", "datanode")):
        obj = config_map(name)
        obj["metadata"]["labels"] = {"antdb.io/role": role}
        hook.create(obj)
    names = sorted(o["metadata"]["name"] for o in hook.list("v1", "ConfigMap", "default",
                                                           label_selector="antdb.io/role=datanode"))
    assert names == ["a", "c"]


def test_invalid_objects_are_rejected_with_422(hook):
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"},
           "spec": {"containerz": []}}
    with pytest.raises(KubeError) as err:
        hook.create(pod)
    assert err.value.status == 422


def test_secret_values_are_decoded_and_delete_reports_absence(hook):
    hook.create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "default"},
                 "stringData": {"password": "pw:'x"}})
    assert hook.read_secret_value("default", "s", "password") == "pw:'x"
    assert hook.read_secret_value("default", "s", "nope") is None
    assert hook.delete("v1", "Secret", "s", "default") is True
    assert hook.delete("v1", "Secret", "s", "default") is False


def test_pod_log_is_read_as_text(hook, api):
    api.store.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"},
                      "spec": {"containers": [{"name": "c", "image": "busybox"}]}})
    api.store.set_pod_log("default", "p", "net.ipv4.ip_forward current=1 want=1 result=ok\n")
    assert hook.pod_log("default", "p") == "net.ipv4.ip_forward current=1 want=1 result=ok\n"


def test_spec_drift_names_changed_fields():
    assert spec_drift({"a": "1", "b": {"c": "2"}}, {"a": "1", "b": {"c": "3"}}) == ["spec.b.c: '2' -> '3'"]
