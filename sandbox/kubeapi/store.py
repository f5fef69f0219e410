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
from .streams import StreamsMixin

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


class ObjectStore(StreamsMixin):
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
            admission.prepare_create(CRD_TYPE, crd)          # a broken CRD fails here, loudly
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
                    fn(ev.type, self.present(self._type_for_event(ev), ev.obj))
                except Exception as exc:          # noqa: BLE001 - a listener must not break the API
                    log.exception("kubeapi listener %r failed on %s", fn, ev.type)
                    self.listener_errors.append(exc)

    def _type_for_event(self, ev: WatchEvent) -> ResourceType | None:
        group, _, version = ev.obj.get("apiVersion", "").rpartition("/")
        with self._lock:
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
    def present(rtype: ResourceType | None, obj: dict[str, Any]) -> dict[str, Any]:
        """A caller's copy of a stored object: apiVersion/kind/metadata first, apiVersion
        as the caller addressed it (custom resources are served in every version as-is)."""
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
            return self.present(rtype, self._require(rtype, self._namespace_of(rtype, namespace), name))

    def list(self, api_version: str, kind: str, namespace: str | None = None,
             label_selector: str | None = None, field_selector: str | None = None) -> list[dict]:
        """Objects sorted by (namespace, name); namespace None means all namespaces."""
        return self.list_with_version(api_version, kind, namespace, label_selector,
                                      field_selector)[0]

    def list_with_version(self, api_version: str, kind: str, namespace: str | None = None,
                          label_selector: str | None = None,
                          field_selector: str | None = None) -> tuple[list[dict], str]:
        """`list` plus the resourceVersion it is consistent with (for list-then-watch)."""
        with self._lock:
            rtype = self.resolve(api_version, kind)
            items = [self.present(rtype, o) for o in
                     self._select(rtype, namespace, label_selector, field_selector)]
            return items, str(self._rv)

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
            if rtype.key == ("", "pods"):
                self._check_service_account(prepared)
            created = self._insert(rtype, prepared, dry_run, events)
            if rtype.key == ("", "namespaces") and not dry_run:
                self._add_default_service_account(created["metadata"]["name"], events)
            refs = created["metadata"].get("ownerReferences") or []
            if refs and not dry_run and not any(r.get("uid") in self._by_uid for r in refs):
                # The garbage collector deletes an object whose owners are all gone (a controller
                # acting on a stale view can create one right after its owner was deleted).
                self._remove(rtype, created, "Background", events)
            return self.present(rtype, created)

    def _check_service_account(self, pod: dict[str, Any]) -> None:
        """The ServiceAccount admission plugin: a pod's service account must exist."""
        meta, spec = pod["metadata"], pod.get("spec") or {}
        sa = spec.setdefault("serviceAccountName", spec.get("serviceAccount") or "default")
        spec.setdefault("serviceAccount", sa)
        if (meta["namespace"], sa) not in self._objects.get(("", "serviceaccounts"), {}):
            raise ApiError(403, "Forbidden", f'pods "{meta["name"]}" is forbidden: error looking '
                           f'up service account {meta["namespace"]}/{sa}: serviceaccount "{sa}" '
                           "not found", name=meta["name"], kind="pods")

    def _add_default_service_account(self, namespace: str, events: list[WatchEvent]) -> None:
        """What the service-account controller does for every new namespace."""
        sa_type = self.resolve("v1", "ServiceAccount")
        sa = admission.prepare_create(sa_type, {"apiVersion": "v1", "kind": "ServiceAccount",
                                                "metadata": {"name": "default",
                                                             "namespace": namespace}})
        self._insert(sa_type, sa, False, events)

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

    def replace(self, obj: dict, *, dry_run: bool = False, subresource: str = "") -> dict:
        """PUT. 404 if absent; 409 Conflict when metadata.resourceVersion is stale.
        subresource="status" applies only the body's status (PUT .../status)."""
        if not isinstance(obj, dict) or not obj.get("apiVersion") or not obj.get("kind"):
            raise bad_request("Object 'Kind' is missing in the request body")
        with self._op() as events:
            rtype = self.resolve(obj["apiVersion"], obj["kind"])
            meta = obj.get("metadata") or {}
            ns = self._namespace_of(rtype, meta.get("namespace"))
            old = self._require(rtype, ns, meta.get("name") or "")
            if rtype.crd is not None and not meta.get("resourceVersion"):
                errors = InvalidFields()            # CRs allow no unconditional update
                errors.invalid("metadata.resourceVersion", 0, "must be specified for an update")
                errors.raise_if_any(rtype.kind, rtype.group, meta.get("name") or "")
            return self.present(rtype, self._update(rtype, old, obj, events, dry_run=dry_run,
                                                    status_only=subresource == "status"))

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
            base = self.present(rtype, old)
            new = patching.apply_patch(base, patch, patch_type)
            if not isinstance(new, dict):
                raise bad_request("the patch result is not an object")
            return self.present(rtype, self._update(rtype, old, new, events, dry_run=dry_run,
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
            return self.present(rtype, self._update(rtype, old, new, events, dry_run=dry_run,
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

    # ------------------------------------------------------------ delete

    def delete(self, api_version: str, kind: str, namespace: str | None, name: str, *,
               propagation_policy: str | None = None, dry_run: bool = False,
               preconditions: dict | None = None) -> dict:
        """DELETE: removed at once (no finalizers), DELETED fires, then garbage collection
        deletes dependents whose ownerReferences name it (Background/Foreground) or strips
        those references (Orphan). Returns the deleted object."""
        with self._op() as events:
            rtype = self.resolve(api_version, kind)
            obj = self._require(rtype, self._namespace_of(rtype, namespace), name)
            admission.check_preconditions(rtype, obj, preconditions)
            if rtype.key == ("", "namespaces") and name in _PROTECTED_NAMESPACES:
                raise ApiError(403, "Forbidden", f'namespaces "{name}" is forbidden: this '
                               "namespace may not be deleted", name=name, kind="namespaces")
            if dry_run:
                return self.present(rtype, obj)
            policy = propagation_policy or "Background"
            if policy not in ("Background", "Foreground", "Orphan"):
                raise ApiError(422, "Invalid", f"DeleteOptions.meta.k8s.io \"\" is invalid: "
                               f"propagationPolicy: Unsupported value: \"{policy}\"")
            return self.present(rtype, self._remove(rtype, obj, policy, events))

    def delete_collection(self, api_version: str, kind: str, namespace: str | None = None,
                          label_selector: str | None = None, field_selector: str | None = None,
                          *, propagation_policy: str | None = None,
                          dry_run: bool = False) -> list[dict]:
        """DELETE on a collection: every object matching the selectors."""
        with self._op() as events:
            rtype = self.resolve(api_version, kind)
            victims = self._select(rtype, namespace, label_selector, field_selector)
            if dry_run:
                return [self.present(rtype, o) for o in victims]
            out = []
            for obj in victims:
                meta = obj["metadata"]
                if self._bucket(rtype).get((meta.get("namespace", ""), meta["name"])) is obj:
                    out.append(self.present(rtype, self._remove(
                        rtype, obj, propagation_policy or "Background", events)))
            return out

    def _remove(self, rtype: ResourceType, obj: dict[str, Any], policy: str,
                events: list[WatchEvent]) -> dict[str, Any]:
        meta = obj["metadata"]
        if policy == "Foreground":
            self._collect_dependents(meta["uid"], "Foreground", events)
        if rtype.key == ("", "namespaces"):
            self._empty_namespace(meta["name"], events)
        del self._bucket(rtype)[(meta.get("namespace", ""), meta["name"])]
        self._by_uid.pop(meta["uid"], None)
        gone = copy.deepcopy(obj)
        gone["metadata"]["resourceVersion"] = self._next_rv()
        self._commit(events, "DELETED", rtype, gone, obj)
        self._after_remove(rtype, obj, events)
        if policy != "Foreground":
            self._collect_dependents(meta["uid"], policy, events)
        return gone

    def _after_remove(self, rtype: ResourceType, obj: dict[str, Any],
                      events: list[WatchEvent]) -> None:
        """Side effects of a removal: IP release, pod logs, a CRD's instances and type."""
        meta = obj["metadata"]
        if rtype.key == ("", "services"):
            self._ips.release((obj.get("spec") or {}).get("clusterIP"))
        elif rtype.key == ("", "pods"):
            self._logs.pop((meta.get("namespace", ""), meta["name"]), None)
        elif rtype.key == CRD_TYPE.key:
            self._types.set_custom(f"crd:{meta['name']}", [])
            for t in types_from_crd(obj, served_only=False)[:1]:
                for inst in list(self._objects.get(t.key, {}).values()):
                    self._remove(t, inst, "Background", events)

    def _types_by_key(self) -> list[ResourceType]:
        """One served type per storage bucket (versions of a CRD share a bucket)."""
        seen: dict[tuple[str, str], ResourceType] = {}
        for rtype in self._types.all():
            seen.setdefault(rtype.key, rtype)
        return list(seen.values())

    def _empty_namespace(self, namespace: str, events: list[WatchEvent]) -> None:
        for rtype in self._types_by_key():
            if not rtype.namespaced:
                continue
            for (ns, _), obj in sorted(self._objects.get(rtype.key, {}).items()):
                if ns == namespace and self._by_uid.get(obj["metadata"]["uid"]):
                    self._remove(rtype, obj, "Background", events)

    def _collect_dependents(self, owner_uid: str, policy: str, events: list[WatchEvent]) -> None:
        """The garbage collector, run synchronously right after the owner's removal."""
        for rtype in self._types_by_key():
            for obj in list(self._objects.get(rtype.key, {}).values()):
                refs = (obj["metadata"].get("ownerReferences") or [])
                if not any(r.get("uid") == owner_uid for r in refs):
                    continue
                remaining = [r for r in refs if r.get("uid") != owner_uid]
                alive = [r for r in remaining if r.get("uid") in self._by_uid]
                if policy == "Orphan" or alive:
                    self._strip_owner(rtype, obj, remaining, events)
                elif self._by_uid.get(obj["metadata"]["uid"]):
                    self._remove(rtype, obj, "Background", events)

    def _strip_owner(self, rtype: ResourceType, obj: dict[str, Any], remaining: list[dict],
                     events: list[WatchEvent]) -> None:
        new = copy.deepcopy(obj)
        if remaining:
            new["metadata"]["ownerReferences"] = remaining
        else:
            new["metadata"].pop("ownerReferences", None)
        new["metadata"]["resourceVersion"] = self._next_rv()
        meta = new["metadata"]
        self._bucket(rtype)[(meta.get("namespace", ""), meta["name"])] = new
        self._commit(events, "MODIFIED", rtype, new, obj)
