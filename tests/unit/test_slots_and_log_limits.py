"""worker_connections as nginx counts them (sheer.io.slots) and the once-a-second error lines with
their count (sheer.io.logs.LogLimiter): a fake clock, no sockets."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sheer.io.logs import LogLimiter
from sheer.io.slots import ConnectionSlots


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.timers: list[tuple[float, Callable[[], None]]] = []

    def time(self) -> float:
        return self.now

    def call_later(self, delay: float, callback: Callable[[], None]) -> None:
        self.timers.append((self.now + delay, callback))

    def run_until(self, t: float) -> None:
        while due := sorted((x for x in self.timers if x[0] <= t), key=lambda x: x[0]):
            self.timers.remove(due[0])
            self.now = due[0][0]
            due[0][1]()
        self.now = t


class Log:
    def __init__(self) -> None:
        self.lines: list[tuple[float, str, str]] = []
        self.clock: Clock | None = None

    def log(self, level: str, message: str) -> None:
        assert self.clock is not None
        self.lines.append((self.clock.now, level, message))


def limiter() -> tuple[LogLimiter, Log, Clock]:
    clock, log = Clock(), Log()
    log.clock = clock
    found: Any = log
    return LogLimiter(found, clock.call_later, clock.time), log, clock


def test_a_flood_is_one_line_a_second_with_its_count() -> None:
    limited, log, clock = limiter()
    for step in range(300):                      # 100 a second for 3 seconds
        clock.run_until(step / 100)
        limited.report("crit", "accept4() failed (24: Too many open files)")
    clock.run_until(10.0)
    assert [(t, message) for t, _, message in log.lines] == [
        (0.0, "accept4() failed (24: Too many open files)"),
        (1.0, "accept4() failed (24: Too many open files) (99 more in the last second)"),
        (2.0, "accept4() failed (24: Too many open files) (100 more in the last second)"),
        (3.0, "accept4() failed (24: Too many open files) (100 more in the last second)"),
    ]


def test_a_rare_event_is_said_each_time() -> None:
    limited, log, clock = limiter()
    for t in (0.0, 2.0, 5.0):
        clock.run_until(t)
        limited.report("error", "sendto() failed")
    clock.run_until(10.0)
    assert [t for t, _, _ in log.lines] == [0.0, 2.0, 5.0]


class Conn:
    def __init__(self, slots: ConnectionSlots, name: str, closed: list[str]) -> None:
        self.slots, self.name, self.closed = slots, name, closed

    def close(self) -> None:
        self.closed.append(self.name)
        self.slots.idle(self, False)
        self.slots.release()


def slots(limit: int) -> tuple[ConnectionSlots, Log, Clock]:
    clock, log = Clock(), Log()
    log.clock = clock
    found: Any = log
    return ConnectionSlots(limit, found, clock.call_later, clock.time), log, clock


def test_idle_connections_make_room_oldest_first() -> None:
    pool, log, _ = slots(64)
    closed: list[str] = []
    assert all(pool.take() for _ in range(64))
    idle = [Conn(pool, f"c{n}", closed) for n in range(64)]
    for conn in idle:
        pool.idle(conn, True)                    # a keepalive or not-yet-requested connection
    pool.idle(idle[0], False)                    # c0 is busy now: not reusable
    for _ in range(10):
        assert pool.take()                       # every new one is served
    assert closed[:3] == ["c1", "c2", "c3"]      # the oldest idle ones went first
    assert len(closed) >= 10 and "c0" not in closed
    assert [line[2] for line in log.lines] == ["64 worker_connections are not enough, reusing connections"]


def test_without_idle_connections_the_limit_holds_and_is_said() -> None:
    pool, log, _ = slots(4)
    assert all(pool.take() for _ in range(4))
    assert not pool.take()
    assert log.lines[-1][1:] == ("alert", "4 worker_connections are not enough")
    woken: list[str] = []
    pool.wait(lambda: woken.append("listener"))
    pool.release()
    assert woken == ["listener"] and pool.take()
