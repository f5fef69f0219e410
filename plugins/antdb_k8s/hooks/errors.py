"""Which client failure is which: the one place that knows kubernetes, urllib3, psycopg and Airflow errors.

It also defines `KubeError`, the Kubernetes API error the package raises. This module stays light
enough to import anywhere (services and operators catch `KubeError` without loading the provider
when a DAG file is parsed): every client library below is imported inside the function that needs it.

Operators never catch these themselves: `operators/task_errors.py` hands every exception
a task raises to `task_error`, which turns the ones that cannot heal (configuration,
refused credentials, 401/403, 404, invalid objects) into `AirflowFailException` (no retry)
and words the transient ones (connection resets, 429, 5xx) so the retry says why. The
retry policy inside one Kubernetes call is the hook's (`hooks/retry.py`); this module
decides what a task does once a call has given up.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from antdb_k8s.core import failures
from antdb_k8s.core.failures import Verdict

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


class KubeError(RuntimeError):
    """A Kubernetes API failure, with the API's own reason and message kept readable."""

    def __init__(self, status: int, reason: str, message: str):
        self.status, self.reason = status, reason
        super().__init__(f"Kubernetes API {status} {reason}: {message}")


class KubeRefused(KubeError):
    """The API refused the request (400, 401, 403, 405, 410, 415, 422): waiting cannot fix it,
    so the hook's retry policy (hooks/retry.py) never repeats it and `task_error` makes the
    task fail without task retries. Fix the request, the RBAC or the token."""


class KubernetesUnavailable(RuntimeError):
    """A transient failure, reworded; plain RuntimeError so Airflow retries the task."""


def task_error(exc: BaseException, *, kubernetes_conn_id: str, antdb_conn_id: str,
               unreachable_is_permanent: bool = False) -> BaseException | None:
    """The exception the task should raise instead of `exc`, or None to let `exc` through."""
    from airflow.sdk.exceptions import AirflowFailException

    verdict = diagnose(exc, kubernetes_conn_id=kubernetes_conn_id, antdb_conn_id=antdb_conn_id,
                       unreachable_is_permanent=unreachable_is_permanent)
    if verdict is None:
        return None
    if verdict.permanent:
        return AirflowFailException(verdict.message)
    return KubernetesUnavailable(verdict.message + failures.RETRIED)


def describe(exc: BaseException, *, kubernetes_conn_id: str = "kubernetes_default",
             antdb_conn_id: str = "antdb_default") -> str:
    """One readable sentence for `exc` (the dry run's list of facts it could not read)."""
    from airflow.sdk.exceptions import AirflowFailException

    if isinstance(exc, AirflowFailException):
        return " ".join(str(exc).split())
    verdict = diagnose(exc, kubernetes_conn_id=kubernetes_conn_id, antdb_conn_id=antdb_conn_id)
    if verdict is not None:
        return " ".join(verdict.message.split())
    first = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {first[:200]}"


def diagnose(exc: BaseException, *, kubernetes_conn_id: str, antdb_conn_id: str,
             unreachable_is_permanent: bool = False) -> Verdict | None:
    """Classify `exc`; None when it is not a client failure this module knows."""
    from airflow.sdk.exceptions import AirflowException, AirflowFailException

    if isinstance(exc, AirflowFailException):
        return None  # already worded by the task, and already final
    kube = _kube_verdict(exc, kubernetes_conn_id, unreachable_is_permanent)
    if kube is not None:
        return kube
    antdb = _antdb_verdict(exc, antdb_conn_id)
    if antdb is not None:
        return antdb
    if isinstance(exc, AirflowException) and "isn't defined" in str(exc):
        conn_id = _conn_id_in(str(exc)) or antdb_conn_id
        if conn_id == kubernetes_conn_id:
            return failures.kube_config_failed(conn_id, "the connection is not defined", config_sources(conn_id))
        return failures.antdb_connection_missing(conn_id)
    return None


def _kube_verdict(exc: BaseException, conn_id: str, unreachable_is_permanent: bool) -> Verdict | None:
    import urllib3.exceptions
    from kubernetes.client.rest import ApiException
    from kubernetes.config.config_exception import ConfigException

    if isinstance(exc, ConfigException) or _is_kubeconfig_parse_error(exc):
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return failures.kube_config_failed(conn_id, first, config_sources(conn_id))
    if isinstance(exc, (KubeError, ApiException)):
        status = int(exc.status or 0)
        message = str(exc) if isinstance(exc, KubeError) else _api_message(exc)
        if status == 401:
            return failures.kube_unauthorized(conn_id, identity(conn_id))
        if status == 403:
            return failures.kube_forbidden(conn_id, message, identity(conn_id))
        if status:
            return failures.kube_status(conn_id, status, message)
    if isinstance(exc, urllib3.exceptions.HTTPError):  # refused, reset, read timeout: the transport gave up
        reason = _root_reason(exc)
        return failures.kube_unreachable(conn_id, server(conn_id), reason, unreachable_is_permanent)
    return None


def _antdb_verdict(exc: BaseException, conn_id: str) -> Verdict | None:
    import psycopg

    if not isinstance(exc, psycopg.OperationalError):
        return None
    text = " ".join(str(exc).split())
    if any(marker in text for marker in ("password authentication failed", "no password supplied",
                                         "authentication failed", "does not exist")):
        return failures.antdb_login_refused(conn_id, text[:300])
    return failures.antdb_unreachable(text[:300])


