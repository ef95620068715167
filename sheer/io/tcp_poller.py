"""One edge-triggered epoll for the TCP stream sessions of a worker, itself watched by the event loop."""

from __future__ import annotations

import asyncio
import select
from collections.abc import Callable
from typing import ClassVar

READ_EVENTS = select.EPOLLIN | select.EPOLLRDHUP | select.EPOLLHUP | select.EPOLLERR
END_EVENTS = select.EPOLLRDHUP | select.EPOLLHUP | select.EPOLLERR    # read until EOF or the error
OUT = select.EPOLLOUT
IN = select.EPOLLIN                    # data to read (the first of it: $upstream_first_byte_time)
WATCH = READ_EVENTS | select.EPOLLET
WATCH_OUT = WATCH | OUT
# events fetched per epoll_wait: CPython's epoll.poll() allocates their array per call, and 42 (504 bytes)
# fit its small-object allocator, where 256 (3 KB) went to malloc() and free() each time
BATCH = 42
ROUNDS = 6                             # batches per turn of the event loop: up to 252 events (256 before)


class Poller:
    """Sockets are registered once, edge-triggered (as nginx does): no epoll change when a direction
    stops or resumes (at most one, the first time a write falls short), and closing a socket takes it out."""

    _by_loop: ClassVar[dict[asyncio.AbstractEventLoop, Poller]] = {}

    @classmethod
    def of(cls, loop: asyncio.AbstractEventLoop) -> Poller:
        poller = cls._by_loop.get(loop)
        if poller is None:
            poller = cls._by_loop[loop] = cls(loop)
        return poller

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.epoll = select.epoll()
        self.handlers: dict[int, Callable[[int], None]] = {}
        loop.add_reader(self.epoll.fileno(), self.dispatch)

    def add(self, fd: int, handler: Callable[[int], None], out: bool = False) -> None:
        """Watch `fd` for reading, and for writing when `out` (a connect() under way). Writing is
        watched only once a write fell short: a socket that is writable from the start would
        otherwise cost an event (and its handler's call) that nobody needs."""
        self.handlers[fd] = handler
        self.epoll.register(fd, WATCH_OUT if out else WATCH)

    def watch_out(self, fd: int) -> None:
        """From now on `fd` reports writability too: its next writable edge, or at once if it is writable."""
        self.epoll.modify(fd, WATCH_OUT)

    def forget(self, fd: int) -> None:
        """Before closing `fd` (which takes it out of the epoll): later events for it are ignored.
        A stale event can still reach a new socket that got the same number in the same batch:
        handlers treat every event as a hint and check with the socket itself."""
        self.handlers.pop(fd, None)

    def dispatch(self) -> None:
        handlers = self.handlers
        ready = self.epoll.poll(0, BATCH)
        rounds = 1
        while True:
            for fd, events in ready:
                try:
                    handler = handlers[fd]
                except KeyError:
                    continue                 # forgotten (closed) earlier in this batch
                try:
                    handler(events)
                except Exception as exc:  # noqa: BLE001 -- edges are not repeated: one session's bug
                    # must cost that session only, not the events of the others fetched in the same batch
                    crashed = getattr(getattr(handler, "__self__", None), "crashed", None)
                    if crashed is not None:
                        crashed(exc)
            if len(ready) < BATCH or rounds == ROUNDS:
                return
            rounds += 1                  # a full batch: the rest at once, not in the loop's next turn
            ready = self.epoll.poll(0, BATCH)
