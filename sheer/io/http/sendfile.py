"""Sending a file's bytes to a client connection without reading the file into memory.

On a plain connection the bytes go with sendfile(2) straight from the page cache to the socket, each
time the transport's own buffer is empty (so nothing overtakes what it still holds). When the socket
is full, one piece goes through the transport instead, with its write limit at 0 for the time of the
file: the transport then says (resume_writing) the moment everything is out, and sendfile goes on.
On TLS (the bytes must be encrypted in user space) pieces are read and written, waiting whenever the
transport says its buffer is above its usual limit. A small answer is read and written with its head
in one send()."""

from __future__ import annotations

import asyncio
import os
from typing import Protocol

from sheer.core.rate import RateLimit
from sheer.io.http.throttle import Throttle

Span = tuple[int, int]
PIECE = 64 * 1024          # what one write through the transport carries
SMALL = 32 * 1024          # up to this, the body is read and leaves with the head


class Relay(Protocol):
    def client_paused(self, paused: bool) -> None: ...


class Client(Protocol):
    transport: asyncio.Transport | None
    closed: bool
    write_paused: bool
    relay: Relay | None


class FileSender:
    """The client connection's relay while a file is sent (ClientConnection tells it of pauses)."""

    def __init__(self, client: Client, fd: int) -> None:
        self.client = client
        self.fd = fd
        self.resumed: asyncio.Future[None] | None = None
        self.sent = 0          # body bytes written
        transport = client.transport
        self.sock_fd = -1
        if transport is not None and transport.get_extra_info("ssl_object") is None:
            sock = transport.get_extra_info("socket")
            self.sock_fd = sock.fileno() if sock is not None else -1

    def client_paused(self, paused: bool) -> None:
        if not paused and self.resumed is not None and not self.resumed.done():
            self.resumed.set_result(None)

    async def send(self, head: bytes, pieces: list[bytes | Span], length: int) -> bool:
        """Write `head`, then the pieces (literal bytes, or spans of the file). False when the
        connection went away (or the file shrank) before everything was written."""
        transport = self.client.transport
        if transport is None or self.client.closed:
            return False
        if length <= SMALL:
            buffers = [head]
            for piece in pieces:
                buffers.append(piece if isinstance(piece, bytes) else self._read(*piece))
            if sum(len(b) for b in buffers) - len(head) != length:
                return False
            transport.writelines(buffers)
            self.sent = length
            return True
        transport.write(head)
        limits = transport.get_write_buffer_limits()
        if self.sock_fd >= 0:
            # paused as soon as anything waits in the buffer, resumed when it is all out (uvloop pauses
            # above the limit; asyncio's TLS transport would pause at 0 and never resume: not there)
            transport.set_write_buffer_limits(high=0)
        self.client.relay = self
        try:
            for piece in pieces:
                if isinstance(piece, bytes):
                    transport.write(piece)
                    self.sent += len(piece)
                elif not await self._span(transport, *piece):
                    return False
            return not self.client.closed
        finally:
            if self.client.relay is self:
                self.client.relay = None
            if not self.client.closed and self.sock_fd >= 0:
                transport.set_write_buffer_limits(high=limits[1], low=limits[0])

    async def send_limited(self, head: bytes, pieces: list[bytes | Span], limits: list[RateLimit]) -> bool:
        """`send` at `limit_rate`'s pace: the file is read a piece at a time as the throttle lets the last
        one go (no sendfile: the bytes are counted as they are written, as nginx's write filter does)."""
        loop = asyncio.get_running_loop()
        client = self.client
        ready = asyncio.Event()
        ready.set()
        throttle = Throttle(loop, limits, lambda: None if client.closed else client.transport,
                            lambda paused: ready.clear() if paused else ready.set())
        try:
            throttle.write([head])
            for piece in pieces:
                spans = [piece] if isinstance(piece, tuple) else []
                if isinstance(piece, bytes):
                    if not await self._when(ready):
                        return False
                    throttle.write([piece])
                    self.sent += len(piece)
                for offset, end in spans:
                    while offset < end:
                        if not await self._when(ready):
                            return False
                        chunk = os.pread(self.fd, min(PIECE, end - offset), offset)
                        if not chunk:
                            return False          # the file is shorter than it was
                        throttle.write([chunk])
                        offset += len(chunk)
                        self.sent += len(chunk)
            done = loop.create_future()
            throttle.finish(lambda: None if done.done() else done.set_result(None))
            while not done.done():
                if client.closed:
                    return False
                await asyncio.wait([done], timeout=0.25)
            return not client.closed
        finally:
            throttle.close()

    async def _when(self, ready: asyncio.Event) -> bool:
        """Wait until the throttle wants more; False if the client went away meanwhile."""
        while not ready.is_set():
            if self.client.closed:
                return False
            try:
                await asyncio.wait_for(ready.wait(), 0.25)
            except TimeoutError:
                pass
        return not self.client.closed

    def _read(self, start: int, end: int) -> bytes:
        return os.pread(self.fd, end - start, start)

    async def _span(self, transport: asyncio.Transport, offset: int, end: int) -> bool:
        while offset < end:
            if self.client.closed:
                return False
            if self.sock_fd >= 0 and transport.get_write_buffer_size() == 0:
                try:
                    sent = os.sendfile(self.sock_fd, self.fd, offset, end - offset)
                except BlockingIOError:
                    sent = -1
                except OSError:
                    return False          # the connection broke: the transport says so too
                if sent == 0:
                    return False          # the file is shorter than it was (nginx: "file was truncated")
                if sent > 0:
                    offset += sent
                    self.sent += sent
                    continue
            # the socket is full (or TLS): one piece through the transport, then wait until it is out
            piece = os.pread(self.fd, min(PIECE, end - offset), offset)
            if not piece:
                return False
            transport.write(piece)
            offset += len(piece)
            self.sent += len(piece)
            if self.client.write_paused:
                self.resumed = asyncio.get_running_loop().create_future()
                try:
                    await self.resumed
                finally:
                    self.resumed = None
        return True
