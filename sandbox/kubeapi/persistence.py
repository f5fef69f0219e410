"""Keeping a test API server's objects across restarts, as etcd keeps a real cluster's.

The sandbox that `make run` starts when no cluster is configured must find its cluster again
after a restart: every object (with its uid, resourceVersion and ClusterIP), the pod logs, and
the resourceVersion counter. What a restart loses is what a real apiserver restart loses: the
watch history. Clients watching from an older resourceVersion get `410 Gone` and re-list,
exactly as client-go informers do after an etcd compaction.

The file is JSON, written atomically (temporary file, then rename), so a crash mid-write
leaves the previous state.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from .resources import types_from_crd

STATE_VERSION = 1


def export_state(store) -> dict[str, Any]:
    """Everything the store must remember, as plain JSON data (a consistent copy)."""
    with store._lock:
        objects = [{"group": group, "plural": plural, "object": obj}
                   for (group, plural), bucket in store._objects.items() for obj in bucket.values()]
        logs = [{"namespace": ns, "name": name, "containers": containers}
                for (ns, name), containers in store._logs.items()]
        return {"version": STATE_VERSION, "resourceVersion": store._rv, "objects": objects, "logs": logs}


def import_state(store, state: dict[str, Any]) -> None:
    """Replace the store's contents with `state` from `export_state` (made by this version).

    CRDs are registered first so the custom resources that follow have their types; Service
    ClusterIPs are reserved so the allocator never hands one out twice.
    """
    if state.get("version") != STATE_VERSION:
        raise ValueError(f"sandbox state version {state.get('version')!r} is not {STATE_VERSION}: "
                         "reset the sandbox (make sandbox-reset)")
    with store._lock:
        store._objects.clear()
        store._by_uid.clear()
        ordered = sorted(state["objects"], key=lambda e: e["plural"] != "customresourcedefinitions")
        for entry in ordered:
            obj, key = entry["object"], (entry["group"], entry["plural"])
            meta = obj["metadata"]
            store._objects.setdefault(key, {})[(meta.get("namespace", ""), meta["name"])] = obj
            store._by_uid[meta["uid"]] = (key, meta.get("namespace", ""), meta["name"])
            if entry["plural"] == "customresourcedefinitions":
                store._types.set_custom(f"crd:{meta['name']}", types_from_crd(obj))
            ip = (obj.get("spec") or {}).get("clusterIP") if entry["plural"] == "services" else None
            if ip and ip != "None":
                store._ips.take(ip)
        store._logs = {(e["namespace"], e["name"]): dict(e["containers"]) for e in state.get("logs", [])}
        store._rv = int(state["resourceVersion"])
        store._history.clear()
        store._history_floor = store._rv          # older watches get 410 Gone and re-list


def save(store, path: Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".state-", suffix=".json")
    with os.fdopen(fd, "w") as out:
        json.dump(export_state(store), out)
    os.replace(tmp, path)


def load(store, path: Path) -> bool:
    """Load `path` into the store if it exists; returns whether it did."""
    path = Path(path)
    if not path.is_file():
        return False
    import_state(store, json.loads(path.read_text()))
    return True
