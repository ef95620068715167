"""The locations sheer answers itself: `stub_status;` (nginx's text), `api [write=on];` (nginx Plus's
REST API), `prometheus;` (the text exposition) and `dashboard;` (a live page over the API).

They read the shared board (every worker's counters, summed) and the health checks' board, so
any worker gives the same answer; a PATCH changes the control board under its lock and every
worker's balancer follows at its next pick.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time

from sheer import __version__
from sheer.config.model import StatusHandler, UpstreamServer
from sheer.core.api import Answer, Api, Instance, error_body
from sheer.core.health import Health
from sheer.core.http.add_header import added
from sheer.core.http.pages import simple_response
from sheer.core.peers import slot_server
from sheer.core.stats import PeerRef
from sheer.io.context import WorkerContext
from sheer.io.http.answers import CONTINUE
from sheer.io.http.client import ClientConnection
from sheer.io.http.dashboard import page
from sheer.io.http.metrics import exposition
from sheer.io.http.request import Request
from sheer.io.http.site import SERVER, Plan

BODY_LIMIT = 16 * 1024      # nginx's client_body_buffer_size: an API body must fit in it (else 413)
JSON = b"application/json"


class BoardReader:
    """sheer.core.api.Reader over the shared board and the health board of this generation."""

    def __init__(self, ctx: WorkerContext) -> None:
        self.shared = ctx.shared
        self.layout = ctx.shared.layout
        self.checks = ctx.health
        self.peers = ctx.peers
        self.value = self.shared.value
        self.overrides = self.shared.overrides
        self._slots: dict[int, tuple[tuple[str | None, int], ...]] = {}

    def server(self, ref: PeerRef) -> tuple[UpstreamServer, int] | None:
        """Who is at the position now: a server resolved at load, or what the resolver put in a slot."""
        if not ref.server.resolve:
            return ref.server, 0
        if self.peers is None:
            return None
        entries = self._slots.get(id(ref.upstream))
        if entries is None:       # one consistent look per upstream per answer
            entries = self._slots[id(ref.upstream)] = self.peers.read(ref.upstream)
        address, since = entries[ref.id] if ref.id < len(entries) else (None, 0)
        return (slot_server(ref.server, address), since) if address is not None else None

    def health(self, ref: PeerRef) -> Health | None:
        return self.checks.health(ref.upstream, ref.id) if self.checks is not None else None

    def apply(self, ref: PeerRef, changes: dict[str, int]) -> None:
        with self.shared.changing():
            self.shared.set_override(ref.control, down=changes.get("down"), drain=changes.get("drain"),
                                     weight=changes.get("weight"))


def stub_status(reader: BoardReader) -> bytes:
    """nginx's ngx_http_stub_status_module text, byte for byte."""
    glob = reader.layout.glob
    v = reader.value
    active, accepted, dropped = v(glob.at("active")), v(glob.at("accepted")), v(glob.at("dropped"))
    reading, writing = v(glob.at("reading")), v(glob.at("writing"))
    waiting = max(0, active - reading - writing)
    return (f"Active connections: {active} \nserver accepts handled requests\n"
            f" {accepted} {accepted - dropped} {v(glob.at('requests'))} \n"
            f"Reading: {reading} Writing: {writing} Waiting: {waiting} \n").encode()


class StatusLocations:
    """The handler of one service's status locations (a location whose `plan.handler` is set)."""

    def __init__(self, ctx: WorkerContext) -> None:
        self.ctx = ctx

    async def serve(self, client: ClientConnection, request: Request, plan: Plan) -> None:
        try:
            await self._serve(client, request, plan)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 -- a bug must cost one request, not the worker
            plan.error_log.log("crit", f"unexpected error in the status handler: {exc!r}")
            client.abort()

    async def _serve(self, client: ClientConnection, request: Request, plan: Plan) -> None:
        handler = plan.handler
        assert handler is not None and request.vars is not None
        if request.expect_continue:     # nginx's handlers read or discard the body: that says it first
            client.write(CONTINUE)
        method = request.method.decode("latin-1")
        body = b""
        if request.body.expected:
            if (request.body.content_length or 0) > BODY_LIMIT:
                client.respond_error(request, 413, plan, keepalive=False)
                return
            request.body.limit = BODY_LIMIT
            await request.body.ready(whole=False)    # a stalled client: client_body_timeout ends it
            if request.body.failed is not None:
                client.respond_error(request, request.body.failed.status, plan, keepalive=False)
                return
            if request.body.size > BODY_LIMIT or not request.body.done:
                client.respond_error(request, 413, plan, keepalive=False)
                return
            body = b"".join(request.body.chunks)
        reader = BoardReader(self.ctx)
        if handler.kind == "api":
            answer = self._api(request, plan, handler, reader, method, body)
            _send(client, request, plan, answer.status, answer.encode(), JSON,
                  tuple((name.encode(), value.encode()) for name, value in answer.headers))
            return
        if method not in ("GET", "HEAD"):
            client.respond_error(request, 405, plan)
            return
        if handler.kind == "stub_status":
            _send(client, request, plan, 200, stub_status(reader), b"text/plain")
        elif handler.kind == "prometheus":
            data, content_type = exposition(reader, time.time())
            _send(client, request, plan, 200, data, content_type.encode())
        else:
            _send(client, request, plan, 200, page(handler.api, handler.write), b"text/html; charset=utf-8",
                  ((b"Cache-Control", b"no-store"),))

    def _api(self, request: Request, plan: Plan, handler: StatusHandler, reader: BoardReader,
             method: str, body: bytes) -> Answer:
        variables = request.vars
        location = plan.location
        assert variables is not None and location is not None
        uri = variables.uri
        if not uri.startswith(location.path):
            return Answer(404, error_body(404, "path not found", "PathNotFound", secrets.token_hex(16)))
        query = {}
        for pair in (variables.args or "").split("&"):
            name, _, value = pair.partition("=")
            if name:
                query[name] = value
        ctx = self.ctx
        instance = Instance(__version__, variables.conn.server_addr, ctx.identity.generation,
                            ctx.identity.load_time, os.getpid(), os.getppid())
        api = Api(reader, instance, write=handler.write, writer=reader, now=time.time())
        return api.handle(method, uri[len(location.path):], query, body, secrets.token_hex(16))


def _send(client: ClientConnection, request: Request, plan: Plan, status: int, body: bytes,
          content_type: bytes, extra: tuple[tuple[bytes, bytes], ...] = ()) -> None:
    assert request.vars is not None
    request.body.detach()
    keepalive = client.keepalive_after(request)
    head = request.method == b"HEAD"
    location = plan.location
    if location is not None and location.add_headers:      # nginx's header filters run on these too
        extra += tuple(added(location.add_headers, status, request.vars)[0])
    data = simple_response(status, server=SERVER, date=client.site.date(), body=body,
                           content_type=content_type,
                           keepalive=keepalive, head=head, extra=extra, keepalive_line=plan.keepalive_line)
    request.vars.status, request.vars.sent = status, data      # $sent_http_*: the head as sent
    request.vars.body_bytes_sent = 0 if head else len(body)
    client.write(data)
    client.finish(request, plan, keepalive=keepalive)
