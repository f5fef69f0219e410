"""The one retry policy for Kubernetes API calls: which failures heal by waiting, and how long to wait.

Why one policy, here: the provider's `generic_api_retry` counts 409 as transient and urllib3
retries some connection errors on its own, so a call's fate depended on which layer saw it.
`AntDBKubeHook` turns urllib3's retries off and asks only this module.

- Transient (retried with bounded exponential backoff): 429 (waiting what `Retry-After`
  says, capped), 500, 502, 503, 504, and a connection refused, reset or cut mid-answer.
- Never retried (they cannot heal by waiting): 400, 401, 403, 404, 405, 410, 415, 422, and
  409 - a conflict is decided by the caller, which re-reads the object (see hooks/kube.py).
- A request whose effect is unknown (the connection broke after it was sent) is retried
  only when repeating it is safe: reads, deletes, merge patches and creates with a fixed
  name (a repeat answers 409 AlreadyExists, which the caller resolves by re-reading); never
  a `generateName` create, which would make a second object.
"""

from __future__ import annotations

import http.client
import random
import socket
from dataclasses import dataclass, field
from typing import Callable

TRANSIENT_STATUS = frozenset({429, 500, 502, 503, 504})
REFUSAL_STATUS = frozenset({400, 401, 403, 405, 410, 415, 422})


def _urllib3_errors() -> tuple[tuple[type[BaseException], ...], tuple[type[BaseException], ...]]:
    """(nothing-was-sent errors, effect-unknown errors) as urllib3 raises them."""
    from urllib3 import exceptions as u3

    return ((u3.NewConnectionError, ConnectionRefusedError, socket.gaierror),
            (u3.ProtocolError, u3.ReadTimeoutError, u3.MaxRetryError, ConnectionResetError,
             ConnectionAbortedError, BrokenPipeError, http.client.RemoteDisconnected,
             http.client.IncompleteRead))


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded exponential backoff with jitter: attempt n waits about base * 2**(n-1), at most
    `max_delay`; `Retry-After` is honoured up to `max_retry_after`; at most `attempts` tries
    and `budget` seconds of waiting in all."""

    attempts: int = 6
    base_delay: float = 0.25
    max_delay: float = 4.0
    max_retry_after: float = 30.0
    budget: float = 45.0
    jitter: Callable[[], float] = field(default=random.random, compare=False, repr=False)

    def backoff(self, attempt: int) -> float:
        """Seconds before retry number `attempt` (1-based), jittered into [50%, 100%]."""
        ceiling = min(self.max_delay, self.base_delay * (2 ** (attempt - 1)))
        return ceiling * (0.5 + 0.5 * self.jitter())

    def transient_status(self, status: int) -> bool:
        return status in TRANSIENT_STATUS

    def delay_for(self, attempt: int, status: int | None, retry_after: str | None) -> float:
        """The wait before retry `attempt`: Retry-After for a 429 that sends it, else backoff."""
        if status == 429 and retry_after:
            seconds = parse_retry_after(retry_after)
            if seconds is not None:
                return min(seconds, self.max_retry_after)
        return self.backoff(attempt)

    def connection_error_is_transient(self, exc: BaseException, repeatable: bool) -> bool:
        """A connection failure: always transient if nothing was sent, else only when the
        request may be repeated safely."""
        unsent, unknown = _urllib3_errors()
        reason = getattr(exc, "reason", None)            # MaxRetryError wraps the real cause
        if isinstance(exc, unsent) or isinstance(reason, unsent):
            return True
        return repeatable and isinstance(exc, unknown)


def parse_retry_after(value: str) -> float | None:
    """Seconds from a Retry-After header (the API server sends whole seconds)."""
    try:
        seconds = float(value.strip())
    except (AttributeError, ValueError):
        return None
    return seconds if seconds >= 0 else None


DEFAULT_POLICY = RetryPolicy()
