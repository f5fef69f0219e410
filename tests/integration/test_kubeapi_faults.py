"""The test API's fault control interface, through the real `kubernetes` client (the client's
own urllib3 retries off, so each injected answer is what the caller sees)."""

from __future__ import annotations

import json
import threading

import pytest
import urllib3
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

from sandbox.kubeapi import KubeApiServer, ObjectStore

pytestmark = pytest.mark.integration


@pytest.fixture
def server():
    with KubeApiServer(ObjectStore()) as api:
        yield api


@pytest.fixture
def core(server, tmp_path):
    api_client = config.new_client_from_config(config_file=server.write_kubeconfig(tmp_path / "kc"))
    api_client.rest_client.pool_manager.connection_pool_kw["retries"] = False
    return client.CoreV1Api(api_client)


def config_map(name: str) -> dict:
    return {"metadata": {"name": name}, "data": {"k": "v"}}


def test_status_faults_answer_the_real_status_then_stop(server, core):
    fault = server.faults.throttle(times=1, retry_after=3, methods={"GET"}, path=r"/configmaps$")
    server.faults.fail(503, times=1, methods={"GET"}, path=r"/configmaps$")
    with pytest.raises(ApiException) as err:
        core.list_namespaced_config_map("default")
    assert err.value.status == 429 and err.value.headers["Retry-After"] == "3"
    assert json.loads(err.value.body)["details"] == {"retryAfterSeconds": 3}
    with pytest.raises(ApiException) as err:
        core.list_namespaced_config_map("default")
    assert err.value.status == 503 and json.loads(err.value.body)["reason"] == "ServiceUnavailable"
    assert core.list_namespaced_config_map("default").items == []
    assert fault.hits == ["GET /api/v1/namespaces/default/configmaps"]


def test_a_conflict_names_the_object_and_leaves_it_unchanged(server, core):
    core.create_namespaced_config_map("default", config_map("c"))
    server.faults.conflict()
    with pytest.raises(ApiException) as err:
        core.patch_namespaced_config_map("c", "default", {"data": {"k": "changed"}})
    assert err.value.status == 409
    assert json.loads(err.value.body)["message"].startswith('Operation cannot be fulfilled on configmaps "c"')
    assert server.store.get("v1", "ConfigMap", "default", "c")["data"] == {"k": "v"}


def test_an_action_runs_before_the_request_it_matches_which_is_then_served(server, core):
    core.create_namespaced_config_map("default", config_map("gone-before-read"))
    action = server.faults.before(lambda: server.store.delete("v1", "ConfigMap", "default", "gone-before-read"),
                                  methods={"GET"}, path=r"/configmaps/gone-before-read$")
    failing = server.faults.before(lambda: 1 / 0, methods={"GET"}, path=r"/configmaps$")
    with pytest.raises(ApiException) as err:
        core.read_namespaced_config_map("gone-before-read", "default")
    assert err.value.status == 404, "the action ran first; the request saw its effect"
    assert core.list_namespaced_config_map("default").items == [], "a failing action still lets the request through"
    assert action.hits and action.errors == []
    assert failing.errors == ["ZeroDivisionError: division by zero"]


def test_a_reset_gets_no_answer(server, core):
    server.faults.reset(methods={"POST"})
    with pytest.raises(urllib3.exceptions.ProtocolError):
        core.create_namespaced_config_map("default", config_map("c"))
    assert server.store.list("v1", "ConfigMap", "default") == [], "the request was not served"


def test_a_restart_keeps_objects_and_port(server, core):
    core.create_namespaced_config_map("default", config_map("kept"))
    url = server.url
    server.restart(down_for=0.2)
    assert server.url == url and server.restarts == 1
    assert core.read_namespaced_config_map("kept", "default").data == {"k": "v"}


def test_dropped_watches_are_cut_without_the_final_chunk(server, core):
    errors, started = [], threading.Event()

    def follow():
        try:
            for _ in watch.Watch().stream(core.list_namespaced_config_map, "default", timeout_seconds=30):
                started.set()
        except Exception as exc:  # noqa: BLE001 - recorded: the cut is the point
            errors.append(exc)

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    core.create_namespaced_config_map("default", config_map("c"))
    assert started.wait(5)
    assert server.faults.drop_watches() == 1
    thread.join(5)
    assert not thread.is_alive() and len(errors) == 1