def _is_kubeconfig_parse_error(exc: BaseException) -> bool:
    import yaml

    return isinstance(exc, yaml.YAMLError) or (isinstance(exc, FileNotFoundError) and "kube" in str(exc).lower())


def _api_message(exc: Any) -> str:
    try:
        body = json.loads(exc.body or "{}")
    except (TypeError, ValueError):
        body = {}
    return body.get("message") or exc.reason or str(exc)


def _root_reason(exc: BaseException) -> str:
    """The innermost cause ('Connection refused'), not urllib3's retry wrapper."""
    reason = getattr(exc, "reason", None) or exc.__cause__ or exc.__context__ or exc
    text = str(reason)
    if "] " in text:  # "[Errno 111] Connection refused"
        text = text.rsplit("] ", 1)[1].rstrip("')\"")
    return text.splitlines()[0][:200] if text else type(exc).__name__


def _conn_id_in(message: str) -> str | None:
    parts = message.split("`")
    return parts[1] if len(parts) >= 3 else None


# --- where kubernetes_default gets its credentials -----------------------------------

def _extras(conn_id: str) -> dict | None:
    """The connection's extras (prefixed or not), or None when the connection is not defined."""
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        extras = BaseHook.get_connection(conn_id).extra_dejson
    except AirflowNotFoundException:
        return None
    return {key.removeprefix("extra__kubernetes__"): value for key, value in extras.items()}


def _kubeconfig_paths(extras: dict | None) -> list[str]:
    if extras and extras.get("kube_config_path"):
        return [os.path.expanduser(str(extras["kube_config_path"]))]
    env = os.environ.get("KUBECONFIG")
    if env:
        return [path for path in env.split(os.pathsep) if path]
    return [os.path.expanduser("~/.kube/config")]


def config_sources(conn_id: str) -> list[str]:
    """Every place the provider looked for credentials, in its own order, with what was there."""
    extras = _extras(conn_id)
    env_name = "AIRFLOW_CONN_" + conn_id.upper()
    if extras is None:
        sources = [f"connection {conn_id}: not defined ({env_name} is not set, none in Admin -> Connections)"]
    else:
        sources = [f"connection {conn_id}: extra keys {sorted(extras) or 'none'}"]
    if extras and extras.get("in_cluster"):
        host = os.environ.get("KUBERNETES_SERVICE_HOST")
        return sources + [f"in-cluster service account (in_cluster: true): KUBERNETES_SERVICE_HOST is "
                          f"{'set' if host else 'not set, so this is not a pod in a cluster'}"]
    if extras and extras.get("kube_config"):
        return sources + ["the inline kubeconfig in the connection's extra kube_config"]
    if not (extras and extras.get("kube_config_path")):
        sources.append("in-cluster service account: " + ("KUBERNETES_SERVICE_HOST set" if os.environ.get(
            "KUBERNETES_SERVICE_HOST") else "not in a pod (KUBERNETES_SERVICE_HOST not set)"))
        sources.append(f"KUBECONFIG: {os.environ['KUBECONFIG']!r}" if os.environ.get("KUBECONFIG")
                       else "KUBECONFIG: not set")
    for path in _kubeconfig_paths(extras):
        sources.append(f"kubeconfig {path}: {'exists' if os.path.isfile(path) else 'no such file'}")
    return sources


def _kubeconfig(extras: dict | None) -> tuple[str, dict] | None:
    import yaml

    for path in _kubeconfig_paths(extras):
        try:
            return path, yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError):
            continue
    return None


def identity(conn_id: str) -> str:
    """Who the connection authenticates as, as far as can be told without asking the API."""
    extras = _extras(conn_id)
    if extras and extras.get("in_cluster"):
        namespace = (SERVICE_ACCOUNT_DIR / "namespace")
        where = namespace.read_text().strip() if namespace.is_file() else "?"
        return f"the pod's service account (namespace {where})"
    loaded = _kubeconfig(extras)
    if loaded is None:
        return "no readable kubeconfig"
    path, config = loaded
    wanted = (extras or {}).get("cluster_context") or config.get("current-context")
    context = next((c.get("context") or {} for c in config.get("contexts") or [] if c.get("name") == wanted), {})
    return f"user {context.get('user', '?')!r} of context {wanted!r} in {path}"


def server(conn_id: str) -> str:
    """The API server address the connection points at, for messages."""
    extras = _extras(conn_id)
    if extras and extras.get("in_cluster"):
        return "https://{}:{}".format(os.environ.get("KUBERNETES_SERVICE_HOST", "?"),
                                      os.environ.get("KUBERNETES_SERVICE_PORT", "?"))
    loaded = _kubeconfig(extras)
    if loaded is None:
        return "?"
    _, config = loaded
    wanted = (extras or {}).get("cluster_context") or config.get("current-context")
    context = next((c.get("context") or {} for c in config.get("contexts") or [] if c.get("name") == wanted), {})
    cluster = next((c.get("cluster") or {} for c in config.get("clusters") or []
                    if c.get("name") == context.get("cluster")), {})
    return cluster.get("server", "?")
