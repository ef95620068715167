"""One direction of a TCP stream session: bytes read from one descriptor and written to the other. The
same relay serves both directions (client to upstream, upstream to client); what the bytes mean to the
session (counted, an EOF, a failure) goes to its core session (sheer.core.tcp) through the connection.

Each direction reads into one buffer shared by the worker's sessions and writes from it at once; only
what the receiver does not take is copied, and that direction is not read again until it is sent
(nginx's behaviour with its per-direction buffer). A short read means the socket is drained unless the
event said EOF (edge-triggered: the next data brings another edge), so no read ends in EAGAIN.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from typing import Protocol

from sheer.core.rate import RateLimit
from sheer.core.tcp import TcpSession
from sheer.core.tcp_commands import Command, Side
from sheer.io.tcp_poller import IN, OUT

PENDING_LIMIT = 65536    # bytes kept from the client while the upstream connects (nginx: proxy_buffer_size)
BUFFER_SIZE = 262144
BUFFER = bytearray(BUFFER_SIZE)
VIEW = memoryview(BUFFER)
BUFFERS = [BUFFER]          # readv()'s list, made once
# The buffer's first n bytes for the n of a short chunk, made once: a slice per chunk is a new memoryview
# (~470 instructions), and most chunks of request/response protocols are short (~200 KB per worker)
SHORT = 1024
HEADS = [VIEW[:n] for n in range(SHORT)]
_AGAIN = (BlockingIOError, InterruptedError)
NONE = -1                   # no descriptor (yet)
CLIENT, UPSTREAM = Side.CLIENT, Side.UPSTREAM     # (globals: an Enum class's attribute costs ~70 ns in 3.11)
OTHER = (UPSTREAM, CLIENT)     # where a side's bytes go
readv, write = os.readv, os.write


class Clock(Protocol):
    def time(self) -> float: ...


class Relay(Protocol):
    """The connection a direction belongs to (sheer.io.tcp_relay.Connection)."""

    @property
    def core(self) -> TcpSession: ...

    @property
    def service(self) -> Clock: ...

    def run(self, commands: Sequence[Command]) -> None: ...

    def ended(self, direction: Direction) -> None: ...

    def client_event(self, events: int) -> None: ...

    def upstream_event(self, events: int) -> None: ...

    def crashed(self, exc: Exception) -> None: ...

    def early(self, direction: Direction, n: int) -> None: ...

    def watch_writable(self, direction: Direction) -> None: ...

    def delay(self, direction: Direction, seconds: float) -> None: ...


class Direction:
    """Bytes from one side to the other: the same relay serves both directions."""

    __slots__ = ("conn", "delayed", "dst", "end", "eof", "flushed", "held", "limit", "moved", "ready", "side",
                 "src", "watching")

    conn: Relay                  # the connection (a cycle, ended by its close: `del direction.conn`)
    src: int                     # the descriptor the bytes come from (NONE: not connected yet)
    dst: int                     # the one they go to (NONE: not connected yet)
    side: Side                   # the side the bytes come from
    ready: bool                  # the source may have data (an edge not read to the end)
    end: bool                    # EOF or an error is queued: read to the end
    eof: bool                    # the source's EOF was read (or nothing is to be read)
    held: bytes | None           # read, not taken by the destination yet (or waiting for it)
    watching: bool               # the destination reports writability (see Poller.add)
    moved: int                   # bytes read from the source: $bytes_received or $bytes_sent
    flushed: int                 # bytes of held-back remainders written later (proxy_timeout progress)
    limit: RateLimit | None      # proxy_upload_rate / proxy_download_rate (None: no limit)
    delayed: asyncio.TimerHandle | None  # the timer that ends a pause of a limited direction

    def event(self, events: int) -> None:
        """The poller's handler of the source once connected, where the relay has no rate limit: `pump`
        inline for the common event, data and nothing else with nothing held back; data with its end (or an
        error) goes to `pump` at once; writability (the other direction's) and the rest to the connection's
        handler of that side. After an EOF or an error every event of the socket says so (EPOLLRDHUP,
        EPOLLERR): an event of EPOLLIN alone never follows one, so it means `end` is not set."""
        if events != IN or self.held is not None:
            if events & OUT or self.eof or self.held is not None:
                self.slow(events)
            else:
                self.end = self.ready = True     # read to the end
                self.pump(self.conn)
            return
        src, dst = self.src, self.dst
        while True:
            try:
                n = readv(src, BUFFERS)
            except _AGAIN:
                return
            except OSError as exc:
                conn = self.conn
                conn.run(conn.core.failed(self.side, "recv", exc, conn.service.time()))
                return
            if n == 0:
                if not self.eof:         # (read to its end earlier in this batch: said then)
                    self.eof = True
                    self.conn.ended(self)
                return
            self.moved += n
            try:
                sent = write(dst, HEADS[n] if n < SHORT else VIEW[:n])
            except _AGAIN:
                sent = 0
            except OSError as exc:
                conn = self.conn
                conn.run(conn.core.failed(OTHER[self.side], "send", exc, conn.service.time()))
                return
            if sent < n:
                self.held = bytes(VIEW[sent:n])    # as in `pump`
                self.ready = n == BUFFER_SIZE      # not drained: read on once the destination took it
                if not self.watching:
                    self.conn.watch_writable(self)
                return
            if n < BUFFER_SIZE:
                return                   # drained: the next data brings another edge

    def slow(self, events: int) -> None:
        """An event `event` leaves to the connection's handler of the side."""
        if self.side:
            self.conn.upstream_event(events)
        else:
            self.conn.client_event(events)

    def crashed(self, exc: Exception) -> None:
        """A bug in `event`: the connection's (sheer.io.tcp_poller's dispatch looks for it)."""
        conn = getattr(self, "conn", None)
        if conn is not None:
            conn.crashed(exc)

    def pump(self, conn: Relay) -> None:
        """Read while the source may have data and the destination takes it."""
        if self.limit is not None:
            self.pump_limited(conn, self.limit)
            return
        dst = self.dst
        if self.held is not None and (dst >= 0 or len(self.held) > PENDING_LIMIT):
            return                       # read on once the destination took the rest (or connected)
        src = self.src
        while self.ready:
            try:
                n = readv(src, BUFFERS)
            except _AGAIN:
                self.ready = False
                return
            except OSError as exc:
                conn.run(conn.core.failed(self.side, "recv", exc, conn.service.time()))
                return
            if n == 0:
                self.ready = False
                self.eof = True
                conn.ended(self)
                return
            if n < BUFFER_SIZE and not self.end:
                self.ready = False       # drained: the next data brings another edge
            if dst < 0:
                conn.early(self, n)      # a PROXY header, or data while connecting
                dst = self.dst           # (the header may have led to a connection)
                if self.held is not None and (dst >= 0 or len(self.held) > PENDING_LIMIT):
                    return
                continue
            # The relay's hot path, once per chunk: count and pass on.
            self.moved += n
            try:
                sent = write(dst, HEADS[n] if n < SHORT else VIEW[:n])
            except _AGAIN:
                sent = 0
            except OSError as exc:
                conn.run(conn.core.failed(OTHER[self.side], "send", exc, conn.service.time()))
                return
            if sent < n:
                self.held = bytes(VIEW[sent:n])    # the destination's next writable edge sends it
                if not self.watching:
                    conn.watch_writable(self)
                return                   # read on once the destination took it

    def send(self, conn: Relay, data: bytes) -> None:
        """Send `data` on, behind whatever waits already, never before it."""
        if self.held is not None:
            self.held += data
            return
        self.held = data
        self.flush(conn)

    def flush(self, conn: Relay) -> None:
        """Send what is held; the rest waits for the destination's next writable edge."""
        data = self.held
        assert data is not None
        try:
            sent = write(self.dst, data)
        except _AGAIN:
            sent = 0
        except OSError as exc:
            conn.run(conn.core.failed(OTHER[self.side], "send", exc, conn.service.time()))
            return
        self.flushed += sent
        if sent < len(data):
            if sent:
                self.held = data[sent:]
            if not self.watching:
                conn.watch_writable(self)
            return
        self.held = None
        if self.eof:
            conn.ended(self)
        else:
            self.pump(conn)

    def pump_limited(self, conn: Relay, limit: RateLimit) -> None:
        """`pump` under a rate limit, as nginx's ngx_stream_proxy_process: read no more than the limit
        allows now (a pause when it allows nothing), then pause for what was read."""
        src = self.src
        while self.ready and self.delayed is None:
            dst = self.dst
            if self.held is not None:
                return                   # read on once the destination took the rest
            allowance = limit.allowance(self.moved, conn.service.time())
            if allowance <= 0:
                conn.delay(self, limit.wait(allowance))
                return
            size = min(allowance, BUFFER_SIZE)
            try:
                n = readv(src, [VIEW[:size]])
            except _AGAIN:
                self.ready = False
                return
            except OSError as exc:
                conn.run(conn.core.failed(self.side, "recv", exc, conn.service.time()))
                return
            if n == 0:
                self.ready = False
                self.eof = True
                conn.ended(self)
                return
            if n < size and not self.end:
                self.ready = False       # drained: the next data brings another edge
            before = self.moved
            self.moved += n
            pause = limit.pause(before, self.moved)
            if pause > 0:
                conn.delay(self, pause)
            try:
                sent = write(dst, HEADS[n] if n < SHORT else VIEW[:n])
            except _AGAIN:
                sent = 0
            except OSError as exc:
                conn.run(conn.core.failed(OTHER[self.side], "send", exc, conn.service.time()))
                return
            if sent < n:
                self.held = bytes(VIEW[sent:n])
                if not self.watching:
                    conn.watch_writable(self)


_new = object.__new__


def directions(client: int, conn: Relay) -> tuple[Direction, Direction]:
    """A new connection's two directions, client -> upstream and upstream -> client (the upstream not
    connected yet). Made here, not by calling the class: its type call and __init__ frame, twice, cost
    ~430 instructions more per connection."""
    up, down = _new(Direction), _new(Direction)
    up.conn = down.conn = conn
    up.src = down.dst = client
    up.dst = down.src = NONE
    up.side, down.side = CLIENT, UPSTREAM
    up.ready = up.end = up.eof = up.watching = down.ready = down.end = down.eof = down.watching = False
    up.held = up.limit = up.delayed = down.held = down.limit = down.delayed = None
    up.moved = up.flushed = down.moved = down.flushed = 0
    return up, down
