"""Plumbing shared by the simulated controllers: type names, a per-pass snapshot, a write
counter, Events, names and conditions.

Why a snapshot: every component reconciles from one consistent read of the store per pass
(level-triggered), so a pass never acts on a half-updated view and never calls back into
the store from inside a listener. Why a write counter: `ClusterSimulator.wait_idle` needs to
know whether a pass changed anything; Events are deliberately not counted (they are output,
never input, and the kubelet refreshes them while it waits).
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from sandbox.kubeapi.store import ApiError, ObjectStore

log = logging.getLogger("sandbox.sim")

GVK = tuple[str, str]
NAMESPACE: GVK = ("v1", "Namespace")
NODE: GVK = ("v1", "Node")
POD: GVK = ("v1", "Pod")
SERVICE: GVK = ("v1", "Service")
ENDPOINTS: GVK = ("v1", "Endpoints")
CONFIGMAP: GVK = ("v1", "ConfigMap")
SECRET: GVK = ("v1", "Secret")
PVC: GVK = ("v1", "PersistentVolumeClaim")
EVENT: GVK = ("v1", "Event")
DEPLOYMENT: GVK = ("apps/v1", "Deployment")
DAEMONSET: GVK = ("apps/v1", "DaemonSet")
REPLICASET: GVK = ("apps/v1", "ReplicaSet")
SERVICEACCOUNT: GVK = ("v1", "ServiceAccount")
JOB: GVK = ("batch/v1", "Job")
PGCLUSTER: GVK = ("crunchydata.com/v1", "Pgcluster")
CRD: GVK = ("apiextensions.k8s.io/v1", "CustomResourceDefinition")
PGCLUSTER_CRD_NAME = "pgclusters.crunchydata.com"
PGTASK: GVK = ("crunchydata.com/v1", "Pgtask")
PGTASK_CRD_NAME = "pgtasks.crunchydata.com"

SNAPSHOT_KINDS: tuple[GVK, ...] = (NAMESPACE, NODE, POD, SERVICE, ENDPOINTS, CONFIGMAP, SECRET,
                                   PVC, DEPLOYMENT, REPLICASET, DAEMONSET, JOB, SERVICEACCOUNT)
NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"   # what the real controllers use in names


def now_rfc3339() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def rand_suffix(length: int = 5) -> str:
    return "".join(secrets.choice(NAME_ALPHABET) for _ in range(length))


def stable_hash(*parts: Any, length: int = 10) -> str:
    """A name-safe hash like `pod-template-hash`: same input, same string."""
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).digest()
    return "".join(NAME_ALPHABET[b % len(NAME_ALPHABET)] for b in digest[:length])


def name_of(obj: dict) -> str:
    return obj["metadata"]["name"]


def ns_of(obj: dict) -> str:
    return obj["metadata"].get("namespace", "")


def uid_of(obj: dict) -> str:
    return obj["metadata"].get("uid", "")


def labels_of(obj: dict) -> dict[str, str]:
    return obj["metadata"].get("labels") or {}


def owner_ref(owner: dict) -> dict:
    return {"apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": name_of(owner),
            "uid": uid_of(owner), "controller": True, "blockOwnerDeletion": True}


def find_condition(conditions: list[dict] | None, ctype: str) -> dict | None:
    return next((c for c in conditions or [] if c.get("type") == ctype), None)


def condition_true(obj: dict, ctype: str) -> bool:
    cond = find_condition((obj.get("status") or {}).get("conditions"), ctype)
    return bool(cond and cond.get("status") == "True")


def pod_ready(pod: dict) -> bool:
    return condition_true(pod, "Ready")


def make_condition(previous: list[dict] | None, ctype: str, status: bool, reason: str = "",
                   message: str = "", times: tuple[str, ...] = ("lastTransitionTime",)) -> dict:
    """A condition that keeps its timestamps while its status is unchanged (no write churn)."""
    value = "True" if status else "False"
    old = find_condition(previous, ctype)
    stamp = now_rfc3339()
    cond: dict[str, Any] = {"type": ctype, "status": value}
    for key in times:
        cond[key] = old[key] if old and old.get("status") == value and old.get(key) else stamp
    if reason:
        cond["reason"] = reason
    if message:
        cond["message"] = message
    return cond


def selector_matches(selector: dict[str, str] | None, labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


@dataclass
class Snapshot:
    """Every object the simulator reads, listed once at the start of a pass."""

    items: dict[GVK, list[dict]]
    crd_names: frozenset[str] = frozenset()
    _index: dict[GVK, dict[tuple[str, str], dict]] = field(default_factory=dict, repr=False)

    @classmethod
    def take(cls, store: ObjectStore) -> "Snapshot":
        items = {gvk: store.list(*gvk) for gvk in SNAPSHOT_KINDS}
        crds = frozenset(name_of(c) for c in store.list(*CRD))
        for gvk, crd_name in ((PGCLUSTER, PGCLUSTER_CRD_NAME), (PGTASK, PGTASK_CRD_NAME)):
            try:
                items[gvk] = store.list(*gvk) if crd_name in crds else []
            except ApiError as exc:      # the CRD vanished between the two reads
                if exc.code != 404:
                    raise
                items[gvk] = []
        return cls(items, crds)

    def all(self, gvk: GVK, namespace: str | None = None) -> list[dict]:
        objs = self.items.get(gvk, [])
        return objs if namespace is None else [o for o in objs if ns_of(o) == namespace]

    def find(self, gvk: GVK, namespace: str, name: str) -> dict | None:
        if gvk not in self._index:
            self._index[gvk] = {(ns_of(o), name_of(o)): o for o in self.items.get(gvk, [])}
        return self._index[gvk].get((namespace, name))


class Api:
    """The simulator's writes: tolerant where a race is normal, counted for `wait_idle`."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store
        self._writes = 0
        self._lock = threading.Lock()

    def _count(self) -> None:
        with self._lock:
            self._writes += 1

    def take_writes(self) -> int:
        with self._lock:
            count, self._writes = self._writes, 0
            return count

    def create(self, obj: dict) -> dict | None:
        """None if it already exists (409) or its namespace is gone (404)."""
        try:
            created = self.store.create(obj)
        except ApiError as exc:
            if exc.code in (404, 409):
                log.debug("create %s %s skipped: %s", obj.get("kind"), obj["metadata"].get("name"),
                          exc.message)
                return None
            raise
        self._count()
        return created

    def _write_unless_gone(self, write):
        """Run one store write; (True, result) if done, (False, None) if the object is gone (404)."""
        try:
            result = write()
        except ApiError as exc:
            if exc.code != 404:
                raise
            return False, None
        self._count()
        return True, result

    def set_status(self, gvk: GVK, obj: dict, status: dict) -> bool:
        """Write `status` unless it is already the object's status (no-op writes are skipped)."""
        if obj.get("status") == status:
            return False
        return self._write_unless_gone(
            lambda: self.store.update_status(*gvk, ns_of(obj) or None, name_of(obj), status))[0]

    def patch(self, gvk: GVK, namespace: str | None, name: str, patch: dict) -> dict | None:
        return self._write_unless_gone(lambda: self.store.patch(*gvk, namespace, name, patch))[1]

    def delete(self, gvk: GVK, namespace: str | None, name: str) -> bool:
        return self._write_unless_gone(lambda: self.store.delete(*gvk, namespace, name))[0]


