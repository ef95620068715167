"""limit_rate's throttle (sheer.io.http.throttle) on a fake clock: what leaves when, and that its source
is held while it holds bytes back."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sheer.core.rate import RateLimit
from sheer.io.http.throttle import Throttle, accel_limit_rate


class FakeLoop:
    def __init__(self, now: float) -> None:
        self.now = now
        self.timers: list[tuple[float, Callable[[], None]]] = []

    def time(self) -> float:
        return self.now

    def call_later(self, delay: float, callback: Callable[[], None]) -> Any:
        entry = (self.now + delay, callback)
        self.timers.append(entry)
        loop = self

        class Handle:
            def cancel(self) -> None:
                if entry in loop.timers:
                    loop.timers.remove(entry)
        return Handle()

    def run_next(self) -> None:
        self.timers.sort(key=lambda entry: entry[0])
        when, callback = self.timers.pop(0)
        self.now = max(self.now, when)
        callback()


class FakeTransport:
    def __init__(self, loop: FakeLoop) -> None:
        self.loop = loop
        self.sent: list[tuple[float, int]] = []

    def writelines(self, pieces: list[bytes]) -> None:
        self.sent.append((self.loop.now, sum(map(len, pieces))))


def make(rate: int, after: int = 0) -> tuple[FakeLoop, FakeTransport, Throttle, list[bool]]:
    loop = FakeLoop(100.0)
    transport = FakeTransport(loop)
    held: list[bool] = []
    throttle = Throttle(loop, [RateLimit(rate, 100.0, after)], lambda: transport,  # type: ignore[arg-type]
                        held.append)
    return loop, transport, throttle, held


def test_nginx_pace_with_limit_rate_after() -> None:
    """limit_rate.t's numbers: 30000 bytes at 12k with the first 256 free take two seconds."""
    loop, transport, throttle, held = make(12288, after=256)
    throttle.write([b"h" * 200, b"x" * 29800])
    assert transport.sent == [(100.0, 12544)]          # the first second's 12288, plus the free 256
    assert held == [True]                              # the upstream is not read meanwhile
    finished: list[float] = []
    throttle.finish(lambda: finished.append(loop.now))
    while loop.timers and not finished:
        loop.run_next()
    assert [n for _, n in transport.sent] == [12544, 12288, 5168]
    assert transport.sent[1][0] >= 101.0 and transport.sent[2][0] >= 102.0
    assert finished and 102.0 <= finished[0] < 103.0
    loop.run_next()                                    # the last pause ends: the source may be read again
    assert held[-1] is False and not loop.timers


def test_small_writes_pause_for_what_they_sent() -> None:
    loop, transport, throttle, _ = make(1000)
    throttle.write([b"x" * 100])
    assert transport.sent == [(100.0, 100)] and throttle.holding     # a 0.1 s pause follows
    throttle.write([b"y" * 100])
    assert transport.sent == [(100.0, 100)]            # waits for the pause
    loop.run_next()
    assert transport.sent[-1] == (100.1, 100)


def test_finish_at_once_when_nothing_waits_and_close_drops_timers() -> None:
    loop, _, throttle, _ = make(1000)
    done: list[bool] = []
    throttle.finish(lambda: done.append(True))
    assert done == [True]
    throttle.write([b"x" * 5000])
    throttle.close()
    assert not loop.timers and not throttle.holding


def test_accel_limit_rate_is_taken_out() -> None:
    headers = [(b"Server", b"up"), (b"X-Accel-Limit-Rate", b"13000"), (b"X-Other", b"1")]
    assert accel_limit_rate(headers) == b"13000"
    assert headers == [(b"Server", b"up"), (b"X-Other", b"1")]
    assert accel_limit_rate(headers) is None
