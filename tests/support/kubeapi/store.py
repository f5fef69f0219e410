"""The object store behind the test Kubernetes API: what etcd plus the apiserver registry do.

Both the HTTP server (the product's view) and the simulator (the cluster's controllers and
kubelet) go through this one API, so every change gets the same server-set fields,
validation, resourceVersion and watch/listener events whichever side made it.

Thread safety: one RLock around all state; listeners run after the change is committed,
outside the lock, synchronously in the mutating thread (a listener may call the store).
"""

from __future__ import annotations

import contextlib
import copy
import logging
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from . import admission, patching
from .errors import ApiError, InvalidFields, already_exists, bad_request, no_such_resource, not_found
from .ipam import ClusterIPAllocator
from .resources import CRD_TYPE, ResourceType, TypeRegistry, types_from_crd
from .selectors import make_filter

__all__ = ["ApiError", "ObjectStore", "WatchEvent", "Listener"]

log = logging.getLogger(__name__)

Listener = Callable[[str, dict], None]
_PROTECTED_NAMESPACES = ("default", "kube-system", "kube-public")


@dataclass(frozen=True)
class WatchEvent:
    """One committed change; `obj`/`old` are the store's private copies (never mutate)."""

    rv: int
    type: str                      # ADDED | MODIFIED | DELETED
    key: tuple[str, str]           # (group, plural)
    namespace: str
    obj: dict[str, Any]
    old: dict[str, Any] | None


