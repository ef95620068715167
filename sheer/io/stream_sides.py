"""The two ends of a stream session relayed through the event loop's (SSL) transports
(sheer.io.stream_tls): what one end reads goes to the session, which writes it to the other."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol, cast


class TlsSession(Protocol):
    """What a side tells its session (sheer.io.stream_tls.TlsSession)."""

    def forward(self, side: Side, data: bytes) -> None: ...
    def end(self, status: int | None) -> None: ...
    def paused(self, side: Side, paused: bool) -> None: ...


class Side(asyncio.Protocol):
    """One end of a session; what it reads goes to the other end."""

    def __init__(self, session: TlsSession, client: bool) -> None:
        self.session = session
        self.client = client
        self.transport: asyncio.Transport | None = None
        # proxy_ssl_session_reuse: keeps the upstream's session when the connection ends (a TLS 1.3
        # ticket comes after the handshake), set by UpstreamTlsSetup.wrap
        self.ended: Callable[[], None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.session.forward(self, data)

    def eof_received(self) -> bool:
        self._ended()
        self.session.end(None)         # proxy_half_close off: the first EOF ends the session
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._ended()
        self.session.end(None)

    def _ended(self) -> None:
        ended, self.ended = self.ended, None
        if ended is not None:
            ended()

    def pause_writing(self) -> None:
        self.session.paused(self, True)

    def resume_writing(self) -> None:
        self.session.paused(self, False)


def open_transport(side: Side) -> Callable[[], asyncio.WriteTransport | None]:
    def transport() -> asyncio.WriteTransport | None:
        found = side.transport
        return found if found is not None and not found.is_closing() else None
    return transport
