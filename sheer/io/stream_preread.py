"""nginx's preread phase for a TCP stream session (`ssl_preread on`): the ClientHello is read as it
comes, kept with the rest of the client's bytes for the upstream, and its verdict
(sheer.core.tls_preread) sets $ssl_preread_*; then the content phase (proxy_pass) starts. Functions of
sheer.io.stream_tcp.Session (a slotted class: no mixin)."""

from __future__ import annotations

import asyncio
from typing import Protocol

from sheer.config.model import StreamServer
from sheer.core import tls_preread
from sheer.io.stream_vars import StreamVariables


class Session(Protocol):
    """What the preread phase uses of sheer.io.stream_tcp.Session."""

    loop: asyncio.AbstractEventLoop
    vars: StreamVariables
    preread: bytes | None
    pending: list[bytes]
    timer: asyncio.TimerHandle | None

    @property
    def server(self) -> StreamServer: ...

    def start(self) -> None: ...

    def fail(self, message: str | None, status: int = 502) -> None: ...


def begin(session: Session) -> None:
    """The preread phase when `ssl_preread on`, then the content phase (start)."""
    server = session.server
    if not server.ssl_preread:
        session.start()
        return
    session.preread = b""
    session.timer = session.loop.call_later(server.preread_timeout, done, session)
    if session.pending:      # what followed a PROXY header
        read(session, b"".join(session.pending))


def read(session: Session, data: bytes) -> None:
    assert session.preread is not None
    buffer = session.preread + data
    result = tls_preread.preread(buffer)
    if isinstance(result, tls_preread.NeedMore):
        if len(buffer) >= session.server.preread_buffer_size:
            cancel(session)
            session.fail("preread buffer full", status=400)
            return
        session.preread = buffer
        return
    if isinstance(result, tls_preread.ClientHello):
        session.vars.preread = result
    done(session)


def cancel(session: Session) -> None:
    session.preread = None
    if session.timer is not None:
        session.timer.cancel()
        session.timer = None


def done(session: Session) -> None:
    """A ClientHello read, declined, cut short by the client's end, or preread_timeout: nginx goes on to
    the content phase with what it has."""
    cancel(session)
    session.start()
