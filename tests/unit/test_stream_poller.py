"""The stream sessions' edge-triggered epoll: one failing handler costs its session only."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

from sheer.io.stream_tcp import Poller


class Loop:
    def add_reader(self, fd: int, callback: Callable[[], None]) -> None:
        self.reader = callback


class Side:
    def __init__(self, fails: bool) -> None:
        self.fails = fails
        self.events: list[int] = []
        self.crashes: list[Exception] = []

    def event(self, events: int) -> None:
        self.events.append(events)
        if self.fails:
            raise RuntimeError("a bug")

    def crashed(self, exc: Exception) -> None:
        self.crashes.append(exc)


def test_a_failing_handler_does_not_lose_the_other_events_of_its_batch() -> None:
    loop: Any = Loop()
    poller = Poller(loop)
    pairs = [socket.socketpair() for _ in range(3)]
    sides = [Side(fails=n == 0) for n in range(3)]
    try:
        for (ours, _), side in zip(pairs, sides, strict=True):
            poller.add(ours.fileno(), side.event)
        for _, theirs in pairs:
            theirs.send(b"x")
        loop.reader()                       # the loop saw the epoll readable
        assert all(side.events for side in sides)
        assert [type(e) for e in sides[0].crashes] == [RuntimeError]
        assert not sides[1].crashes and not sides[2].crashes
        poller.forget(pairs[1][0].fileno())
        pairs[1][1].send(b"y")
        loop.reader()
        assert len(sides[1].events) == 1    # forgotten: its later events are ignored
    finally:
        for a, b in pairs:
            a.close()
            b.close()
        poller.epoll.close()
