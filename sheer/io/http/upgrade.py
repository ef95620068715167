"""A request with Upgrade that its upstream answered 101: the connections become a tunnel."""

from __future__ import annotations

import asyncio

from sheer.config.model import Location
from sheer.core.http.add_header import added
from sheer.core.http.variables import RequestVariables
from sheer.io.http.client import ClientConnection
from sheer.io.http.exchange import Exchange
from sheer.io.http.site import SERVER
from sheer.io.http.tunnel import Tunnel, switching_head


async def tunnel_after_101(client: ClientConnection, exchange: Exchange, location: Location,
                           variables: RequestVariables, loop: asyncio.AbstractEventLoop) -> str:
    """The 101 to the client, then a tunnel both ways until either side ends or proxy_read_timeout
    passes without a byte (sheer.io.http.tunnel); why it ended."""
    variables.body_bytes_sent = 0
    tunnel = Tunnel(loop, client, exchange.conn, location.proxy_read_timeout, variables)
    extra = added(location.add_headers, 101, variables)[0] if location.add_headers else []
    head = switching_head(exchange.reason, exchange.headers, SERVER, client.site.date(), extra)
    client.write(head)
    variables.status = 101
    exchange.conn.user = client.relay = client.tunnel = tunnel
    pending = client.reader.pending()
    client.reader.stop()
    tunnel.start(exchange.upgraded(), pending)
    try:
        return await tunnel.done
    finally:
        client.tunnel = None
