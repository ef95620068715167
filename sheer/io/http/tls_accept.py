"""From accept to the first request on a `listen ... ssl` address: nginx's ngx_http_ssl_handshake.

The first byte is peeked (MSG_PEEK, nothing consumed): 0x16 (a TLS handshake record) or a byte with
the high bit set (an SSLv2-style hello) starts the handshake, driven by the event loop's SSL transport;
anything else is plain HTTP, read as usual and answered 400 "The plain HTTP request was sent to HTTPS
port". Waiting for that byte and the handshake are each bounded by client_header_timeout (nginx's
post_accept_timeout), and neither blocks the worker: one loop callback per connection, one task per
handshake."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

from sheer.core.proxy_protocol import V2_MAX, Malformed, Parsed, ProxyHeader, parse
from sheer.io.logs import ErrorLogger
from sheer.io.tls import TlsListener, handshake_failure, rejected

# the PROXY header read before a TLS handshake (its header, or None for another transport's); None: not so
Proxied = tuple[ProxyHeader | None] | None
# (socket, is TLS, the PROXY header read before it, if the address expects one): open the connection
Opened = Callable[[socket.socket, bool, Proxied], None]


class Waiting:
    """A connection accepted on an ssl address whose first byte has not come yet."""

    __slots__ = ("proxied", "sock", "timer")

    def __init__(self, sock: socket.socket, timer: asyncio.TimerHandle) -> None:
        self.sock = sock
        self.timer = timer
        self.proxied: Proxied = None     # `listen ... ssl proxy_protocol`


class TlsAccept:
    def __init__(self, loop: asyncio.AbstractEventLoop, listener: TlsListener, timeout: float,
                 log: ErrorLogger, server: str, release: Callable[[], None], opened: Opened,
                 proxy_protocol: bool = False) -> None:
        self.loop = loop
        self.listener = listener
        self.timeout = timeout
        self.log = log
        self.server = server           # "0.0.0.0:443": the address in nginx's log lines
        self.release = release         # the connection's worker_connections slot
        self.opened = opened
        self.proxy_protocol = proxy_protocol
        self.waiting: dict[int, Waiting] = {}

    def accepted(self, sock: socket.socket) -> None:
        fd = sock.fileno()
        timer = self.loop.call_later(self.timeout, self._timed_out, fd)
        self.waiting[fd] = Waiting(sock, timer)
        self.loop.add_reader(fd, self._readable, fd)

    def _readable(self, fd: int) -> None:
        waiting = self.waiting.get(fd)
        if waiting is None:
            return
        expect_header = self.proxy_protocol and waiting.proxied is None
        try:
            first = waiting.sock.recv(V2_MAX if expect_header else 1, socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            first = b""
        if first and expect_header:
            after = self._proxy_header(waiting, first)
            if after is None:
                return
            first = after
        self._forget(fd)
        if not first:               # closed (or reset) before a byte: nginx closes without a word
            self._close(waiting.sock)
            return
        self.opened(waiting.sock, first[0] == 0x16 or first[0] & 0x80 != 0, waiting.proxied)

    def _proxy_header(self, waiting: Waiting, peeked: bytes) -> bytes | None:
        """nginx's ngx_http_ssl_handshake with proxy_protocol: the header must be whole in what has come
        (else a broken header); it is consumed, the handshake's first byte is what follows. None: wait."""
        result = parse(peeked)
        if not isinstance(result, Parsed):
            reason = result.reason if isinstance(result, Malformed) else \
                f'broken header: "{peeked.decode("latin-1")}"'
            self._log_client(waiting.sock, "error", reason, "reading PROXY protocol")
            return b""
        try:
            waiting.sock.recv(result.length)
        except OSError:
            return b""
        waiting.proxied = (result.header if result.header.transport == "stream" else None,)
        return peeked[result.length:result.length + 1] or None

    def _timed_out(self, fd: int) -> None:
        waiting = self.waiting.get(fd)
        if waiting is None:
            return
        self._forget(fd)
        self._log_client(waiting.sock, "info", "client timed out (110: Connection timed out)")
        self._close(waiting.sock)

    def _forget(self, fd: int) -> None:
        waiting = self.waiting.pop(fd)
        waiting.timer.cancel()
        self.loop.remove_reader(fd)

    def _close(self, sock: socket.socket) -> None:
        sock.close()
        self.release()

    def handshake_failed(self, sock: socket.socket, peer: str, exc: BaseException) -> None:
        if self.listener.rejecting and rejected(exc):      # ssl_reject_handshake: OpenSSL sent its alert
            self.log.info(f"handshake rejected while SSL handshaking, client: {peer}, server: {self.server}")
            return
        level, text = handshake_failure(exc)
        self.log.log(level, f"{text} while SSL handshaking, client: {peer}, server: {self.server}")

    def _log_client(self, sock: socket.socket, level: str, text: str,
                    action: str = "SSL handshaking") -> None:
        try:
            peer = sock.getpeername()[0]
        except OSError:
            peer = "?"
        self.log.log(level, f"{text} while {action}, client: {peer}, server: {self.server}")

    def close_all(self) -> None:
        """Stopping: connections still silent go (nginx closes them at a graceful stop as idle ones)."""
        for fd in list(self.waiting):
            waiting = self.waiting[fd]
            self._forget(fd)
            self._close(waiting.sock)
