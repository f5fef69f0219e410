"""The one retry policy for Kubernetes calls, and how AntDBKubeHook applies it (the API
client replaced by a script of answers; sleeps recorded, not slept)."""

from __future__ import annotations

import json

import pytest
from kubernetes.client.rest import ApiException
from urllib3.exceptions import NewConnectionError, ProtocolError

from antdb_k8s.hooks import kube as kube_module
from antdb_k8s.hooks.kube import AntDBKubeHook, KubeError, KubeRefused
from antdb_k8s.hooks.retry import RetryPolicy, parse_retry_after

POLICY = RetryPolicy(attempts=5, base_delay=0.5, max_delay=2.0, max_retry_after=10.0, budget=30.0, jitter=lambda: 1.0)


def api_error(status: int, reason: str = "", retry_after: str | None = None) -> ApiException:
    exc = ApiException(status=status, reason=reason)
    exc.body = json.dumps({"kind": "Status", "code": status, "reason": reason, "message": f"{reason} happened"})
    exc.headers = {"Retry-After": retry_after} if retry_after else {}
    return exc


def test_backoff_doubles_up_to_the_cap_and_jitters_into_the_upper_half():
    assert [POLICY.backoff(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 2.0, 2.0]
    low = RetryPolicy(base_delay=1.0, max_delay=8.0, jitter=lambda: 0.0)
    assert [low.backoff(n) for n in (1, 2, 3)] == [0.5, 1.0, 2.0]


def test_retry_after_is_honoured_for_429_and_capped():
    assert POLICY.delay_for(1, 429, "3") == 3.0
    assert POLICY.delay_for(1, 429, "120") == 10.0
    assert POLICY.delay_for(2, 429, None) == 1.0, "no header: backoff"
    assert POLICY.delay_for(1, 503, "7") == 0.5, "only a 429's Retry-After is a promise"
    assert parse_retry_after("soon") is None and parse_retry_after("-1") is None


def test_the_policy_names_its_codes():
    assert [c for c in range(400, 600) if POLICY.transient_status(c)] == [429, 500, 502, 503, 504]


def test_connection_errors_retry_when_nothing_was_sent_or_the_request_may_be_repeated():
    refused = NewConnectionError(None, "Connection refused")
    cut = ProtocolError("Connection aborted.", ConnectionResetError(104, "reset"))
    assert POLICY.connection_error_is_transient(refused, repeatable=False)
    assert POLICY.connection_error_is_transient(cut, repeatable=True)
    assert not POLICY.connection_error_is_transient(cut, repeatable=False), "a generateName create is not repeated"
    assert not POLICY.connection_error_is_transient(ValueError("bad json"), repeatable=True)


class Script:
    """Answers each call with the next item: an exception to raise or a value to return."""

    def __init__(self, *answers):
        self.answers, self.calls = list(answers), []

    def __call__(self, method, path, body, query, content_type, raw):
        self.calls.append((method, path, body))
        answer = self.answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer


@pytest.fixture
def hook(monkeypatch):
    sleeps: list[float] = []
    monkeypatch.setattr(kube_module.time, "sleep", sleeps.append)
    hook = AntDBKubeHook(retry_policy=POLICY)
    hook.sleeps = sleeps
    return hook


def script(hook, monkeypatch, *answers) -> Script:
    fake = Script(*answers)
    monkeypatch.setattr(hook, "_send", fake)
    return fake


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_transient_codes_are_retried_until_success(hook, monkeypatch, status):
    fake = script(hook, monkeypatch, api_error(status), api_error(status), {"items": [{"n": 1}]})
    assert hook.list("v1", "Pod", "ns") == [{"n": 1}]
    assert len(fake.calls) == 3
    assert hook.sleeps == [0.5, 1.0]


def test_a_429_waits_what_retry_after_says(hook, monkeypatch):
    script(hook, monkeypatch, api_error(429, "TooManyRequests", "4"), {"items": []})
    hook.list("v1", "Pod", "ns")
    assert hook.sleeps == [4.0]


@pytest.mark.parametrize("status,reason", [(400, "BadRequest"), (401, "Unauthorized"), (403, "Forbidden"),
                                           (422, "Invalid"), (405, "MethodNotAllowed")])
def test_refusals_are_sent_once_and_fail_the_task_without_retries(hook, monkeypatch, status, reason):
    from airflow.sdk.exceptions import AirflowFailException

    from antdb_k8s.hooks.errors import task_error

    fake = script(hook, monkeypatch, api_error(status, reason))
    with pytest.raises(KubeRefused) as err:
        hook.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "ns"}})
    verdict = task_error(err.value, kubernetes_conn_id="kubernetes_default", antdb_conn_id="antdb_default")
    assert isinstance(verdict, AirflowFailException), "the task fails without task retries"
    assert err.value.status == status and f"{reason} happened" in str(err.value)
    assert len(fake.calls) == 1 and hook.sleeps == []


def test_a_404_is_not_retried(hook, monkeypatch):
    fake = script(hook, monkeypatch, api_error(404, "NotFound"))
    with pytest.raises(KubeError) as err:
        hook.list("v1", "Pod", "gone")
    assert err.value.status == 404 and len(fake.calls) == 1


def test_giving_up_after_the_attempts_says_so(hook, monkeypatch):
    fake = script(hook, monkeypatch, *[api_error(503, "ServiceUnavailable")] * 5)
    with pytest.raises(KubeError) as err:
        hook.get("v1", "Pod", "p", "ns")
    assert len(fake.calls) == 5 and err.value.reason == "RetriesExhausted"
    assert "after 5 attempts" in str(err.value)


def test_a_lost_connection_is_retried_but_not_for_a_generate_name_create(hook, monkeypatch):
    cut = ProtocolError("Connection aborted.", ConnectionResetError(104, "reset"))
    fake = script(hook, monkeypatch, cut, {"metadata": {"name": "p"}})
    assert hook.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "ns"}})
    assert len(fake.calls) == 2
    fake = script(hook, monkeypatch, cut)
    with pytest.raises(ProtocolError):
        hook.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"generateName": "prep-", "namespace": "ns"}})
    assert len(fake.calls) == 1


def test_apply_re_reads_when_a_retried_create_had_landed(hook, monkeypatch):
    live = {"metadata": {"name": "c", "namespace": "ns", "resourceVersion": "7"}, "data": {"k": "v"}}
    cut = ProtocolError("Connection aborted.", ConnectionResetError(104, "reset"))
    fake = script(hook, monkeypatch, api_error(404, "NotFound"), cut, api_error(409, "AlreadyExists"), live)
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "ns"}, "data": {"k": "v"}}
    assert hook.apply(obj) == "unchanged"
    assert [m for m, _, _ in fake.calls] == ["GET", "POST", "POST", "GET"]


def test_a_conflict_on_patch_re_reads_then_patches_again(hook, monkeypatch):
    live = {"metadata": {"name": "c", "namespace": "ns"}}
    fake = script(hook, monkeypatch, api_error(409, "Conflict"), live, {"metadata": {"name": "c"}, "data": {"k": "2"}})
    assert hook.patch("v1", "ConfigMap", "c", {"data": {"k": "2"}}, "ns")["data"] == {"k": "2"}
    assert [m for m, _, _ in fake.calls] == ["PATCH", "GET", "PATCH"]
    pinned = script(hook, monkeypatch, api_error(409, "Conflict"))
    with pytest.raises(KubeError):
        hook.patch("v1", "ConfigMap", "c", {"metadata": {"resourceVersion": "3"}, "data": {}}, "ns")
    assert len(pinned.calls) == 1, "a patch pinned to a resourceVersion is the caller's to recompute"
