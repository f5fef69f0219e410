"""Maps Kubernetes REST requests onto the ObjectStore (no sockets here: see server.py).

URL grammar (as the real API): `/api/v1/...` or `/apis/<group>/<version>/...`, then
`[watch/][namespaces/<ns>/]<plural>[/<name>[/<subresource>]]`.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import Any, Iterator

import yaml

from . import discovery, patching
from .admission import check_type_fields
from .errors import ApiError, bad_request, method_not_allowed, no_such_resource
from .rbac import RbacAuthorizer, UserInfo, check_escalation
from .resources import ResourceType
from .store import ObjectStore
from .subresources import delete_response, get_scale, list_body, patch_scale, replace_scale
from .watchstream import follow_log, watch_stream

_TRUE = ("true", "True", "1")


@dataclass
class Response:
    code: int
    body: bytes
    content_type: str = "application/json"


class StreamSignal:
    """Ends one stream: when the server stops, or when a test cuts it (`dropped`)."""

    def __init__(self, stopping: threading.Event, registry: set["StreamSignal"],
                 lock: threading.Lock) -> None:
        self.stopping, self.dropped = stopping, threading.Event()
        self._registry, self._lock = registry, lock
        with lock:
            registry.add(self)

    def is_set(self) -> bool:
        return self.stopping.is_set() or self.dropped.is_set()

    def release(self) -> None:
        with self._lock:
            self._registry.discard(self)


@dataclass
class Stream:
    """A chunked streaming response (watch, followed logs)."""

    chunks: Iterator[bytes]
    content_type: str = "application/json"
    signal: StreamSignal | None = None


@dataclass(frozen=True)
class Route:
    rtype: ResourceType
    namespace: str | None
    name: str | None
    sub: str
    watch: bool


def json_response(code: int, doc: Any) -> Response:
    return Response(code, json.dumps(doc).encode())


class ApiHandler:
    """One per server: turns (method, path, query, headers, body) into a Response or Stream."""

    def __init__(self, store: ObjectStore, server_address: str, stopping: threading.Event,
                 authorizer: RbacAuthorizer | None = None) -> None:
        self.store = store
        self.server_address = server_address
        self.stopping = stopping          # set when the server stops
        self.authorizer = authorizer or RbacAuthorizer(store)
        self._streams: set[StreamSignal] = set()
        self._streams_lock = threading.Lock()

    def _watch(self, rt: ResourceType, namespace: str | None, query: dict[str, str]) -> Stream:
        signal = StreamSignal(self.stopping, self._streams, self._streams_lock)
        try:
            return Stream(watch_stream(self.store, rt, namespace, query, signal), signal=signal)
        except BaseException:
            signal.release()
            raise

    def drop_streams(self) -> int:
        """Cut every open watch stream; returns how many were open."""
        with self._streams_lock:
            open_now = list(self._streams)
        for signal in open_now:
            signal.dropped.set()
        self.store.wake_watchers()
        return len(open_now)

    def _guard(self, user: UserInfo | None, obj: Any) -> None:
        """RBAC escalation prevention for Role/ClusterRole/binding writes (rbac.check_escalation)."""
        check_escalation(self.authorizer, user, obj)

    def handle(self, method: str, path: str, query: dict[str, str], content_type: str,
               body: bytes, user: UserInfo | None = None) -> Response | Stream:
        """`user` None: a privileged caller (no escalation checks)."""
        segs = [s for s in path.split("/") if s]
        if segs and segs[0] == "version" and len(segs) == 1:
            return json_response(200, discovery.VERSION_INFO)
        if segs and segs[0] in ("healthz", "livez", "readyz"):
            return Response(200, b"ok", "text/plain")
        if len(segs) >= 2 and segs[0] == "api":
            group, version, rest = "", segs[1], segs[2:]
        elif len(segs) >= 3 and segs[0] == "apis":
            group, version, rest = segs[1], segs[2], segs[3:]
        else:
            return self._discovery_root(segs)
        if not rest:
            doc = discovery.resource_list(self.store.served_types(), group, version)
            if doc is None:
                raise no_such_resource()
            return json_response(200, doc)
        route = self._route(group, version, rest)
        return self._dispatch(method, route, query, content_type, body, user)

    def _discovery_root(self, segs: list[str]) -> Response:
        types = self.store.served_types()
        doc: dict[str, Any] | None = None
        if segs == ["api"]:
            doc = discovery.api_versions(self.server_address)
        elif segs == ["apis"]:
            doc = discovery.api_group_list(types)
        elif len(segs) == 2 and segs[0] == "apis":
            doc = discovery.api_group(types, segs[1])
        if doc is None:
            raise no_such_resource()
        return json_response(200, doc)

    def _route(self, group: str, version: str, rest: list[str]) -> Route:
        watch = rest[0] == "watch"
        rest = rest[1:] if watch else rest
        namespace = None
        if len(rest) >= 3 and rest[0] == "namespaces":
            inner = self.store.resolve_plural(group, version, rest[2])
            if inner is not None and inner.namespaced:
                namespace, rest = rest[1], rest[2:]
        rtype = self.store.resolve_plural(group, version, rest[0]) if rest else None
        if rtype is None or len(rest) > 3 or (namespace is not None and not rtype.namespaced):
            raise no_such_resource()
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else ""
        if sub and sub not in rtype.subresources:
            raise no_such_resource()
        if rtype.namespaced and namespace is None and name is not None:
            raise no_such_resource()
        return Route(rtype, namespace, name, sub, watch)

    # ------------------------------------------------------------ verbs

    def _dispatch(self, method: str, route: Route, query: dict[str, str], content_type: str,
                  body: bytes, user: UserInfo | None) -> Response | Stream:
        dry_run = query.get("dryRun") == "All"
        if method == "GET":
            return self._get(route, query)
        if route.rtype.namespaced and route.namespace is None:
            raise method_not_allowed(method)
        if method == "POST" and route.name is None:
            return self._create(route, _json(body), dry_run, user)
        if method == "PUT" and route.name is not None:
            return self._replace(route, _json(body), dry_run, user)
        if method == "PATCH" and route.name is not None:
            return self._patch(route, query, content_type, body, dry_run, user)
        if method == "DELETE":
            return self._delete(route, query, body, dry_run)
        raise method_not_allowed(method)

    def _get(self, route: Route, query: dict[str, str]) -> Response | Stream:
        rt = route.rtype
        if route.watch and route.name is not None and not route.sub:   # legacy /watch/.../<name>
            query = {**query, "fieldSelector": ",".join(
                f for f in (query.get("fieldSelector"), f"metadata.name={route.name}") if f)}
            return self._watch(rt, route.namespace, query)
        if route.name is None:
            if route.watch or query.get("watch") in _TRUE:
                return self._watch(rt, route.namespace, query)
            items, rv = self.store.list_with_version(
                rt.api_version, rt.kind, route.namespace, query.get("labelSelector"),
                query.get("fieldSelector"))
            return json_response(200, list_body(rt, items, rv, query))
        if route.sub == "log":
            if query.get("follow") in _TRUE:
                return Stream(follow_log(self.store, route.namespace or "", route.name, query,
                                         self.stopping), "text/plain")
            text = self.store.read_pod_log(route.namespace or "", route.name,
                                           query.get("container") or None,
                                           _int(query.get("tailLines")), _int(query.get("limitBytes")))
            return Response(200, text.encode(), "text/plain")
        obj = self.store.get(rt.api_version, rt.kind, route.namespace, route.name)
        if route.sub == "scale":
            return json_response(200, get_scale(rt, obj))
        return json_response(200, obj)

    def _create(self, route: Route, body: Any, dry_run: bool, user: UserInfo | None) -> Response:
        if not isinstance(body, dict):
            raise bad_request("the body of the request must be a JSON object")
        check_type_fields(route.rtype, body)
        if route.namespace:
            body.setdefault("metadata", {}).setdefault("namespace", route.namespace)
        self._guard(user, body)
        return json_response(201, self.store.create(body, route.namespace, dry_run=dry_run))

    def _replace(self, route: Route, body: Any, dry_run: bool, user: UserInfo | None) -> Response:
        rt = route.rtype
        if not isinstance(body, dict):
            raise bad_request("the body of the request must be a JSON object")
        if route.sub == "scale":
            return json_response(200, replace_scale(self.store, rt, route, body, dry_run))
        meta = body.setdefault("metadata", {})
        if meta.get("name") != route.name:
            raise bad_request(f"the name of the object ({meta.get('name')}) does not match the "
                              f"name on the URL ({route.name})")
        if route.namespace and meta.get("namespace") not in (None, "", route.namespace):
            raise bad_request("the namespace of the provided object does not match the namespace "
                              "sent on the request")
        if route.namespace:
            meta["namespace"] = route.namespace
        check_type_fields(rt, body)
        self._guard(user, body)
        return json_response(200, self.store.replace(body, dry_run=dry_run, subresource=route.sub))

    def _patch(self, route: Route, query: dict[str, str], content_type: str, body: bytes,
               dry_run: bool, user: UserInfo | None) -> Response:
        rt = route.rtype
        ptype = patching.CONTENT_TYPES.get(content_type.split(";")[0].strip().lower())
        if ptype is None:
            raise ApiError(415, "UnsupportedMediaType", "the body of the request was in an unknown "
                           "format - accepted media types include: application/json-patch+json, "
                           "application/merge-patch+json, application/apply-patch+yaml, "
                           "application/strategic-merge-patch+json")
        doc = _yaml(body) if ptype == patching.APPLY else _json(body)
        if route.sub == "scale":
            return json_response(200, patch_scale(self.store, rt, route, doc, ptype, dry_run))
        if ptype == patching.APPLY:
            return self._apply(route, query, doc, dry_run, user)
        if user is not None and rt.group == "rbac.authorization.k8s.io":
            self._guard(user, self.store.patch(rt.api_version, rt.kind, route.namespace,
                                               route.name, doc, ptype, dry_run=True))
        return json_response(200, self.store.patch(rt.api_version, rt.kind, route.namespace,
                                                   route.name, doc, ptype, dry_run=dry_run,
                                                   subresource=route.sub))

    def _apply(self, route: Route, query: dict[str, str], doc: Any, dry_run: bool,
               user: UserInfo | None) -> Response:
        """Server-side apply, approximated: create if absent, else a (strategic) merge."""
        rt = route.rtype
        if not query.get("fieldManager"):
            raise ApiError(422, "Invalid", 'PatchOptions.meta.k8s.io "" is invalid: fieldManager: '
                           "Required value: is required for apply patch")
        if not isinstance(doc, dict):
            raise bad_request("the apply patch must be an object")
        try:
            self.store.get(rt.api_version, rt.kind, route.namespace, route.name or "")
        except ApiError as err:
            if err.code != 404:
                raise
            doc.setdefault("metadata", {}).setdefault("name", route.name)
            check_type_fields(rt, doc)
            if route.namespace:
                doc["metadata"].setdefault("namespace", route.namespace)
            self._guard(user, doc)
            return json_response(201, self.store.create(doc, route.namespace, dry_run=dry_run))
        ptype = patching.MERGE if rt.crd is not None else patching.STRATEGIC
        if user is not None and rt.group == "rbac.authorization.k8s.io":
            self._guard(user, self.store.patch(rt.api_version, rt.kind, route.namespace,
                                               route.name or "", doc, ptype, dry_run=True))
        return json_response(200, self.store.patch(rt.api_version, rt.kind, route.namespace,
                                                   route.name or "", doc, ptype, dry_run=dry_run,
                                                   subresource=route.sub))

    def _delete(self, route: Route, query: dict[str, str], body: bytes, dry_run: bool) -> Response:
        rt = route.rtype
        opts = _json(body) if body.strip() else {}
        opts = opts if isinstance(opts, dict) else {}
        dry_run = dry_run or "All" in (opts.get("dryRun") or [])
        policy = opts.get("propagationPolicy") or query.get("propagationPolicy")
        if opts.get("orphanDependents") is True or query.get("orphanDependents") in _TRUE:
            policy = policy or "Orphan"
        if route.name is None:
            items = self.store.delete_collection(
                rt.api_version, rt.kind, route.namespace, query.get("labelSelector"),
                query.get("fieldSelector"), propagation_policy=policy, dry_run=dry_run)
            return json_response(200, list_body(rt, items, self.store.resource_version, {}))
        gone = self.store.delete(rt.api_version, rt.kind, route.namespace, route.name,
                                 propagation_policy=policy, dry_run=dry_run,
                                 preconditions=opts.get("preconditions"))
        return json_response(200, delete_response(rt, gone))


def _json(body: bytes) -> Any:
    try:
        return json.loads(body or b"null")
    except ValueError as exc:
        raise bad_request(f"couldn't get version/kind; json parse error: {exc}") from None


def _yaml(body: bytes) -> Any:
    try:
        return yaml.safe_load(body or b"")
    except yaml.YAMLError as exc:
        raise bad_request(f"error decoding YAML: {exc}") from None


def _int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise bad_request(f"invalid integer value {value!r}") from None
