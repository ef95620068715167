"""The TCP stream session of nginx's stream proxy (ngx_stream_proxy_module), sans-IO.

A session is a client connection and, once a peer accepts, its upstream connection. Its phase is
explicit — PREREAD (`listen ... proxy_protocol`: the PROXY header is read), CONNECTING, RELAYING, DONE —
and so is each direction's state (a `Flow` per side the bytes come from). The driver
(sheer.io.tcp_relay) tells it what happened, as events (`accepted`, `preread`, `chosen`, `connecting`,
`connected`, `connect_failed`, `eof`, `failed`, `tick`, `aborted`), and executes what it answers,
as commands (`Connect`, `Answer`, `Shutdown`, `Close`, `Log`, `Arm`, `Resolve`: sheer.core.tcp_commands).
Time is an argument: the tests drive sessions with a fake clock.

Decided here, as nginx decides them: which peer next (`proxy_next_upstream`, `_tries`, `_timeout`,
passive failures through the balancer), what an EOF does (`proxy_half_close`), when a session times out
(`proxy_protocol_timeout`, `proxy_connect_timeout`, `proxy_timeout`), its status and its log lines.
The bytes themselves never come here: the driver moves and counts them (a call per chunk would cost the
relay's hot path more than all its other Python), reports an EOF once what came before it was delivered,
and tells at each `tick` how many bytes have moved so far, all proxy_timeout needs to know.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum
from typing import Any

from sheer.config.model import StreamServer
from sheer.core import access, proxy_protocol, tls_preread
from sheer.core.balancers import Balancer, Peer, Tried, request_key
from sheer.core.bind import PLUMBING_HINT, BindTo, BindValueError, bind_host, bind_to, client_bind
from sheer.core.deadlines import Deadlines, Queue
from sheer.core.realip import Address, from_proxy_protocol
from sheer.core.tcp_commands import (
    ARMING,
    CLIENT_DISCONNECTED,
    CLOSING,
    DISCARDING,
    NOTHING,
    SHUTDOWN,
    UPSTREAM_DISCONNECTED,
    Answer,
    Choose,
    Chosen,
    Command,
    Connect,
    Context,
    Log,
    Resolve,
    Side,
)
from sheer.core.variables import VariableSource, render, render_bytes

TIMED_OUT = "upstream timed out (110: Connection timed out)"


class Phase(Enum):
    PREREAD = "preread"          # reading the PROXY header of `listen ... proxy_protocol`, then the
                                 # ClientHello of `ssl_preread on`
    CONNECTING = "connecting"    # connect() issued to a peer, not answered yet
    RELAYING = "relaying"        # bytes move both ways (or a `return` answer goes out)
    DONE = "done"


class Flow(Enum):
    """One direction, named by the side its bytes come from."""

    OPEN = "open"
    ENDED = "ended"              # its EOF came after everything before it was delivered, and was passed on


# The members as module globals for the sessions' code: in Python 3.11 an attribute of an Enum class goes
# through EnumType.__getattr__ (~70 ns, nine times per connection); a global is a cached dictionary lookup.
PREREAD, CONNECTING, RELAYING, DONE = Phase.PREREAD, Phase.CONNECTING, Phase.RELAYING, Phase.DONE
OPEN, ENDED = Flow.OPEN, Flow.ENDED


class TcpServer:
    """What every session of one stream server shares, made once per configuration: the server's
    directives, its upstream's balancer, the sessions' deadlines."""

    __slots__ = ("balancer", "bind_client", "choose", "connecting", "deadlines", "direct", "ended",
                 "ends_at_eof", "hello", "idle", "preread", "prereading", "server")

    def __init__(self, server: StreamServer, balancer: Balancer | None, preread: bool,
                 choose: Choose | None = None, info: bool = True) -> None:
        self.server = server
        self.balancer = balancer
        self.choose = choose                # `proxy_pass $variable` (balancer None)
        self.preread = preread              # `listen ... proxy_protocol` on this listener
        self.deadlines = deadlines = Deadlines()
        # (the queue, its timeout) of each phase that waits for one
        self.prereading = (deadlines.queue(server.proxy_protocol_timeout), server.proxy_protocol_timeout)
        # `ssl_preread on`: the ClientHello read within preread_timeout (sheer.core.tls_preread)
        self.hello = (deadlines.queue(server.preread_timeout), server.preread_timeout)
        self.connecting = (deadlines.queue(server.proxy_connect_timeout), server.proxy_connect_timeout)
        self.idle = (deadlines.queue(server.proxy_timeout), server.proxy_timeout)
        # The common session's lane, decided here: nothing to read or check before proxying (no PROXY
        # header, no ClientHello, no access rules, no `return`, an upstream known in advance) ...
        self.direct = (not preread and not server.ssl_preread and not server.access
                       and server.return_value is None and balancer is not None)
        # ... proxy_bind `$remote_addr` alone: the client's host is the address (its `transparent`), not
        # a template to render (None: another proxy_bind, or none) ...
        self.bind_client = client_bind(server.proxy_bind)
        # ... and the first EOF ends the session (no proxy_half_close, no `return`)
        self.ends_at_eof = not server.proxy_half_close and server.return_value is None
        # what the first EOF from each side answers: its info line ("client disconnected") only where
        # the error log takes info lines (`info`: it does)
        self.ended = (CLIENT_DISCONNECTED, UPSTREAM_DISCONNECTED) if info else (CLOSING, CLOSING)


class TcpSession:
    """One client connection and, once a peer accepts, its upstream connection: what nginx's stream
    proxy decides about them."""

    __slots__ = ("balancer", "bind", "client", "client_hello", "connect_began", "connect_time", "from_client",
                 "from_upstream", "header_length", "io", "mark", "peer", "phase", "proxy", "queue",
                 "reading_hello", "shared", "started", "status", "tried", "upstream_addr")

    def __init__(self, shared: TcpServer, client: Address, io: VariableSource) -> None:
        self.shared = shared
        self.io: Any = io                   # the driver's session: renders the variables, keys the deadlines
        self.phase = PREREAD
        self.from_client = self.from_upstream = OPEN
        self.client = client                # $remote_addr:$remote_port (after realip)
        self.proxy: proxy_protocol.ProxyHeader | None = None
        self.header_length = 0
        self.peer: Peer | None = None       # the peer connecting or connected
        self.tried: Tried | None = None
        self.bind: BindTo | None = None
        self.upstream_addr = ""             # every peer tried, as $upstream_addr lists them
        self.status = 200
        self.mark = 0                       # the bytes moved when proxy_timeout last looked
        self.started = self.connect_began = 0.0
        self.connect_time: float | None = None
        self.queue: Queue | None = None     # the deadline queue this session waits in
        self.balancer = shared.balancer     # `proxy_pass $variable`: chosen when the session starts
        self.reading_hello = False          # in PREREAD: the ClientHello now (`ssl_preread on`)
        self.client_hello: tls_preread.ClientHello | None = None     # $ssl_preread_*

    # --- events ----------------------------------------------------------------------------

    def accepted(self, now: float) -> Sequence[Command]:
        """The client's connection is here."""
        self.started = now
        shared = self.shared
        if shared.direct:
            return self._proxy(now)
        if shared.preread:
            return self._watch(shared.prereading, now)
        return self._preread_hello(b"", now)

    def preread(self, buffer: bytes, now: float) -> Sequence[Command]:
        """Everything the client sent so far, while reading its PROXY header, then (`ssl_preread on`) its
        ClientHello. Once the header is complete, `header_length` says how much of `buffer` it took:
        the rest is the client's data (a ClientHello read is data too: it goes on untouched)."""
        if self.reading_hello:
            return self._hello(buffer[self.header_length:], now)
        result = proxy_protocol.parse(buffer)
        if isinstance(result, proxy_protocol.NeedMore):
            return NOTHING
        self._forget()
        if isinstance(result, proxy_protocol.Malformed):
            return self._fail(f"{result.reason} while reading PROXY protocol", 400, now)
        self.header_length = result.length
        if result.header.transport == "stream":   # nginx ignores the addresses of other transports
            self.proxy = result.header
            real = from_proxy_protocol(self.shared.server.real_ip, self.client[0], result.header)
            if real is not None:
                self.client = real
        return self._preread_hello(buffer[self.header_length:], now)

    def connecting(self, now: float) -> Sequence[Command]:
        """connect() did not complete at once: it is under way, and proxy_connect_timeout runs. (Over
        veth or loopback the handshake usually completes inside the call: then `connected` follows
        `Connect` directly and no deadline is set and forgotten for nothing.)"""
        return self._watch(self.shared.connecting, now)

    def connected(self, now: float) -> Sequence[Command]:
        if self.queue is not None:          # proxy_connect_timeout ran (`connecting`)
            self._forget()
        self.connect_time = now - self.connect_began
        self.phase = RELAYING
        return self._watch(self.shared.idle, now)

    def connect_failed(self, message: str, now: float, timed_out: bool = False, ours: str | None = None,
                       fix: str = "") -> Sequence[Command]:
        """connect() failed or timed out (`message` in nginx's words). `ours`: the level of a failure on
        our side (bind, IP_TRANSPARENT, out of descriptors), which is not the peer's fault, and `fix`
        what to do about it."""
        self._forget()
        shared, peer, tried = self.shared, self.peer, self.tried
        balancer = self.balancer
        assert balancer is not None and peer is not None and tried is not None
        self.peer = None
        if ours is not None:
            balancer.free(peer, failed=False, now=now)
            line = Log(ours, f"{message} while connecting to upstream", Context.SESSION, peer, fix)
            return (line, *self._fail(None, 500, now))
        disabled = balancer.free(peer, failed=True, now=now)
        bind = self.bind
        hint = PLUMBING_HINT if timed_out and bind is not None and bind.transparent else ""
        lines = [Log("error", f"{message} while connecting to upstream", Context.SESSION, peer, hint)]
        if disabled:
            lines.append(Log("warn", "upstream server temporarily disabled while connecting to upstream",
                             Context.SESSION, peer))
        server = shared.server
        limit = server.proxy_next_upstream_timeout
        if not server.proxy_next_upstream or tried.left <= 0 or (limit and now - self.started >= limit):
            return (*lines, *self._fail(None, 502, now))
        return (*lines, *self._connect(now))

    def eof(self, side: Side, now: float) -> Sequence[Command]:
        """`side` sent its EOF, and everything it sent before was delivered."""
        phase = self.phase
        if phase is RELAYING and self.shared.ends_at_eof:     # the common end: the first EOF
            self._close(now)
            return self.shared.ended[side]
        if phase is DONE:
            return NOTHING
        if phase is PREREAD:
            what = "prereading client data" if self.reading_hello else "reading PROXY protocol"
            line = Log("info", f"client closed connection while {what}", Context.CLIENT)
            return (line, *self._close(now))
        if side:
            self.from_upstream = ENDED
        else:
            self.from_client = ENDED
        if self.shared.server.return_value is not None:
            return self._close(now, discard=True)        # the answer is out
        if not self.shared.server.proxy_half_close:
            self._close(now)
            return self.shared.ended[side]
        shutdown = SHUTDOWN[1 - side]
        if self.from_client is ENDED and self.from_upstream is ENDED:
            return (shutdown, *self._close(now))
        return (shutdown,)

    def failed(self, side: Side, call: str, error: OSError, now: float) -> Sequence[Command]:
        """`call` ("recv", "send") on the connection to `side` failed while relaying."""
        if self.phase is DONE:
            return NOTHING
        direction = "reading from" if call == "recv" else "sending to"
        what = f"{call}() failed ({error.errno}: {error.strerror}) while proxying and {direction}"
        if side is Side.CLIENT:     # nginx logs a client's failures at info: they are the client's business
            return (Log("info", f"{what} client", Context.SESSION, self.peer), *self._close(now))
        commands = self._close(now)
        return (Log("error", f"{what} upstream", Context.SESSION), *commands)

    def tick(self, now: float, moved: int = 0) -> Sequence[Command]:
        """The deadline this session waited for has come (the driver's timer found it due); `moved`: the
        bytes relayed either way so far, held-back remainders delivered later included."""
        phase = self.phase
        self.queue = None                   # taken out of its queue by Deadlines.due
        if phase is RELAYING:
            if moved != self.mark:          # proxy_timeout: a byte moved either way since the last look
                self.mark = moved
                return self._watch(self.shared.idle, now)
            line = Log("info", "connection timed out", Context.SESSION, self.peer)
            return (line, *self._close(now))
        if phase is CONNECTING:
            return self.connect_failed(TIMED_OUT, now, timed_out=True)
        if phase is PREREAD and self.reading_hello:
            return self._start(now)         # preread_timeout: nginx goes on with what it has
        if phase is PREREAD:
            line = Log("info", "client timed out (110: Connection timed out) while reading PROXY protocol",
                       Context.CLIENT)
            return (line, *self._close(now))
        return NOTHING

    def aborted(self, now: float) -> Sequence[Command]:
        """The worker stops at once (SIGTERM, or the drain waited long enough)."""
        return self._close(now)

    # --- decisions -------------------------------------------------------------------------

    def _preread_hello(self, data: bytes, now: float) -> Sequence[Command]:
        """After the PROXY header (if any): `ssl_preread on` reads the ClientHello first."""
        if not self.shared.server.ssl_preread:
            return self._start(now)
        self.reading_hello = True
        commands = self._watch(self.shared.hello, now)
        return (*commands, *self._hello(data, now)) if data else commands

    def _hello(self, data: bytes, now: float) -> Sequence[Command]:
        """nginx's ssl_preread: a ClientHello, a decline (the variables stay empty) or more to read."""
        result = tls_preread.bounded(data, self.shared.server.preread_buffer_size)
        if isinstance(result, tls_preread.NeedMore):
            return NOTHING
        self._forget()
        if result is None:
            return self._fail("preread buffer full", 400, now)
        self.client_hello = result if isinstance(result, tls_preread.ClientHello) else None
        return self._start(now)

    def _start(self, now: float) -> Sequence[Command]:
        shared = self.shared
        server = shared.server
        if server.access and not access.allowed(server.access, self.client[0] if self.client else ""):
            return self._fail(access.FORBIDDEN, 403, now)     # nginx: access before return, proxy_pass
        if server.return_value is not None:
            self.phase = RELAYING
            self.from_client = ENDED        # nothing more is read: the session ends once this is sent
            answer = Answer(render_bytes(server.return_value, self.io))
            return (answer, *self._watch(shared.idle, now))   # a client that never reads it
        self.reading_hello = False
        if self.balancer is None:            # `proxy_pass $variable`
            assert shared.choose is not None and server.proxy_pass_url is not None
            chosen = shared.choose(render(server.proxy_pass_url, self.io))
            if isinstance(chosen, Resolve):
                self.phase = CONNECTING      # the client's data waits, as while connecting
                return (chosen,)
            return self.chosen(chosen, now)
        return self._proxy(now)

    def chosen(self, chosen: Chosen, now: float) -> Sequence[Command]:
        """The balancer `proxy_pass $variable` rendered to (after `Resolve`: its name's addresses), or
        nginx's error line and status."""
        if self.phase is DONE:
            return NOTHING
        if isinstance(chosen, tuple):
            return self._fail(chosen[0], chosen[1], now)
        self.balancer = chosen
        return self._proxy(now)

    def _proxy(self, now: float) -> Sequence[Command]:
        shared, balancer = self.shared, self.balancer
        server = shared.server
        assert balancer is not None
        try:
            transparent = shared.bind_client
            if transparent is None:
                self.bind, said = bind_to(server.proxy_bind, self.io), NOTHING
            else:                           # `$remote_addr` alone: its value, without rendering
                client = self.client
                self.bind, said = bind_host(client[0] if client else "", transparent), NOTHING
        except BindValueError as exc:   # nginx (ngx_stream_proxy_set_local): said, and connected unbound
            self.bind, said = None, (Log("error", f"{exc} while connecting to upstream", Context.SESSION),)
        self.tried = balancer.start(server.proxy_next_upstream_tries, request_key(balancer.upstream, self.io))
        self.started = now
        return (*said, *self._connect(now)) if said else self._connect(now)

    def _connect(self, now: float) -> Sequence[Command]:
        balancer, tried = self.balancer, self.tried
        assert balancer is not None and tried is not None
        peer = balancer.get(tried, now)
        if peer is None:     # nginx's u->state->peer of a try that found none (NGX_BUSY): the group's name
            self.upstream_addr = ", ".join(filter(None, (self.upstream_addr, balancer.upstream.name)))
            return self._fail("no live upstreams while connecting to upstream", 502, now)
        self.peer = peer
        self.upstream_addr = f"{self.upstream_addr}, {peer.name}" if self.upstream_addr else peer.name
        self.phase = CONNECTING
        self.connect_began = now
        return (Connect(peer, self.bind),)

    def _fail(self, message: str | None, status: int, now: float) -> Sequence[Command]:
        self.status = status
        if message:
            return (Log("error", message, Context.SESSION), *self._close(now, discard=True))
        return self._close(now, discard=True)

    def _close(self, now: float, discard: bool = False) -> Sequence[Command]:
        if self.phase is DONE:
            return NOTHING
        self.phase = DONE
        if self.queue is not None:
            self._forget()
        peer = self.peer
        if peer is not None:
            self.peer = None
            balancer = self.balancer
            assert balancer is not None
            balancer.free(peer, failed=False, now=now)
        self.io = None                      # no cycle left once the session is done
        return DISCARDING if discard else CLOSING

    def _watch(self, queue: tuple[Queue, float], now: float) -> Sequence[Command]:
        waiting, timeout = queue
        self.queue = waiting
        deadline = waiting[self.io] = now + timeout
        armed = self.shared.deadlines.armed
        return ARMING if armed is None or deadline < armed else NOTHING

    def _forget(self) -> None:
        queue = self.queue
        if queue is not None:
            self.queue = None
            queue.pop(self.io, None)
