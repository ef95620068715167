"""proxy_timeout's check of a TCP stream session: any progress, reading or sending, keeps it."""

from __future__ import annotations

from typing import Any

from sheer.io.stream_tcp import Session


class Log:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, line: str) -> None:
        self.lines.append(line)


class Probe(Session):
    __slots__ = ("closed",)

    def context(self, peer: Any) -> str:
        return "context"

    def close(self) -> None:
        self.closed = True


def session() -> Any:
    s: Any = Probe.__new__(Probe)
    s.received = s.sent = s.flushed = 0
    s.idle_mark = (0, 0, 0)
    s.peer = None
    s.service = type("Service", (), {"log": Log()})()
    s.closed = False
    return s


def test_no_progress_times_out() -> None:
    s = session()
    assert s.idle_check() is False
    assert s.closed and s.service.log.lines == ["connection timed out, context"]


def test_bytes_read_either_way_keep_it() -> None:
    for field in ("received", "sent"):
        s = session()
        setattr(s, field, 10)
        assert s.idle_check() is True and not s.closed
        assert s.idle_check() is False        # and nothing since


def test_a_held_back_remainder_still_draining_keeps_it() -> None:
    """A slow reader takes a remainder a little at a time: no new reads, but progress all the same."""
    s = session()
    s.received, s.sent, s.idle_mark = 5, 300_000, (5, 300_000, 0)
    s.flushed = 65_536
    assert s.idle_check() is True and not s.closed
