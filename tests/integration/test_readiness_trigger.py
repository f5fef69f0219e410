"""The readiness trigger: progress while waiting, success when Ready, and a timeout that names
every pod not Ready with its last events."""

from __future__ import annotations

import asyncio
import time

import pytest

from antdb_k8s.core.install import target_namespace_manifests
from antdb_k8s.core.manifests import (backrest_secret_name, namespace_manifest, pgcluster_manifest, secret_manifest,
                                      user_secret_names)
from antdb_k8s.core.spec import parse_spec
from antdb_k8s.triggers.readiness import AntDBNodesReadyTrigger
from tests.support.cluster import PASSWORD, SUPERUSER

pytestmark = pytest.mark.integration


def run_trigger(trigger) -> dict:
    """The trigger's first event, taken as `dag.test()` takes it: the loop then shuts down with the
    trigger never resumed. Whatever the loop reports as unhandled (an error line in the triggerer's
    log, e.g. a client left open at the `yield`) fails the test."""
    unhandled: list[str] = []

    async def first_event():  # as airflow.sdk.execution_time.supervisor.run_trigger_in_process does it
        asyncio.get_running_loop().set_exception_handler(lambda _loop, ctx: unhandled.append(
            f"{ctx.get('message')}: {ctx.get('exception')!r}"))
        return await asyncio.wait_for(anext(trigger.run(), None), timeout=120)
    event = asyncio.run(first_event())
    assert unhandled == [], unhandled
    return event.payload


def ensure(store, obj: dict) -> None:
    from sandbox.kubeapi import ApiError

    try:
        store.create(obj)
    except ApiError as exc:
        if exc.code != 409:
            raise


def create_node_without_its_superuser_secret(cluster, spec, name):
    """Everything the package creates for node `name` but its `<name>-postgres-secret`."""
    store = cluster.store
    ensure(store, namespace_manifest(spec))
    for manifest in target_namespace_manifests(spec):
        ensure(store, manifest)
    for user, secret in user_secret_names(name).items():
        if user != "postgres":
            store.create(secret_manifest(spec, secret, name, {"username": user, "password": PASSWORD}))
    store.create(secret_manifest(spec, backrest_secret_name(name), name, {"config": "x"}))
    store.create(pgcluster_manifest(spec, name))


def test_timeout_names_the_pod_and_its_events_then_success_once_it_can_start(fresh_cluster):
    cluster = fresh_cluster
    spec = parse_spec({})
    create_node_without_its_superuser_secret(cluster, spec, "gc")
    started = time.time()

    event = run_trigger(AntDBNodesReadyTrigger(namespace=spec.namespace, nodes=["gc"], deadline=started + 20,
                                               started=started, poke_interval=0.5))

    assert event["status"] == "timeout"
    pod = cluster.database_pods(spec.namespace)["gc"]
    assert "0/1 ready" in event["message"] and pod in event["message"]
    assert "FailedMount" in event["message"] and "gc-postgres-secret" in event["message"]

    cluster.store.create(secret_manifest(spec, "gc-postgres-secret", "gc",
                                         {"username": SUPERUSER, "password": PASSWORD}))
    event = run_trigger(AntDBNodesReadyTrigger(namespace=spec.namespace, nodes=["gc"], deadline=time.time() + 90,
                                               started=time.time(), poke_interval=0.5))
    assert event == {"status": "success", "message": "1/1 ready: gc", "ready": ["gc"]}


def test_trigger_serializes_to_its_import_path_and_plain_kwargs():
    trigger = AntDBNodesReadyTrigger(namespace="ns", nodes=["gc"], deadline=10.0, started=1.0)
    path, kwargs = trigger.serialize()
    assert path == "antdb_k8s.triggers.readiness.AntDBNodesReadyTrigger"
    assert AntDBNodesReadyTrigger(**kwargs).serialize() == (path, kwargs)


def test_trigger_wakes_on_the_pod_change_not_on_a_poll(fresh_cluster):
    """Poll and re-list intervals far beyond the test's bound: only the watch can end the wait."""
    cluster = fresh_cluster
    spec = parse_spec({"namespace": "watched"})
    create_node_without_its_superuser_secret(cluster, spec, "gc")
    started = time.time()
    trigger = AntDBNodesReadyTrigger(namespace="watched", nodes=["gc"], deadline=started + 3600, started=started,
                                     poke_interval=300, relist_interval=3600)

    async def scenario() -> dict:
        waiting = asyncio.ensure_future(trigger.run().__anext__())
        await asyncio.sleep(1.0)  # the trigger has listed gc not Ready and follows the watch
        assert not waiting.done()
        cluster.store.create(secret_manifest(spec, "gc-postgres-secret", "gc",
                                             {"username": SUPERUSER, "password": PASSWORD}))
        return (await asyncio.wait_for(waiting, timeout=90)).payload

    before = len(cluster.api.requests)
    event = asyncio.run(scenario())
    assert event == {"status": "success", "message": "1/1 ready: gc", "ready": ["gc"]}
    pod_reads = [r for r in cluster.api.requests[before:] if r.path.endswith("/pods")]
    assert len(pod_reads) == 2, pod_reads  # one list, then one watch that saw the change
    assert [str(r.query.get("watch", "")).lower() for r in pod_reads] == ["", "true"]
