"""From accept to the first request on a `listen ... ssl` address: nginx's ngx_http_ssl_handshake.

The first byte is peeked (MSG_PEEK, nothing consumed): 0x16 (a TLS handshake record) or a byte with
the high bit set (an SSLv2-style hello) starts the handshake, OpenSSL on the socket (SSL_do_handshake);
anything else is plain HTTP, read as usual and answered 400 "The plain HTTP request was sent to HTTPS
port". Waiting for that byte and the handshake are each bounded by client_header_timeout (nginx's
post_accept_timeout), and neither blocks the worker: loop callbacks, no task.

The socket stays registered with the loop from the peek to the transport, with one callback (Handshake.step)
until TlsTransport.start replaces it: with uvloop each new registration costs an epoll_ctl ADD+DEL probe and
an ioctl, each removal three epoll_ctl, and each add_reader (a new callback too) a lookup in its weak
dictionary of transports (docs/performance.md, "The TLS handshake's CPU"). Every way out that closes the
socket removes it first: libuv would otherwise stop polling the next socket given that fd number."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Callable

from sheer.core.proxy_protocol import V2_MAX, Malformed, Parsed, ProxyHeader, parse
from sheer.io.logs import ErrorLogger
from sheer.io.tls import TlsListener, handshake_failure, rejected
from sheer.io.tls_transport import discard_input, server_side

# the PROXY header read before a TLS handshake (its header, or None for another transport's); None: not so
Proxied = tuple[ProxyHeader | None] | None
# the client's address as accept(2) gave it: a client that resets the connection right after its
# Finished (`openssl s_time -new`) has none for getpeername() by the time its transport is made
Peer = tuple[str, int]
# (socket, its TLS if it is TLS, the PROXY header read before it, if the address expects one, the
# client's address): open the connection; a TLS socket comes handshaken, still registered for reading
Opened = Callable[[socket.socket, ssl.SSLObject | None, Proxied, Peer], None]


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
        self.waiting: dict[int, Handshake] = {}     # the connections whose first byte has not come yet

    def accepted(self, sock: socket.socket, peer: Peer) -> None:
        waiting = Handshake(self, sock, peer)
        self.waiting[waiting.fd] = waiting
        self.loop.add_reader(waiting.fd, waiting.step)

    def peeked(self, waiting: Handshake) -> bool:
        """The first byte (after a PROXY header, if expected): True if it starts a TLS handshake, which
        `waiting` goes on with; else plain HTTP is opened, or the connection closed, or it waits on."""
        fd = waiting.fd
        expect_header = self.proxy_protocol and waiting.proxied is None
        try:
            first = waiting.sock.recv(V2_MAX if expect_header else 1, socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            first = b""
        if first and expect_header:
            after = self._proxy_header(waiting, first)
            if after is None:
                return False
            first = after
        if first and (first[0] == 0x16 or first[0] & 0x80 != 0):
            del self.waiting[fd]
            waiting.start()             # the registration goes on
            return True
        self._forget(fd)
        if not first:               # closed (or reset) before a byte: nginx closes without a word
            self._close(waiting.sock)
            return False
        self.opened(waiting.sock, None, waiting.proxied, waiting.peer)
        return False

    def _proxy_header(self, waiting: Handshake, peeked: bytes) -> bytes | None:
        """nginx's ngx_http_ssl_handshake with proxy_protocol: the header must be whole in what has come
        (else a broken header); it is consumed, the handshake's first byte is what follows. None: wait."""
        result = parse(peeked)
        if not isinstance(result, Parsed):
            reason = result.reason if isinstance(result, Malformed) else \
                f'broken header: "{peeked.decode("latin-1")}"'
            self._log_client(waiting, "error", reason, "reading PROXY protocol")
            return b""
        try:
            waiting.sock.recv(result.length)
        except OSError:
            return b""
        waiting.proxied = (result.header if result.header.transport == "stream" else None,)
        return peeked[result.length:result.length + 1] or None

    def timed_out(self, waiting: Handshake) -> None:
        """No first byte within client_header_timeout."""
        fd = waiting.fd
        if self.waiting.get(fd) is not waiting:
            return
        self._forget(fd)
        self._log_client(waiting, "info", "client timed out (110: Connection timed out)")
        self._close(waiting.sock)

    def _forget(self, fd: int) -> None:
        waiting = self.waiting.pop(fd)
        waiting.timer.cancel()
        self.loop.remove_reader(fd)

    def _close(self, sock: socket.socket) -> None:
        sock.close()
        self.release()

    def handshake_failed(self, peer: str, exc: BaseException) -> None:
        if self.listener.rejecting and rejected(exc):      # ssl_reject_handshake: OpenSSL sent its alert
            self.log.info(f"handshake rejected while SSL handshaking, client: {peer}, server: {self.server}")
            return
        level, text = handshake_failure(exc)
        self.log.log(level, f"{text} while SSL handshaking, client: {peer}, server: {self.server}")

    def _log_client(self, waiting: Handshake, level: str, text: str, action: str = "SSL handshaking") -> None:
        self.log.log(level, f"{text} while {action}, client: {waiting.peer[0]}, server: {self.server}")

    def close_all(self) -> None:
        """Stopping: connections still silent go (nginx closes them at a graceful stop as idle ones)."""
        for fd in list(self.waiting):
            waiting = self.waiting[fd]
            self._forget(fd)
            self._close(waiting.sock)


