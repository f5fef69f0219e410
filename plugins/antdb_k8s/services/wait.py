"""The package's one poll loop: wait until a condition holds, bounded by a deadline.

Every wait (operator install, pods Ready, a replacement pod healthy, pods gone, a clone
finished) goes through `wait_until`, so each one has a deadline, logs progress only when
it changes, and times out with a message saying what it was still waiting for.
"""

from __future__ import annotations

import logging
import time
from typing import Callable, Generic, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


class WaitTimeout(TimeoutError):
    """The condition did not hold by the deadline; the message says what was last seen."""

    def __init__(self, message: str, last: object = None):
        super().__init__(message)
        self.last = last


class Poll(Generic[T]):
    """One look: `done`, the value to return when done, and a line describing the state."""

    __slots__ = ("done", "value", "state")

    def __init__(self, done: bool, value: T | None = None, state: str = ""):
        self.done, self.value, self.state = done, value, state


def wait_until(look: Callable[[], Poll[T]], deadline: float, interval: float,
               describe: Callable[[Poll[T] | None, float], str], *, what: str = "condition",
               clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> T | None:
    """Call `look` until it reports done or `clock()` passes `deadline` (same clock); return its value.

    `look` is called at least once. A change of its `state` line is logged at info.
    On timeout, `describe(last_poll, waited)` gives the message of the WaitTimeout raised.
    """
    started, last_state, poll = clock(), None, None
    while True:
        poll = look()
        if poll.done:
            return poll.value
        now = clock()
        if now >= deadline:
            raise WaitTimeout(describe(poll, now - started), poll)
        if poll.state and poll.state != last_state:
            log.info("waiting for %s: %s", what, poll.state)
            last_state = poll.state
        sleep(max(min(interval, deadline - now), 0.01))


def wait_for(predicate: Callable[[], T], timeout: float, interval: float, what: str) -> T:
    """`wait_until` for a plain predicate: its first truthy result, or WaitTimeout naming `what`."""
    return wait_until(lambda: Poll(bool(value := predicate()), value), time.monotonic() + timeout, interval,
                      lambda poll, waited: f"timed out after {timeout:.0f}s waiting for {what}", what=what)
