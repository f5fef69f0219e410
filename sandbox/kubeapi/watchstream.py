"""Watch and followed-log streams, as generators of newline-delimited chunks.

Watch semantics follow the real API where clients depend on them: an unset/"0"
resourceVersion starts with synthetic ADDED events for what exists; a given one replays
later history (410 Expired as an ERROR event when too old); an object that stops matching
the selectors arrives as DELETED, one that starts matching as ADDED. Every stream ends at
`timeoutSeconds` (default 1800 s) or when the server stops.
"""

from __future__ import annotations

import json
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Iterator

from .errors import ApiError
from .resources import ResourceType
from .selectors import make_filter

if TYPE_CHECKING:
    from .store import ObjectStore, WatchEvent

DEFAULT_WATCH_TIMEOUT = 1800.0
FOLLOW_LOG_LIMIT = 600.0
_POLL = 0.5


def _line(etype: str, obj: dict[str, Any]) -> bytes:
    return (json.dumps({"type": etype, "object": obj}) + "\n").encode()


def _translate(ev: WatchEvent, keep: Callable[[dict], bool]) -> str | None:
    """The event type this watcher sees, given its selectors (None: not shown)."""
    now_ok = keep(ev.obj)
    was_ok = ev.old is not None and keep(ev.old)
    if ev.type == "ADDED":
        return "ADDED" if now_ok else None
    if ev.type == "DELETED":
        return "DELETED" if was_ok else None
    if now_ok:
        return "MODIFIED" if was_ok else "ADDED"
    return "DELETED" if was_ok else None


def watch_stream(store: ObjectStore, rtype: ResourceType, namespace: str | None,
                 query: dict[str, str], stopping: threading.Event) -> Iterator[bytes]:
    """Selectors are parsed (and 400s raised) before the first chunk is produced."""
    keep = make_filter(query.get("labelSelector"), query.get("fieldSelector"), rtype.key)
    timeout = float(query.get("timeoutSeconds") or DEFAULT_WATCH_TIMEOUT)
    try:
        initial, rv = store.watch_start(rtype, namespace, keep, query.get("resourceVersion"))
    except ApiError as err:
        if err.code != 410:
            raise
        return iter([_line("ERROR", err.to_status())])
    return _events(store, rtype, namespace, keep, initial, rv, time.monotonic() + timeout, stopping)


def _events(store: ObjectStore, rtype: ResourceType, namespace: str | None,
            keep: Callable[[dict], bool], initial: list[dict], rv: int, deadline: float,
            stopping: threading.Event) -> Iterator[bytes]:
    for obj in initial:
        yield _line("ADDED", obj)
    while not stopping.is_set():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        try:
            events = store.watch_events(rv, min(remaining, _POLL))
        except ApiError as err:
            yield _line("ERROR", err.to_status())
            return
        for ev in events:
            rv = ev.rv
            if ev.key != rtype.key or (rtype.namespaced and namespace is not None
                                       and ev.namespace != namespace):
                continue
            shown = _translate(ev, keep)
            if shown:
                yield _line(shown, store.present(rtype, ev.obj))


def follow_log(store: ObjectStore, namespace: str, name: str, query: dict[str, str],
               stopping: threading.Event) -> Iterator[bytes]:
    """`?follow=true`: stream the log as it grows until the container ends or the pod goes."""
    container = query.get("container") or None            # the hook sends container=""
    text = store.read_pod_log(namespace, name, container)      # raises 400/404 up front
    return _follow(store, namespace, name, container, text, stopping)


def _follow(store: ObjectStore, namespace: str, name: str, container: str | None, text: str,
            stopping: threading.Event) -> Iterator[bytes]:
    sent = 0
    deadline = time.monotonic() + FOLLOW_LOG_LIMIT
    finished = False
    while True:
        if len(text) > sent:
            yield text[sent:].encode()
            sent = len(text)
        if finished:
            return
        time.sleep(0.1)
        # Decide "finished" before the read, so lines written just before the end are sent.
        finished = (stopping.is_set() or time.monotonic() > deadline
                    or _finished(store, namespace, name, container))
        try:
            text = store.read_pod_log(namespace, name, container)
        except ApiError:
            return


def _finished(store: ObjectStore, namespace: str, name: str, container: str | None) -> bool:
    try:
        pod = store.get("v1", "Pod", namespace, name)
    except ApiError:
        return True
    status = pod.get("status") or {}
    if status.get("phase") in ("Succeeded", "Failed"):
        return True
    names = [c.get("name") for c in (pod.get("spec") or {}).get("containers") or []]
    wanted = container or (names[0] if names else None)
    return any(s.get("name") == wanted and "terminated" in (s.get("state") or {})
               for s in status.get("containerStatuses") or [])
