"""Stream servers with TLS on either side: `listen ... ssl` (terminated here, nginx's ngx_stream_ssl_module)
and/or `proxy_ssl on` (originated to the upstream). The bytes go through the event loop's SSL transports,
relayed by two protocol objects with flow control, instead of sheer.io.stream_tcp's raw edge-triggered
relay (which moves plain bytes only). nginx's semantics kept: the handshake bounded by
ssl_handshake_timeout, peers tried in turn on connect errors, the first EOF ends the session,
proxy_timeout between two successive reads or writes, the access log at the end."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Callable

from sheer.config.model import StreamServer
from sheer.core import proxy_protocol
from sheer.core.balancers import Balancer, Peer, request_key
from sheer.core.bind import BindTo, BindValueError, bind_to
from sheer.core.rate import RateLimit, evaluate
from sheer.core.tcp_commands import Resolve
from sheer.core.variables import render, render_bytes
from sheer.io.accept import Acceptor
from sheer.io.context import WorkerContext
from sheer.io.http.throttle import Throttle
from sheer.io.http.upstream_tls import UpstreamTlsFailed, UpstreamTlsSetup
from sheer.io.logs import AccessLogger
from sheer.io.slots import ConnectionSlots
from sheer.io.sockets import BindError, address_family, as_address, bound_socket, listening_on, shown
from sheer.io.stream_sides import Side, open_transport
from sheer.io.stream_targets import StreamTargets
from sheer.io.stream_vars import StreamVariables
from sheer.io.tls import TlsListener, connection_info, handshake_failure, rejected
from sheer.io.tls_transport import TlsTransport, accept_tls
from sheer.io.upstream_connect import connect

PENDING_LIMIT = 65536     # bytes held from the client while the upstream connects


class TlsSession:
    def __init__(self, service: TlsStreamService, peer: tuple[str, int], sock: socket.socket) -> None:
        self.service = service
        self.loop = service.loop
        self.vars = StreamVariables(service.ctx, "TCP", peer, lambda: as_address(sock.getsockname()),
                                    time.time())
        self.remote = peer          # as accept(2) gave it: the transport asks no getpeername()
        for name, value in service.server.sets:      # stream `set`, in nginx's preaccess phase
            self.vars.set_variable(name, render(value, self.vars))
        self.client = Side(self, True)
        self.upstream: Side | None = None
        self.pending: list[bytes] = []
        self.pending_size = 0
        self.received = self.sent = 0
        self.last = self.loop.time()
        self.timer: asyncio.TimerHandle | None = None
        self.done = False
        self.peer: Peer | None = None
        self.balancer: Balancer | None = service.balancer
        self.limits: dict[bool, Throttle] = {}    # proxy_upload_rate (True: the client's side), download

    def forward(self, side: Side, data: bytes) -> None:
        self.last = self.loop.time()
        if self.limits and side.client in self.limits:
            if side.client:
                self.received += len(data)
            else:
                self.sent += len(data)
            self.limits[side.client].write([data])
        elif side.client:
            self.received += len(data)
            upstream = self.upstream
            if upstream is None or upstream.transport is None:
                self.pending.append(data)
                self.pending_size += len(data)
                if self.pending_size > PENDING_LIMIT and side.transport is not None:
                    side.transport.pause_reading()
                return
            upstream.transport.write(data)
        else:
            self.sent += len(data)
            if self.client.transport is not None:
                self.client.transport.write(data)

    def paused(self, side: Side, paused: bool) -> None:
        """`side` cannot take more: the other side stops reading until it can."""
        other = self.upstream if side.client else self.client
        if other is not None and other.transport is not None and not self.done:
            if paused:
                other.transport.pause_reading()
            else:
                other.transport.resume_reading()

    async def run(self, sock: socket.socket) -> None:
        service, server = self.service, self.service.server
        self.vars.local     # noqa: B018  (asked while the socket is open, for $server_addr)
        rejecting = service.tls is not None and service.tls.rejecting
        try:
            if service.tls is not None:     # OpenSSL on the socket (sheer.io.tls_transport)
                tls = await accept_tls(self.loop, sock, service.tls.default, server.ssl_handshake_timeout)
                TlsTransport(self.loop, sock, tls, self.client, self.remote).start()
            else:
                await self.loop.connect_accepted_socket(lambda: self.client, sock)
        except (OSError, TimeoutError) as exc:
            # ssl_reject_handshake: OpenSSL sent its alert on the socket itself (sheer.io.tls_transport)
            level, text = (("info", "handshake rejected") if rejecting and rejected(exc)
                           else handshake_failure(exc))
            service.log.log(level, f"{text} while SSL handshaking, client: {self.vars.remote_addr}, "
                                   f"server: {service.name}")
            sock.close()
            self.finish(status=500, logged=True)     # nginx finalizes the session: its line, 500
            return
        transport = self.client.transport
        sslobj = transport.get_extra_info("ssl_object") if transport is not None else None
        if sslobj is not None and service.tls is not None:
            self.vars.tls = info = connection_info(sslobj)
            refusal = service.tls.refusal(sslobj, info)
            if refusal is not None:      # nginx's ngx_stream_ssl_handler: said at info, the session ends
                text = ("client sent no required SSL certificate" if refusal == 496 else
                        f"client SSL certificate verify error: ({info.verify}:{info.verify_text})")
                service.log.info(f"{text}, client: {self.vars.remote_addr}, server: {service.name}")
                self.end(500)
                return
        if server.return_value is not None and self.client.transport is not None:    # stream `return`
            answer = render_bytes(server.return_value, self.vars)
            self.sent += len(answer)
            self.client.transport.write(answer)
            self.end(200)
            return
        self.timer = self.loop.call_later(server.proxy_timeout, self._idle)
        await self._connect()

    async def _connect(self) -> None:
        service, server = self.service, self.service.server
        balancer = self.balancer
        if balancer is None:
            assert server.proxy_pass_url is not None
            choice = service.targets.choose(render(server.proxy_pass_url, self.vars))
            chosen = await service.targets.resolve(choice.value) if isinstance(choice, Resolve) else choice
            if isinstance(chosen, tuple):
                service.log.error(f"{chosen[0]}, client: {self.vars.remote_addr}, server: {service.name}")
                self.end(chosen[1])
                return
            balancer = self.balancer = chosen
        try:
            bind = bind_to(server.proxy_bind, self.vars)
        except BindValueError as exc:     # nginx: said, and the connection is made unbound
            self.service.log.error(f"{exc} while connecting to upstream, client: {self.vars.remote_addr}, "
                                   f"server: {self.service.name}")
            bind = None
        tried = balancer.start(server.proxy_next_upstream_tries, request_key(balancer.upstream, self.vars))
        while not self.done:
            peer = balancer.get(tried, self.loop.time())
            if peer is None:
                self.error("no live upstreams while connecting to upstream", 502)
                return
            self.peer = peer
            self.vars.upstream_addr.append(peer.name)
            failure = await self._open(peer, bind)
            if failure is None:
                return
            balancer.free(peer, failed=True, now=self.loop.time())
            self.peer = None
            self.service.log.error(f"{failure}, client: {self.vars.remote_addr}, server: {service.name}, "
                                   f'upstream: "{peer.name}"')
            if not server.proxy_next_upstream or tried.left <= 0:
                self.end(502)
                return

    def _proxy_header(self) -> bytes:
        """`proxy_protocol on`: the client (after realip) and the address it connected to, as nginx sends."""
        client = self.vars.client[:2]
        local = self.vars.local[:2] if self.vars.local else None
        if self.service.server.proxy_protocol_version == 2:
            return proxy_protocol.v2(client, local, "stream")
        return proxy_protocol.v1(client, local)

    async def _open(self, peer: Peer, bind: BindTo | None) -> str | None:
        """None once connected (and relaying); nginx's reason otherwise."""
        server = self.service.server
        family = address_family(peer.address)
        began = self.loop.time()
        try:
            if bind is None:
                sock = socket.socket(family, socket.SOCK_STREAM)
            else:
                sock = bound_socket(family, socket.SOCK_STREAM, bind.host, bind.port, bind.transparent)
        except BindError as exc:
            return f"{exc.message} while connecting to upstream"
        side = Side(self, False)
        try:
            sock.setblocking(False)
            await connect(self.loop, sock, peer.address, server.proxy_connect_timeout)
            if server.proxy_protocol:      # the PROXY header goes first, before the upstream's handshake
                await self.loop.sock_sendall(sock, self._proxy_header())
            tls = self.service.upstream_tls
            if tls is not None:
                await tls.wrap(self.loop, sock, lambda: side, peer.address, server.proxy_connect_timeout,
                               self.vars)
            else:
                await self.loop.create_connection(lambda: side, sock=sock)
        except UpstreamTlsFailed as failed:
            sock.close()
            return failed.message
        except TimeoutError:
            sock.close()
            return "upstream timed out (110: Connection timed out) while connecting to upstream"
        except OSError as exc:
            sock.close()
            return f"connect() failed ({exc.errno}: {exc.strerror}) while connecting to upstream"
        if self.done:
            if side.transport is not None:
                side.transport.close()
            return None
        self.vars.upstream_connect_time = self.loop.time() - began
        self.upstream = side
        if server.proxy_upload_rate or server.proxy_download_rate:
            self._limit_rates(side)
        if self.pending and side.transport is not None:
            side.transport.write(b"".join(self.pending))
            self.pending, self.pending_size = [], 0
            if self.client.transport is not None:
                self.client.transport.resume_reading()
        return None

    def _limit_rates(self, upstream: Side) -> None:
        """proxy_upload_rate and proxy_download_rate, through the throttle limit_rate uses: what the rate
        does not let go waits there, and its source is not read meanwhile."""
        server, now = self.service.server, self.loop.time()
        for source, to, value in ((self.client, upstream, server.proxy_upload_rate),
                                  (upstream, self.client, server.proxy_download_rate)):
            rate, problem = evaluate(value, self.vars)
            if problem is not None:
                self.service.log.error(f"{problem}, client: {self.vars.remote_addr}, "
                                       f"server: {self.service.name}")
            if rate:
                self.limits[source.client] = Throttle(self.loop, [RateLimit(rate, now)], open_transport(to),
                                                      self._hold(source))

    def _hold(self, source: Side) -> Callable[[bool], None]:
        """Stop (True) or resume (False) reading `source`."""
        def hold(paused: bool) -> None:
            if source.transport is not None and not self.done:
                if paused:
                    source.transport.pause_reading()
                else:
                    source.transport.resume_reading()
        return hold

    def _idle(self) -> None:
        """proxy_timeout: between two successive reads or writes."""
        timeout = self.service.server.proxy_timeout
        if self.loop.time() - self.last >= timeout:
            self.service.log.info("upstream timed out (110: Connection timed out) while proxying "
                                  f"connection, client: {self.vars.remote_addr}, server: {self.service.name}")
            self.end(None)
            return
        self.timer = self.loop.call_at(self.last + timeout, self._idle)

    def error(self, message: str, status: int) -> None:
        self.service.log.error(f"{message}, client: {self.vars.remote_addr}, server: {self.service.name}")
        self.end(status)

    def end(self, status: int | None) -> None:
        if self.done:
            return
        held = [throttle for throttle in self.limits.values() if throttle.queue]
        if held and status is None:
            held[0].finish(lambda: self.end(status))     # what a rate holds back is sent first
            return
        for side in (self.client, self.upstream):
            if side is not None and side.transport is not None:
                side.transport.close()
        self.finish(status if status is not None else 200, logged=True)

    def finish(self, status: int, logged: bool) -> None:
        if self.done:
            return
        self.done = True
        if self.timer is not None:
            self.timer.cancel()
        for throttle in self.limits.values():
            throttle.close()
        if self.peer is not None and self.balancer is not None:
            self.balancer.free(self.peer, failed=False, now=self.loop.time())
        v = self.vars
        v.status = status
        v.bytes_received = v.upstream_bytes_sent = self.received
        v.bytes_sent = v.upstream_bytes_received = self.sent
        if logged and self.service.access:
            with contextlib.suppress(Exception):
                self.service.access.write(v)
        self.service.closed(self)


