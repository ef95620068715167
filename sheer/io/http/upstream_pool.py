"""Upstream connections: the one connect function, the protocol object, the keepalive pool."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import Callable
from typing import Protocol, cast

from sheer.config.model import Upstream
from sheer.core.bind import BindTo
from sheer.core.variables import VariableSource
from sheer.io.http.upstream_tls import UpstreamTlsSetup
from sheer.io.slots import ConnectionSlots
from sheer.io.sockets import address_family, bound_socket
from sheer.io.upstream_connect import connect

Address = tuple[str, int] | str      # a unix-domain socket's is its path
# A pooled connection is identified by where it goes and where it comes from: with IP Transparency
# each upstream connection carries a client's address and must never serve another client.
PoolKey = tuple[Address, Address | None]

_RESET = struct.pack("ii", 1, 0)     # SO_LINGER on, 0 seconds: close() sends RST

UPSTREAM_KEEPALIVE_TIMEOUT = 60.0   # nginx's upstream keepalive_timeout default
UPSTREAM_KEEPALIVE_REQUESTS = 1000  # nginx's keepalive_requests default


class UpstreamUser(Protocol):
    """What drives an upstream connection while a request uses it (the proxy's exchange)."""

    def upstream_data(self, data: bytes) -> None: ...
    def upstream_eof(self) -> None: ...
    def upstream_lost(self, exc: Exception | None) -> None: ...
    def upstream_paused(self, paused: bool) -> None: ...


class NoSlot(Exception):
    """worker_connections has no room for one more upstream connection."""


class UpstreamConnection(asyncio.Protocol):
    def __init__(self, key: PoolKey, slots: ConnectionSlots | None = None,
                 loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.key = key
        self.slots = slots              # its worker_connections slot, given back once it is gone
        self.transport: asyncio.Transport | None = None
        self.user: UpstreamUser | None = None
        self.pool: UpstreamPool | None = None
        self.idle_since = 0.0           # when it went back to the pool
        # the exchange's timeouts (sheer.io.http.exchange): one timer, kept while the connection is
        # reused; what it checks when it fires, None while no exchange is timed
        self.timer: asyncio.TimerHandle | None = None
        self.timed: Callable[[], None] | None = None
        self.closed = False
        self.requests = 0
        self.write_paused = False
        # asked once, if at all: in Python 3.11 get_running_loop() costs a getpid() system call
        self.loop = loop or asyncio.get_running_loop()
        self.born = self.loop.time()      # for the pool's keepalive_time
        # TLS: keeps the session for the next connection (a TLS 1.3 ticket comes after the handshake,
        # so it is taken when the connection ends)
        self.ended: Callable[[], None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)   # uvloop's aren't subclasses

    def data_received(self, data: bytes) -> None:
        if self.user is not None:
            self.user.upstream_data(data)
        else:
            self.close()   # bytes on an idle connection: its state is unknown, never reuse it

    def eof_received(self) -> bool:
        if self.user is not None:
            self.user.upstream_eof()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._ended()
        self.closed = True
        self._stop_timer()
        if self.slots is not None:
            self.slots.release()
            self.slots = None
        if self.pool is not None:
            self.pool.discard(self)
        user, self.user = self.user, None
        if user is not None:
            user.upstream_lost(exc)

    def pause_writing(self) -> None:
        self.write_paused = True
        if self.user is not None:
            self.user.upstream_paused(True)

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.user is not None:
            self.user.upstream_paused(False)

    def timed_out(self) -> None:
        self.timer = None
        timed = self.timed
        if timed is not None:
            timed()

    def _stop_timer(self) -> None:
        self.timed = None
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _ended(self) -> None:
        ended, self.ended = self.ended, None
        if ended is not None:
            ended()

    def close(self) -> None:
        self.user = None
        self._ended()
        self._stop_timer()
        if not self.closed:
            self.closed = True
            if self.transport is not None:
                self.transport.close()

    def abort(self) -> None:
        """Drop a connection in an unknown state (a failure, a timeout, bytes nobody asked for): a
        reset, not a FIN, so that a peer that stopped reading does not keep our send buffer and an
        orphaned socket alive until the kernel gives up on it."""
        self.user = None
        self.closed = True
        self._stop_timer()
        transport = self.transport
        if transport is not None:
            sock = transport.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
            transport.abort()


def pool_key(peer_addr: Address, source: BindTo | None) -> PoolKey:
    """A pooled connection is only reused for the same local address: with IP Transparency that
    address is the client's, and one client's request must never travel on a connection that
    shows another client's address."""
    return (peer_addr, None if source is None else (source.host, source.port))


async def open_upstream(peer_addr: Address, timeout: float, source: BindTo | None = None,
                        slots: ConnectionSlots | None = None,
                        tls: UpstreamTlsSetup | None = None,
                        variables: VariableSource | None = None,
                        loop: asyncio.AbstractEventLoop | None = None) -> UpstreamConnection:
    """Connect to a peer within `timeout` seconds. The only place upstream sockets are made.
    Raises OSError, TimeoutError, sheer.io.sockets.BindError (our side failed: proxy_bind), or
    NoSlot (worker_connections are all taken, as nginx counts upstream connections too). `loop`:
    the running one, if the caller has it (asking costs a getpid() in Python 3.11)."""
    loop = loop or asyncio.get_running_loop()
    if slots is not None and not slots.take():
        raise NoSlot()
    try:
        return await _open(loop, peer_addr, timeout, source, slots, tls, variables)
    except BaseException:
        if slots is not None:
            slots.release()
        raise


async def _open(loop: asyncio.AbstractEventLoop, peer_addr: Address, timeout: float, source: BindTo | None,
                slots: ConnectionSlots | None, tls: UpstreamTlsSetup | None,
                variables: VariableSource | None = None) -> UpstreamConnection:
    family = address_family(peer_addr)
    if source is None:
        sock = socket.socket(family, socket.SOCK_STREAM)
    else:
        sock = bound_socket(family, socket.SOCK_STREAM, source.host, source.port, source.transparent)
    try:
        sock.setblocking(False)
        if family != socket.AF_UNIX:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        await connect(loop, sock, peer_addr, timeout)
        key = pool_key(peer_addr, source)
        def made_here() -> UpstreamConnection:
            return UpstreamConnection(key, slots, loop)
        if tls is not None:      # `proxy_pass https://`: the handshake, within proxy_connect_timeout
            made = await tls.wrap(loop, sock, made_here, peer_addr, timeout, variables)
            return cast(UpstreamConnection, made)
        _, protocol = await loop.create_connection(made_here, sock=sock)
    except BaseException:
        sock.close()
        raise
    return protocol


class UpstreamPool:
    """`keepalive N`: up to N idle connections per worker for one upstream block, least recently
    used evicted first, looked up by (peer, source). Idle ones are timed out by one timer per pool
    that sweeps them in the order they came back (`order`), not by a timer per connection."""

    def __init__(self, size: int, idle_timeout: float = UPSTREAM_KEEPALIVE_TIMEOUT,
                 max_requests: int = UPSTREAM_KEEPALIVE_REQUESTS, max_age: float = 3600.0) -> None:
        self.size = size
        self.idle_timeout = idle_timeout
        self.max_requests = max_requests
        self.max_age = max_age          # keepalive_time: a connection older than this is not kept
        self.by_key: dict[PoolKey, list[UpstreamConnection]] = {}
        self.order: dict[UpstreamConnection, None] = {}     # the least recently put back first
        self.timer: asyncio.TimerHandle | None = None

    def __len__(self) -> int:
        return len(self.order)

    def take(self, key: PoolKey) -> UpstreamConnection | None:
        idle = self.by_key.get(key)
        while idle:
            conn = idle.pop()
            if not idle:
                del self.by_key[key]
            del self.order[conn]
            conn.pool = None
            if not conn.closed:
                return conn
        return None

    def put(self, conn: UpstreamConnection) -> None:
        now = conn.loop.time()
        if (conn.closed or conn.requests >= self.max_requests or self.size <= 0
                or now - conn.born > self.max_age):
            conn.close()
            return
        order = self.order
        while len(order) >= self.size:
            oldest = next(iter(order))
            self.discard(oldest)
            oldest.close()
        conn.user = None
        conn.pool = self
        conn.idle_since = now
        if conn.transport is not None:
            conn.transport.resume_reading()   # an idle connection must notice the upstream closing it
        order[conn] = None
        idle = self.by_key.get(conn.key)
        if idle is None:
            self.by_key[conn.key] = [conn]
        else:
            idle.append(conn)
        if self.timer is None:
            self.timer = conn.loop.call_at(now + self.idle_timeout, self._expire)

    def discard(self, conn: UpstreamConnection) -> None:
        if conn in self.order:
            idle = self.by_key.get(conn.key)
            if idle and conn in idle:
                idle.remove(conn)
            self._forget(conn)

    def close(self) -> None:
        for conn in list(self.order):
            self.discard(conn)
            conn.close()
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _forget(self, conn: UpstreamConnection) -> None:
        self.order.pop(conn, None)
        if not self.by_key.get(conn.key, True):
            del self.by_key[conn.key]
        conn.pool = None

    def _expire(self) -> None:
        """Close those idle for idle_timeout (keepalive_timeout); again when the next one's is due."""
        self.timer = None
        for conn in list(self.order):
            due = conn.idle_since + self.idle_timeout
            if due > conn.loop.time():
                self.timer = conn.loop.call_at(due, self._expire)
                return
            self.discard(conn)
            conn.close()


# Per worker (per process), as nginx's cache lives in each worker; keyed by upstream identity.
# Connections over TLS and plain ones to the same upstream block are never mixed.
_pools: dict[tuple[int, bool], tuple[Upstream, UpstreamPool]] = {}


def pool_for(upstream: Upstream, ssl: bool = False) -> UpstreamPool | None:
    if upstream.keepalive <= 0:
        return None
    found = _pools.get((id(upstream), ssl))
    if found is None or found[0] is not upstream:
        pool = UpstreamPool(upstream.keepalive, idle_timeout=upstream.keepalive_timeout,
                            max_requests=upstream.keepalive_requests, max_age=upstream.keepalive_time)
        found = _pools[(id(upstream), ssl)] = (upstream, pool)
    return found[1]
