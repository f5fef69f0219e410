"""The package's only door to Kubernetes, built on the provider's `KubernetesHook`.

Objects travel as plain dicts (what `include/` manifests and `core.manifests` produce),
through the real client's `ApiClient.call_api`, so every kind the package touches goes
through one code path, and through one retry policy (hooks/retry.py): transient failures
(429, 5xx, lost connections) are retried there, refusals raise `KubeRefused` at once (the
task fails without task retries). The provider's helpers retry 409 as if it were transient;
here existence is decided explicitly (get, then create or patch) and a conflict is answered
by re-reading: `apply` and `ensure` re-read on AlreadyExists and Conflict.
"""

from __future__ import annotations

import base64
import logging
import time
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Iterable, Mapping

from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook
from kubernetes.client.rest import ApiException

from antdb_k8s.core.drift import contains, spec_drift  # noqa: F401 - spec_drift: part of this module's API
from antdb_k8s.hooks.errors import KubeError, KubeRefused
from antdb_k8s.hooks.retry import DEFAULT_POLICY, REFUSAL_STATUS, RetryPolicy

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class KindInfo:
    prefix: str  # /api/v1 or /apis/<group>/<version>
    plural: str
    namespaced: bool


KINDS: dict[tuple[str, str], KindInfo] = {
    ("v1", "Namespace"): KindInfo("/api/v1", "namespaces", False),
    ("v1", "Node"): KindInfo("/api/v1", "nodes", False),
    ("v1", "PersistentVolume"): KindInfo("/api/v1", "persistentvolumes", False),
    ("v1", "Pod"): KindInfo("/api/v1", "pods", True),
    ("v1", "Service"): KindInfo("/api/v1", "services", True),
    ("v1", "ConfigMap"): KindInfo("/api/v1", "configmaps", True),
    ("v1", "Secret"): KindInfo("/api/v1", "secrets", True),
    ("v1", "Event"): KindInfo("/api/v1", "events", True),
    ("v1", "PersistentVolumeClaim"): KindInfo("/api/v1", "persistentvolumeclaims", True),
    ("v1", "ServiceAccount"): KindInfo("/api/v1", "serviceaccounts", True),
    ("apps/v1", "Deployment"): KindInfo("/apis/apps/v1", "deployments", True),
    ("apps/v1", "ReplicaSet"): KindInfo("/apis/apps/v1", "replicasets", True),
    ("apps/v1", "DaemonSet"): KindInfo("/apis/apps/v1", "daemonsets", True),
    ("batch/v1", "Job"): KindInfo("/apis/batch/v1", "jobs", True),
    ("rbac.authorization.k8s.io/v1", "ClusterRole"): KindInfo("/apis/rbac.authorization.k8s.io/v1", "clusterroles", False),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): KindInfo("/apis/rbac.authorization.k8s.io/v1", "clusterrolebindings", False),
    ("rbac.authorization.k8s.io/v1", "Role"): KindInfo("/apis/rbac.authorization.k8s.io/v1", "roles", True),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): KindInfo("/apis/rbac.authorization.k8s.io/v1", "rolebindings", True),
    ("apiextensions.k8s.io/v1", "CustomResourceDefinition"): KindInfo("/apis/apiextensions.k8s.io/v1", "customresourcedefinitions", False),
    ("crunchydata.com/v1", "Pgcluster"): KindInfo("/apis/crunchydata.com/v1", "pgclusters", True),
    ("crunchydata.com/v1", "Pgtask"): KindInfo("/apis/crunchydata.com/v1", "pgtasks", True),
}
SERVER_OWNED_METADATA = ("uid", "resourceVersion", "creationTimestamp", "generation", "managedFields", "selfLink")


def _kind_info(api_version: str, kind: str) -> KindInfo:
    try:
        return KINDS[(api_version, kind)]
    except KeyError:
        raise ValueError(f"{kind} ({api_version}) is not a kind this package manages") from None


def _path(info: KindInfo, namespace: str | None, name: str | None = None) -> str:
    base = info.prefix
    if info.namespaced:
        if not namespace:
            raise ValueError(f"{info.plural} are namespaced: a namespace is required")
        base += f"/namespaces/{namespace}"
    base += f"/{info.plural}"
    return f"{base}/{name}" if name else base


