"""wait_until: the one poll loop - returns the value, sleeps within the deadline, times out saying why."""

from __future__ import annotations

import pytest

from antdb_k8s.services.wait import Poll, WaitTimeout, wait_for, wait_until


class Clock:
    def __init__(self):
        self.now, self.sleeps = 100.0, []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_returns_the_value_of_the_first_done_look_and_sleeps_the_interval():
    clock, looks = Clock(), iter([Poll(False, state="1/2"), Poll(False, state="1/2"), Poll(True, "pod-2")])
    value = wait_until(lambda: next(looks), 200.0, 5.0, lambda p, w: "never", clock=clock, sleep=clock.sleep)
    assert value == "pod-2" and clock.sleeps == [5.0, 5.0]


def test_last_sleep_is_cut_to_the_deadline_and_the_timeout_names_the_last_state():
    clock = Clock()
    with pytest.raises(WaitTimeout, match=r"^stuck at 0/1 after 12s$") as raised:
        wait_until(lambda: Poll(False, state="0/1"), 112.0, 5.0, lambda p, w: f"stuck at {p.state} after {w:.0f}s",
                   clock=clock, sleep=clock.sleep)
    assert clock.sleeps == [5.0, 5.0, 2.0]
    assert raised.value.last.state == "0/1" and isinstance(raised.value, TimeoutError)


def test_a_failing_look_is_not_swallowed():
    def look():
        raise RuntimeError("clone failed")

    with pytest.raises(RuntimeError, match="clone failed"):
        wait_until(look, 1e12, 1.0, lambda p, w: "")


def test_wait_for_a_predicate_returns_its_truthy_result_or_names_what():
    results = iter([None, [], {"ready": True}])
    assert wait_for(lambda: next(results), 5, 0.001, "the operator") == {"ready": True}
    with pytest.raises(WaitTimeout, match="timed out after 0s waiting for the operator"):
        wait_for(lambda: False, 0.01, 0.001, "the operator")