class TlsStreamService:
    """Satisfies sheer.io.service.Service for a stream server with TLS on a side."""

    def __init__(self, sock: socket.socket, server: StreamServer, ctx: WorkerContext,
                 ssl: bool = True) -> None:
        self.sock = sock
        self.server = server
        self.ctx = ctx
        self.log = ctx.error_log(server.error_log)
        self.access = AccessLogger(server.access_logs)
        self.balancer = ctx.balancer_for(server.upstream) if server.upstream else None
        self.targets = StreamTargets(ctx, server.resolver)
        host, port = listening_on(sock)
        self.name = shown(host, port)
        self.tls: TlsListener | None = None
        if server.tls is not None and ssl:          # `listen ... ssl` (a server's other listens are plain)
            made = ctx.tls.get((host, port, False)) if ctx.tls is not None else None
            self.tls = made if made is not None else TlsListener.for_stream(server.tls)
        self.upstream_tls = UpstreamTlsSetup(server.proxy_ssl) if server.proxy_ssl is not None else None
        self.loop = asyncio.get_running_loop()
        self.slots: ConnectionSlots = None  # type: ignore[assignment]  # set by start()
        self.acceptor: Acceptor | None = None
        self.sessions: set[TlsSession] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self._idle = asyncio.Event()
        self._idle.set()

    async def start(self) -> None:
        self.slots = self.ctx.slots()
        self.acceptor = Acceptor(self.loop, self.sock, self.slots, self.log, self.name, self._accepted,
                                 need=2)
        self.acceptor.start()

    def _accepted(self, fd: int, peer: tuple[str, int]) -> None:
        if not self.slots.take():            # the upstream connection's, as nginx counts both
            self.slots.release()
            socket.socket(fileno=fd).close()
            return
        sock = socket.socket(self.sock.family, socket.SOCK_STREAM, 0, fd)
        session = TlsSession(self, peer, sock)
        self.sessions.add(session)
        self._idle.clear()
        task = self.loop.create_task(session.run(sock))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def closed(self, session: TlsSession) -> None:
        if session in self.sessions:
            self.sessions.discard(session)
            self.slots.release()
            self.slots.release()
        if not self.sessions:
            self._idle.set()

    def stop_accepting(self) -> None:
        if self.acceptor is not None and self.acceptor.accepting:
            self.acceptor.stop()
            self.sock.close()

    async def drain(self) -> None:
        await self._idle.wait()

    def abort(self) -> None:
        self.stop_accepting()
        for session in list(self.sessions):
            session.end(None)