class EventRecorder:
    """core/v1 Events, deduplicated like the real recorder (same object+reason+message bumps
    `count` at most every `refresh` seconds), so a condition re-checked every resync does not
    flood the API."""

    def __init__(self, store: ObjectStore, refresh: float = 5.0) -> None:
        self.store = store
        self.refresh = refresh
        self._seen: dict[tuple[str, str, str], tuple[str, str, int, float]] = {}
        self._lock = threading.Lock()

    def emit(self, obj: dict, reason: str, message: str, *, warning: bool = False,
             component: str = "kubelet", host: str = "") -> None:
        key = (uid_of(obj), reason, message)
        with self._lock:
            seen = self._seen.get(key)
            if seen and time.monotonic() - seen[3] < self.refresh:
                return
            self._seen[key] = (seen[0], seen[1], seen[2] + 1, time.monotonic()) if seen else \
                ("", "", 1, time.monotonic())
        try:
            self._write(obj, key, reason, message, warning, component, host)
        except ApiError as exc:          # namespace gone, or the Event was deleted: not fatal
            log.debug("event %s for %s not recorded: %s", reason, name_of(obj), exc.message)

    def _write(self, obj: dict, key: tuple[str, str, str], reason: str, message: str,
               warning: bool, component: str, host: str) -> None:
        namespace, event_name, count, _ = self._seen[key]
        stamp = now_rfc3339()
        if event_name:
            try:
                self.store.patch(*EVENT, namespace, event_name, {"count": count, "lastTimestamp": stamp})
                return
            except ApiError as exc:
                if exc.code != 404:
                    raise
        namespace = ns_of(obj) or "default"
        event = self.store.create(self._event(obj, namespace, reason, message, warning, component,
                                              host, stamp))
        with self._lock:
            self._seen[key] = (namespace, name_of(event), 1, time.monotonic())

    @staticmethod
    def _event(obj: dict, namespace: str, reason: str, message: str, warning: bool,
               component: str, host: str, stamp: str) -> dict:
        involved = {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "name": name_of(obj),
                    "uid": uid_of(obj), "resourceVersion": obj["metadata"].get("resourceVersion", "")}
        if ns_of(obj):
            involved["namespace"] = ns_of(obj)
        source = {"component": component, **({"host": host} if host else {})}
        return {"apiVersion": "v1", "kind": "Event",
                "metadata": {"name": f"{name_of(obj)[:230]}.{secrets.token_hex(8)}", "namespace": namespace},
                "involvedObject": involved, "reason": reason, "message": message,
                "type": "Warning" if warning else "Normal", "count": 1,
                "firstTimestamp": stamp, "lastTimestamp": stamp, "source": source,
                "reportingComponent": component, "reportingInstance": host}

    def forget(self, uids: set[str]) -> None:
        """Drop dedup state of objects that no longer exist (bounded memory)."""
        with self._lock:
            for key in [k for k in self._seen if k[0] in uids]:
                del self._seen[key]


def deep(obj: Any) -> Any:
    return copy.deepcopy(obj)