def _error_from(exc: ApiException) -> KubeError:
    import json

    try:
        body = json.loads(exc.body or "{}")
    except ValueError:
        body = {}
    status = exc.status or 0
    error = KubeRefused if status in REFUSAL_STATUS else KubeError
    return error(status, body.get("reason") or exc.reason or "", body.get("message") or str(exc.body or ""))


def _is(err: KubeError, status: int, reason: str) -> bool:
    return err.status == status and err.reason == reason


class AntDBKubeHook:
    """Get, list, create-or-patch, delete and read logs of Kubernetes objects as dicts."""

    def __init__(self, kubernetes_conn_id: str = "kubernetes_default", request_timeout: float = 60,
                 retry_policy: RetryPolicy = DEFAULT_POLICY):
        self.kubernetes_conn_id = kubernetes_conn_id
        self.request_timeout = request_timeout  # seconds per API call; the UI asks for a short one
        self.retry_policy = retry_policy

    @cached_property
    def provider_hook(self) -> KubernetesHook:
        return KubernetesHook(conn_id=self.kubernetes_conn_id)

    @cached_property
    def api_client(self):
        client = self.provider_hook.get_conn()
        # urllib3 would retry some connection errors itself: only retry.py decides.
        client.configuration.retries = False
        client.rest_client.pool_manager.connection_pool_kw["retries"] = False
        return client

    def _call(self, method: str, path: str, body: Any = None, query: Iterable[tuple] = (),
              content_type: str = "application/json", raw: bool = False, repeatable: bool = True) -> Any:
        """One API call under the retry policy; `repeatable` False for a request that must not
        be sent twice when its effect is unknown (a generateName create)."""
        policy, waited, attempt = self.retry_policy, 0.0, 0
        while True:
            attempt += 1
            try:
                return self._send(method, path, body, list(query), content_type, raw)
            except ApiException as exc:
                error = _error_from(exc)
                if not policy.transient_status(error.status):
                    raise error from None
                delay = policy.delay_for(attempt, error.status, (exc.headers or {}).get("Retry-After"))
                failure: Exception = error
            except Exception as exc:  # noqa: BLE001 - classified by the policy; the rest re-raised
                if not policy.connection_error_is_transient(exc, repeatable):
                    raise
                delay, failure = policy.delay_for(attempt, None, None), exc
            if attempt >= policy.attempts or waited + delay > policy.budget:
                log.warning("Kubernetes API %s %s still failing after %d attempts: %s", method, path, attempt, failure)
                if not isinstance(failure, KubeError):
                    raise failure      # the transport's own error: task_error names the unreachable server
                raise KubeError(failure.status, "RetriesExhausted",
                                f"{method} {path} still failing after {attempt} attempts: {failure}") from None
            log.warning("Kubernetes API %s %s failed (%s); retry %d of %d in %.1fs",
                        method, path, failure, attempt, policy.attempts - 1, delay)
            time.sleep(delay)
            waited += delay

    def _send(self, method: str, path: str, body: Any, query: list, content_type: str, raw: bool) -> Any:
        headers = {"Accept": "application/json", "Content-Type": content_type}
        result = self.api_client.call_api(
            path, method, query_params=query, header_params=headers, body=body,
            response_types_map={200: "object", 201: "object", 202: "object"} if not raw else None,
            auth_settings=["BearerToken"], _return_http_data_only=True, _preload_content=not raw,
            _request_timeout=self.request_timeout,
        )
        return result.data.decode() if raw else result

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict | None:
        """The object, or None when the API says 404."""
        try:
            return self._call("GET", _path(_kind_info(api_version, kind), namespace, name))
        except KubeError as err:
            if err.status == 404:
                return None
            raise

    def list(self, api_version: str, kind: str, namespace: str | None = None,
             label_selector: str | None = None, field_selector: str | None = None) -> list[dict]:
        query = [(k, v) for k, v in (("labelSelector", label_selector), ("fieldSelector", field_selector)) if v]
        result = self._call("GET", _path(_kind_info(api_version, kind), namespace), query=query)
        return list(result.get("items") or [])

    def create(self, obj: Mapping, dry_run: bool = False) -> dict:
        meta = obj["metadata"]
        path = _path(_kind_info(obj["apiVersion"], obj["kind"]), meta.get("namespace"))
        return self._call("POST", path, body=dict(obj), query=[("dryRun", "All")] if dry_run else [],
                          repeatable=bool(meta.get("name")))

    def patch(self, api_version: str, kind: str, name: str, patch: Mapping, namespace: str | None = None) -> dict:
        """Merge-patch. On 409 Conflict (someone wrote in between) the object is re-read and,
        while it still exists, the same patch is sent again: a merge patch without a
        resourceVersion does not depend on what was read. One with a resourceVersion is the
        caller's to recompute, so its conflict is raised."""
        path = _path(_kind_info(api_version, kind), namespace, name)
        for attempt in range(1, self.retry_policy.attempts + 1):
            try:
                return self._call("PATCH", path, body=dict(patch), content_type="application/merge-patch+json")
            except KubeError as err:
                pinned = bool((patch.get("metadata") or {}).get("resourceVersion"))
                if not _is(err, 409, "Conflict") or pinned or attempt == self.retry_policy.attempts:
                    raise
                log.warning("%s %s changed while patching (409 Conflict): re-reading", kind, name)
                if self.get(api_version, kind, name, namespace) is None:
                    raise
        raise AssertionError("unreachable")

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> bool:
        """Delete with background propagation; False when it was already gone."""
        path = _path(_kind_info(api_version, kind), namespace, name)
        try:
            self._call("DELETE", path, body={"propagationPolicy": "Background"})
        except KubeError as err:
            if err.status == 404:
                return False
            raise
        return True

    def apply(self, obj: Mapping) -> str:
        """Create `obj`, or patch it when it exists and differs: 'created', 'updated' or 'unchanged'.

        Fields the cluster added (status, defaults, server metadata) are left alone, so a
        re-run with the same conf sends nothing.
        """
        meta = obj["metadata"]
        current = self.get(obj["apiVersion"], obj["kind"], meta["name"], meta.get("namespace"))
        if current is None:
            try:
                self.create(obj)
            except KubeError as err:
                if not _is(err, 409, "AlreadyExists"):
                    raise
                current = self._reread(obj)
            else:
                log.info("created %s %s", obj["kind"], meta["name"])
                return "created"
        desired = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "status")}
        if contains(current, desired):
            log.info("%s %s is up to date", obj["kind"], meta["name"])
            return "unchanged"
        self.patch(obj["apiVersion"], obj["kind"], meta["name"], desired, meta.get("namespace"))
        log.info("updated %s %s", obj["kind"], meta["name"])
        return "updated"

    def pod_log(self, namespace: str, name: str) -> str:
        return self._call("GET", f"/api/v1/namespaces/{namespace}/pods/{name}/log", raw=True)

    def events_for(self, namespace: str, object_name: str) -> list[dict]:
        events = self.list("v1", "Event", namespace, field_selector=f"involvedObject.name={object_name}")
        return sorted(events, key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")

    def read_secret_value(self, namespace: str, name: str, key: str) -> str | None:
        """A decoded Secret value. Callers must never log or return it to XCom."""
        secret = self.get("v1", "Secret", name, namespace)
        if not secret or key not in (secret.get("data") or {}):
            return None
        return base64.b64decode(secret["data"][key]).decode()

    def version(self) -> dict:
        return self._call("GET", "/version")

    def ensure(self, obj: Mapping) -> tuple[str, dict]:
        """Create `obj` if missing; never modify an existing one. Returns ('created'|'exists', live object).

        For objects whose content must not change once made: generated credentials (a new
        password would lock the package out of running nodes) and Pgclusters (the v4
        operator ignores spec updates, so a patch would only pretend to change something).
        """
        meta = obj["metadata"]
        current = self.get(obj["apiVersion"], obj["kind"], meta["name"], meta.get("namespace"))
        if current is not None:
            return "exists", current
        try:
            created = self.create(obj)
        except KubeError as err:
            if not _is(err, 409, "AlreadyExists"):
                raise
            return "exists", self._reread(obj)
        log.info("created %s %s", obj["kind"], meta["name"])
        return "created", created

    def _reread(self, obj: Mapping) -> dict:
        """After 409 AlreadyExists (a retried create that had landed, or a concurrent writer)."""
        meta = obj["metadata"]
        log.info("%s %s already exists (409): re-reading it", obj["kind"], meta["name"])
        current = self.get(obj["apiVersion"], obj["kind"], meta["name"], meta.get("namespace"))
        if current is None:
            raise KubeError(409, "AlreadyExists", f"{obj['kind']} {meta['name']} exists but cannot be read")
        return current