class Handshake:
    """A connection accepted on an ssl address: its first byte awaited (TlsAccept.peeked), then the server
    side of its TLS handshake, driven by the loop's callbacks on the socket (registered for reading by
    TlsAccept), each bounded by client_header_timeout; a failure is logged as nginx's ngx_ssl_handshake
    logs it and closes the connection."""

    __slots__ = ("accept", "fd", "handshake", "peer", "proxied", "sock", "timer", "tls", "writer")

    def __init__(self, accept: TlsAccept, sock: socket.socket, peer: Peer) -> None:
        self.accept = accept
        self.sock = sock
        self.peer = peer
        self.fd = sock.fileno()
        self.proxied: Proxied = None     # `listen ... ssl proxy_protocol`
        self.tls: ssl.SSLObject | None = None     # until the first byte says TLS
        self.handshake: Callable[[], None]        # OpenSSL's SSL_do_handshake, once started
        self.timer = accept.loop.call_later(accept.timeout, self._timed_out)
        self.writer = False         # registered for writing too (OpenSSL wanted to write)

    def start(self) -> None:
        self.timer.cancel()
        self.tls = server_side(self.accept.listener.default, self.sock)
        self.handshake = self.tls._sslobj.do_handshake      # type: ignore[attr-defined]
        self.timer = self.accept.loop.call_later(self.accept.timeout, self._timed_out)

    def step(self) -> None:
        loop = self.accept.loop
        if self.tls is None and not self.accept.peeked(self):
            return
        try:
            self.handshake()
        except ssl.SSLWantReadError:
            if self.writer:
                self.writer = False
                loop.remove_writer(self.fd)
            return
        except ssl.SSLWantWriteError:
            if not self.writer:
                self.writer = True
                loop.add_writer(self.fd, self.step)
            return
        except OSError as exc:      # ssl.SSLError is an OSError; so is a reset
            self._failed(exc)
            return
        self.timer.cancel()
        if self.writer:
            loop.remove_writer(self.fd)
        try:
            self.accept.opened(self.sock, self.tls, self.proxied, self.peer)
        except BaseException:       # a bug: still, the descriptor must not stay in the loop once closed
            loop.remove_reader(self.fd)
            self.sock.close()
            raise

    def _timed_out(self) -> None:
        if self.tls is None:
            self.accept.timed_out(self)
        else:
            self._failed(TimeoutError())

    def _failed(self, exc: BaseException) -> None:
        accept, loop = self.accept, self.accept.loop
        self.timer.cancel()
        loop.remove_reader(self.fd)
        if self.writer:
            loop.remove_writer(self.fd)
        accept.handshake_failed(self.peer[0], exc)
        discard_input(self.fd)      # what the client sent and OpenSSL did not read: no reset at close
        self.sock.close()
        accept.release()
