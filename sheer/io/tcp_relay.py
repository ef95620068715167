"""The TCP stream relay: a connection's sockets, the bytes moved between them, and the one place that
executes what its core session (sheer.core.tcp) decides.

Sessions work on plain non-blocking sockets, not on asyncio transports (a transport pair costs more to set
up than the whole relay of a short connection), in one edge-triggered epoll per worker (sheer.io.tcp_poller),
registered once for their whole life as nginx does (closing a socket takes it out). The bytes move in
sheer.io.tcp_direction, one relay for each direction, on raw descriptors (readv/write/close): a Python
socket object costs its constructor (with a getsockname() to validate a descriptor it is given) and its
close(), per connection and per side. The client's descriptor comes straight from accept4(); the
upstream's from a socket object made to bind and connect it, detached once connected.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import socket
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, assert_never

from sheer.core import proxy_protocol
from sheer.core.bind import BindTo
from sheer.core.rate import RateLimit, evaluate
from sheer.core.tcp import DONE, PREREAD, TcpSession
from sheer.core.tcp_commands import (
    Answer,
    Arm,
    Close,
    Command,
    Connect,
    Context,
    Log,
    Resolve,
    Shutdown,
)
from sheer.io.sockets import as_address, on_socket, shut_wr
from sheer.io.tcp_direction import BUFFERS, CLIENT, NONE, VIEW, Direction, directions
from sheer.io.tcp_poller import END_EVENTS, IN, OUT, READ_EVENTS
from sheer.io.tcp_vars import variable
from sheer.io.upstream_connect import UpstreamConnectError, connect_now, start_connect

if TYPE_CHECKING:
    from sheer.config.model import StreamServer
    from sheer.core.tcp import TcpServer
    from sheer.io.context import WorkerContext
    from sheer.io.logs import AccessLogger, ErrorLogger
    from sheer.io.tcp_poller import Poller

CONNECTED = (0, errno.EISCONN)
SHORT = (errno.EMFILE, errno.ENFILE)     # out of descriptors: said once a second, accepting held


class Service(Protocol):
    """The listener's service (sheer.io.stream_tcp.TcpStreamService), as its connections see it."""

    shared: TcpServer
    server: StreamServer
    ctx: WorkerContext
    log: ErrorLogger
    access: AccessLogger | None          # None: no access_log
    listen_name: str
    family: int
    poller: Poller
    first_byte: bool                     # an access log names $upstream_first_byte_time
    plain: bool                          # no rate limits, no PROXY header to the upstream

    def time(self) -> float: ...          # the event loop's clock

    def call_later(self, delay: float, callback: Callable[..., object], *args: Any) -> asyncio.TimerHandle:
        ...                              # the event loop's timer

    def arm(self) -> None: ...

    def resolve(self, session: Connection, value: str) -> None: ...

    def closed(self, session: Connection) -> None: ...

    def out_of_descriptors(self, level: str, line: str) -> None: ...


