"""The test API's objects survive a restart of the server process (the sandbox of `make run`
relies on it): saved state loaded into a fresh store serves the same objects, keeps
ClusterIPs reserved, and sends watchers from before the restart to re-list (410 Gone)."""

from __future__ import annotations

import json

import pytest
from kubernetes import client, config

from tests.integration.test_kubeapi import GROUP, PLURAL, VERSION, pgcluster_crd
from sandbox.kubeapi import KubeApiServer, ObjectStore
from sandbox.kubeapi.persistence import load, save

pytestmark = pytest.mark.integration
NETWORK = "127.0.39.0/29"   # six addresses: a reuse of a held one would show at once


def _populate(store: ObjectStore) -> None:
    store.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "keep"}})
    store.create({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                  "metadata": {"name": f"{PLURAL}.{GROUP}"}, "spec": pgcluster_crd()["spec"]})
    store.create({"apiVersion": f"{GROUP}/{VERSION}", "kind": "Pgcluster",
                  "metadata": {"name": "gc", "namespace": "keep"}, "spec": {"name": "gc", "port": "5432"}})
    for name in ("gc", "cn1"):
        store.create({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "keep"},
                      "spec": {"ports": [{"port": 5432}], "selector": {"pg-cluster": name}}})


def test_a_restarted_store_serves_what_was_saved(tmp_path):
    first = ObjectStore(cluster_ip_network=NETWORK, crd_schemas=None)
    _populate(first)
    saved_ips = {s["metadata"]["name"]: s["spec"]["clusterIP"] for s in first.list("v1", "Service", "keep")}
    saved_cr = first.get(f"{GROUP}/{VERSION}", "Pgcluster", "keep", "gc")
    save(first, tmp_path / "state.json")

    second = ObjectStore(cluster_ip_network=NETWORK)
    assert load(second, tmp_path / "state.json")
    assert second.get(f"{GROUP}/{VERSION}", "Pgcluster", "keep", "gc") == saved_cr
    assert {s["metadata"]["name"]: s["spec"]["clusterIP"] for s in second.list("v1", "Service", "keep")} == saved_ips
    new = second.create({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "cn2", "namespace": "keep"},
                         "spec": {"ports": [{"port": 5432}], "selector": {"pg-cluster": "cn2"}}})
    assert new["spec"]["clusterIP"] not in saved_ips.values(), "a held ClusterIP was handed out again"
    assert int(new["metadata"]["resourceVersion"]) > int(saved_cr["metadata"]["resourceVersion"])


def test_a_watch_from_before_the_restart_is_told_to_relist(tmp_path):
    first = ObjectStore(cluster_ip_network=NETWORK)
    _populate(first)
    old_rv = int(first.resource_version) - 2
    save(first, tmp_path / "state.json")
    second = ObjectStore(cluster_ip_network=NETWORK)
    load(second, tmp_path / "state.json")
    server = KubeApiServer(second).start()
    try:
        api_client = config.new_client_from_config(server.write_kubeconfig(str(tmp_path / "kubeconfig")))
        core = client.CoreV1Api(api_client)
        # As a real apiserver: the watch opens, and its first event is an ERROR carrying 410.
        stream = core.list_namespaced_service("keep", watch=True, resource_version=str(old_rv), timeout_seconds=2,
                                              _preload_content=False)
        first_event = json.loads(stream.read().splitlines()[0])
        assert first_event["type"] == "ERROR" and first_event["object"]["code"] == 410
        assert sorted(s.metadata.name for s in core.list_namespaced_service("keep").items) == ["cn1", "gc"]
    finally:
        server.stop()


def test_a_missing_state_file_loads_nothing(tmp_path):
    store = ObjectStore(cluster_ip_network=NETWORK)
    assert not load(store, tmp_path / "absent.json")
    assert store.list("v1", "Namespace", None, label_selector=None)  # the built-in namespaces only
