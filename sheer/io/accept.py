"""A listener's accept loop, nginx's way (ngx_event_accept), so that exhaustion is handled, not hidden.

Each connection takes a worker_connections slot first (when they run short, idle connections are
closed to make room: sheer.io.slots). With no slot, or no descriptor left (EMFILE, ENFILE),
accepting stops: clients wait in the listen queue, none is accepted and closed unanswered (libuv's
server does that when out of descriptors, silently), and accepting resumes as soon as a
connection closes, or half a second later (nginx's accept_mutex_delay). Failures are logged at
most once a second, with how many more there were."""

from __future__ import annotations

import asyncio
import errno
import os
import socket
from collections.abc import Callable

from sheer.io.logs import ErrorLogger, LogLimiter
from sheer.io.slots import ConnectionSlots
from sheer.io.sockets import as_address

ACCEPT_BATCH = 16         # connections accepted per readiness event of a listener
_BATCH = range(ACCEPT_BATCH)    # made once: range() per batch is a call and an object
RETRY_DELAY = 0.5         # nginx's accept_mutex_delay: when nothing else wakes a stopped listener
FREED_DELAY = 0.005       # after closing idle connections: their descriptors are closed by then
_AGAIN = (BlockingIOError, InterruptedError)
_NO_DESCRIPTOR = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)

Accepted = Callable[[int, tuple[str, int]], None]


def _unix_peers(accepted: Accepted) -> Accepted:
    return lambda fd, peer: accepted(fd, as_address(peer))


class Acceptor:
    __slots__ = ("accepted", "accepting", "failures", "listening", "loop", "name", "need", "retry", "short",
                 "slots", "sock")

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket, slots: ConnectionSlots,
                 log: ErrorLogger, name: str, accepted: Accepted, need: int = 1) -> None:
        self.loop = loop
        self.sock = sock
        self.slots = slots
        self.name = name
        if sock.family == socket.AF_UNIX:         # a unix-domain client is ("unix:", None), as nginx shows it
            accepted = _unix_peers(accepted)
        self.accepted = accepted                  # (fd, peer): a new connection, its slot taken
        self.failures = LogLimiter(log, loop.call_later, loop.time)
        self.accepting = False                    # until stop(): this listener is ours to serve
        self.listening = False                    # the loop watches it now
        self.retry: asyncio.TimerHandle | None = None
        self.need = need                          # descriptors a connection takes (2 for a proxied stream)
        self.short = False                        # descriptors ran out: check before accepting again

    def start(self) -> None:
        self.sock.setblocking(False)
        self.accepting = True
        self._listen()

    def stop(self) -> None:
        self.accepting = False
        self._unlisten()
        if self.retry is not None:
            self.retry.cancel()
            self.retry = None

    def _listen(self) -> None:
        if self.accepting and not self.listening:
            self.listening = True
            self.loop.add_reader(self.sock.fileno(), self._ready)

    def _unlisten(self) -> None:
        if self.listening:
            self.listening = False
            self.loop.remove_reader(self.sock.fileno())

    def _ready(self) -> None:
        listener = self.sock
        slots = self.slots
        if self.short and self._free(self.need * ACCEPT_BATCH + 1):
            self.short = False            # plenty again: a whole batch may come in

        for _ in _BATCH:
            if self.short and not self._free(self.need + 1):
                # still short: idle connections make room, or this client waits in the listen queue
                self.hold(soon=slots.drain(at_least=ACCEPT_BATCH) > 0)
                return
            if slots.used < slots.roomy:        # ConnectionSlots.take's common case, inline
                slots.used += 1
            elif not slots.take():
                self.hold(short=False)
                return
            try:
                fd, peer = listener._accept()  # type: ignore[attr-defined]  # socket.accept() minus its enum conversions
            except _AGAIN:
                slots.release()
                return
            except OSError as exc:
                slots.release()
                if exc.errno in _NO_DESCRIPTOR:
                    level = "crit" if exc.errno in (errno.EMFILE, errno.ENFILE) else "alert"
                    self.failures.report(level, f"accept4() failed ({exc.errno}: {exc.strerror}) while "
                                                f"accepting new connection on {self.name}")
                    # Idle connections give their descriptors back (closed in the loop's next turn):
                    # then accepting goes on at once, as nginx's does when it reuses connections.
                    self.hold(soon=slots.drain(at_least=ACCEPT_BATCH) > 0, short=True)
                    return
                continue               # ECONNABORTED and the like: that one is gone, take the next
            self.accepted(fd, peer)

    def hold(self, soon: bool = False, short: bool = True) -> None:
        """Stop accepting until a connection gives its slot back, or RETRY_DELAY from now (a few
        milliseconds when descriptors were just freed). `short`: for want of descriptors; then a
        client is accepted again only once its descriptors are there: accepting one to drop it at
        once (its upstream socket failing) is what must not happen."""
        self.short = self.short or short
        self._unlisten()
        self.slots.wait(self._wake)
        if self.retry is not None:
            self.retry.cancel()
        self.retry = self.loop.call_later(FREED_DELAY if soon else RETRY_DELAY, self._wake)

    def _free(self, count: int) -> bool:
        """Whether `count` more descriptors can be opened now (asked only while they were short)."""
        taken = []
        try:
            for _ in range(count):
                taken.append(os.dup(self.sock.fileno()))
        except OSError:
            return False
        finally:
            for fd in taken:
                os.close(fd)
        return True

    def _wake(self) -> None:
        if self.retry is not None:
            self.retry.cancel()
            self.retry = None
        self._listen()
