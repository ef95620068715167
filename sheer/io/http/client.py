"""The client side of an HTTP/1.x connection: parse requests, route them, answer or hand to the proxy."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any, Protocol, cast

import httptools

from sheer.core.http.pages import REDIRECTS, error_body, error_response, simple_response
from sheer.core.http.routing import host_name
from sheer.core.http.uri import BadUri, normalize, split_uri
from sheer.core.http.variables import Connection, RequestVariables
from sheer.core.proxy_protocol import Malformed, NeedMore, parse
from sheer.core.realip import for_request
from sheer.core.variables import render_bytes
from sheer.io.counting import HttpCounters
from sheer.io.http.body import RequestBody
from sheer.io.http.request import HeaderTooLarge, Relay, Request
from sheer.io.http.site import SERVER, Plan, Site
from sheer.io.logs import ErrorLogger

HEADER_LIMIT = 8 * 1024        # large_client_header_buffers 8k
CLIENT_HEADER_TIMEOUT = 60.0   # client_header_timeout
KEEPALIVE_TIMEOUT = 75.0       # keepalive_timeout
SEND_TIMEOUT = 60.0            # send_timeout
PIPELINE_LIMIT = 8             # queued requests before reading pauses

# What answers a routed request that sheer does not answer itself: proxy_pass, the status locations.
Handler = Callable[["ClientConnection", Request, Plan], Coroutine[Any, Any, None]]


class Listener(Protocol):
    """What a connection takes from the service that accepted it (sheer.io.http.service.HttpService):
    the virtual hosts, the counters, the handlers, and its place among the open connections."""

    site: Site
    loop: asyncio.AbstractEventLoop
    log: ErrorLogger
    counters: HttpCounters
    proxy_protocol: bool
    connected: int
    connections: set[ClientConnection]
    draining: bool
    proxy: Handler
    status: Handler

    def connection_closed(self, conn: ClientConnection) -> None: ...


class ClientConnection(asyncio.Protocol):
    def __init__(self, service: Listener) -> None:
        self.service = service
        self.site = service.site
        self.loop = service.loop
        self.transport: asyncio.Transport | None = None
        self.parser: httptools.HttpRequestParser | None = httptools.HttpRequestParser(self)
        self.conn: Connection | None = None
        self.queue: deque[Request] = deque()
        self.current: Request | None = None
        self.receiving: Request | None = None
        self.task: asyncio.Task[None] | None = None
        self.relay: Relay | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.deadline: float | None = None
        self.send_timer: asyncio.TimerHandle | None = None
        self.paused: set[str] = set()
        self.write_paused = False
        self.closed = False
        self._url: list[bytes] = []
        self._headers: list[tuple[bytes, bytes]] = []
        self._header_size = 0
        self._in_headers = False
        # `listen ... proxy_protocol`: bytes held until the PROXY header is complete (None: not expected).
        self.proxy_buffer: bytes | None = b"" if service.proxy_protocol else None

    # -- transport events --

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)   # uvloop's aren't subclasses
        remote = transport.get_extra_info("peername")
        local = transport.get_extra_info("sockname")
        self.service.connected += 1
        counters = self.service.counters
        counters.row[counters.accepted] += 1
        counters.row[counters.active] += 1
        self.conn = Connection(remote[:2], local[:2], self.service.connected, self.site.hostname,
                               self.site.pid)
        self.service.connections.add(self)
        self._arm(CLIENT_HEADER_TIMEOUT)

    def data_received(self, data: bytes) -> None:
        if self.parser is None:
            return
        if self.proxy_buffer is not None:
            data = self._proxy_header(self.proxy_buffer + data)
            if not data:
                return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # Upgrades are not proxied (nginx drops Upgrade without explicit config): answer, then close.
            self.parser = None
        except httptools.HttpParserError as exc:
            self._bad_request(494 if isinstance(exc.__context__, HeaderTooLarge) else 400)

    def _proxy_header(self, buffer: bytes) -> bytes:
        """Read the PROXY header (within client_header_timeout, like nginx); the request bytes after it."""
        result = parse(buffer)
        if isinstance(result, NeedMore):
            self.proxy_buffer = buffer
            return b""
        self.proxy_buffer = None
        conn = self.conn
        assert conn is not None
        if isinstance(result, Malformed):
            self.service.log.error(f"{result.reason} while reading PROXY protocol, client: "
                                        f"{conn.remote_addr}, server: {conn.server_addr}:{conn.server_port}")
            self.abort()
            return b""
        if result.header.transport == "stream":   # nginx: other transports' addresses are ignored
            conn.proxy = result.header
        return buffer[result.length:]

    def eof_received(self) -> bool:
        self.parser = None
        # Keep the write side open while a response is still coming.
        return not (self.current is None and not self.queue)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.parser = None
        self._cancel_timers()
        counters = self.service.counters
        row = counters.row
        row[counters.active] -= 1
        if self._in_headers:
            self._in_headers = False
            row[counters.reading] -= 1
        for queued in self.queue:
            self._uncount(queued)
        if self.task is not None:
            self.task.cancel()
        if self.current is not None and not self.current.finished and self.current.vars is not None:
            self.current.vars.status = self.current.vars.status or 499
            self._log_access(self.current)
        if self.current is not None and not self.current.finished:
            self._uncount(self.current)
        self.service.connection_closed(self)

    def pause_writing(self) -> None:
        self.write_paused = True
        if self.relay is not None:
            self.relay.client_paused(True)
        self.send_timer = self.loop.call_later(SEND_TIMEOUT, self.abort)

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.send_timer is not None:
            self.send_timer.cancel()
            self.send_timer = None
        if self.relay is not None:
            self.relay.client_paused(False)

    # -- httptools callbacks --

    def on_message_begin(self) -> None:
        self._url = []
        self._headers = []
        self._header_size = 0
        if not self._in_headers:
            counters = self.service.counters
            counters.row[counters.reading] += 1
        self._in_headers = True
        if self.current is None and not self.queue:
            self._arm(CLIENT_HEADER_TIMEOUT)

    def on_url(self, url: bytes) -> None:
        self._url.append(url)
        self._header_size += len(url)
        if self._header_size > HEADER_LIMIT:
            raise HeaderTooLarge()

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))
        self._header_size += len(name) + len(value) + 4
        if self._header_size > HEADER_LIMIT:
            raise HeaderTooLarge()

    def on_headers_complete(self) -> None:
        parser = self.parser
        assert parser is not None
        self._in_headers = False
        counters = self.service.counters
        row = counters.row
        row[counters.reading] -= 1
        row[counters.writing] += 1
        row[counters.requests] += 1
        content_length: int | None = None
        chunked = False
        host: str | None = None
        expect = False
        for name, value in self._headers:
            lname = name.lower()
            if lname == b"host":
                host = value.decode("latin-1")
            elif lname == b"content-length":
                content_length = int(value)
            elif lname == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif lname == b"expect":
                expect = value.lower() == b"100-continue"
        version = parser.get_http_version()
        request = Request(parser.get_method(), b"".join(self._url).decode("latin-1"), f"HTTP/{version}",
                          self._headers, parser.should_keep_alive(),
                          RequestBody(self, None if chunked else content_length, chunked),
                          host, expect and version == "1.1")
        request.length = self._header_size
        request.counted = True
        if parser.should_upgrade():
            request.keepalive = False
        self.receiving = request
        self.queue.append(request)
        if len(self.queue) > PIPELINE_LIMIT:
            self.pause("pipeline")
        if self.current is None:
            self._start_next()

    def on_body(self, body: bytes) -> None:
        if self.receiving is not None:
            self.receiving.body.feed(body)

    def on_message_complete(self) -> None:
        request, self.receiving = self.receiving, None
        if request is not None:
            request.body.finish()

    # -- reading flow control --

    def pause(self, reason: str) -> None:
        if not self.paused and self.transport is not None and not self.closed:
            self.transport.pause_reading()
        self.paused.add(reason)

    def resume(self, reason: str) -> None:
        if reason in self.paused:
            self.paused.discard(reason)
            if not self.paused and self.transport is not None and not self.closed:
                self.transport.resume_reading()

    # -- requests --

    def _start_next(self) -> None:
        request = self.queue.popleft()
        self.current = request
        self.resume("pipeline")
        self._clear_deadline()
        conn = self.conn
        assert conn is not None
        raw_uri = request.raw_uri
        if raw_uri.startswith(("http://", "https://")):   # absolute-form request target
            rest = raw_uri.partition("//")[2]
            authority, slash, path = rest.partition("/")
            raw_uri = slash + path
            request.host = authority
        host = host_name(request.host or "")
        vhost = self.site.vhosts.select(host)
        path, args = split_uri(raw_uri)
        try:
            uri = normalize(path)
        except BadUri:
            uri = path
            request.keepalive = False
            bad = True
        else:
            bad = request.host is None and request.version == "HTTP/1.1"
        request.vars = RequestVariables(conn, request.method, request.raw_uri, uri, args, request.version,
                                        request.headers, host or vhost.name or conn.server_addr, vhost.name,
                                        request.length, time.time())
        zone = self.service.counters.zones.get(id(vhost.server))
        if zone is not None:
            request.zone = zone
            row = self.service.counters.row
            row[zone.processing] += 1
            row[zone.requests] += 1
        server_plan = self.site.server_plans.get(id(vhost.server))
        location = vhost.locations.match(uri) if server_plan is None else None
        real = for_request(location.real_ip if location is not None else vhost.server.real_ip,
                           conn.remote_addr, conn.proxy, request.headers)
        if real is not None:
            request.vars.remote_addr = real[0]
            request.vars.remote_port = "" if real[1] is None else str(real[1])
        if bad:
            self.respond_error(request, 400, None, keepalive=False)
            return
        if server_plan is None and location is None:
            self.respond_error(request, 404, None)
            return
        plan = server_plan or self.site.plan(location)  # type: ignore[arg-type]
        if plan.return_ is not None:
            self._return(request, plan)
            return
        if plan.handler is not None:
            self.task = self.loop.create_task(self.service.status(self, request, plan))
            return
        self.task = self.loop.create_task(self.service.proxy(self, request, plan))

    def _return(self, request: Request, plan: Plan) -> None:
        returned = plan.return_
        assert returned is not None and request.vars is not None
        code = returned.code
        if code == 444:   # nginx: close without a response
            request.vars.status = 444
            self.finish(request, plan, keepalive=False)
            return
        text = render_bytes(returned.text, request.vars) if returned.text is not None else None
        location = None
        if code in REDIRECTS:
            location, body, content_type = text, error_body(code), b"text/html"
        elif text is not None:
            body, content_type = text, b"text/plain"
        elif code >= 400:
            body, content_type = error_body(code), b"text/html"
        else:
            body, content_type = b"", b"text/plain"
        keepalive = self.keepalive_after(request)
        head = request.method == b"HEAD"
        data = simple_response(code, server=SERVER, date=self.site.date(), body=body,
                               content_type=content_type, keepalive=keepalive, head=head, location=location)
        request.body.detach()
        request.vars.status = code
        request.vars.body_bytes_sent = 0 if head else len(body)
        self.write(data)
        self.finish(request, plan, keepalive=keepalive)

    def respond_error(self, request: Request, status: int, plan: Plan | None, *,
                      keepalive: bool = True) -> None:
        keepalive = keepalive and self.keepalive_after(request)
        data = error_response(status, server=SERVER, date=self.site.date(), keepalive=keepalive,
                              head=request.method == b"HEAD")
        request.body.detach()
        if request.vars is not None:
            request.vars.status = status
            request.vars.body_bytes_sent = len(error_body(status))
        self.write(data)
        self.finish(request, plan, keepalive=keepalive)

    def keepalive_after(self, request: Request) -> bool:
        # An unanswered `Expect: 100-continue` leaves the body's fate unknown: close instead.
        unread = request.expect_continue and not request.body.done and request.body.size == 0
        return request.keepalive and not unread and not self.service.draining and self.parser is not None

    def write(self, data: bytes) -> None:
        self.write_buffers([data], counted=len(data))

    def write_buffers(self, buffers: list[bytes], counted: int) -> None:
        """Write several buffers with one send(); `counted` bytes of them go to $bytes_sent here
        (a relayed body is counted by its exchange)."""
        if self.transport is not None and not self.closed:
            if len(buffers) == 1:
                self.transport.write(buffers[0])
            else:
                self.transport.writelines(buffers)
            if self.current is not None and self.current.vars is not None:
                self.current.vars.bytes_sent += counted

    def finish(self, request: Request, plan: Plan | None, *, keepalive: bool) -> None:
        """The response is written (or abandoned): log it, then close or wait for the next request."""
        request.finished = True
        self._uncount(request)
        self.task = None
        self.relay = None
        if request.vars is not None and plan is not None:
            self._log_access(request, plan)
        if self.current is request:
            self.current = None
        if self.closed:
            return
        if not keepalive or self.service.draining or self.parser is None:
            self.close()
        elif self.queue:
            self._start_next()
        else:
            self._arm(CLIENT_HEADER_TIMEOUT if self._in_headers else KEEPALIVE_TIMEOUT)

    def _uncount(self, request: Request) -> None:
        """The request is over (answered, or its connection lost): out of "writing", into its zone."""
        if not request.counted:
            return
        request.counted = False
        counters = self.service.counters
        counters.row[counters.writing] -= 1
        zone = request.zone
        if zone is not None:
            variables = request.vars
            status = variables.status if variables is not None else 0
            sent = variables.bytes_sent if variables is not None else 0
            received = request.length + request.body.size
            zone.finished(counters.row, status, received, sent)

    def _log_access(self, request: Request, plan: Plan | None = None) -> None:
        variables = request.vars
        if variables is None:
            return
        if plan is None:
            return
        if plan.access:
            variables.now = time.time()
            plan.access.write(variables)

    def _bad_request(self, status: int) -> None:
        if self.current is None and self.transport is not None and not self.closed:
            self.transport.write(error_response(status, server=SERVER, date=self.site.date(),
                                                keepalive=False))
            self.close()
        else:
            # A response is in progress: the connection can't be resynchronized; end it after that.
            self.parser = None
            for queued in self.queue:
                queued.keepalive = False
            if self.current is not None:
                self.current.keepalive = False

    # -- lifetime --

    @property
    def idle(self) -> bool:
        return self.current is None and not self.queue and not self._in_headers

    def close(self) -> None:
        self.parser = None
        if not self.closed and self.transport is not None:
            self.closed = True
            self._cancel_timers()
            self.transport.close()

    def abort(self) -> None:
        self.parser = None
        if self.transport is not None:
            self.closed = True
            self._cancel_timers()
            self.transport.abort()

    # The header and keepalive timeouts: set and cleared for every request, so they are a
    # deadline, and one timer that wakes up now and then to compare it, rather than a timer
    # made and cancelled each time.

    def _arm(self, timeout: float) -> None:
        deadline = self.loop.time() + timeout
        self.deadline = deadline
        if self.timer is not None:
            if self.timer.when() <= deadline:
                return
            self.timer.cancel()
        self.timer = self.loop.call_at(deadline, self._expire)

    def _expire(self) -> None:
        self.timer = None
        deadline = self.deadline
        if deadline is None:
            return
        if self.loop.time() >= deadline:
            self.close()
        else:
            self.timer = self.loop.call_at(deadline, self._expire)

    def _clear_deadline(self) -> None:
        self.deadline = None

    def _cancel_timers(self) -> None:
        """Closing: no timer may keep the connection alive."""
        self.deadline = None
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.send_timer is not None:
            self.send_timer.cancel()
            self.send_timer = None

