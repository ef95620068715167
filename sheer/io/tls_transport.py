"""A TLS connection as an asyncio transport, on a non-blocking `ssl.SSLSocket`: OpenSSL reads and writes
the socket itself (SSL_read, SSL_write), as nginx's ngx_ssl_recv/ngx_ssl_send do.

The event loop's own TLS transport (uvloop's SSLProtocol) passes every record through memory BIOs and
several layers of buffers; a small keepalive request costs it ~50 µs of CPU more than this (measured in
docs/performance.md, "HTTPS on the socket"). The protocol sees the same transport interface either way
(write, writelines, pause/resume_reading, flow control with pause_writing/resume_writing, close, abort,
get_extra_info with "ssl_object").

Two OpenSSL rules shape the writing side: a write that returned SSL_ERROR_WANT_WRITE must be retried
with at least the same bytes (what was already encrypted is not encrypted again), which is why the
buffer is only ever appended to and retried from its start; and SSL_read may hold a decrypted record
the socket no longer signals, which is why resuming reading looks at `pending()`.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
from typing import Any

RECV = 65536                # what one SSL_read may return (a record is at most 16 KiB)
RECORD = 16384              # the most plaintext a TLS record carries: what a bulk sender's records hold
CHUNK = 262144              # what one SSL_write takes from the buffer
WOULD_BLOCK = (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError, InterruptedError)


def server_side(context: ssl.SSLContext, sock: socket.socket) -> ssl.SSLObject:
    """TLS on an accepted non-blocking socket, server side: OpenSSL reads and writes the socket itself, as
    inside an ssl.SSLSocket, without SSLSocket's Python layer (making one costs four system calls:
    getsockopt SO_TYPE, getsockname, getpeername, ioctl FIONBIO; each of its do_handshake() calls one more
    ioctl). The SSLObject is what the SNI callback, the $ssl_* variables and sheer.io.openssl take; OpenSSL's
    object holds the socket by a weak reference only, so the socket must be kept as long (the transport
    holds both)."""
    tls: ssl.SSLObject = ssl.SSLObject.__new__(ssl.SSLObject)
    tls._sslobj = context._wrap_socket(sock, True, None, owner=tls, session=None)  # type: ignore[attr-defined]
    return tls


async def accept_tls(loop: asyncio.AbstractEventLoop, sock: socket.socket, context: ssl.SSLContext,
                     timeout: float) -> ssl.SSLObject:
    """The server side of the handshake on an accepted socket (made non-blocking; the socket and the
    returned SSLObject make a TlsTransport), bounded by `timeout` (TimeoutError); a failure is the ssl
    module's exception (an OSError), after which the connection is closed."""
    sock.setblocking(False)
    tls = server_side(context, sock)
    handshake = tls._sslobj.do_handshake        # type: ignore[attr-defined]
    fd = sock.fileno()
    try:
        async with asyncio.timeout(timeout):
            while True:
                try:
                    handshake()
                    return tls
                except ssl.SSLWantReadError:
                    await _ready(loop, fd, reading=True)
                except ssl.SSLWantWriteError:
                    await _ready(loop, fd, reading=False)
    except BaseException:
        discard_input(fd)      # what the client sent and OpenSSL did not read: no reset at close
        sock.close()
        raise


def discard_input(fd: int) -> None:
    for _ in range(16):
        try:
            if not os.read(fd, 65536):
                return
        except OSError:             # nothing more now (EAGAIN), or the connection is gone
            return


async def _ready(loop: asyncio.AbstractEventLoop, fd: int, reading: bool) -> None:
    waiter = loop.create_future()

    def wake() -> None:
        if not waiter.done():
            waiter.set_result(None)

    (loop.add_reader if reading else loop.add_writer)(fd, wake)
    try:
        await waiter
    finally:
        (loop.remove_reader if reading else loop.remove_writer)(fd)


