"""The TCP stream relay: a connection's sockets, the bytes moved between them, and the one place that
executes what its core session (sheer.core.tcp) decides.

Sessions work on plain non-blocking sockets, not on asyncio transports: a transport pair costs more to
set up than the whole relay of a short connection. Their sockets sit in one edge-triggered epoll per
worker (sheer.io.tcp_poller), registered once for their whole life as nginx does (closing a socket takes
it out). Each direction reads into one buffer shared by the worker's sessions and sends from it at once;
only what the receiver does not take is copied, and that direction is not read again until it is sent
(nginx's behaviour with its per-direction buffer).
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
from typing import TYPE_CHECKING, Any, Protocol, assert_never

from sheer.core import proxy_protocol
from sheer.core.bind import BindTo
from sheer.core.tcp import (
    Answer,
    Arm,
    Close,
    Command,
    Connect,
    Context,
    Log,
    Phase,
    Shutdown,
    Side,
    TcpSession,
)
from sheer.io.tcp_poller import END_EVENTS, OUT, READ_EVENTS
from sheer.io.tcp_vars import variable
from sheer.io.upstream_connect import UpstreamConnectError, connect_now, start_connect

if TYPE_CHECKING:
    import asyncio

    from sheer.config.model import StreamServer
    from sheer.core.tcp import TcpServer
    from sheer.io.context import WorkerContext
    from sheer.io.logs import AccessLogger, ErrorLogger
    from sheer.io.tcp_poller import Poller

PENDING_LIMIT = 65536    # bytes kept from the client while the upstream connects (nginx: proxy_buffer_size)
BUFFER_SIZE = 262144
BUFFER = bytearray(BUFFER_SIZE)
VIEW = memoryview(BUFFER)
_AGAIN = (BlockingIOError, InterruptedError)
CONNECTED = (0, errno.EISCONN)


class Service(Protocol):
    """The listener's service (sheer.io.stream_tcp.TcpStreamService), as its connections see it."""

    shared: TcpServer
    server: StreamServer
    ctx: WorkerContext
    log: ErrorLogger
    access: AccessLogger
    listen_name: str
    loop: asyncio.AbstractEventLoop
    poller: Poller

    def arm(self) -> None: ...

    def closed(self, session: Connection) -> None: ...


class Direction:
    """Bytes from one side to the other: the same relay serves both directions."""

    __slots__ = ("dst", "end", "eof", "held", "ready", "side", "src", "to")

    def __init__(self, src: socket.socket | None, dst: socket.socket | None, side: Side) -> None:
        self.src = src               # where the bytes come from (None: not connected yet)
        self.dst = dst               # where they go (None: not connected yet)
        self.side = side             # the side the bytes come from
        self.to = Side.UPSTREAM if side is Side.CLIENT else Side.CLIENT
        self.ready = False           # the source may have data (an edge not read to the end)
        self.end = False             # EOF or an error is queued: read to the end
        self.eof = False             # the source's EOF was read (or nothing is to be read)
        self.held: bytes | None = None   # read, not taken by the destination yet (or waiting for it)

    def pump(self, conn: Connection) -> None:
        """Read while the source may have data and the destination takes it."""
        src = self.src
        core = conn.core
        side = self.side
        while self.ready:
            dst = self.dst
            held = self.held
            if held is not None and (dst is not None or len(held) > PENDING_LIMIT):
                return                   # read on once the destination took the rest (or connected)
            try:
                n = src.recv_into(BUFFER)  # type: ignore[union-attr]
            except _AGAIN:
                self.ready = False
                return
            except OSError as exc:
                conn.run(core.failed(side, "recv", exc, conn.clock()))
                return
            if n == 0:
                self.ready = False
                self.eof = True
                conn.ended(self)
                return
            if n < BUFFER_SIZE and not self.end:
                self.ready = False       # drained: the next data brings another edge
            if dst is None:
                conn.early(self, n)      # a PROXY header, or data while connecting
                continue
            # The relay's hot path, once per chunk: count and pass on.
            core.data(side, n)
            try:
                sent = dst.send(VIEW[:n])
            except _AGAIN:
                sent = 0
            except OSError as exc:
                conn.run(core.failed(self.to, "send", exc, conn.clock()))
                return
            if sent < n:
                self.held = bytes(VIEW[sent:n])    # the destination's next writable edge sends it

    def send(self, conn: Connection, data: bytes) -> None:
        """Send `data` on, behind whatever waits already, never before it."""
        if self.held is not None:
            self.held += data
            return
        self.held = data
        self.flush(conn)

    def flush(self, conn: Connection) -> None:
        """Send what is held; the rest waits for the destination's next writable edge."""
        data, dst = self.held, self.dst
        assert data is not None and dst is not None
        try:
            sent = dst.send(data)
        except _AGAIN:
            return
        except OSError as exc:
            conn.run(conn.core.failed(self.to, "send", exc, conn.clock()))
            return
        conn.core.flushed_bytes(sent)
        if sent < len(data):
            self.held = data[sent:]
            return
        self.held = None
        if self.eof:
            conn.ended(self)
        else:
            self.pump(conn)


