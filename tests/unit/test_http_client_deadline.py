"""The HTTP client connection's header/keepalive timeout: one deadline, one lazily re-armed timer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sheer.io.http.client import ClientConnection


class Handle:
    def __init__(self, at: float, callback: Callable[[], None]) -> None:
        self.at, self.callback, self.cancelled = at, callback, False

    def when(self) -> float:
        return self.at

    def cancel(self) -> None:
        self.cancelled = True


class Clock:
    """A loop that only keeps time and timers; run_until() fires what is due, in order."""

    def __init__(self) -> None:
        self.now = 0.0
        self.handles: list[Handle] = []

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[[], None]) -> Handle:
        handle = Handle(when, callback)
        self.handles.append(handle)
        return handle

    def run_until(self, t: float) -> None:
        while True:
            due = sorted((h for h in self.handles if not h.cancelled and h.at <= t), key=lambda h: h.at)
            if not due:
                break
            handle = due[0]
            self.handles.remove(handle)
            self.now = handle.at
            handle.callback()
        self.now = t


def connection(clock: Clock) -> tuple[ClientConnection, list[float]]:
    conn: Any = ClientConnection.__new__(ClientConnection)
    conn.loop = clock
    conn.timer, conn.deadline, conn.send_timer = None, None, None
    closed: list[float] = []
    conn.close = lambda: closed.append(clock.now)
    return conn, closed


def test_closes_at_the_deadline() -> None:
    clock = Clock()
    conn, closed = connection(clock)
    conn._arm(60.0)
    clock.run_until(59.9)
    assert closed == []
    clock.run_until(61.0)
    assert closed == [60.0]


def test_a_cleared_deadline_never_closes_and_its_timer_goes_away() -> None:
    clock = Clock()
    conn, closed = connection(clock)
    conn._arm(60.0)
    conn._clear_deadline()
    clock.run_until(500.0)
    assert closed == []
    assert conn.timer is None


def test_re_armed_for_each_request_only_the_last_deadline_counts() -> None:
    clock = Clock()
    conn, closed = connection(clock)
    conn._arm(60.0)                      # header timeout of the first request
    for t in range(1, 50):               # a request every second, each clearing and re-arming
        clock.run_until(float(t))
        conn._clear_deadline()
        conn._arm(75.0)                  # keepalive after the response
    assert len([h for h in clock.handles if not h.cancelled]) == 1   # one timer, not one per request
    clock.run_until(49.0 + 74.9)
    assert closed == []
    clock.run_until(200.0)
    assert closed == [49.0 + 75.0]


def test_an_earlier_deadline_re_arms_the_timer() -> None:
    clock = Clock()
    conn, closed = connection(clock)
    conn._arm(75.0)
    conn._arm(10.0)
    clock.run_until(11.0)
    assert closed == [10.0]


def test_closing_cancels_the_timer() -> None:
    clock = Clock()
    conn, closed = connection(clock)
    conn._arm(60.0)
    handle = conn.timer
    conn._cancel_timers()
    assert handle.cancelled and conn.timer is None
    clock.run_until(100.0)
    assert closed == []
