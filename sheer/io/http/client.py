"""The client side of an HTTP/1.x connection: read requests (sheer.core.http.reader: nginx's verdicts),
route them, answer them in order or hand them to the proxy, and time every phase out as nginx does."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any, Protocol, cast

from sheer.config.model import ClientLimits
from sheer.core.http.browsers import keepalive_disabled
from sheer.core.http.reader import RequestReader
from sheer.core.http.variables import Connection
from sheer.io.counting import HttpCounters
from sheer.io.http import post_action
from sheer.io.http.answers import answer_error, answer_refused, answer_return, forbidden
from sheer.io.http.logline import client_error
from sheer.io.http.reading import Reading
from sheer.io.http.request import Relay, Request
from sheer.io.http.rewritten import rewrite
from sheer.io.http.site import Plan, Site
from sheer.io.http.timeouts import Timeouts
from sheer.io.http.tls_accept import Proxied
from sheer.io.http.tunnel import Tunnel
from sheer.io.logs import ErrorLogger
from sheer.io.slots import ConnectionSlots, Reusable
from sheer.io.sockets import as_address
from sheer.io.tls import TlsListener, connection_info

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
    connected: int                      # connections this listener accepted
    connections: set[ClientConnection]
    draining: bool
    proxy: Handler
    status: Handler
    static: Handler
    slots: ConnectionSlots
    tls: TlsListener | None

    def count_accepted(self) -> int: ...
    def connection_closed(self, conn: ClientConnection) -> None: ...
    def reusable(self, conn: Reusable, idle: bool) -> None: ...
    def release(self) -> None: ...


class ClientConnection(Reading, Timeouts, asyncio.Protocol):
    service: Listener

    def __init__(self, service: Listener, refuse: int = 0, proxied: Proxied = None) -> None:
        self.service = service
        self.refuse = refuse     # nginx's 495/496/497: every request answered 400 with that page (TLS)
        self.site = site = service.site
        self.loop = service.loop
        self.transport: asyncio.Transport | None = None
        self.reader = RequestReader(site.header_limits)
        self.conn: Connection | None = None
        self.queue: deque[Request] = deque()
        self.current: Request | None = None
        self.receiving: Request | None = None     # the request whose body is being read
        self.task: asyncio.Task[None] | None = None
        self.relay: Relay | None = None
        self.tunnel: Tunnel | None = None          # after a 101: bytes go to the upstream as they are
        self.send_timer: asyncio.TimerHandle | None = None
        self.send_timeout = site.limits.send_timeout
        self.paused: set[str] = set()
        self.write_paused = False
        self.closed = self.eof = False
        self.requests = 0
        self.in_head = False               # counted in stub_status "reading"
        self.lingering, self.linger_until = False, 0.0    # answered: the rest of a body dropped, then close
        self.slot = True                   # its worker_connections slot, taken when it was accepted
        # worker_connections' idle connections, oldest first (ConnectionSlots.idle, inline per request)
        self.idle_conns = service.slots.reusable
        # Timeouts: one deadline timer, re-armed lazily; what it means is decided when it fires.
        self.timer: asyncio.TimerHandle | None = None
        self.idle_since = self.head_since = self.body_since = 0.0
        self.born = self.loop.time()       # keepalive_time counts from here
        self.idle_timeout = site.limits.client_header_timeout    # keepalive_timeout after a request
        self.body_timeout = site.limits.client_body_timeout
        # `listen ... proxy_protocol`: bytes held until the PROXY header is complete (None: not expected,
        # or read before the TLS handshake by TlsAccept: `proxied`).
        self.proxy_buffer: bytes | None = b"" if service.proxy_protocol and proxied is None else None
        self.proxied = proxied

    # -- transport events --

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)   # uvloop's aren't subclasses
        remote = transport.get_extra_info("peername")
        local = transport.get_extra_info("sockname")
        if local.__class__ is str:     # a unix-domain listener: ("unix:", None) and ("unix:/path", None)
            remote, local = as_address(remote or ""), as_address(local)
        number = self.service.count_accepted()
        counters = self.service.counters
        counters.row[counters.active] += 1
        self.conn = Connection(remote[:2], local[:2], number, self.site.hostname, self.site.pid)
        self.conn.maps = self.site.ctx.http_maps
        self.conn.start = time.time()
        self.conn.connections = self.site.connections
        if self.proxied is not None:
            self.conn.proxy = self.proxied[0]
        sslobj = transport.get_extra_info("ssl_object")
        if sslobj is not None:
            self.conn.tls = info = connection_info(sslobj)
            tls = self.service.tls
            if tls is not None:
                self.refuse = tls.refusal(sslobj, info) or self.refuse
        self.service.connections.add(self)
        self.idle_since = self.loop.time()
        self._arm(self.idle_since + self.idle_timeout)
        self.service.reusable(self, True)

    def data_received(self, data: bytes) -> None:
        if self.tunnel is not None:
            self.tunnel.client_data(data)
            return
        if self.closed or self.reader.stopped:
            return
        if self.proxy_buffer is not None:
            data = self._proxy_header(self.proxy_buffer + data)
            if not data:
                return
        self.reader.feed(data)
        if self.receiving is not None:
            self.body_since = self.loop.time()
        self._read()

    def eof_received(self) -> bool:
        self.eof = True
        if self.tunnel is not None:
            self.tunnel.client_eof()        # the proxy ends both sides once it is told
            return True
        receiving = self.receiving
        if receiving is not None and not receiving.body.done:
            # nginx: "client prematurely closed connection", a 400 nobody will read, both sides closed
            client_error(self, receiving, "info", "client prematurely closed connection", None)
            if receiving.vars is not None:
                receiving.vars.status = 400
            self.abort()
            return False
        self.reader.stop()
        self._count_head(False)
        # Keep the write side open while a response is still coming.
        return not (self.current is None and not self.queue)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.reader.stop()
        self._cancel_timers()
        self._give_slot_back()
        counters = self.service.counters
        row = counters.row
        row[counters.active] -= 1
        self._count_head(False)
        for queued in self.queue:
            queued.uncount(self.service.counters)
        if self.task is not None:
            self.task.cancel()
        current = self.current
        if current is not None and not current.finished:
            if current.vars is not None:
                current.vars.status = current.vars.status or 499
                self._log_access(current, current.plan)
            current.uncount(self.service.counters)
        self.service.connection_closed(self)

    def pause_writing(self) -> None:
        self.write_paused = True
        if self.relay is not None:
            self.relay.client_paused(True)
        plan = self.current.plan if self.current is not None else None
        timeout = plan.send_timeout if plan is not None else self.send_timeout
        self.send_timer = self.loop.call_later(timeout, self._send_timed_out)

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.send_timer is not None:
            self.send_timer.cancel()
            self.send_timer = None
        if self.relay is not None:
            self.relay.client_paused(False)

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
                if self.receiving is not None:
                    self.body_since = self.loop.time()
                self._read()

    # -- answering, in order --

    def _start_next(self) -> None:
        self._start(self.queue.popleft())

    def _start(self, request: Request) -> None:
        """Answer `request` now: the first in line (nothing before it still answering)."""
        self.current = request
        if self.paused:
            self.resume("pipeline")
        plan = request.plan
        if request.rejected is not None:
            if request.rejected.status == 413 and plan is not None:
                client_error(self, request, "error", request.rejected.message, None)
                answer_error(self, request, 413, plan, keepalive=False)
            else:
                answer_refused(self, request)
            return
        assert plan is not None
        failed = request.body.failed
        if failed is not None:
            answer_error(self, request, failed.status, plan, keepalive=False)
        else:
            self.dispatch(request, plan)

    def dispatch(self, request: Request, plan: Plan) -> None:
        """The request's answer from its location (again after an error_page's internal redirect)."""
        location = plan.location
        if location is not None and request.vars is not None:
            request.vars.referers = location.referers        # $invalid_referer's
        if plan.direct and request.answer is None:
            self.task = self.loop.create_task(self.service.proxy(self, request, plan))
            return
        if request.answer is not None or (location is not None and location.rewrite is not None):
            if (found := rewrite(self, request, plan)) is None:     # answered by the rewrite module
                return
            plan = found
        if plan.location is None and plan.return_ is None and plan.static is None:
            answer_error(self, request, 404, plan)
        elif plan.return_ is not None and not plan.return_.content:
            answer_return(self, request, plan)      # nginx's rewrite phase: before allow/deny
        elif forbidden(self, request, plan):
            return
        elif plan.return_ is not None:
            answer_return(self, request, plan)
        elif plan.handler is not None:
            self.task = self.loop.create_task(self.service.status(self, request, plan))
        elif plan.static is not None:
            self.task = self.loop.create_task(self.service.static(self, request, plan))
        else:
            self.task = self.loop.create_task(self.service.proxy(self, request, plan))

    def respond_error(self, request: Request, status: int, plan: Plan | None, *,
                      keepalive: bool = True) -> None:
        answer_error(self, request, status, plan, keepalive=keepalive)

    def keepalive_after(self, request: Request) -> bool:
        if not request.keepalive or self.service.draining:
            return False
        if request.expect_continue:
            # An unanswered `Expect: 100-continue` leaves the body's fate unknown: close instead.
            body = request.body
            if not body.done and body.size == 0:
                return False
        plan = request.plan
        # nginx's ngx_http_update_location_config: keepalive_timeout 0, the connection's
        # keepalive_requests-th request, or a connection older than keepalive_time: Connection: close
        return plan is None or (plan.keepalive_timeout > 0 and request.number < plan.keepalive_requests
                                and self.loop.time() - self.born <= plan.keepalive_time
                                and ((request.method != b"POST" and "safari" not in plan.keepalive_disable)
                                     or not keepalive_disabled(plan.keepalive_disable, request.method,
                                                               request.headers)))

    def write(self, data: bytes) -> None:
        self.write_buffers([data], counted=len(data))

    def write_buffers(self, buffers: list[bytes], counted: int) -> None:
        """Write several buffers with one send(); `counted` bytes of them go to $bytes_sent here
        (a relayed body is counted by its exchange)."""
        if self.transport is not None and not self.closed:
            if len(buffers) == 1:
                self.transport.write(buffers[0])
            elif buffers:                 # none: a throttle writes them (limit_rate), they count here
                self.transport.writelines(buffers)
            if self.current is not None and self.current.vars is not None:
                self.current.vars.bytes_sent += counted

    def finish(self, request: Request, plan: Plan | None, *, keepalive: bool, checked: bool = False) -> None:
        """The response is written (or abandoned): log it, then close or wait for the next request.
        `checked`: `keepalive` includes keepalive_after()'s answer when the head was made (the proxy's)."""
        location = plan.location if plan is not None else None
        if location is not None and location.post_action is not None and post_action.begin(
                self, request, plan, keepalive):
            return                           # finish() again when the post action's answer ends
        if request.post_action is not None:
            keepalive, checked = post_action.end(self, request, keepalive), False
        if checked:             # what may have changed since: a later request's error, a reload's drain
            keepalive = keepalive and request.keepalive and not self.service.draining
        request.finished = True
        request.uncount(self.service.counters)
        self.task = None
        self.relay = None
        logged = plan or request.plan
        if logged is not None and logged.access is not None:     # (no call for a plan without logs)
            self._log_access(request, logged)
        if self.current is request:
            self.current = None
        if self.closed:
            return
        if not keepalive or request.http09 or not (checked or self.keepalive_after(request)):
            if self.receiving is request and not self.reader.stopped:
                self.linger()                # nginx reads what is left of its body before the close
            else:
                self.close()
        elif self.queue:
            self._start_next()               # pipelined requests are answered, whatever comes after
        elif self.reader.stopped or self.eof:
            self.close()                     # nothing more will be read: a refusal, or the client's end
        else:
            if self.reader.hold:      # an Upgrade answered without a 101: what follows is requests
                self.reader.hold = False
                self._read()
                if self.current is not None or self.closed:
                    return
            now = self.loop.time()
            reader = self.reader
            if reader.pos < len(reader.buffer) and reader.reading_head:    # (nothing left: no property call)
                self.head_since = now
                self._arm(now + self.site.limits.client_header_timeout)
            else:
                self.idle_since = now
                self.idle_timeout = plan.keepalive_timeout if plan is not None else self.idle_timeout
                self._arm(now + self.idle_timeout)
                idle_conns = self.idle_conns       # idle again: the newest to be reused
                idle_conns.pop(self, None)
                idle_conns[self] = None

    @property
    def client(self) -> ClientConnection:
        return self

    @property
    def limits(self) -> ClientLimits:
        return self.site.limits

    @property
    def counters(self) -> HttpCounters:
        return self.service.counters

    def _log_access_now(self, request: Request) -> None:
        self._log_access(request, request.plan)

    def _log_access(self, request: Request, plan: Plan | None) -> None:
        variables = request.vars
        if variables is None or plan is None or not plan.access:
            return
        variables.now = time.time()
        plan.access.write(variables)

    # -- lifetime --

    @property
    def idle(self) -> bool:
        return self.current is None and not self.queue and not self.in_head and self.receiving is None

    def close(self) -> None:
        self.reader.stop()
        if not self.closed and self.transport is not None:
            self.closed = True
            self._cancel_timers()
            self.transport.close()
            self._give_slot_back()

    def abort(self) -> None:
        self.reader.stop()
        if self.transport is not None:
            self.closed = True
            self._cancel_timers()
            self.transport.abort()
            self._give_slot_back()

    def _give_slot_back(self) -> None:
        """At once, as nginx frees a connection it closes (its descriptor follows in a moment)."""
        self.service.reusable(self, False)
        if self.slot:
            self.slot = False
            self.service.release()
