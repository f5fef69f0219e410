"""Response shapes that are not plain objects: lists (with paging), delete results, Scale.

Deployments and ReplicaSets expose `/scale` (autoscaling/v1 Scale) because "stop a node by
scaling its Deployment to 0" is a natural product move; it must update `spec.replicas`
through the same validation and events as any other write.
"""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING, Any

from .errors import bad_request, conflict
from .patching import apply_patch
from .resources import ResourceType
from .selectors import format_label_selector

if TYPE_CHECKING:
    from .api import Route
    from .store import ObjectStore

# Types whose DELETE answers with the deleted object (the real registries set
# ReturnDeletedObject); the others answer with a Status "Success".
_RETURNS_OBJECT = {("", "pods"), ("", "services"), ("", "namespaces"),
                   ("apiextensions.k8s.io", "customresourcedefinitions")}


def _key_of(item: dict[str, Any]) -> tuple[str, str]:
    meta = item.get("metadata") or {}
    return (meta.get("namespace", ""), meta.get("name", ""))


def list_body(rt: ResourceType, items: list[dict], rv: str, query: dict[str, str]) -> dict:
    """A `<Kind>List`, honouring `limit` / `continue` paging."""
    start = 0
    token = query.get("continue")
    if token:
        try:
            after = tuple(json.loads(base64.urlsafe_b64decode(token.encode())))
        except ValueError:
            raise bad_request("continue key is not valid: incorrect encoded start "
                              "resourceVersion (version meta.k8s.io/v1)") from None
        start = next((i for i, it in enumerate(items) if _key_of(it) > after), len(items))
    page = items[start:]
    meta: dict[str, Any] = {"resourceVersion": rv}
    limit = int(query.get("limit") or 0)
    if limit > 0 and len(page) > limit:
        page = page[:limit]
        meta["continue"] = base64.urlsafe_b64encode(json.dumps(_key_of(page[-1])).encode()).decode()
        meta["remainingItemCount"] = len(items) - start - limit
    return {"kind": rt.list_kind, "apiVersion": rt.api_version, "metadata": meta, "items": page}


def delete_response(rt: ResourceType, gone: dict[str, Any]) -> dict[str, Any]:
    if rt.crd is not None or rt.key in _RETURNS_OBJECT:
        return gone
    meta = gone.get("metadata") or {}
    details = {"name": meta.get("name"), "kind": rt.plural, "uid": meta.get("uid")}
    if rt.group:
        details["group"] = rt.group
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
            "details": details}


def get_scale(rt: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj["metadata"]
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    return {"kind": "Scale", "apiVersion": "autoscaling/v1",
            "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion",
                                              "creationTimestamp") if k in meta},
            "spec": {"replicas": spec.get("replicas", 0)},
            "status": {"replicas": status.get("replicas", 0),
                       "selector": format_label_selector(spec.get("selector"))}}


def _set_replicas(store: ObjectStore, rt: ResourceType, route: Route, replicas: Any,
                  rv: str | None, dry_run: bool) -> dict[str, Any]:
    current = store.get(rt.api_version, rt.kind, route.namespace, route.name or "")
    if rv and rv != current["metadata"]["resourceVersion"]:
        raise conflict(rt.plural, rt.group, route.name or "")
    patch = {"spec": {"replicas": replicas}}
    updated = store.patch(rt.api_version, rt.kind, route.namespace, route.name or "", patch,
                          "merge", dry_run=dry_run)
    return get_scale(rt, updated)


def replace_scale(store: ObjectStore, rt: ResourceType, route: Route, body: dict[str, Any],
                  dry_run: bool) -> dict[str, Any]:
    replicas = (body.get("spec") or {}).get("replicas", 0)
    rv = (body.get("metadata") or {}).get("resourceVersion")
    return _set_replicas(store, rt, route, replicas, rv, dry_run)


def patch_scale(store: ObjectStore, rt: ResourceType, route: Route, doc: Any, ptype: str,
                dry_run: bool) -> dict[str, Any]:
    current = store.get(rt.api_version, rt.kind, route.namespace, route.name or "")
    scale = apply_patch(get_scale(rt, current), doc, ptype)
    rv = (scale.get("metadata") or {}).get("resourceVersion")
    return _set_replicas(store, rt, route, (scale.get("spec") or {}).get("replicas", 0), rv, dry_run)