class ObjectStore:
    """In-memory Kubernetes object storage with real-API semantics (see module docstring)."""

    def __init__(self, cluster_ip_network: str = "127.0.10.0/24",
                 crd_schemas: dict | None = None, history_size: int = 20000) -> None:
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._types = TypeRegistry()
        self._objects: dict[tuple[str, str], dict[tuple[str, str], dict[str, Any]]] = {}
        self._by_uid: dict[str, tuple[tuple[str, str], str, str]] = {}
        self._rv = 0
        self._history: deque[WatchEvent] = deque(maxlen=history_size)
        self._history_floor = 0                      # events with rv <= floor were dropped
        self._listeners: list[Listener] = []
        self._ips = ClusterIPAllocator(cluster_ip_network)
        self._logs: dict[tuple[str, str], dict[str, str]] = {}
        self.listener_errors: list[BaseException] = []
        for (group, kind), crd in (crd_schemas or {}).items():
            self._types.set_custom(f"static:{group}/{kind}", types_from_crd(crd))
        for ns in _PROTECTED_NAMESPACES:
            self.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})

    # ------------------------------------------------------------ plumbing

    @contextlib.contextmanager
    def _op(self) -> Iterator[list[WatchEvent]]:
        """Run a mutation under the lock, then notify listeners outside it."""
        events: list[WatchEvent] = []
        try:
            with self._lock:
                yield events
        finally:
            self._emit(events)

    def _emit(self, events: list[WatchEvent]) -> None:
        for ev in events:
            for fn in list(self._listeners):
                try:
                    fn(ev.type, self._out(self._type_for_event(ev), ev.obj))
                except Exception as exc:          # noqa: BLE001 - a listener must not break the API
                    log.exception("kubeapi listener %r failed on %s", fn, ev.type)
                    self.listener_errors.append(exc)

    def _type_for_event(self, ev: WatchEvent) -> ResourceType | None:
        group, _, version = ev.obj.get("apiVersion", "").rpartition("/")
        return self._types.by_plural(group, version, ev.key[1])

    def _commit(self, events: list[WatchEvent], etype: str, rtype: ResourceType,
                obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        if len(self._history) == self._history.maxlen:
            self._history_floor = self._history[0].rv
        ev = WatchEvent(self._rv, etype, rtype.key, obj["metadata"].get("namespace", ""), obj, old)
        self._history.append(ev)
        events.append(ev)
        self._changed.notify_all()

    def _next_rv(self) -> str:
        self._rv += 1
        return str(self._rv)

    @staticmethod
    def _out(rtype: ResourceType | None, obj: dict[str, Any]) -> dict[str, Any]:
        """A caller's copy: apiVersion/kind/metadata first, apiVersion as requested."""
        body = copy.deepcopy(obj)
        head = {"apiVersion": rtype.api_version if rtype else body.get("apiVersion"),
                "kind": rtype.kind if rtype else body.get("kind"),
                "metadata": body.pop("metadata", {})}
        body.pop("apiVersion", None)
        body.pop("kind", None)
        return {**head, **body}

    def resolve(self, api_version: str, kind: str) -> ResourceType:
        """The served type for apiVersion + Kind (or plural); 404 like the real API if none."""
        rtype = self._types.by_kind(api_version, kind)
        if rtype is None:
            raise no_such_resource()
        return rtype

    def resolve_plural(self, group: str, version: str, plural: str) -> ResourceType | None:
        with self._lock:
            return self._types.by_plural(group, version, plural)

    def served_types(self) -> list[ResourceType]:
        with self._lock:
            return self._types.all()

    @property
    def resource_version(self) -> str:
        with self._lock:
            return str(self._rv)

    def _bucket(self, rtype: ResourceType) -> dict[tuple[str, str], dict[str, Any]]:
        return self._objects.setdefault(rtype.key, {})

    def _namespace_of(self, rtype: ResourceType, namespace: str | None) -> str:
        return (namespace or "default") if rtype.namespaced else ""

    def _require(self, rtype: ResourceType, ns: str, name: str) -> dict[str, Any]:
        obj = self._bucket(rtype).get((ns, name))
        if obj is None:
            raise not_found(rtype.plural, rtype.group, name)
        return obj

    # ------------------------------------------------------------ listeners

    def add_listener(self, fn: Listener) -> None:
        """fn(event_type, obj) after each committed change, outside the lock, same thread."""
        self._listeners.append(fn)

    def remove_listener(self, fn: Listener) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(fn)

    # ------------------------------------------------------------ reads

    def get(self, api_version: str, kind: str, namespace: str | None, name: str) -> dict:
        with self._lock:
            rtype = self.resolve(api_version, kind)
            return self._out(rtype, self._require(rtype, self._namespace_of(rtype, namespace), name))

    def list(self, api_version: str, kind: str, namespace: str | None = None,
             label_selector: str | None = None, field_selector: str | None = None) -> list[dict]:
        """Objects sorted by (namespace, name); namespace None means all namespaces."""
        with self._lock:
            rtype = self.resolve(api_version, kind)
            return [self._out(rtype, o) for o in
                    self._select(rtype, namespace, label_selector, field_selector)]

    def _select(self, rtype: ResourceType, namespace: str | None, label_selector: str | None,
                field_selector: str | None) -> list[dict[str, Any]]:
        keep = make_filter(label_selector, field_selector, rtype.key)
        items = sorted(self._bucket(rtype).items())
        return [o for (ns, _), o in items
                if (namespace is None or not rtype.namespaced or ns == namespace) and keep(o)]

    # ------------------------------------------------------------ create

    def create(self, obj: dict, namespace: str | None = None, *, dry_run: bool = False) -> dict:
        """POST. 404 for an unknown type or missing namespace, 409 if the name exists, 422 if invalid."""
        if not isinstance(obj, dict) or not obj.get("apiVersion") or not obj.get("kind"):
            raise bad_request("Object 'Kind' is missing in the request body")
        with self._op() as events:
            rtype = self.resolve(obj["apiVersion"], obj["kind"])
            obj = copy.deepcopy(obj)
            meta = obj.setdefault("metadata", {})
            if rtype.namespaced:
                if namespace and meta.get("namespace") and meta["namespace"] != namespace:
                    raise bad_request("the namespace of the provided object does not match the "
                                      "namespace sent on the request")
                meta["namespace"] = meta.get("namespace") or namespace or "default"
                if ("", meta["namespace"]) not in self._objects.get(("", "namespaces"), {}):
                    raise not_found("namespaces", "", meta["namespace"])
            else:
                meta.pop("namespace", None)
            while not meta.get("name") and meta.get("generateName"):
                name = admission.generate_name(meta["generateName"])
                if (meta.get("namespace", ""), name) not in self._bucket(rtype):
                    meta["name"] = name
            prepared = admission.prepare_create(rtype, obj)
            return self._out(rtype, self._insert(rtype, prepared, dry_run, events))

    def _insert(self, rtype: ResourceType, obj: dict[str, Any], dry_run: bool,
                events: list[WatchEvent]) -> dict[str, Any]:
        meta = obj["metadata"]
        key = (meta.get("namespace", ""), meta["name"])
        if key in self._bucket(rtype):
            raise already_exists(rtype.plural, rtype.group, meta["name"])
        if rtype.key == ("", "services"):
            self._assign_cluster_ip(rtype, obj, dry_run)
        if dry_run:
            return obj
        meta["resourceVersion"] = self._next_rv()
        self._bucket(rtype)[key] = obj
        self._by_uid[meta["uid"]] = (rtype.key, key[0], key[1])
        if rtype.key == CRD_TYPE.key:
            self._types.set_custom(f"crd:{meta['name']}", types_from_crd(obj))
        self._commit(events, "ADDED", rtype, obj, None)
        return obj

    def _assign_cluster_ip(self, rtype: ResourceType, obj: dict[str, Any], dry_run: bool) -> None:
        spec = obj.setdefault("spec", {})
        if spec.get("type") == "ExternalName":
            return
        requested = spec.get("clusterIP") or (spec.get("clusterIPs") or [None])[0]
        if requested == "None":
            spec["clusterIP"], spec["clusterIPs"] = "None", ["None"]
            return
        if requested:
            errors = InvalidFields()
            self._ips.check_requested(requested, errors)
            errors.raise_if_any(rtype.kind, rtype.group, obj["metadata"]["name"])
            if not dry_run:
                self._ips.take(requested)
            ip = requested
        else:
            ip = self._ips.peek() if dry_run else self._ips.allocate()
            if ip is None:
                raise admission.internal_error("failed to allocate a serviceIP: range is full")
        spec["clusterIP"], spec["clusterIPs"] = ip, [ip]

    # ------------------------------------------------------------ update

    def replace(self, obj: dict, *, dry_run: bool = False) -> dict:
        """PUT. 404 if absent; 409 Conflict when metadata.resourceVersion is stale."""
        if not isinstance(obj, dict) or not obj.get("apiVersion") or not obj.get("kind"):
            raise bad_request("Object 'Kind' is missing in the request body")
        with self._op() as events:
            rtype = self.resolve(obj["apiVersion"], obj["kind"])
            meta = obj.get("metadata") or {}
            ns = self._namespace_of(rtype, meta.get("namespace"))
            old = self._require(rtype, ns, meta.get("name") or "")
            return self._out(rtype, self._update(rtype, old, obj, events, dry_run=dry_run))

    def patch(self, api_version: str, kind: str, namespace: str | None, name: str, patch: Any,
              patch_type: str = "merge", *, dry_run: bool = False, subresource: str = "") -> dict:
        """PATCH with patch_type "merge" | "strategic" | "json"; subresource "" or "status"."""
        with self._op() as events:
            rtype = self.resolve(api_version, kind)
            old = self._require(rtype, self._namespace_of(rtype, namespace), name)
            if rtype.crd is not None and patch_type == patching.STRATEGIC:
                raise ApiError(415, "UnsupportedMediaType",
                               "the body of the request was in an unknown format - accepted media "
                               "types include: application/json-patch+json, "
                               "application/merge-patch+json, application/apply-patch+yaml")
            base = self._out(rtype, old)
            new = patching.apply_patch(base, patch, patch_type)
            if not isinstance(new, dict):
                raise bad_request("the patch result is not an object")
            return self._out(rtype, self._update(rtype, old, new, events, dry_run=dry_run,
                                                 status_only=subresource == "status"))

    def update_status(self, api_version: str, kind: str, namespace: str | None, name: str,
                      status: dict, *, resource_version: str | None = None,
                      dry_run: bool = False) -> dict:
        """Replace .status only (works for every kind: it is how controllers write status)."""
        with self._op() as events:
            rtype = self.resolve(api_version, kind)
            old = self._require(rtype, self._namespace_of(rtype, namespace), name)
            new = copy.deepcopy(old)
            new["status"] = copy.deepcopy(status)
            if resource_version:
                new["metadata"]["resourceVersion"] = resource_version
            return self._out(rtype, self._update(rtype, old, new, events, dry_run=dry_run,
                                                 status_only=True))

    def _update(self, rtype: ResourceType, old: dict[str, Any], new: dict[str, Any],
                events: list[WatchEvent], *, dry_run: bool = False,
                status_only: bool = False) -> dict[str, Any]:
        new = admission.prepare_update(rtype, old, new, status_only=status_only)
        if rtype.key == ("", "services") and not status_only:
            self._keep_cluster_ip(rtype, old, new, dry_run)
        if new == old or dry_run:
            return new if dry_run else old          # a no-op write is not a write
        new["metadata"]["resourceVersion"] = self._next_rv()
        meta = new["metadata"]
        self._bucket(rtype)[(meta.get("namespace", ""), meta["name"])] = new
        if rtype.key == CRD_TYPE.key:
            self._types.set_custom(f"crd:{meta['name']}", types_from_crd(new))
        self._commit(events, "MODIFIED", rtype, new, old)
        return new

    def _keep_cluster_ip(self, rtype: ResourceType, old: dict[str, Any], new: dict[str, Any],
                         dry_run: bool) -> None:
        """clusterIP is immutable; an update that omits it keeps the allocated one."""
        old_spec, spec = old.get("spec") or {}, new.setdefault("spec", {})
        old_ip = old_spec.get("clusterIP")
        if spec.get("type") == "ExternalName":
            if old_ip and not dry_run:
                self._ips.release(old_ip)
            spec.pop("clusterIP", None)
            spec.pop("clusterIPs", None)
            return
        if not old_ip:                                # was ExternalName: allocate now
            self._assign_cluster_ip(rtype, new, dry_run)
            return
        wanted = spec.get("clusterIP") or (spec.get("clusterIPs") or [None])[0]
        if wanted and wanted != old_ip:
            errors = InvalidFields()
            errors.invalid("spec.clusterIPs[0]", [wanted], "may not change once set")
            errors.raise_if_any(rtype.kind, rtype.group, old["metadata"]["name"])
        spec["clusterIP"], spec["clusterIPs"] = old_ip, list(old_spec.get("clusterIPs") or [old_ip])