class Connection:
    """One client connection and, once connected, its upstream connection."""

    __slots__ = ("_local", "client", "core", "down", "peer_address", "service", "started", "up", "upstream")

    def __init__(self, service: Service, client: socket.socket, address: Any,
                 started: float) -> None:
        self.service = service
        self.client = client
        self.upstream: socket.socket | None = None
        self.peer_address = address
        self.started = started
        self._local: Any = None
        self.core = TcpSession(service.shared, address, self)
        self.up = Direction(client, None, Side.CLIENT)       # client -> upstream
        self.down = Direction(None, client, Side.UPSTREAM)   # upstream -> client

    # --- what the variables and the log lines read --------------------------------------

    @property
    def ctx(self) -> WorkerContext:
        return self.service.ctx

    @property
    def local(self) -> Any:
        """$server_addr:$server_port: getsockname() only if a variable, a PROXY header or the access
        log needs it (nginx does the same for wildcard listeners)."""
        if self._local is None:
            try:
                self._local = self.client.getsockname()
            except OSError:
                self._local = ()
        return self._local

    def variable(self, name: str) -> str:
        return variable(self, name)

    def clock(self) -> float:
        return self.service.loop.time()

    # --- events from the sockets ----------------------------------------------------------

    def client_event(self, events: int) -> None:
        up = self.up
        if events & END_EVENTS:
            up.end = True
        down = self.down
        if events & OUT and down.held is not None and down.dst is not None:
            down.flush(self)
        if events & READ_EVENTS and not up.eof:
            up.ready = True
            up.pump(self)

    def upstream_event(self, events: int) -> None:
        down = self.down
        if events & END_EVENTS:
            down.end = True
        if events & READ_EVENTS:
            down.ready = True
        if self.core.phase is Phase.CONNECTING:
            self.connect_check()
            return
        up = self.up
        if events & OUT and up.held is not None and up.dst is not None:
            up.flush(self)
        if down.ready:
            down.pump(self)

    def ended(self, direction: Direction) -> None:
        """A direction's source sent its EOF: the session hears of it once what came before is
        delivered (while reading the PROXY header, at once)."""
        if direction.held is None and direction.dst is not None or self.core.phase is Phase.PREREAD:
            self.run(self.core.eof(direction.side, self.clock()))

    def early(self, direction: Direction, n: int) -> None:
        """The client's bytes before the relay runs: a PROXY header, or data while connecting."""
        chunk = bytes(VIEW[:n])
        held = direction.held
        direction.held = held = chunk if held is None else held + chunk
        core = self.core
        if core.phase is not Phase.PREREAD:
            core.data(Side.CLIENT, n)    # kept until connected
            return
        commands = core.preread(held, self.clock())
        if core.phase is not Phase.PREREAD:
            rest = held[core.header_length:] if core.phase is not Phase.DONE else b""
            direction.held = rest or None      # what followed the header waits for the upstream
            core.data(Side.CLIENT, len(rest))
        self.run(commands)

    def connect(self, address: tuple[str, int], bind: BindTo | None) -> None:
        self.drop_upstream()                    # a next try replaces the connection of the last one
        try:
            sock, done = start_connect(address, bind)
        except UpstreamConnectError as exc:
            ours = exc.local
            level, fix = (ours.level, ours.fix) if ours is not None else (None, "")
            self.run(self.core.connect_failed(exc.message, self.clock(), exc.timed_out, level, fix))
            return
        self.upstream = self.down.src = sock
        self.down.ready = self.down.end = False
        self.service.poller.add(sock.fileno(), self.upstream_event)
        if done:
            self.connected()

    def connect_check(self) -> None:
        """An event on a connecting socket: asking connect() again tells done, failed or not yet."""
        sock, peer = self.upstream, self.core.peer
        assert sock is not None and peer is not None
        code = connect_now(sock, peer.address)
        if code == errno.EINPROGRESS:
            return
        if code in CONNECTED:
            self.connected()
            return
        self.drop_upstream()
        self.run(self.core.connect_failed(f"connect() failed ({code}: {os.strerror(code)})", self.clock()))

    def connected(self) -> None:
        self.run(self.core.connected(self.clock()))
        up, down = self.up, self.down
        up.dst = self.upstream
        first, up.held = up.held, None
        if self.service.server.proxy_protocol:
            first = self.proxy_header() + (first or b"")
        if first:
            up.send(self, first)
        if up.eof:
            self.ended(up)
        elif up.ready:
            up.pump(self)                # what was left unread at the pending limit
        if down.ready:
            down.pump(self)              # a server that speaks first

    def proxy_header(self) -> bytes:
        """`proxy_protocol on`: the client (after realip) and the address it connected to, as nginx sends."""
        client: Any = self.core.client[:2]       # a PROXY header's source may come without a port
        local = self.local[:2] or None
        if self.service.server.proxy_protocol_version == 2:
            return proxy_protocol.v2(client, local, "stream")
        return proxy_protocol.v1(client, local)

    # --- the one place that executes the session's commands ------------------------------

    def run(self, commands: tuple[Command, ...] | list[Command] | Any) -> None:
        for command in commands:
            match command:
                case Connect(peer, bind):
                    self.connect(peer.address, bind)
                case Log(level, message, context, peer, hint):
                    log = self.service.log
                    if log.enabled(level):
                        log.log(level, self.describe(message, context, peer, hint))
                case Close(discard):
                    self.close(discard)
                case Shutdown(side):
                    sock = self.client if side is Side.CLIENT else self.upstream
                    if sock is not None:
                        with contextlib.suppress(OSError):
                            sock.shutdown(socket.SHUT_WR)
                case Answer(data):
                    self.up.eof = self.down.eof = True     # the answer is all there is
                    self.down.send(self, data)
                case Arm():
                    self.service.arm()
                case _:
                    assert_never(command)

    def describe(self, message: str, context: Context, peer: Any, hint: str) -> str:
        """nginx's log line: the message, then what it is about."""
        core = self.core
        received, sent = core.received, core.sent
        counts = f"bytes from/to client:{received}/{sent}, bytes from/to upstream:{sent}/{received}"
        where = f"client: {core.client[0]}, server: {self.service.listen_name}"
        if context is Context.BYTES:
            text = f"{message}, {counts}"
        elif context is Context.CLIENT:
            text = f"{message}, {where}"
        else:
            upstream = f', upstream: "{peer.name}"' if peer is not None else ""
            text = f"{message}, {where}{upstream}, {counts}"
        return f"{text}; {hint}" if hint else text

    def crashed(self, exc: Exception) -> None:
        """A bug met while relaying: said at crit level, as the HTTP proxy does, and this session ends."""
        self.service.log.log("crit", f"unexpected error while proxying: {exc!r}, "
                                     f"{self.describe('', Context.SESSION, self.core.peer, '')[2:]}")
        with contextlib.suppress(Exception):
            self.run(self.core.aborted(self.clock()))

    def drop_upstream(self) -> None:
        sock = self.upstream
        if sock is not None:
            self.upstream = self.down.src = None
            self.service.poller.forget(sock.fileno())
            sock.close()

    def close(self, discard: bool) -> None:
        client = self.client
        up, down = self.up, self.down
        up.ready = down.ready = False            # whatever loop runs ends at its next turn
        up.dst = down.dst = up.src = None
        if discard:
            # What the client sent and nobody will read would make close() answer with a reset: read
            # it away, so that the client sees an orderly end of the connection instead.
            with contextlib.suppress(OSError):
                for _ in range(4):
                    if not client.recv_into(BUFFER, 0, socket.MSG_DONTWAIT):
                        break
        self.drop_upstream()
        service = self.service
        access = service.access
        if access:
            self.local  # noqa: B018  (asked while the socket is open)
        service.poller.forget(client.fileno())
        client.close()
        if access:
            with contextlib.suppress(Exception):
                access.write(self)
        service.closed(self)
