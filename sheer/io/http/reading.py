"""Reading requests on a client connection: the reader's events (sheer.core.http.reader) become
requests in their turn, bodies fed to their requests, refusals answered after the requests before
them; a body that breaks nginx's rules answers for its own request."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING, Protocol, cast

from sheer.core.http.reader import END, RequestReader
from sheer.core.http.request_head import RequestHead
from sheer.core.http.request_line import HTTP_10, HTTP_11
from sheer.core.http.variables import Connection
from sheer.core.http.verdict import Rejected
from sheer.core.proxy_protocol import Malformed, NeedMore, parse
from sheer.io.counting import HttpCounters
from sheer.io.http.answers import Client, refused_request
from sheer.io.http.body import RequestBody
from sheer.io.http.dispatch import route
from sheer.io.http.logline import client_error
from sheer.io.http.request import Request
from sheer.io.http.site import Site
from sheer.io.logs import ErrorLogger
from sheer.io.slots import Reusable


class Service(Protocol):
    """What reading takes from the listener (sheer.io.http.client.Listener)."""

    counters: HttpCounters
    log: ErrorLogger

    def reusable(self, conn: Reusable, idle: bool) -> None: ...

PIPELINE_LIMIT = 8             # queued requests before reading pauses
# what nginx logs (at info) when it answers 496 and 497
_REFUSALS = {496: "client sent no required SSL certificate",
             497: "client sent plain HTTP request to HTTPS port"}


class Reading:
    """Part of sheer.io.http.client.ClientConnection."""

    conn: Connection | None

    service: Service
    site: Site
    loop: asyncio.AbstractEventLoop
    reader: RequestReader
    queue: deque[Request]
    current: Request | None
    receiving: Request | None
    paused: set[str]
    in_head: bool
    requests: int
    head_since: float
    body_since: float
    body_timeout: float
    lingering: bool
    refuse: int
    proxy_buffer: bytes | None      # a PROXY protocol header being read
    idle_conns: dict[Reusable, None]    # ConnectionSlots.reusable

    def _verify_error(self) -> str:
        """495's log line (nginx: at info, the request then answered 400 "The SSL certificate error")."""
        tls = self.conn.tls if self.conn is not None else None
        return "" if tls is None else f"client SSL certificate verify error: ({tls.verify}:{tls.verify_text})"

    if TYPE_CHECKING:      # what the connection that combines the parts has
        @property
        def client(self) -> Client:
            ...

        def _arm(self, deadline: float) -> None:
            ...

        def _start_next(self) -> None:
            ...

        def _start(self, request: Request) -> None:
            ...

        def pause(self, reason: str) -> None:
            ...

        def resume(self, reason: str) -> None:
            ...

        @property
        def counters(self) -> HttpCounters:
            ...

        def close(self) -> None:
            ...

        def abort(self) -> None:
            ...

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

    def _read(self) -> None:
        reader = self.reader
        more = False       # a request already ended in this read: a head now came with it ($pipe)
        while not self.paused:
            event = reader.next_event()
            if event is None:
                break
            if type(event) is bytes:
                receiving = self.receiving
                if receiving is not None:
                    receiving.body.feed(event)
            elif event is END:
                receiving = self.receiving
                if receiving is not None:
                    self.receiving = None
                    receiving.body.finish()
                    if receiving.finished and self.lingering:
                        self.close()         # answered, its body dropped: what nginx waits for
                more = True
            elif type(event) is RequestHead:
                self._head(event, more)
                more = True
                if self.paused and not reader.in_body:
                    return       # paused after a head without a body: no head is being read
            elif self.receiving is not None:
                self._body_broke(cast(Rejected, event))
            else:
                self._refused(cast(Rejected, event))
        if reader.pos < len(reader.buffer) and reader.reading_head and not self.in_head:  # all read: no call
            self._count_head(True)
            if self.current is None and not self.queue:
                self.head_since = self.loop.time()
                self._arm(self.head_since + self.site.limits.client_header_timeout)
                self.service.reusable(self, False)

    def _count_head(self, reading: bool) -> None:
        """stub_status "reading": from a head's first byte to its end."""
        if reading != self.in_head:
            self.in_head = reading
            counters = self.service.counters
            counters.row[counters.reading] += 1 if reading else -1

    def _head(self, head: RequestHead, more: bool) -> None:
        if self.in_head:
            self._count_head(False)
        counters = self.service.counters
        row = counters.row
        row[counters.writing] += 1
        row[counters.requests] += 1
        self.requests += 1
        self.idle_conns.pop(self, None)          # busy: not to be closed to make room
        version = head.version
        request = Request(head.method, ("/" + head.target.decode("latin-1")) if head.empty_path
                          else head.target.decode("latin-1"),
                          _PROTOCOLS.get(version) or _protocol(version),
                          head.headers, head.keepalive,
                          RequestBody(self, head.content_length, head.chunked), head.host,
                          head.expect_continue, head.length, self.requests, version < 1000, True)
        if head.upgrade:
            request.upgrade = self.reader.hold = True     # until its answer: a 101, or more requests
        if head.ignored:
            for message in head.ignored:
                client_error(self.client, None, "info", message, "reading client request headers")
        pipelined = more or self.current is not None or bool(self.queue)
        route(self, request, head)
        if pipelined and request.vars is not None:
            request.vars.pipe = True       # nginx's r->pipeline: it came before the one before ended
        if self.refuse and request.rejected is None:
            request.rejected = Rejected(self.refuse, _REFUSALS.get(self.refuse) or self._verify_error())
        if head.chunked or head.content_length:     # its body is expected
            self.receiving = request
            self.body_since = self.loop.time()
            self._arm(self.body_since + self.body_timeout)
        if self.current is None and not self.queue:
            self._start(request)          # nothing before it: not queued
            return
        self.queue.append(request)
        if len(self.queue) > PIPELINE_LIMIT:
            self.pause("pipeline")
        if self.current is None:
            self._start_next()

    def _refused(self, rejected: Rejected) -> None:
        """A request nginx refuses: answered after those before it, then the connection closes."""
        self._count_head(False)
        counters = self.service.counters
        counters.row[counters.writing] += 1
        counters.row[counters.requests] += 1
        request = refused_request(self.client, rejected, self.reader.refused_line, self.site.default_plan)
        request.counted = True
        if self.reader.in_body:            # the body it declared is read and dropped before the close
            request.body = RequestBody(self.client, rejected.content_length or None, rejected.chunked)
            request.body.detach()
            self.receiving = request
            self.body_since = self.loop.time()
        self.queue.append(request)
        if self.current is None:
            self._start_next()

    def _body_broke(self, rejected: Rejected) -> None:
        """A body against nginx's rules (a bad chunk, too large): its request answers with nginx's
        status if nothing was sent yet; the connection ends after it."""
        request = self.receiving
        assert request is not None
        self.receiving = None
        client_error(self.client, request, rejected.level, rejected.message, None)
        request.body.fail(rejected)
        if request.finished:
            self.close()

    def discard_body(self, request: Request) -> Rejected | None:
        """Before sheer answers by itself, what arrived of the body is read and dropped (nginx's
        ngx_http_discard_request_body): a body already broken changes the answer."""
        request.body.detach()
        if request.body.failed is not None:
            return request.body.failed
        if self.receiving is not request:
            return None
        reader = self.reader
        while (event := reader.next_event()) is not None:
            if event is END:
                self.receiving = None
                request.body.finish()
                return None
            if isinstance(event, Rejected):
                self._body_broke(event)
                return event
        return None


_PROTOCOLS = {HTTP_11: "HTTP/1.1", HTTP_10: "HTTP/1.0"}


def _protocol(version: int) -> str:
    if version == HTTP_11:
        return "HTTP/1.1"
    if version == HTTP_10:
        return "HTTP/1.0"
    return f"HTTP/{version // 1000}.{version % 1000}" if version >= HTTP_10 else ""
