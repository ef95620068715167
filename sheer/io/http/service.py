"""HttpService: one listening socket's HTTP virtual hosts, served by one worker."""

from __future__ import annotations

import asyncio
import socket

from sheer.config.model import HttpServer
from sheer.io.context import WorkerContext
from sheer.io.counting import HttpCounters
from sheer.io.http.client import ClientConnection, Handler
from sheer.io.http.proxy_pass import proxy
from sheer.io.http.site import Site
from sheer.io.http.status import StatusLocations


class HttpService:
    """Satisfies sheer.io.service.Service, and is what its connections see as their
    sheer.io.http.client.Listener."""

    def __init__(self, sock: socket.socket, servers: list[HttpServer], ctx: WorkerContext) -> None:
        self.sock = sock
        self.ctx = ctx
        self.site = Site(servers, ctx)
        self.loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]  # set by start()
        self.server: asyncio.AbstractServer | None = None
        self.connections: set[ClientConnection] = set()
        self.connected = 0
        self.draining = False
        self.proxy: Handler = proxy
        self.status: Handler = StatusLocations(ctx).serve
        self._drained: asyncio.Future[None] | None = None
        port = sock.getsockname()[1]
        self.backlog = next((listen.backlog for server in servers for listen in server.listens
                             if listen.port == port), 511)
        host = sock.getsockname()[0]
        # `listen ... proxy_protocol` belongs to the address: any server listing it turns it on.
        self.proxy_protocol = any(listen.proxy_protocol for server in servers for listen in server.listens
                                  if listen.port == port and listen.bind_host == host)
        self.log = ctx.error_log(None)
        self.counters = HttpCounters(ctx.counters, ctx.shared.layout, servers)

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        # The master owns `sock`; closing the server closes only this duplicate descriptor.
        # asyncio and uvloop call listen() again: keep the backlog the master configured.
        self.server = await self.loop.create_server(lambda: ClientConnection(self), sock=self.sock.dup(),
                                                    backlog=self.backlog)

    def stop_accepting(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None

    async def drain(self) -> None:
        self.stop_accepting()
        self.draining = True
        for conn in list(self.connections):
            if conn.idle:
                conn.close()
        if not self.connections:
            return
        self._drained = self.loop.create_future()
        await self._drained

    def abort(self) -> None:
        self.stop_accepting()
        self.draining = True
        for conn in list(self.connections):
            conn.abort()

    def connection_closed(self, conn: ClientConnection) -> None:
        self.connections.discard(conn)
        if not self.connections and self._drained is not None and not self._drained.done():
            self._drained.set_result(None)
