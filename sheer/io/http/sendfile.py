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
