"""Which failures are final and which are retried, and what each says (hooks/errors + core/failures)."""

from __future__ import annotations

import json

import psycopg
import pytest
import urllib3.exceptions
from airflow.sdk.exceptions import AirflowFailException

from antdb_k8s.core.failures import FAILURE_KEY, README_SECTION, parse_forbidden
from antdb_k8s.hooks.errors import KubernetesUnavailable, diagnose, task_error
from antdb_k8s.hooks.kube import KubeError
from antdb_k8s.operators.base import AntDBBaseOperator

IDS = {"kubernetes_conn_id": "kubernetes_default", "antdb_conn_id": "antdb_default"}


@pytest.fixture(autouse=True)
def kube_connection(tmp_path, monkeypatch):
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "k", "cluster": {"server": "https://127.0.0.1:6443"}}],
        "users": [{"name": "deployer", "user": {"token": "t"}}],
        "contexts": [{"name": "c", "context": {"cluster": "k", "user": "deployer"}}]}))
    monkeypatch.setenv("AIRFLOW_CONN_KUBERNETES_DEFAULT", json.dumps(
        {"conn_type": "kubernetes", "extra": {"kube_config_path": str(kubeconfig)}}))
    return str(kubeconfig)


@pytest.mark.parametrize("status,permanent", [(401, True), (403, True), (404, True), (400, True), (422, True),
                                              (429, False), (500, False), (503, False), (504, False)])
def test_api_statuses_are_final_unless_they_can_heal(status, permanent):
    verdict = diagnose(KubeError(status, "Reason", "something"), **IDS)
    assert verdict.permanent is permanent
    error = task_error(KubeError(status, "Reason", "something"), **IDS)
    assert isinstance(error, AirflowFailException if permanent else KubernetesUnavailable)


def test_a_reset_connection_is_retried_in_a_task_but_final_in_the_preflight():
    reset = urllib3.exceptions.ProtocolError("Connection aborted.", ConnectionResetError(104, "Connection reset"))
    assert isinstance(task_error(reset, **IDS), KubernetesUnavailable)
    final = task_error(reset, **IDS, unreachable_is_permanent=True)
    assert isinstance(final, AirflowFailException)
    assert "https://127.0.0.1:6443" in str(final) and "kubernetes_default" in str(final)


def test_401_names_the_kubeconfig_user_and_context(kube_connection):
    message = diagnose(KubeError(401, "Unauthorized", "Unauthorized"), **IDS).message
    assert f"user 'deployer' of context 'c' in {kube_connection}" in message and README_SECTION in message


def test_403_names_identity_and_permission():
    api = ('pgclusters.crunchydata.com is forbidden: User "system:serviceaccount:af:worker" cannot create '
           'resource "pgclusters" in API group "crunchydata.com" in the namespace "pgouser1"')
    refused = parse_forbidden(api)
    assert refused.permission() == "create pgclusters (API group 'crunchydata.com') in namespace pgouser1"
    message = diagnose(KubeError(403, "Forbidden", api), **IDS).message
    assert "identity 'system:serviceaccount:af:worker' may not create pgclusters" in message
    assert "include/rbac/airflow-antdb.yaml" in message


def test_antdb_login_refusal_is_final_and_an_unreachable_node_is_not():
    refused = psycopg.OperationalError('connection failed: FATAL:  password authentication failed for user "x"')
    assert isinstance(task_error(refused, **IDS), AirflowFailException)
    down = psycopg.OperationalError("connection failed: connection to server at \"127.0.0.1\", port 5432 failed: "
                                    "Connection refused")
    assert isinstance(task_error(down, **IDS), KubernetesUnavailable)


def test_errors_the_module_does_not_know_pass_through_unchanged():
    assert task_error(ValueError("a bug"), **IDS) is None
    assert task_error(AirflowFailException("already final"), **IDS) is None


class _RaisingOperator(AntDBBaseOperator):
    def __init__(self, *, error: BaseException, **kwargs):
        super().__init__(**kwargs)
        self.error = error

    def execute(self, context):
        raise self.error


class _RecordingTi:
    def __init__(self):
        self.pushed: dict[str, object] = {}

    def xcom_push(self, key, value):
        self.pushed[key] = value


@pytest.mark.parametrize("error,expected", [
    (KubeError(403, "Forbidden", "nope"), AirflowFailException),
    (KubeError(503, "ServiceUnavailable", "busy"), KubernetesUnavailable),
    (ValueError("a bug"), ValueError),
])
def test_every_operator_translates_and_records_through_one_mechanism(error, expected, capfd):
    ti = _RecordingTi()
    task = _RaisingOperator(task_id="t", error=error)
    with pytest.raises(expected):
        task.execute({"params": {"dry_run": True}, "ti": ti})
    assert ti.pushed[FAILURE_KEY]["task"] == "t"
    assert ti.pushed[FAILURE_KEY]["permanent"] is (expected is AirflowFailException)
    assert "DRY RUN: t changes nothing" in capfd.readouterr().out
