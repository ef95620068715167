"""WebSocket and any Upgrade: after the upstream's 101, the client and upstream connections become a
byte tunnel in both directions (nginx's ngx_http_upstream_upgrade), idle-timed by proxy_read_timeout.

nginx tunnels only when the request had an Upgrade header and the upstream answered 101 (with
`proxy_http_version 1.1` and `proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection
"upgrade"` the upstream is asked to). The 101 goes to the client with `Connection: upgrade` and the
upstream's own headers (Upgrade, Sec-WebSocket-Accept...). Then every byte is passed as it comes;
either side's end (once what it sent is passed on) or proxy_read_timeout without a byte either way
ends both connections, as ngx_http_upstream_process_upgraded does.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from sheer.core.http.headers import Headers

# The 101's headers that describe the hop or are sheer's own; Upgrade itself goes to the client.
_SKIP = frozenset({b"connection", b"keep-alive", b"transfer-encoding", b"content-length", b"date",
                   b"server", b"proxy-connection", b"te", b"trailer", b"x-pad"})


def switching_head(reason: bytes, headers: Headers, server: bytes, date: bytes,
                   added: list[tuple[bytes, bytes]]) -> bytes:
    """The 101 as nginx's header filter writes it: Server, Date, `Connection: upgrade`, then the
    upstream's headers."""
    lines = [b"HTTP/1.1 101 %s\r\nServer: %s\r\nDate: %s\r\nConnection: upgrade\r\n"
             % (reason or b"Switching Protocols", server, date)]
    for name, value in headers:
        if name.lower() not in _SKIP:
            lines.append(b"%s: %s\r\n" % (name, value))
    for name, value in added:
        lines.append(b"%s: %s\r\n" % (name, value))
    lines.append(b"\r\n")
    return b"".join(lines)


class Side(Protocol):
    """Either connection: its transport, whether it is gone."""

    transport: asyncio.Transport | None
    closed: bool


class Counted(Protocol):
    """The request's variables that count what the tunnel passes to the client."""

    bytes_sent: int
    body_bytes_sent: int


class Tunnel:
    """Drives both connections once upgraded: the upstream connection's user (UpstreamUser), the
    client connection's relay and data sink."""

    def __init__(self, loop: asyncio.AbstractEventLoop, client: Side, upstream: Side,
                 timeout: float, counted: Counted) -> None:
        self.loop = loop
        self.client = client
        self.upstream = upstream
        self.timeout = timeout
        self.done: asyncio.Future[str] = loop.create_future()
        # $bytes_sent and $body_bytes_sent, counted as bytes pass: the client's connection may end (and be
        # logged) before the proxy hears of the tunnel's end
        self.counted = counted
        self.to_upstream = 0
        self.last_activity = loop.time()
        self.timer: asyncio.TimerHandle | None = loop.call_at(self.last_activity + timeout, self._check)

    def start(self, from_upstream: bytes, from_client: bytes) -> None:
        """What each side sent right after the handshake, already read (nginx's preread buffers)."""
        if from_upstream:
            self.upstream_data(from_upstream)
        if from_client:
            self.client_data(from_client)
        for side in (self.client, self.upstream):
            if side.transport is not None and not side.closed:
                side.transport.resume_reading()

    # -- client side --

    def client_data(self, data: bytes) -> None:
        self.last_activity = self.loop.time()
        self.to_upstream += len(data)
        _write(self.upstream, data)

    def client_eof(self) -> None:
        self._end("client closed connection")

    def client_paused(self, paused: bool) -> None:
        """The client stopped reading: stop reading the upstream (and resume with it)."""
        _reading(self.upstream, not paused)

    # -- upstream side (UpstreamUser) --

    def upstream_data(self, data: bytes) -> None:
        self.last_activity = self.loop.time()
        self.counted.body_bytes_sent += len(data)
        self.counted.bytes_sent += len(data)
        _write(self.client, data)

    def upstream_eof(self) -> None:
        self._end("upstream closed connection")

    def upstream_lost(self, exc: Exception | None) -> None:
        self._end("upstream closed connection")

    def upstream_paused(self, paused: bool) -> None:
        _reading(self.client, not paused)

    # -- ending --

    def _check(self) -> None:
        self.timer = None
        due = self.last_activity + self.timeout
        if self.loop.time() >= due:
            self._end("upstream timed out (110: Connection timed out) while proxying upgraded connection")
        else:
            self.timer = self.loop.call_at(due, self._check)

    def _end(self, why: str) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if not self.done.done():
            self.done.set_result(why)


def _write(side: Side, data: bytes) -> None:
    if side.transport is not None and not side.closed:
        side.transport.write(data)


def _reading(side: Side, on: bool) -> None:
    if side.transport is not None and not side.closed:
        if on:
            side.transport.resume_reading()
        else:
            side.transport.pause_reading()
