"""TCP stream proxy: a bidirectional relay with connect retries, an idle timeout and optional half-close."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Callable

from sheer.config.model import StreamServer
from sheer.core import proxy_protocol
from sheer.core.balancer import Peer, request_key
from sheer.core.bind import PLUMBING_HINT, BindValueError, bind_to
from sheer.core.realip import from_proxy_protocol
from sheer.core.variables import render_bytes
from sheer.io.logs import AccessLogger
from sheer.io.stream_vars import StreamVariables
from sheer.io.upstream import UpstreamConnectError, open_stream
from sheer.runtime.context import WorkerContext

PENDING_LIMIT = 65536   # bytes kept from the client while the upstream connects (nginx: proxy_buffer_size)


class TcpStreamService:
    def __init__(self, sock: socket.socket, server: StreamServer, ctx: WorkerContext) -> None:
        self.sock = sock
        self.server = server
        self.ctx = ctx
        self.log = ctx.error_log(server.error_log)
        self.access = AccessLogger(server.access_logs)
        self.balancer = ctx.balancer(server.upstream) if server.upstream else None
        self.listen_name = str(server.listens[0]).removesuffix(" udp")
        host, port = sock.getsockname()[:2]
        self.accept_proxy = any(listen.proxy_protocol for listen in server.listens
                                if listen.port == port and listen.bind_host == host and not listen.udp)
        self.sessions: set[Session] = set()
        self._server: asyncio.AbstractServer | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        self.loop = asyncio.get_running_loop()

    async def start(self) -> None:
        self._server = await self.loop.create_server(lambda: Session(self), sock=self.sock)

    def stop_accepting(self) -> None:
        if self._server is not None:
            self._server.close()

    async def drain(self) -> None:
        await self._idle.wait()

    def abort(self) -> None:
        self.stop_accepting()
        for session in list(self.sessions):
            session.close()

    def opened(self, session: Session) -> None:
        self.sessions.add(session)
        self._idle.clear()

    def closed(self, session: Session) -> None:
        self.sessions.discard(session)
        if not self.sessions:
            self._idle.set()


class UpstreamSide(asyncio.Protocol):
    __slots__ = ("received", "session", "transport", "write")

    def __init__(self, session: Session) -> None:
        self.session = session
        self.transport: asyncio.Transport | None = None
        self.received = 0                          # bytes from the upstream (Session.count)
        self.write = session.client.write          # type: ignore[union-attr]

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        # The relay's hot path, once per chunk: count and pass on, nothing else.
        self.received += len(data)
        self.write(data)

    def eof_received(self) -> bool:
        self.session.half_closed(from_client=False)
        return True

    def pause_writing(self) -> None:
        self.session.client.pause_reading()  # type: ignore[union-attr]

    def resume_writing(self) -> None:
        self.session.client.resume_reading()  # type: ignore[union-attr]

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None and self.session.vars.status == 200:
            self.session.error = f"recv() failed ({exc}) while proxying and reading from upstream"
        self.session.close()


class Session(asyncio.Protocol):
    """One client connection and, once connected, its upstream connection."""

    def __init__(self, service: TcpStreamService) -> None:
        self.service = service
        self.client: asyncio.Transport | None = None
        self.upstream: UpstreamSide | None = None
        self.vars: StreamVariables
        self.connecting: asyncio.Task[None] | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.received = 0                      # bytes from the client (Session.count)
        self.upstream_write: Callable[[bytes], object] | None = None
        self.idle_mark = (0, 0)                # (received, upstream.received) at the last idle check
        self.eof_client = self.eof_upstream = False
        self.done = False
        self.error: str | None = None
        self.peer: Peer | None = None
        self.pending: list[bytes] = []         # from the client, before the upstream connected
        self.pending_size = 0
        self.eof_pending = False
        self.header: bytes | None = None       # `listen ... proxy_protocol`: the PROXY header read so far

    # --- client side ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.client = transport  # type: ignore[assignment]
        service = self.service
        service.opened(self)
        self.vars = StreamVariables(service.ctx, "TCP", transport.get_extra_info("peername"),
                                    transport.get_extra_info("sockname"), time.time())
        if service.accept_proxy:
            self.header = b""
            self.timer = service.loop.call_later(service.server.proxy_protocol_timeout, self.header_timed_out)
            return
        self.start()

    def start(self) -> None:
        service = self.service
        transport = self.client
        assert transport is not None
        if service.server.return_value is not None:
            transport.write(render_bytes(service.server.return_value, self.vars))
            self.close()
            return
        # The client may keep sending while the upstream connects: what arrives is kept (up to
        # PENDING_LIMIT, then reading pauses) and goes out first once connected.
        self.connecting = service.loop.create_task(self.connect())

    def data_received(self, data: bytes) -> None:
        if self.header is not None:
            data = self.read_header(self.header + data)
            if not data:
                return
        self.received += len(data)
        write = self.upstream_write
        if write is None:
            self.pending.append(data)
            self.pending_size += len(data)
            if self.pending_size > PENDING_LIMIT:
                self.client.pause_reading()  # type: ignore[union-attr]
            return
        write(data)

    def read_header(self, buffer: bytes) -> bytes:
        """Collect the PROXY header; once complete, apply it and start; returns the payload after it."""
        result = proxy_protocol.parse(buffer)
        if isinstance(result, proxy_protocol.NeedMore):
            self.header = buffer
            return b""
        self.header = None
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if isinstance(result, proxy_protocol.Malformed):
            self.fail(f"{result.reason} while reading PROXY protocol", status=400)
            return b""
        if result.header.transport == "stream":   # nginx ignores the addresses of other transports
            self.vars.proxy = result.header
            real = from_proxy_protocol(self.service.server.real_ip, self.vars.peer[0], result.header)
            if real is not None:
                self.vars.client = real
        self.start()
        return b"" if self.done else buffer[result.length:]

    def header_timed_out(self) -> None:
        self.timer = None
        self.service.log.info(f"client timed out (110: Connection timed out) while reading PROXY protocol, "
                              f"client: {self.vars.remote_addr}, server: {self.service.listen_name}")
        self.close()

    def eof_received(self) -> bool:
        if self.header is not None:
            self.service.log.info(f"client closed connection while reading PROXY protocol, "
                                  f"client: {self.vars.remote_addr}, server: {self.service.listen_name}")
            self.close()
            return False
        if self.upstream is None:
            self.eof_pending = True
            return True
        self.half_closed(from_client=True)
        return True

    def pause_writing(self) -> None:
        if self.upstream and self.upstream.transport:
            self.upstream.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.upstream and self.upstream.transport:
            self.upstream.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.close()

    # --- upstream ------------------------------------------------------------------------

    async def connect(self) -> None:
        service = self.service
        server = service.server
        balancer = service.balancer
        assert balancer is not None
        loop = service.loop
        try:
            bind = bind_to(server.proxy_bind, self.vars)
        except BindValueError as exc:
            self.fail(f"{exc} while connecting to upstream", status=500)
            return
        tried = balancer.start(server.proxy_next_upstream_tries, request_key(balancer.upstream, self.vars))
        started = loop.time()
        while True:
            peer = balancer.get(tried, loop.time())
            if peer is None:
                self.fail("no live upstreams while connecting to upstream")
                return
            self.peer = peer
            self.vars.upstream_addr.append(peer.name)
            begin = loop.time()
            try:
                _, protocol = await open_stream(loop, lambda: UpstreamSide(self), peer.address,
                                                server.proxy_connect_timeout, bind)
            except UpstreamConnectError as exc:
                self.peer = None
                if exc.local is not None:
                    balancer.free(peer, failed=False, now=loop.time())
                    service.log.log(exc.local.level, exc.local.describe(self.context(peer)))
                    self.fail(None, status=500)
                    return
                disabled = balancer.free(peer, failed=True, now=loop.time())
                hint = f"; {PLUMBING_HINT}" if exc.timed_out and bind is not None and bind.transparent else ""
                service.log.error(f"{exc.message} while connecting to upstream, {self.context(peer)}{hint}")
                if disabled:
                    service.log.warning(f"upstream server temporarily disabled while connecting to upstream, "
                                     f"{self.context(peer)}")
                limit = server.proxy_next_upstream_timeout
                if (not server.proxy_next_upstream or tried.left <= 0
                        or (limit and loop.time() - started >= limit) or self.done):
                    self.fail(None)
                    return
                continue
            self.vars.upstream_connect_time = loop.time() - begin
            self.upstream = protocol  # type: ignore[assignment]
            self.upstream_write = protocol.transport.write  # type: ignore[attr-defined]
            break
        if self.done:
            self.upstream.transport.close()  # type: ignore[union-attr]
            return
        if server.proxy_protocol:
            self.upstream.transport.write(self.proxy_header())  # type: ignore[union-attr]
        if self.pending:
            self.upstream.transport.writelines(self.pending)  # type: ignore[union-attr]
            self.pending, self.pending_size = [], 0
        self.arm_timer()
        if self.eof_pending:
            self.half_closed(from_client=True)
        else:
            self.client.resume_reading()  # type: ignore[union-attr]

    def proxy_header(self) -> bytes:
        """`proxy_protocol on`: the client (after realip) and the address it connected to, as nginx sends."""
        client, local = self.vars.client[:2], self.vars.local[:2]
        if self.service.server.proxy_protocol_version == 2:
            return proxy_protocol.v2(client, local, "stream")
        return proxy_protocol.v1(client, local)

    def count(self) -> StreamVariables:
        """The byte counters, kept on the protocols while relaying, copied into the variables."""
        v = self.vars
        v.bytes_received = v.upstream_bytes_sent = self.received
        v.bytes_sent = v.upstream_bytes_received = self.upstream.received if self.upstream is not None else 0
        return v

    def context(self, peer: Peer | None) -> str:
        v = self.count()
        text = f"client: {v.remote_addr}, server: {self.service.listen_name}"
        if peer is not None:
            text += f', upstream: "{peer.name}"'
        text += f", bytes from/to client:{v.bytes_received}/{v.bytes_sent}"
        text += f", bytes from/to upstream:{v.upstream_bytes_received}/{v.upstream_bytes_sent}"
        return text

    def fail(self, message: str | None, status: int = 502) -> None:
        if message:
            self.service.log.error(f"{message}, {self.context(None)}")
        self.vars.status = status
        self.close()

    # --- lifetime ------------------------------------------------------------------------

    def arm_timer(self) -> None:
        self.timer = self.service.loop.call_later(self.service.server.proxy_timeout, self.idle_check)

    def idle_check(self) -> None:
        mark = (self.received, self.upstream.received if self.upstream is not None else 0)
        if mark != self.idle_mark:
            self.idle_mark = mark
            self.arm_timer()
            return
        self.service.log.info(f"connection timed out, {self.context(self.peer)}")
        self.close()

    def half_closed(self, from_client: bool) -> None:
        """EOF from one side. `proxy_half_close off` (nginx's default) ends the session: closing a
        transport still sends what it holds, so the data before the EOF is delivered. `on` passes
        the EOF on (shutdown) and ends the session once both sides have sent theirs."""
        service = self.service
        if not service.server.proxy_half_close:
            if service.log.enabled("info"):
                v = self.count()
                service.log.info(f"{'client' if from_client else 'upstream'} disconnected, "
                                 f"bytes from/to client:{v.bytes_received}/{v.bytes_sent}, "
                                 f"bytes from/to upstream:{v.upstream_bytes_received}/{v.upstream_bytes_sent}")
            self.close()
            return
        if from_client:
            self.eof_client = True
            upstream = self.upstream.transport if self.upstream else None
            if upstream is not None and upstream.can_write_eof():
                upstream.write_eof()
        else:
            self.eof_upstream = True
            if self.client is not None and self.client.can_write_eof():
                self.client.write_eof()
        if self.eof_client and self.eof_upstream:
            self.close()

    def close(self) -> None:
        if self.done:
            return
        self.done = True
        service = self.service
        if self.timer is not None:
            self.timer.cancel()
        if self.connecting is not None and not self.connecting.done():
            self.connecting.cancel()
        if self.upstream is not None and self.upstream.transport is not None:
            self.upstream.transport.close()
        if self.peer is not None and service.balancer is not None:
            service.balancer.free(self.peer, failed=False, now=service.loop.time())
            self.peer = None
        if self.error:
            service.log.error(f"{self.error}, {self.context(None)}")
        if self.client is not None:
            self.client.close()
        if service.access:
            with contextlib.suppress(Exception):
                service.access.write(self.count())
        service.closed(self)


