"""worker_connections: what one worker may hold open, as nginx counts it (every client and upstream
connection takes one), and nginx's way out when they run short: idle client connections (keepalive
ones, and those still waiting for their first request) are closed, oldest first, with one warning
a second ("N worker_connections are not enough, reusing connections")."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from sheer.io.logs import ErrorLogger, LogLimiter


class Reusable(Protocol):
    """An idle client connection that may be closed to make room."""

    def close(self) -> None: ...


class ConnectionSlots:
    __slots__ = ("exhausted", "free_waiters", "limit", "reusable", "reusing", "roomy", "used")

    def __init__(self, limit: int, log: ErrorLogger, schedule: Callable[[float, Callable[[], None]], object],
                 now: Callable[[], float]) -> None:
        self.limit = limit
        self.roomy = limit - limit // 16     # below this many in use, a slot is taken without a look around
        self.used = 0
        self.reusable: dict[Reusable, None] = {}      # oldest first
        self.reusing = LogLimiter(log, schedule, now)
        self.exhausted = LogLimiter(log, schedule, now)
        self.free_waiters: list[Callable[[], None]] = []    # listeners waiting for a slot

    def take(self) -> bool:
        """A slot for a new connection; False when even reusing idle connections frees none."""
        if self.used < self.roomy:
            self.used += 1
            return True
        if self.reusable:
            self.drain()
        if self.used >= self.limit:
            self.exhausted.report("alert", f"{self.limit} worker_connections are not enough")
            return False
        self.used += 1
        return True

    def drain(self, at_least: int = 1) -> int:
        """Close some idle connections (nginx: an eighth of them, from 1 to 32); how many."""
        if not self.reusable:
            return 0
        self.reusing.report("warn", f"{self.limit} worker_connections are not enough, reusing connections")
        count = max(min(32, len(self.reusable) // 8), min(at_least, len(self.reusable)), 1)
        closed = 0
        while self.reusable and closed < count:
            conn = next(iter(self.reusable))
            del self.reusable[conn]
            conn.close()          # gives its slot back (release) before returning
            closed += 1
        return closed

    def release(self, count: int = 1) -> None:
        self.used -= count
        if self.free_waiters:
            waiters, self.free_waiters = self.free_waiters, []
            for wake in waiters:
                wake()

    def idle(self, conn: Reusable, idle: bool) -> None:
        """nginx's ngx_reusable_connection: `conn` may (or may no longer) be closed to make room."""
        if idle:
            self.reusable.pop(conn, None)
            self.reusable[conn] = None
        else:
            self.reusable.pop(conn, None)

    def wait(self, wake: Callable[[], None]) -> None:
        """`wake` once a slot is given back (a listener that stopped accepting)."""
        if wake not in self.free_waiters:
            self.free_waiters.append(wake)