class TlsTransport(asyncio.Transport):
    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket, tls: ssl.SSLObject,
                 protocol: asyncio.Protocol, peername: Any = None) -> None:
        """tls: server_side(context, sock), handshaken; peername: the client's address as accept(2) gave it
        (else getpeername(), which a client that has already reset the connection no longer has)."""
        super().__init__()
        self._loop = loop
        self._sock = sock
        self._fd = sock.fileno()
        self._protocol = protocol
        # OpenSSL's SSL_read, SSL_write, SSL_pending and SSL_shutdown as the ssl module's C object has them
        inner = tls._sslobj                 # type: ignore[attr-defined]
        self._recv, self._send, self._pending = inner.read, inner.write, inner.pending
        self._shutdown = inner.shutdown
        self._buffer = bytearray()       # what SSL_write has not taken yet (retried from its start)
        self._high, self._low = 65536, 16384
        self._writing_paused = False     # the protocol was told pause_writing()
        self._writer = False             # waiting for the socket to be writable
        self._reading = True
        self._closing = False
        self._lost = False
        self._extra: dict[str, Any] = {"socket": sock, "ssl_object": tls, "sslcontext": tls.context}
        try:
            self._extra["peername"] = sock.getpeername() if peername is None else peername
            self._extra["sockname"] = sock.getsockname()
        except OSError:
            pass

    def start(self, first: bytes | None = None) -> None:
        """Tell the protocol it is connected, then read. first: what a read right after the handshake
        returned (sheer.io.http.service), given to the protocol at once."""
        protocol = self._protocol
        protocol.connection_made(self)
        if self._reading and not self._closing:
            self._loop.add_reader(self._fd, self._read_ready)
            if first:
                try:
                    protocol.data_received(first)
                except Exception as exc:  # noqa: BLE001 - a bug in one connection ends that connection only
                    self._fatal(exc, "protocol.data_received() call failed")
                    return
                if len(first) >= RECORD or self._pending():
                    self._read_ready()
            elif self._pending():
                self._loop.call_soon(self._read_ready)

    # --- reading --------------------------------------------------------------------------

    def _read_ready(self) -> None:
        """Records until a short one (less than RECORD) leaves nothing decrypted in OpenSSL: the socket
        (level-triggered) calls again when more has come. A request is a short record: reading on until
        SSL_read says "want read" would cost a read(2) and an SSLWantReadError per request. Full records
        are an upload's: more are most likely in the socket already, read in this call (one event per
        record would cost an epoll_wait and a loop iteration each)."""
        recv, pending, protocol = self._recv, self._pending, self._protocol
        while self._reading and not self._closing:
            try:
                data = recv(RECV)
            except WOULD_BLOCK:
                return
            except ssl.SSLEOFError:        # the TCP FIN without close_notify (a ragged EOF): an end too
                data = b""
            except OSError as exc:
                self._fatal(exc)
                return
            if not data:                   # close_notify, or the ragged EOF at a record boundary
                self._eof()
                return
            try:
                protocol.data_received(data)
            except Exception as exc:  # noqa: BLE001 - a bug in one connection ends that connection only
                self._fatal(exc, "protocol.data_received() call failed")
                return
            if len(data) < RECORD and not pending():
                return

    def _eof(self) -> None:
        self._loop.remove_reader(self._fd)
        self._reading = False
        try:
            self._protocol.eof_received()     # a TLS connection cannot stay half open: it closes
        except Exception as exc:  # noqa: BLE001 - a bug in one connection ends that connection only
            self._fatal(exc, "protocol.eof_received() call failed")
            return
        self.close()

    def pause_reading(self) -> None:
        if self._reading and not self._closing:
            self._reading = False
            self._loop.remove_reader(self._fd)

    def resume_reading(self) -> None:
        if not self._reading and not self._closing:
            self._reading = True
            self._loop.add_reader(self._fd, self._read_ready)
            if self._pending():               # a record already decrypted: the socket will not say so
                self._loop.call_soon(self._read_ready)

    def is_reading(self) -> bool:
        return self._reading

    # --- writing --------------------------------------------------------------------------

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._closing or not data:
            return
        buffer = self._buffer
        if buffer:
            buffer += data
            self._check_limits()
            return
        try:
            sent = self._send(data)
        except WOULD_BLOCK:
            sent = 0
        except OSError as exc:
            self._fatal(exc)
            return
        if sent < len(data):
            buffer += memoryview(data)[sent:] if sent else data
            self._want_writable()
            self._check_limits()

    def writelines(self, list_of_data: Any) -> None:
        self.write(b"".join(list_of_data))

    def _want_writable(self) -> None:
        if not self._writer:
            self._writer = True
            self._loop.add_writer(self._fd, self._write_ready)

    def _write_ready(self) -> None:
        buffer, send = self._buffer, self._send
        while buffer:
            try:
                sent = send(memoryview(buffer)[:CHUNK])
            except WOULD_BLOCK:
                return
            except OSError as exc:
                self._fatal(exc)
                return
            del buffer[:sent]
        self._writer = False
        self._loop.remove_writer(self._fd)
        if self._writing_paused:
            self._writing_paused = False
            self._protocol.resume_writing()
        if self._closing:
            self._finish_close()

    def _check_limits(self) -> None:
        if not self._writing_paused and len(self._buffer) > self._high:
            self._writing_paused = True
            self._protocol.pause_writing()
        elif self._writing_paused and len(self._buffer) <= self._low:
            self._writing_paused = False
            self._protocol.resume_writing()

    def get_write_buffer_size(self) -> int:
        return len(self._buffer)

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._low, self._high

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        if high is None:
            high = 65536 if low is None else 4 * low
        if low is None:
            low = high // 4
        self._high, self._low = high, low
        self._check_limits()

    def can_write_eof(self) -> bool:
        return False

    # --- ending ---------------------------------------------------------------------------

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        """Send what is buffered, then close_notify, then close the socket."""
        if self._closing:
            return
        self._closing = True
        if self._reading:
            self._reading = False
            self._loop.remove_reader(self._fd)
        if not self._buffer:
            self._finish_close()

    def _finish_close(self) -> None:
        try:
            self._shutdown()                  # sends close_notify; the peer's is not waited for
        except (OSError, ValueError):
            pass
        self._lose(None)

    def abort(self) -> None:
        self._closing = True
        self._lose(None)

    def _fatal(self, exc: BaseException, message: str | None = None) -> None:
        if message is not None:
            self._loop.call_exception_handler({"message": message, "exception": exc, "transport": self,
                                               "protocol": self._protocol})
        self._closing = True
        self._lose(exc if isinstance(exc, OSError) else None)

    def _lose(self, exc: Exception | None) -> None:
        if self._lost:
            return
        self._lost = True
        loop, fd = self._loop, self._fd
        if self._reading:       # else no longer registered (close, _eof, pause_reading took it out)
            self._reading = False
            loop.remove_reader(fd)
        if self._writer:
            self._writer = False
            loop.remove_writer(fd)
        self._buffer.clear()
        self._sock.close()
        loop.call_soon(self._protocol.connection_lost, exc)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._extra.get(name, default)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._protocol

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol  # type: ignore[assignment]
