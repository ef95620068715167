"""TCP stream proxy: a bidirectional relay with connect retries, an idle timeout and optional half-close.

Sessions work on plain non-blocking sockets, not on asyncio transports: a transport pair costs
more to set up than the whole relay of a short connection. Their sockets sit in one
edge-triggered epoll per worker, registered once for their whole life as nginx does (closing a
socket takes it out), and that epoll sits in the event loop; a new connection per request ran
~45% faster than with transports, long-lived ones as fast. Each direction reads into one buffer
shared by the worker's sessions and sends from it at once; only what the receiver does not take
is copied, and that direction is not read again until it is sent (nginx's behaviour with its
per-direction buffer).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import select
import socket
import time
from collections.abc import Callable
from typing import ClassVar

from sheer.config.model import StreamServer
from sheer.core import proxy_protocol
from sheer.core.balancers import Balancer, Peer, Tried, request_key
from sheer.core.bind import PLUMBING_HINT, BindTo, BindValueError, bind_to
from sheer.core.realip import from_proxy_protocol
from sheer.core.variables import render, render_bytes
from sheer.io import stream_preread
from sheer.io.accept import Acceptor
from sheer.io.context import WorkerContext
from sheer.io.logs import AccessLogger, LogLimiter
from sheer.io.slots import ConnectionSlots
from sheer.io.stream_targets import StreamTargets
from sheer.io.stream_vars import StreamVariables
from sheer.io.upstream_connect import TIMED_OUT, UpstreamConnectError, connect_now, start_connect

PENDING_LIMIT = 65536    # bytes kept from the client while the upstream connects (nginx: proxy_buffer_size)
BUFFER_SIZE = 262144
BUFFER = bytearray(BUFFER_SIZE)
VIEW = memoryview(BUFFER)
_AGAIN = (BlockingIOError, InterruptedError)
READ_EVENTS = select.EPOLLIN | select.EPOLLRDHUP | select.EPOLLHUP | select.EPOLLERR
END_EVENTS = select.EPOLLRDHUP | select.EPOLLHUP | select.EPOLLERR    # read until EOF or the error
OUT = select.EPOLLOUT
CONNECTED = (0, errno.EISCONN)


class Poller:
    """One edge-triggered epoll for the stream sessions of a worker, itself watched by the loop."""

    _by_loop: ClassVar[dict[asyncio.AbstractEventLoop, Poller]] = {}

    @classmethod
    def of(cls, loop: asyncio.AbstractEventLoop) -> Poller:
        poller = cls._by_loop.get(loop)
        if poller is None:
            poller = cls._by_loop[loop] = cls(loop)
        return poller

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.epoll = select.epoll()
        self.handlers: dict[int, Callable[[int], None]] = {}
        loop.add_reader(self.epoll.fileno(), self.dispatch)

    def add(self, fd: int, handler: Callable[[int], None]) -> None:
        self.handlers[fd] = handler
        self.epoll.register(fd, READ_EVENTS | OUT | select.EPOLLET)

    def forget(self, fd: int) -> None:
        """Before closing `fd` (which takes it out of the epoll): later events for it are ignored.
        A stale event can still reach a new socket that got the same number in the same batch:
        handlers treat every event as a hint and check with the socket itself."""
        self.handlers.pop(fd, None)

    def dispatch(self) -> None:
        handlers = self.handlers
        for fd, events in self.epoll.poll(0, 256):
            handler = handlers.get(fd)
            if handler is not None:
                try:
                    handler(events)
                except Exception as exc:  # noqa: BLE001 -- edges are not repeated: one session's bug must
                    # cost that session only, not the events of the others fetched in the same batch
                    crashed = getattr(getattr(handler, "__self__", None), "crashed", None)
                    if crashed is not None:
                        crashed(exc)


class TcpStreamService:
    def __init__(self, sock: socket.socket, server: StreamServer, ctx: WorkerContext) -> None:
        self.sock = sock
        self.server = server
        self.ctx = ctx
        self.log = ctx.error_log(server.error_log)
        self.access = AccessLogger(server.access_logs)
        self.balancer = ctx.balancer_for(server.upstream) if server.upstream else None
        self.targets = StreamTargets(ctx)       # `proxy_pass $variable`
        self.listen_name = str(server.listens[0]).removesuffix(" udp")
        host, port = sock.getsockname()[:2]
        self.accept_proxy = any(listen.proxy_protocol for listen in server.listens
                                if listen.port == port and listen.bind_host == host and not listen.udp)
        self.family = socket.AddressFamily(sock.family)
        self.poller = Poller.of(asyncio.get_running_loop())
        self.sessions: set[Session] = set()
        self.idle: dict[Session, float] = {}       # watched for proxy_timeout, by when last checked
        self._sweep: asyncio.TimerHandle | None = None
        self.acceptor: Acceptor | None = None
        self.slots: ConnectionSlots = None  # type: ignore[assignment]  # set by start()
        self.per_session = 1 if server.return_value is not None else 2     # worker_connections taken
        self._idle = asyncio.Event()
        self._idle.set()
        self.loop = asyncio.get_running_loop()

    async def start(self) -> None:
        self.slots = self.ctx.slots()
        self.short = LogLimiter(self.log, self.loop.call_later, self.loop.time)
        self.acceptor = Acceptor(self.loop, self.sock, self.slots, self.log, self.listen_name, self._accepted,
                                 need=self.per_session)
        self.acceptor.start()

    def _accepted(self, fd: int, peer: tuple[str, int]) -> None:
        """A connection with its slot; a proxied one takes a second for its upstream connection, as
        nginx counts both against worker_connections."""
        if self.per_session == 2 and not self.slots.take():
            os.close(fd)
            self.slots.release()
            return
        session = Session(self, socket.socket(self.family, socket.SOCK_STREAM, 0, fd), peer)
        if session.done and session not in self.sessions:      # reset before it started
            for _ in range(self.per_session):
                self.slots.release()

    def out_of_descriptors(self, level: str, line: str) -> None:
        """No descriptor for an upstream socket: said once a second with a count, and no one else
        is accepted (new clients wait in the listen queue) until a connection gives its back."""
        self.short.report(level, line)
        if self.acceptor is not None and self.acceptor.accepting:
            self.acceptor.hold()

    def stop_accepting(self) -> None:
        """Stop for good, closing this worker's copy of the listener: once the master has closed
        its own, new clients are refused instead of queueing on a socket nobody serves."""
        if self.acceptor is not None and self.acceptor.accepting:
            self.acceptor.stop()
            self.sock.close()

    async def drain(self) -> None:
        await self._idle.wait()

    def abort(self) -> None:
        self.stop_accepting()
        for session in list(self.sessions):
            session.close()

    # proxy_timeout: sessions in the order they were last checked (so by due time, the timeout
    # being the same for all), one timer for the oldest: no timer per session.

    def watch(self, session: Session) -> None:
        self.idle[session] = self.loop.time()
        if self._sweep is None:
            self._sweep = self.loop.call_later(self.server.proxy_timeout, self._sweep_idle)

    def _sweep_idle(self) -> None:
        self._sweep = None
        idle = self.idle
        timeout = self.server.proxy_timeout
        now = self.loop.time()
        while idle:
            session = next(iter(idle))
            if idle[session] + timeout > now:
                break
            del idle[session]
            if session.idle_check():
                idle[session] = now
        if idle:
            self._sweep = self.loop.call_at(idle[next(iter(idle))] + timeout, self._sweep_idle)

    def opened(self, session: Session) -> None:
        self.sessions.add(session)
        self._idle.clear()

    def closed(self, session: Session) -> None:
        if session in self.sessions:
            self.sessions.discard(session)
            for _ in range(self.per_session):
                self.slots.release()
        if not self.sessions:
            self._idle.set()


class Session:
    """One client connection and, once connected, its upstream connection."""

    __slots__ = (
        "balancer",
        "bind",
        "client",
        "client_end",
        "client_eof",
        "client_ready",
        "connect_began",
        "connect_timer",
        "done",
        "error",
        "flushed",
        "header",
        "idle_mark",
        "loop",
        "peer",
        "pending",
        "pending_size",
        "poller",
        "preread",
        "received",
        "sent",
        "service",
        "started",
        "timer",
        "to_client",
        "to_upstream",
        "tried",
        "upstream",
        "upstream_end",
        "upstream_eof",
        "upstream_ready",
        "vars",
    )

    def __init__(self, service: TcpStreamService, conn: socket.socket, peer_address: tuple[str, int]) -> None:
        self.service = service
        self.loop = loop = service.loop
        self.client = conn
        self.upstream: socket.socket | None = None
        self.received = 0              # bytes from the client
        self.sent = 0                  # bytes from the upstream (to the client)
        # bytes of held-back remainders sent since (progress, for proxy_timeout)
        self.flushed = 0
        self.to_client: bytes | None = None      # what the client's socket did not take yet
        self.to_upstream: bytes | None = None
        self.pending: list[bytes] = []           # from the client, before the upstream connected
        self.pending_size = 0
        self.client_eof = self.upstream_eof = False
        self.done = False
        self.error: str | None = None
        self.peer: Peer | None = None
        self.bind: BindTo | None = None
        self.tried: Tried | None = None
        self.started = self.connect_began = 0.0
        self.client_ready = self.upstream_ready = False    # may have data (an edge not read to the end)
        self.client_end = self.upstream_end = False        # EOF or an error is queued: read to the end
        self.poller = service.poller
        self.timer: asyncio.TimerHandle | None = None
        self.connect_timer: asyncio.TimerHandle | None = None
        self.idle_mark = (0, 0, 0)
        self.header: bytes | None = None      # `listen ... proxy_protocol`: the PROXY header read so far
        self.preread: bytes | None = None     # `ssl_preread on`: the ClientHello read so far (also pending)
        self.balancer: Balancer | None = service.balancer
        conn.setblocking(False)
        try:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:        # reset before we got to it
            conn.close()
            self.done = True
            return
        service.opened(self)
        self.vars = StreamVariables(service.ctx, "TCP", peer_address, conn.getsockname, time.time())
        self.poller.add(conn.fileno(), self.client_event)
        if service.accept_proxy:
            self.header = b""
            self.timer = loop.call_later(service.server.proxy_protocol_timeout, self.header_timed_out)
            return
        try:
            stream_preread.begin(self)
        except Exception as exc:  # noqa: BLE001 -- a bug costs this session, not the accept loop
            self.crashed(exc)

    @property
    def server(self) -> StreamServer:
        return self.service.server

    def start(self) -> None:
        service = self.service
        server = service.server
        if server.return_value is not None:
            self.client_eof = True       # nothing more is read: the session ends once this is sent
            self.to_client = render_bytes(server.return_value, self.vars)
            self.flush_client()
            if not self.done:
                service.watch(self)      # a client that never reads it is let go after proxy_timeout
            return
        balancer = self.balancer
        if balancer is None:         # `proxy_pass $variable`
            assert server.proxy_pass_url is not None
            chosen = service.targets.choose(render(server.proxy_pass_url, self.vars))
            if isinstance(chosen, tuple):
                self.fail(chosen[0], status=chosen[1])
                return
            balancer = self.balancer = chosen
        try:
            self.bind = bind_to(server.proxy_bind, self.vars)
        except BindValueError as exc:
            self.fail(f"{exc} while connecting to upstream", status=500)
            return
        self.tried = balancer.start(server.proxy_next_upstream_tries,
                                    request_key(balancer.upstream, self.vars))
        self.started = self.loop.time()
        self.connect_next()

    # --- connecting ----------------------------------------------------------------------

    def connect_next(self) -> None:
        """Try peers until one connects, one is in progress, or none is left."""
        service = self.service
        server = service.server
        balancer = self.balancer
        assert balancer is not None and self.tried is not None
        loop = self.loop
        while not self.done:
            peer = balancer.get(self.tried, loop.time())
            if peer is None:
                self.fail("no live upstreams while connecting to upstream")
                return
            self.peer = peer
            self.vars.upstream_addr.append(peer.name)
            self.connect_began = loop.time()
            try:
                sock, connected = start_connect(peer.address, self.bind)
            except UpstreamConnectError as exc:
                if not self.connect_failed(exc):
                    return
                continue
            self.upstream = sock
            self.upstream_ready = self.upstream_end = False
            self.poller.add(sock.fileno(), self.upstream_event)
            if connected:
                self.connected()
            else:
                self.connect_timer = loop.call_later(server.proxy_connect_timeout, self.connect_timed_out)
            return

    def connect_check(self) -> None:
        """An event on a connecting socket: asking connect() again tells done, failed or not yet."""
        sock = self.upstream
        assert sock is not None and self.peer is not None
        code = connect_now(sock, self.peer.address)
        if code == errno.EINPROGRESS:
            return
        self.connect_timer.cancel()  # type: ignore[union-attr]
        self.connect_timer = None
        if code in CONNECTED:
            self.connected()
            return
        self.drop_upstream()
        if self.connect_failed(UpstreamConnectError(f"connect() failed ({code}: {os.strerror(code)})",
                                                    False)):
            self.connect_next()

    def drop_upstream(self) -> None:
        sock = self.upstream
        assert sock is not None
        self.poller.forget(sock.fileno())
        sock.close()
        self.upstream = None

    def connect_timed_out(self) -> None:
        self.connect_timer = None
        self.drop_upstream()
        if self.connect_failed(UpstreamConnectError(TIMED_OUT, True)):
            self.connect_next()

    def connect_failed(self, exc: UpstreamConnectError) -> bool:
        """Log a failed attempt as nginx does; True when another peer may be tried."""
        service = self.service
        server = service.server
        balancer = self.balancer
        peer = self.peer
        assert balancer is not None and peer is not None and self.tried is not None
        now = self.loop.time()
        self.peer = None
        if exc.local is not None:
            balancer.free(peer, failed=False, now=now)
            line = exc.local.describe(self.context(peer))
            if exc.local.errno in (errno.EMFILE, errno.ENFILE):
                service.out_of_descriptors(exc.local.level, line)
            else:
                service.log.log(exc.local.level, line)
            self.fail(None, status=500)
            return False
        disabled = balancer.free(peer, failed=True, now=now)
        bind = self.bind
        hint = f"; {PLUMBING_HINT}" if exc.timed_out and bind is not None and bind.transparent else ""
        service.log.error(f"{exc.message} while connecting to upstream, {self.context(peer)}{hint}")
        if disabled:
            service.log.warning(f"upstream server temporarily disabled while connecting to upstream, "
                                f"{self.context(peer)}")
        limit = server.proxy_next_upstream_timeout
        if (not server.proxy_next_upstream or self.tried.left <= 0
                or (limit and now - self.started >= limit) or self.done):
            self.fail(None)
            return False
        return True

    def connected(self) -> None:
        sock = self.upstream
        assert sock is not None
        self.vars.upstream_connect_time = self.loop.time() - self.connect_began
        server = self.service.server
        first = b"".join(self.pending)
        self.pending, self.pending_size = [], 0
        if server.proxy_protocol:
            first = self.proxy_header() + first
        if first:
            self.send_upstream(first)
        if self.client_eof:
            self.eof(from_client=True)
        else:
            self.pump_client()           # what was left unread at the pending limit
        if self.upstream_ready:
            self.pump_upstream()         # a server that speaks first
        if not self.done:
            self.arm_timer()

    def proxy_header(self) -> bytes:
        """`proxy_protocol on`: the client (after realip) and the address it connected to, as nginx sends."""
        client, local = self.vars.client[:2], self.vars.local[:2]
        if self.service.server.proxy_protocol_version == 2:
            return proxy_protocol.v2(client, local, "stream")
        return proxy_protocol.v1(client, local)

    # --- relaying ------------------------------------------------------------------------

    def client_event(self, events: int) -> None:
        if events & END_EVENTS:
            self.client_end = True
        if events & OUT and self.to_client is not None:
            self.flush_client()
        if events & READ_EVENTS:
            self.client_ready = True
            self.pump_client()

    def pump_client(self) -> None:
        """Read the client while it may have data and the upstream side can take it."""
        client = self.client
        while self.client_ready and not self.done and not self.client_eof:
            if self.to_upstream is not None:
                return                   # sent on once the upstream took the rest
            if self.pending_size > PENDING_LIMIT:
                return                   # read on once connected
            try:
                n = client.recv_into(BUFFER)
            except _AGAIN:
                self.client_ready = False
                return
            except OSError as exc:
                self.client_failed("recv", exc)
                return
            if n == 0:
                self.client_ready = False
                self.client_closed()
                return
            if n < BUFFER_SIZE and not self.client_end:
                self.client_ready = False   # drained: the next data brings another edge
            upstream = self.upstream
            if upstream is None or self.connect_timer is not None or self.header is not None:
                self.client_data(n)
                continue
            # The relay's hot path, once per chunk: count and pass on.
            self.received += n
            try:
                sent = upstream.send(VIEW[:n])
            except _AGAIN:
                sent = 0
            except OSError as exc:
                self.upstream_failed("send", exc)
                return
            if sent < n:
                self.to_upstream = bytes(VIEW[sent:n])   # the upstream's next writable edge sends it

    def client_closed(self) -> None:
        if self.header is not None:
            self.service.log.info(f"client closed connection while reading PROXY protocol, "
                                  f"client: {self.vars.remote_addr}, server: {self.service.listen_name}")
            self.close()
            return
        self.client_eof = True
        if self.preread is not None:
            stream_preread.done(self)    # what came is all there is: routed on it
            return
        if self.upstream is not None and self.connect_timer is None:
            self.eof(from_client=True)

    def client_data(self, n: int) -> None:
        """The client's bytes before the relay runs: a PROXY header, or data while connecting."""
        if self.header is not None:
            self.read_header(self.header + VIEW[:n])
            return
        self.received += n                 # still connecting: kept until connected
        self.pending.append(bytes(VIEW[:n]))
        self.pending_size += n
        if self.preread is not None:
            stream_preread.read(self, self.pending[-1])

    def send_upstream(self, data: bytes | memoryview) -> None:
        sock = self.upstream
        assert sock is not None
        if self.to_upstream is not None:      # behind what waits already, never before it
            self.to_upstream += bytes(data)
            return
        try:
            sent = sock.send(data)
        except _AGAIN:
            sent = 0
        except OSError as exc:
            self.upstream_failed("send", exc)
            return
        if sent < len(data):
            self.to_upstream = bytes(data[sent:])   # the upstream's next writable edge sends it

    def upstream_event(self, events: int) -> None:
        if events & END_EVENTS:
            self.upstream_end = True
        if events & READ_EVENTS:
            self.upstream_ready = True
        if self.connect_timer is not None:
            self.connect_check()
            return
        if events & OUT and self.to_upstream is not None:
            self.flush_upstream()
        if self.upstream_ready:
            self.pump_upstream()

    def flush_upstream(self) -> None:
        sock = self.upstream
        data = self.to_upstream
        assert sock is not None and data is not None
        try:
            sent = sock.send(data)
        except _AGAIN:
            return
        except OSError as exc:
            self.upstream_failed("send", exc)
            return
        self.flushed += sent
        if sent < len(data):
            self.to_upstream = data[sent:]
            return
        self.to_upstream = None
        if self.client_eof:
            self.eof(from_client=True)
        else:
            self.pump_client()

    def pump_upstream(self) -> None:
        """Read the upstream while it may have data and the client takes it."""
        sock = self.upstream
        client = self.client
        while self.upstream_ready and not self.done and sock is self.upstream:
            if self.to_client is not None:
                return                   # read on once the client took the rest
            try:
                n = sock.recv_into(BUFFER)  # type: ignore[union-attr]
            except _AGAIN:
                self.upstream_ready = False
                return
            except OSError as exc:
                self.upstream_failed("recv", exc)
                return
            if n == 0:
                self.upstream_ready = False
                self.upstream_eof = True
                self.eof(from_client=False)
                return
            if n < BUFFER_SIZE and not self.upstream_end:
                self.upstream_ready = False
            self.sent += n
            try:
                sent = client.send(VIEW[:n])
            except _AGAIN:
                sent = 0
            except OSError as exc:
                self.client_failed("send", exc)
                return
            if sent < n:
                self.to_client = bytes(VIEW[sent:n])   # the client's next writable edge sends it

    def flush_client(self) -> None:
        """Send what is waiting for the client; the rest waits for its next writable edge."""
        data = self.to_client
        assert data is not None
        try:
            sent = self.client.send(data)
        except _AGAIN:
            return
        except OSError as exc:
            self.client_failed("send", exc)
            return
        self.flushed += sent
        if sent < len(data):
            self.to_client = data[sent:]
            return
        self.to_client = None
        if self.upstream is None:            # `return`: the answer is out
            self.discard_input()
            self.close()
        elif self.upstream_eof:
            self.eof(from_client=False)
        else:
            self.pump_upstream()

    def eof(self, from_client: bool) -> None:
        """EOF from one side, passed on once what came before it is sent. `proxy_half_close off`
        (nginx's default) then ends the session; `on` shuts down writing toward the other side and
        ends the session once both sides have sent their EOF."""
        if self.done:
            return
        if (self.to_upstream if from_client else self.to_client) is not None:
            return          # called again once that is flushed
        service = self.service
        if not service.server.proxy_half_close or self.upstream is None:
            if service.log.enabled("info"):
                v = self.count()
                service.log.info(f"{'client' if from_client else 'upstream'} disconnected, "
                                 f"bytes from/to client:{v.bytes_received}/{v.bytes_sent}, "
                                 "bytes from/to upstream:"
                                 f"{v.upstream_bytes_received}/{v.upstream_bytes_sent}")
            self.close()
            return
        target = self.upstream if from_client else self.client
        with contextlib.suppress(OSError):
            target.shutdown(socket.SHUT_WR)
        if self.client_eof and self.upstream_eof:
            self.close()

    def crashed(self, exc: Exception) -> None:
        """A bug met while relaying: said at crit level, as the HTTP proxy does, and this session ends."""
        self.service.log.log("crit", f"unexpected error while proxying: {exc!r}, {self.context(self.peer)}")
        with contextlib.suppress(Exception):
            self.close()

    def client_failed(self, call: str, exc: OSError) -> None:
        # nginx logs a client's failures at info: they are the client's business
        if self.service.log.enabled("info"):
            direction = "reading from" if call == "recv" else "sending to"
            self.service.log.info(f"{call}() failed ({exc.errno}: {exc.strerror}) while proxying and "
                                  f"{direction} client, {self.context(self.peer)}")
        self.close()

    def upstream_failed(self, call: str, exc: OSError) -> None:
        direction = "reading from" if call == "recv" else "sending to"
        self.error = f"{call}() failed ({exc.errno}: {exc.strerror}) while proxying and {direction} upstream"
        self.close()

    # --- PROXY protocol from a load balancer in front ---------------------------------------

    def read_header(self, buffer: bytes) -> None:
        """Collect the PROXY header; once complete, apply it and start. What followed the header is
        queued before starting: connecting may complete (and send the queue) within start()."""
        result = proxy_protocol.parse(buffer)
        if isinstance(result, proxy_protocol.NeedMore):
            self.header = buffer
            return
        self.header = None
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if isinstance(result, proxy_protocol.Malformed):
            self.fail(f"{result.reason} while reading PROXY protocol", status=400)
            return
        if result.header.transport == "stream":   # nginx ignores the addresses of other transports
            self.vars.proxy = result.header
            real = from_proxy_protocol(self.service.server.real_ip, self.vars.peer[0], result.header)
            if real is not None:
                self.vars.client = real
        rest = buffer[result.length:]
        if rest:
            self.received += len(rest)
            self.pending.append(rest)
            self.pending_size += len(rest)
        stream_preread.begin(self)

    def header_timed_out(self) -> None:
        self.timer = None
        self.service.log.info(f"client timed out (110: Connection timed out) while reading PROXY protocol, "
                              f"client: {self.vars.remote_addr}, server: {self.service.listen_name}")
        self.close()

    # --- bookkeeping ---------------------------------------------------------------------

    def count(self) -> StreamVariables:
        """The byte counters, kept on the session while relaying, copied into the variables."""
        v = self.vars
        v.bytes_received = v.upstream_bytes_sent = self.received
        v.bytes_sent = v.upstream_bytes_received = self.sent
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
        self.discard_input()
        self.close()

    def discard_input(self) -> None:
        """What the client sent and nobody will read would make close() answer with a reset: read
        it away, so that the client sees an orderly end of the connection instead."""
        with contextlib.suppress(OSError):
            for _ in range(4):
                if not self.client.recv_into(BUFFER, 0, socket.MSG_DONTWAIT):
                    break

    def arm_timer(self) -> None:
        self.service.watch(self)

    def idle_check(self) -> bool:
        """proxy_timeout elapsed since the last check: True (and watched again) if a byte moved."""
        mark = (self.received, self.sent, self.flushed)
        if mark != self.idle_mark:
            self.idle_mark = mark
            return True
        self.service.log.info(f"connection timed out, {self.context(self.peer)}")
        self.close()
        return False

    def close(self) -> None:
        if self.done:
            return
        self.done = True
        service = self.service
        loop = self.loop
        for timer in (self.timer, self.connect_timer):
            if timer is not None:
                timer.cancel()
        self.timer = self.connect_timer = None
        service.idle.pop(self, None)
        # Closing a socket takes it out of the epoll; forgetting its handler first makes any
        # event already fetched for it a no-op.
        poller = self.poller
        upstream = self.upstream
        if upstream is not None:
            poller.forget(upstream.fileno())
            upstream.close()
        if self.peer is not None and self.balancer is not None:
            self.balancer.free(self.peer, failed=False, now=loop.time())
            self.peer = None
        if self.error:
            service.log.error(f"{self.error}, {self.context(None)}")
        client = self.client
        if service.access:
            self.vars.local    # noqa: B018  (asked while the socket is open)
        poller.forget(client.fileno())
        client.close()
        if service.access:
            with contextlib.suppress(Exception):
                service.access.write(self.count())
        service.closed(self)
