"""HttpService: one listening socket's HTTP virtual hosts, served by one worker."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Coroutine
from typing import Any

from sheer.config.model import HttpServer
from sheer.io.accept import Acceptor
from sheer.io.context import WorkerContext
from sheer.io.counting import HttpCounters
from sheer.io.http import static
from sheer.io.http.client import ClientConnection, Handler
from sheer.io.http.proxy_pass import proxy
from sheer.io.http.site import Site
from sheer.io.http.status import StatusLocations
from sheer.io.http.tls_accept import Peer, Proxied, TlsAccept
from sheer.io.slots import ConnectionSlots, Reusable
from sheer.io.sockets import listening_on, shown
from sheer.io.tls import TlsListener
from sheer.io.tls_transport import RECV, WOULD_BLOCK, TlsTransport


class HttpService:
    """Satisfies sheer.io.service.Service, and is what its connections see as their
    sheer.io.http.client.Listener."""

    def __init__(self, sock: socket.socket, servers: list[HttpServer], ctx: WorkerContext) -> None:
        self.sock = sock
        self.ctx = ctx
        self.site = Site(servers, ctx)
        self.loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]  # set by start()
        self.slots: ConnectionSlots = None  # type: ignore[assignment]  # set by start()
        self.acceptor: Acceptor | None = None
        self.connections: set[ClientConnection] = set()
        self.opening: set[asyncio.Task[object]] = set()
        self.connected = 0
        self.draining = False
        self.proxy: Handler = proxy
        self.status: Handler = StatusLocations(ctx).serve
        self.static: Handler = static.serve
        self._drained: asyncio.Future[None] | None = None
        host, port = listening_on(sock)
        # `listen ... proxy_protocol` belongs to the address: any server listing it turns it on.
        self.family = sock.family          # asked once: each ask makes an AddressFamily (an enum call)
        self.unix = self.family == socket.AF_UNIX
        self.proxy_protocol = any(listen.proxy_protocol for server in servers for listen in server.listens
                                  if listen.port == port and listen.bind_host == host)
        self.name = shown(host, port)
        self.log = ctx.error_log(None)
        self.counters = HttpCounters(ctx.counters, ctx.shared.layout, servers)
        # `listen ... ssl` belongs to the address too; its contexts come made by the master (shared
        # ticket keys), or are made here when a service runs alone (tests)
        self.tls: TlsListener | None = None
        if any(listen.ssl for server in servers for listen in server.listens
               if listen.port == port and listen.bind_host == host):
            made = ctx.tls.get((host, port, False)) if ctx.tls is not None else None
            self.tls = made if made is not None else TlsListener.build(servers, {})
        self.tls_accept: TlsAccept | None = None

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.slots = self.ctx.slots()
        # The master owns `sock`; this worker accepts on its own duplicate, with its own loop.
        self.acceptor = Acceptor(self.loop, self.sock.dup(), self.slots, self.log, self.name, self._accepted)
        if self.tls is not None:
            self.tls_accept = TlsAccept(self.loop, self.tls, self.site.limits.client_header_timeout, self.log,
                                        self.name, self.slots.release, self._open_tls, self.proxy_protocol)
        self.acceptor.start()

    def _accepted(self, fd: int, peer: tuple[str, int]) -> None:
        sock = socket.socket(self.family, socket.SOCK_STREAM, 0, fd)
        try:
            if self.unix:
                sock.getpeername()      # reset before we got to it: as TCP_NODELAY tells for TCP
            else:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:       # reset before we got to it
            sock.close()
            self.slots.release()
            return
        if self.tls_accept is not None:
            sock.setblocking(False)
            self.tls_accept.accepted(sock, peer)      # its first byte says TLS or plain HTTP
            return
        self._start(self._open(sock))

    def _start(self, opening: Coroutine[Any, Any, None]) -> None:
        task = self.loop.create_task(opening)
        self.opening.add(task)
        task.add_done_callback(self.opening.discard)

    async def _open(self, sock: socket.socket) -> None:
        try:
            await self.loop.connect_accepted_socket(lambda: ClientConnection(self), sock)
        except OSError:
            sock.close()
            self.slots.release()

    def _open_tls(self, sock: socket.socket, tls: ssl.SSLObject | None, proxied: Proxied, peer: Peer) -> None:
        if tls is None:
            self._start(self._open_plain(sock, proxied))
            return
        # Handshaken by TlsAccept, the socket still registered: read at once, as nginx does after its
        # handshake. uvloop calls a reader once for a socket in error (a reset) and then stops polling it:
        # when that call went to the handshake (the client's Finished and its reset together, `openssl
        # s_time -new`), only a read finds the reset.
        try:
            first = tls._sslobj.read(RECV)     # type: ignore[attr-defined]
        except WOULD_BLOCK:
            first = None
        except ssl.SSLEOFError:         # the TCP FIN without close_notify (a ragged EOF): an end too
            first = b""
        except OSError:                 # a reset, or a TLS error: closed as the transport would (no alert)
            self._ended(sock, None)
            return
        if first == b"":
            self._ended(sock, tls)
            return
        TlsTransport(self.loop, sock, tls, ClientConnection(self, 0, proxied), peer).start(first)

    def count_accepted(self) -> int:
        """A connection accepted: counted (the listener's, stub_status's accepts), numbered ($connection)."""
        self.connected += 1
        counters = self.counters
        counters.row[counters.accepted] += 1
        return self.site.ctx.connection_number()

    def _ended(self, sock: socket.socket, tls: ssl.SSLObject | None) -> None:
        """The client ended the connection right after its handshake, before a byte of a request: counted
        and numbered as any connection (stub_status, $connection), closed as the transport closes one
        (close_notify after a clean end), without an HTTP connection's objects (nginx makes a request
        only when its bytes come)."""
        self.count_accepted()
        if tls is not None:
            try:
                tls.unwrap()            # close_notify
            except (OSError, ValueError):
                pass
        self.loop.remove_reader(sock.fileno())
        sock.close()
        self.slots.release()

    async def _open_plain(self, sock: socket.socket, proxied: Proxied) -> None:
        """Plain HTTP on an ssl address: read, then answered 400 as nginx's NGX_HTTP_TO_HTTPS (497)."""
        try:
            await self.loop.connect_accepted_socket(lambda: ClientConnection(self, 497, proxied), sock)
        except OSError:
            sock.close()
            self.slots.release()

    def reusable(self, conn: Reusable, idle: bool) -> None:
        self.slots.idle(conn, idle)

    def release(self) -> None:
        self.slots.release()

    def stop_accepting(self) -> None:
        if self.tls_accept is not None:
            self.tls_accept.close_all()
        if self.acceptor is not None:
            self.acceptor.stop()
            self.acceptor.sock.close()
            self.acceptor = None

    async def drain(self) -> None:
        self.stop_accepting()
        self.draining = True
        for conn in list(self.connections):
            if conn.idle:
                conn.close()
        if not self.connections:
            return
        self._drained = self.loop.create_future()
        await self._drained

    def abort(self) -> None:
        self.stop_accepting()
        self.draining = True
        for conn in list(self.connections):
            conn.abort()

    def connection_closed(self, conn: ClientConnection) -> None:
        self.connections.discard(conn)
        if not self.connections and self._drained is not None and not self._drained.done():
            self._drained.set_result(None)
