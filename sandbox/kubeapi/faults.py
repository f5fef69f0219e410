"""Faults the test API injects on request, so tests can show what the package survives.

    fault = api.faults.fail(503, times=3, methods={"POST"}, path=r"/pgclusters$")
    api.faults.throttle(times=2, retry_after=1)          # 429 + Retry-After
    api.faults.conflict(path=r"/configmaps/")             # 409 on the next PUT/PATCH
    api.faults.reset(times=1)                             # connection closed, no answer
    api.faults.restart(down_for=2.0, path=r"/pods")       # server restarts (objects kept)
    api.faults.drop_watches()                             # open watch streams cut now
    api.faults.before(kill_gc, path=r"/services/gc$")     # run kill_gc(), then serve as usual
    assert fault.hits                                     # the requests it answered

A fault matches requests by method, path regex and user (name prefix), lets `skip`
matching requests through first, then answers the next `times` of them itself. Faults are
applied after authentication (a 401 still wins) and before authorization, in the order
they were added. Bodies are the real API's Status documents for the code.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from .errors import ApiError, conflict
from .rbac import UserInfo, request_attributes

log = logging.getLogger(__name__)

RESET = 0                   # pseudo status: drop the connection without an answer
RESTART = -1                # pseudo status: drop it, and restart the server meanwhile
ACTION = -2                 # pseudo status: run an action (something else fails), then serve normally

_STATUS = {
    429: ("TooManyRequests", "Too many requests, please try again later."),
    500: ("InternalError", "Internal error occurred: injected fault"),
    502: ("", "Bad Gateway"),
    503: ("ServiceUnavailable", "the server is currently unable to handle the request"),
    504: ("Timeout", "Timeout: request did not complete within the allowed duration"),
    400: ("BadRequest", "injected bad request"),
    401: ("Unauthorized", "Unauthorized"),
    403: ("Forbidden", "forbidden: injected"),
    404: ("NotFound", "the server could not find the requested resource"),
    422: ("Invalid", "injected invalid"),
}


@dataclass
class Fault:
    code: int
    times: int
    methods: frozenset[str] | None = None
    path: re.Pattern | None = None
    user: str | None = None
    skip: int = 0
    retry_after: int | None = None
    down_for: float = 0.0
    action: Callable[[], None] | None = None
    hits: list[str] = field(default_factory=list)        # "METHOD path" of each answered request
    errors: list[str] = field(default_factory=list)      # what an action raised (the request is served)

    def matches(self, method: str, path: str, user: str) -> bool:
        return ((self.methods is None or method in self.methods)
                and (self.path is None or self.path.search(path) is not None)
                and (self.user is None or user.startswith(self.user)))

    @property
    def spent(self) -> bool:
        return len(self.hits) >= self.times


@dataclass
class Injection:
    """What the server must do instead of serving a request."""

    fault: Fault
    code: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"


class FaultInjector:
    def __init__(self, server: Any) -> None:
        self._server = server
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    # ---------------------------------------------------------------- control API

    def add(self, code: int, times: int = 1, *, methods: Iterable[str] | None = None,
            path: str | None = None, user: str | None = None, skip: int = 0,
            retry_after: int | None = None, down_for: float = 0.0,
            action: Callable[[], None] | None = None) -> Fault:
        fault = Fault(code, times, frozenset(m.upper() for m in methods) if methods else None,
                      re.compile(path) if path else None, user, skip, retry_after, down_for, action)
        with self._lock:
            self._faults.append(fault)
        return fault

    def fail(self, code: int, times: int = 1, **match: Any) -> Fault:
        """Answer `times` matching requests with `code` (500, 502, 503, 504, 400, 403...)."""
        return self.add(code, times, **match)

    def throttle(self, times: int = 1, retry_after: int = 1, **match: Any) -> Fault:
        """429 TooManyRequests with `Retry-After: <retry_after>` (what API priority and fairness sends)."""
        return self.add(429, times, retry_after=retry_after, **match)

    def conflict(self, times: int = 1, **match: Any) -> Fault:
        """409 Conflict on PUT/PATCH, as for a stale resourceVersion."""
        match.setdefault("methods", ("PUT", "PATCH"))
        return self.add(409, times, **match)

    def reset(self, times: int = 1, **match: Any) -> Fault:
        """Close the connection without an answer (the client sees a reset/aborted read)."""
        return self.add(RESET, times, **match)

    def restart(self, down_for: float = 1.0, **match: Any) -> Fault:
        """On the next matching request: drop it, stop the server, keep it down `down_for`
        seconds, start it again on the same port with the same objects."""
        return self.add(RESTART, 1, down_for=down_for, **match)

    def before(self, action: Callable[[], None], times: int = 1, **match: Any) -> Fault:
        """Run `action()` when a matching request arrives, then serve that request as usual: a
        fault elsewhere in the cluster (a pod killed, a server stopped) placed at an exact step
        of a client's work, e.g. just before it reads what the killed thing published."""
        return self.add(ACTION, times, action=action, **match)

    def drop_watches(self) -> int:
        """Cut every open watch stream now, without the final chunk; returns how many."""
        return self._server.drop_watches()

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    # ---------------------------------------------------------------- server side

    def take(self, method: str, path: str, user: UserInfo) -> Injection | None:
        """The injection for this request, if a fault claims it (called once per request).
        Matching actions run first, outside the lock (an action may call the API itself)."""
        actions, claimed = [], None
        with self._lock:
            for fault in self._faults:
                if fault.spent or not fault.matches(method, path, user.name):
                    continue
                if fault.skip > 0:
                    fault.skip -= 1
                    continue
                fault.hits.append(f"{method} {path}")
                if fault.code != ACTION:
                    claimed = fault
                    break
                actions.append(fault)
        for acting in actions:
            _run_action(acting)
        return None if claimed is None else _injection(claimed, method, path, user)


def _run_action(fault: Fault) -> None:
    try:
        fault.action()
    except Exception as exc:  # noqa: BLE001 - the test reads fault.errors; the request is still served
        log.exception("kubeapi: fault action %r failed", fault.action)
        fault.errors.append(f"{type(exc).__name__}: {exc}")


def _injection(fault: Fault, method: str, path: str, user: UserInfo) -> Injection:
    if fault.code in (RESET, RESTART):
        return Injection(fault, fault.code)
    if fault.code == 409:
        attrs = request_attributes(user, method, path, {})
        err = conflict(attrs.resource, attrs.api_group, attrs.name)
        return Injection(fault, 409, json.dumps(err.to_status()).encode())
    if fault.code == 502:
        return Injection(fault, 502, b"<html><body><h1>502 Bad Gateway</h1></body></html>",
                         content_type="text/html")
    reason, message = _STATUS.get(fault.code, ("", "injected fault"))
    err = ApiError(fault.code, reason, message)
    status = err.to_status()
    headers = {}
    if fault.retry_after is not None:
        status["details"] = {"retryAfterSeconds": fault.retry_after}
        headers["Retry-After"] = str(fault.retry_after)
    return Injection(fault, fault.code, json.dumps(status).encode(), headers)
