"""The HTTP client connection's timeouts (client_header_timeout, client_body_timeout,
keepalive_timeout): timestamps that move with every request and read, one lazily re-armed timer
that decides what they mean when it fires. A fake clock, no sockets."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from sheer.config.model import ClientLimits
from sheer.core.http.request_head import Limits
from sheer.io.http.body import RequestBody
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

    def live(self) -> int:
        return len([h for h in self.handles if not h.cancelled])

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


def connection(clock: Clock) -> tuple[Any, list[str]]:
    limits = ClientLimits(client_header_timeout=60.0, client_body_timeout=30.0, keepalive_timeout=75.0)
    site = SimpleNamespace(limits=limits, header_limits=Limits())
    service: Any = SimpleNamespace(site=site, loop=clock, proxy_protocol=False,
                                   slots=SimpleNamespace(reusable={}))
    conn: Any = ClientConnection(service)
    ended: list[str] = []
    conn.close = lambda: ended.append(f"close {clock.now:g}")
    conn._head_timed_out = lambda: ended.append(f"header {clock.now:g}")
    conn._body_timed_out = lambda request: ended.append(f"body {clock.now:g}")
    conn.requests = 1          # not the first request: no "waiting for request" line to log
    return conn, ended


def test_an_idle_connection_closes_at_its_deadline() -> None:
    clock = Clock()
    conn, ended = connection(clock)
    conn.idle_since = 0.0
    conn._arm(60.0)
    clock.run_until(59.9)
    assert ended == []
    clock.run_until(61.0)
    assert ended == ["close 60"]


def test_a_head_is_timed_from_its_first_byte_not_from_each_read() -> None:
    clock = Clock()
    conn, ended = connection(clock)
    clock.run_until(10.0)
    conn.in_head, conn.head_since = True, 10.0
    conn._arm(70.0)
    clock.run_until(69.9)
    assert ended == []
    clock.run_until(80.0)
    assert ended == ["header 70"]


def test_a_body_read_now_and_then_lives_a_stalled_one_is_ended() -> None:
    clock = Clock()
    conn, ended = connection(clock)
    request = SimpleNamespace(body=RequestBody(SimpleNamespace(pause=id, resume=id), 1000, False))
    conn.receiving, conn.current = request, request
    conn.body_since = 0.0
    conn._arm(30.0)
    for t in range(5, 100, 5):             # a few bytes every 5 s: client_body_timeout is between reads
        clock.run_until(float(t))
        conn.body_since = clock.now
    assert ended == []
    clock.run_until(95.0 + 29.9)
    assert ended == []
    clock.run_until(200.0)
    assert ended == ["body 125"]


def test_a_body_paused_by_sheer_is_not_the_clients_fault() -> None:
    clock = Clock()
    conn, ended = connection(clock)
    request = SimpleNamespace(body=RequestBody(SimpleNamespace(pause=id, resume=id), 1000, False))
    conn.receiving, conn.current = request, request
    conn.paused = {"body"}                # the upstream is slow: the client is not read
    conn.body_since = 0.0
    conn._arm(30.0)
    clock.run_until(500.0)
    assert ended == []
    conn.paused = set()
    conn.body_since = 500.0
    clock.run_until(531.0)
    assert ended == ["body 530"]


def test_a_request_being_answered_has_no_client_timer() -> None:
    clock = Clock()
    conn, ended = connection(clock)
    conn.current = SimpleNamespace(body=SimpleNamespace(done=True))
    conn._arm(60.0)
    clock.run_until(1000.0)
    assert ended == [] and clock.live() == 0


def test_many_requests_one_timer() -> None:
    clock = Clock()
    conn, ended = connection(clock)
    conn.idle_since = 0.0
    conn._arm(60.0)
    for t in range(1, 50):               # a request every second, each re-arming the keepalive deadline
        clock.run_until(float(t))
        conn.idle_since, conn.idle_timeout = float(t), 75.0
        conn._arm(t + 75.0)
    assert clock.live() == 1
    clock.run_until(49.0 + 74.9)
    assert ended == []
    clock.run_until(200.0)
    assert ended == ["close 124"]


def test_closing_cancels_the_timers() -> None:
    clock = Clock()
    conn, ended = connection(clock)
    conn._arm(60.0)
    handle = conn.timer
    conn._cancel_timers()
    assert handle.cancelled and conn.timer is None
    clock.run_until(100.0)
    assert ended == []