class Connection:
    """One client connection and, once connected, its upstream connection."""

    __slots__ = ("_local", "client", "connecting", "core", "down", "first_byte", "mapped", "number",
                 "peer_address", "service", "started", "up", "upstream")

    def __init__(self, service: Service, client: int, address: Any, started: float) -> None:
        self.service = service
        self.client = client                    # the client's descriptor
        self.upstream = NONE                    # the upstream's, once a connect() was issued
        self.connecting: socket.SocketType | None = None   # the upstream socket until it is connected
        self.peer_address = address
        self.mapped: dict[str, str] | None = None    # the `map` variables worked out (made when one is asked)
        self.started = started
        self.number = service.ctx.connection_number()      # $connection
        self._local: Any = None
        self.first_byte: float | None = None    # $upstream_first_byte_time, where an access log asks
        self.core = TcpSession(service.shared, address, self)
        self.up, self.down = directions(client, self)   # client -> upstream, upstream -> client

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
                local = on_socket(self.client, self.service.family, socket.socket.getsockname)
                self._local = as_address(local)
            except OSError:
                self._local = ()
        return self._local

    def variable(self, name: str) -> str:
        return variable(self, name)

    # --- events from the sockets ----------------------------------------------------------

    def client_event(self, events: int) -> None:
        up = self.up
        if events & END_EVENTS:
            up.end = True
        if events & OUT and self.down.held is not None:
            self.down.flush(self)
        if events & READ_EVENTS and not up.eof:
            up.ready = True
            up.pump(self)

    def upstream_event(self, events: int) -> None:
        down = self.down
        if events & END_EVENTS:
            down.end = True
        if events & READ_EVENTS:
            down.ready = True
        if self.connecting is not None:
            self.connect_check()
            return
        if events & OUT and self.up.held is not None:
            self.up.flush(self)
        if down.ready:
            down.pump(self)

    def upstream_first(self, events: int) -> None:
        """upstream_event until the upstream's first byte, timed for $upstream_first_byte_time (a server
        whose access logs do not name it never comes here)."""
        if events & IN:
            service = self.service
            self.first_byte = service.time() - self.core.connect_began
            service.poller.handlers[self.upstream] = self.down.event if service.plain else self.upstream_event
        self.upstream_event(events)

    def ended(self, direction: Direction) -> None:
        """A direction's source sent its EOF: told once what came before is delivered (PREREAD: at once)."""
        if direction.held is None and direction.dst >= 0 or self.core.phase is PREREAD:
            self.run(self.core.eof(direction.side, self.service.time()))

    def early(self, direction: Direction, n: int) -> None:
        """The client's bytes before the relay runs: a PROXY header, or data while connecting."""
        chunk = bytes(VIEW[:n])
        held = direction.held
        direction.held = held = chunk if held is None else held + chunk
        core = self.core
        if core.phase is not PREREAD:
            direction.moved += n         # kept until connected
            return
        commands = core.preread(held, self.service.time())
        if core.phase is not PREREAD:
            rest = held[core.header_length:] if core.phase is not DONE else b""
            direction.held = rest or None      # what followed the header waits for the upstream
            direction.moved += len(rest)
        self.run(commands)

    def watch_writable(self, direction: Direction) -> None:
        """A write to `direction`'s destination fell short: its writable edges are wanted now."""
        direction.watching = True
        self.service.poller.watch_out(direction.dst)

    @property
    def moved(self) -> int:
        """Bytes relayed either way so far, remainders delivered later included: proxy_timeout's progress."""
        up, down = self.up, self.down
        return up.moved + down.moved + up.flushed + down.flushed

    # --- connecting -------------------------------------------------------------------------

    def connect(self, address: tuple[str, int] | str, bind: BindTo | None) -> None:
        if self.upstream >= 0:
            self.drop_upstream()                # a next try replaces the connection of the last one
        try:
            sock, done = start_connect(address, bind)
        except UpstreamConnectError as exc:
            ours = exc.local
            level, fix = (ours.level, ours.fix) if ours is not None else (None, "")
            commands = self.core.connect_failed(exc.message, self.service.time(), exc.timed_out, level, fix)
            if ours is not None and ours.errno in SHORT:
                commands = self.said_short(commands)
            self.run(commands)
            return
        self.upstream = self.down.src = fd = sock.fileno()
        self.up.watching = not done              # a connect() under way is told by a writable edge
        self.service.poller.add(fd, self.upstream_first if self.service.first_byte else self.upstream_event,
                                out=not done)
        if done:
            sock.detach()
            self.connected()
        else:
            self.connecting = sock
            self.run(self.core.connecting(self.service.time()))

    def said_short(self, commands: Sequence[Command]) -> Sequence[Command]:
        """Out of descriptors: the line goes to the service (said once a second, accepting held meanwhile)."""
        rest = []
        for command in commands:
            if isinstance(command, Log):
                line = self.describe(command.message, command.context, command.peer, command.hint)
                self.service.out_of_descriptors(command.level, line)
            else:
                rest.append(command)
        return rest

    def connect_check(self) -> None:
        """An event on a connecting socket: asking connect() again tells done, failed or not yet."""
        sock, peer = self.connecting, self.core.peer
        assert sock is not None and peer is not None
        code = connect_now(sock, peer.address)
        if code == errno.EINPROGRESS:
            return
        if code in CONNECTED:
            self.connecting = None
            sock.detach()
            self.connected()
            return
        self.drop_upstream()
        message = f"connect() failed ({code}: {os.strerror(code)})"
        self.run(self.core.connect_failed(message, self.service.time()))

    def connected(self) -> None:
        service = self.service
        commands = self.core.connected(service.time())
        if commands:
            self.run(commands)
        up, down = self.up, self.down
        up.dst = self.upstream
        if service.plain:                # each side's events to its direction's own handler (`event`)
            handlers = service.poller.handlers
            handlers[self.client] = up.event
            if not service.first_byte:
                handlers[self.upstream] = down.event
            if up.held is None and not (up.eof or up.ready or down.ready):
                return                   # the common case: nothing read yet either way
        server = service.server
        if server.proxy_upload_rate or server.proxy_download_rate:
            self.limit_rates(server)
        first, up.held = up.held, None
        if server.proxy_protocol:
            first = self.proxy_header() + (first or b"")
        if first:
            up.send(self, first)
        if up.eof:
            self.ended(up)
        elif up.ready:
            up.pump(self)                # what was left unread at the pending limit
        if down.ready:
            down.pump(self)              # a server that speaks first

    def limit_rates(self, server: StreamServer) -> None:
        """proxy_upload_rate and proxy_download_rate, worked out once the upstream is connected (as nginx's
        ngx_stream_proxy_init_upstream); a rate of 0 leaves its direction unlimited."""
        now = self.service.time()
        rates = ((self.up, server.proxy_upload_rate), (self.down, server.proxy_download_rate))
        for direction, value in rates:
            rate, problem = evaluate(value, self)
            if problem is not None:
                self.service.log.log("error", self.describe(problem, Context.CLIENT, None, ""))
            if rate:
                direction.limit = RateLimit(rate, now)

    def delay(self, direction: Direction, seconds: float) -> None:
        """A limited direction pauses: nothing is read from its source until the timer ends it."""
        direction.delayed = self.service.call_later(seconds, self.undelay, direction)

    def undelay(self, direction: Direction) -> None:
        direction.delayed = None
        if direction.ready and direction.dst >= 0:
            try:
                direction.pump(self)
            except Exception as exc:  # noqa: BLE001 -- as the poller's events: this session's bug only
                self.crashed(exc)

    def proxy_header(self) -> bytes:
        """`proxy_protocol on`: the client (after realip) and the address it connected to, as nginx sends."""
        client: Any = self.core.client[:2]       # a PROXY header's source may come without a port
        local = self.local[:2] or None
        if self.service.server.proxy_protocol_version == 2:
            return proxy_protocol.v2(client, local, "stream")
        return proxy_protocol.v1(client, local)

    # --- the one place that executes the session's commands ------------------------------

    def run(self, commands: Sequence[Command]) -> None:
        # by exact type (final classes), most frequent first: a `match` case costs ~460 instructions
        for command in commands:
            if type(command) is Close:
                self.close(command.discard)
            elif type(command) is Connect:
                self.connect(command.peer.address, command.bind)
            elif type(command) is Log:
                log = self.service.log
                if log.enabled(command.level):
                    line = self.describe(command.message, command.context, command.peer, command.hint)
                    log.log(command.level, line)
            elif type(command) is Shutdown:
                fd = self.client if command.side is CLIENT else self.upstream
                if fd >= 0:
                    with contextlib.suppress(OSError):
                        on_socket(fd, self.service.family, shut_wr)
            elif type(command) is Answer:
                self.up.eof = self.down.eof = True     # the answer is all there is
                self.down.send(self, command.data)
            elif type(command) is Arm:
                self.service.arm()
            elif type(command) is Resolve:
                self.service.resolve(self, command.value)
            else:
                assert_never(command)

    def describe(self, message: str, context: Context, peer: Any, hint: str) -> str:
        """nginx's log line: the message, then what it is about."""
        core = self.core
        received, sent = self.up.moved, self.down.moved
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
        context = self.describe("", Context.SESSION, self.core.peer, "")[2:]
        self.service.log.log("crit", f"unexpected error while proxying: {exc!r}, {context}")
        with contextlib.suppress(Exception):
            self.run(self.core.aborted(self.service.time()))

    def drop_upstream(self) -> None:
        fd = self.upstream
        if fd >= 0:
            self.upstream = self.down.src = self.up.dst = NONE
            self.down.ready = self.down.end = False      # a next try's connection starts afresh
            self.service.poller.handlers.pop(fd, None)     # Poller.forget, inline
            sock = self.connecting
            if sock is not None:
                self.connecting = None
                sock.close()
            else:
                os.close(fd)

    def close(self, discard: bool) -> None:
        client = self.client
        up, down = self.up, self.down
        up.ready = down.ready = False            # whatever loop runs ends at its next turn
        if not self.service.plain:
            for direction in (up, down):
                if direction.delayed is not None:
                    direction.delayed.cancel()
                    direction.delayed = None
        down.dst = NONE
        if discard:
            # What the client sent and nobody will read would make close() answer with a reset: read
            # it away, so that the client sees an orderly end of the connection instead.
            with contextlib.suppress(OSError):
                for _ in range(4):
                    if not os.readv(client, BUFFERS):
                        break
        self.drop_upstream()
        service = self.service
        access = service.access
        if access is not None:
            self.local  # noqa: B018  (asked while the socket is open)
        service.poller.handlers.pop(client, None)        # Poller.forget, inline
        os.close(client)
        if access is not None:
            with contextlib.suppress(Exception):
                access.write(self)
        service.closed(self)
        del up.conn, down.conn           # no cycle left

