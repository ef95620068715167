"""The UDP stream proxy's state for one session (sheer.io.stream_udp): its upstream socket, its variables,
and its rate limits."""

from __future__ import annotations

import asyncio
import socket

from sheer.config.model import StreamServer
from sheer.core.balancers import Peer
from sheer.core.rate import DatagramLimit, evaluate
from sheer.io.counting import PeerColumns
from sheer.io.stream_vars import StreamVariables


class UdpFlow:
    """The driver's state for one session."""

    __slots__ = ("client", "columns", "down", "fd", "local", "paused", "peer", "preamble", "sock", "up",
                 "vars")

    def __init__(self, sock: socket.socket, peer: Peer, client: tuple[str, int],
                 local: str | None, variables: StreamVariables) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.peer = peer
        self.client = client
        self.local = local        # the address the client wrote to (wildcard listeners only)
        self.vars = variables
        self.preamble = b""       # `proxy_protocol on`: the v2 header the session's first datagram carries
        self.columns: PeerColumns | None = None   # the peer's shared counters
        self.up: DatagramLimit | None = None      # proxy_upload_rate (None: no limit)
        self.down: DatagramLimit | None = None    # proxy_download_rate
        self.paused: asyncio.TimerHandle | None = None   # reading the upstream resumes then

    def limit_rates(self, server: StreamServer, now: float) -> str | None:
        """proxy_upload_rate and proxy_download_rate of a new session (sheer.core.rate.DatagramLimit);
        nginx's error line if a variable's value is no size (that rate is then 0)."""
        said = None
        for name, value in (("up", server.proxy_upload_rate), ("down", server.proxy_download_rate)):
            rate, problem = evaluate(value, self.vars)
            said = said or problem
            if rate:
                setattr(self, name, DatagramLimit(rate, now))
        return said
