"""proxy_pass: choose peers, try them in turn per proxy_next_upstream, relay the response."""

from __future__ import annotations

import asyncio
import errno
import time
from collections.abc import Coroutine
from typing import Any

from sheer.core.balancers import Peer, Tried, request_key
from sheer.core.bind import PLUMBING_HINT, BindTo, BindValueError, bind_to
from sheer.core.http.headers import request_head
from sheer.core.http.nextupstream import (
    NON_IDEMPOTENT,
    STATUS_FAILURES,
    Attempt,
    Failure,
    final_status,
    may_retry,
    peer_failed,
    status_failure,
)
from sheer.core.http.redirects import rewrite_headers
from sheer.core.http.uri import upstream_uri
from sheer.core.http.variables import UpstreamTry
from sheer.core.variables import render, render_bytes
from sheer.io.counting import PeerColumns
from sheer.io.http.answers import CONTINUE
from sheer.io.http.body_file import before_upstream
from sheer.io.http.client import ClientConnection
from sheer.io.http.error_pages import accel_redirect, intercepted
from sheer.io.http.exchange import Exchange
from sheer.io.http.failures import ClientBroke, UpstreamFailed
from sheer.io.http.gzipping import gzip_proxied
from sheer.io.http.logline import errno_text, upstream_error
from sheer.io.http.relay_head import framing_for
from sheer.io.http.request import Request
from sheer.io.http.site import Plan
from sheer.io.http.targets import TargetError
from sheer.io.http.throttle import limit_response
from sheer.io.http.upgrade import tunnel_after_101
from sheer.io.http.upstream_pool import NoSlot, UpstreamConnection, open_upstream
from sheer.io.http.upstream_tls import UpstreamTlsFailed
from sheer.io.sockets import BindError

_STATUS_CLASS = (0, 0, 1, 2, 3, 4, 4, 4, 4, 4)     # the counters' 1xx..5xx column of status // 100


class ProxiedRequest:
    # what a request that needs nothing else keeps: set per instance only when it changes
    response_started = body_chunked = timed = False
    uri = ""
    started = began = 0.0
    bind: BindTo | None = None
    source: tuple[str, int] | None = None       # the bound address, for the pool's key
    # the peer being tried, its shared counters, the exchange of the try under way
    peer: Peer | None = None
    columns: PeerColumns | None = None
    exchange: Exchange | None = None
    tried: Tried                          # set in run()

    state: UpstreamTry                    # the try under way's ($upstream_addr, ...), set in run()

    def __init__(self, client: ClientConnection, request: Request, plan: Plan) -> None:
        self.client, self.request, self.plan = client, request, plan
        self.location, self.loop = plan.location, client.loop
        assert request.vars is not None and self.location is not None
        self.vars = request.vars
        self.vars.proxy_host = plan.proxy_host
        self.pool = plan.pool

    async def run(self) -> None:
        """The task of the request (sheer.io.http.client.Handler: `proxy()` makes it)."""
        try:
            request, plan, location = self.request, self.plan, self.location
            assert location is not None and location.proxy_pass is not None
            body = request.body
            if request.expect_continue:
                # nginx (ngx_http_test_expect) says it before reading the body, whatever came with the
                # head, a body or none
                self.client.write(CONTINUE)
            if body.expected and (not location.proxy_pass_request_body
                                  or location.proxy_set_body is not None):
                body.detach()        # nginx reads it and sends nothing of it: read and dropped
            elif body.expected or (body.content_length == 0 and location.request_body.in_file_only != "off"):
                # A client that stalls is the client connection's to time out (client_body_timeout); an
                # empty body declared gets its (empty) file with client_body_in_file_only, as nginx's.
                broken, request.body_file = await before_upstream(body, self.vars, location.request_body,
                                                                  plan.version)
                if broken is not None:
                    self.client.respond_error(request, broken.status, plan, keepalive=False)
                    return
            proxy = location.proxy_pass
            if proxy.url is not None:      # written with variables: the target is chosen for this request
                try:
                    target = await self.client.site.targets.choose(render(proxy.url, self.vars), location)
                except TargetError as exc:
                    self._log("error", exc.message, None)
                    self.client.respond_error(request, exc.status, plan)
                    return
                balancer, upstream, peer_columns = target.balancer, target.upstream, target.columns
                self.pool = target.pool
                self.vars.proxy_host = target.proxy_host
                self.uri = target.uri or request.raw_uri
            else:
                assert plan.balancer is not None and proxy.upstream is not None
                balancer, upstream, peer_columns = plan.balancer, proxy.upstream, plan.peer_columns
                if proxy.uri is None:       # no URI part: the client's URI as it came
                    self.uri = request.raw_uri
                else:
                    whole = request.rewritten is not None and not request.rewritten.valid_location
                    self.uri = upstream_uri(location, proxy, request.raw_uri, self.vars.uri, self.vars.args,
                                            whole)
            if not plan.keepalive_ok:
                self.pool = None
            if location.proxy_bind is not None:
                try:
                    self.bind = bind = bind_to(location.proxy_bind, self.vars)
                except BindValueError as exc:
                    # nginx (ngx_http_upstream_set_local): said, and the upstream connection is made
                    # unbound (a client of a unix-domain listener, whose $remote_addr is "unix:", comes here)
                    self._log("error", f"{exc} while connecting to upstream", None)
                else:
                    self.source = None if bind is None else (bind.host, bind.port)
            head = self._head()
            loop, v = self.loop, self.vars
            key = b"" if upstream.balance.key is None else request_key(upstream, v)    # (no call: no key)
            tried = self.tried = balancer.start(location.proxy_next_upstream_tries, key)
            # uvloop's clock moves once per loop iteration: one reading serves a step's uses
            started = self.started = now = loop.time()
            row = self.client.service.counters.row
            while True:
                peer = balancer.get(tried, now)
                if peer is None:
                    # nginx's u->state->peer of a try that found no peer (NGX_BUSY): the group's name
                    v.upstream.append(state := UpstreamTry(upstream.name))
                    state.timed = False
                    self._log("error", "no live upstreams while connecting to upstream", None)
                    self.client.respond_error(request, 502, plan)
                    return
                v.upstream.append(state := UpstreamTry(peer.name))
                self.state = state
                self.peer = peer
                self.began = now
                failure: Failure | None = None
                columns = None
                if peer_columns:
                    columns = self.columns = peer_columns[peer.index]
                    row[columns.requests] += 1
                    row[columns.active] += 1
                    row[columns.selected] = int(time.time() * 1000)
                try:
                    failure = await self._try(peer, head)
                except BindError as exc:
                    # Our side failed (proxy_bind, IP_TRANSPARENT): not the peer's fault, no retry.
                    self._count_transparent(exc.errno)
                    self._log(exc.level, f"{exc.message} while connecting to upstream", peer,
                              f"; {exc.fix}" if exc.fix else "")
                    self.client.respond_error(request, 500, plan)
                    return
                finally:
                    if not self.timed:
                        self._record_times()
                    failed = failure is not None and peer_failed(failure)
                    now = loop.time()
                    disabled = balancer.free(peer, failed=failed, now=now)
                    if columns is not None:
                        row[columns.active] -= 1
                        if failed:
                            row[columns.fails] += 1
                        if disabled:
                            row[columns.unavail] += 1
                            row[columns.unavail_until] = int((time.time() + peer.server.fail_timeout) * 1000)
                    if disabled:
                        self._log("warn", "upstream server temporarily disabled while connecting to upstream",
                                  peer)
                if failure is None:
                    return
                attempt = Attempt(request.method, body.replayable, self.response_started, tried.left,
                                  loop.time() - started, location.proxy_next_upstream_timeout)
                if not may_retry(failure, location.proxy_next_upstream, attempt):
                    if not self.response_started:
                        self.client.respond_error(request, final_status(failure), plan)
                    return
                self.columns, self.exchange, self.timed = None, None, False     # the next try's
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 -- a bug must cost one connection, not the worker
            self.plan.error_log.log("crit", f"unexpected error while proxying: {exc!r}")
            self.client.abort()

    def _head(self) -> bytes:
        request, plan, location = self.request, self.plan, self.location
        assert location is not None
        body = request.body
        length: int | None = None
        chunked = False
        if not location.proxy_pass_request_body:
            pass                 # no body, no framing headers for it
        elif body.content_length is not None:
            length = body.content_length
        elif body.chunked:
            if body.done:
                length = body.size
            else:
                chunked = self.body_chunked = True
        client_headers = request.headers if location.proxy_pass_request_headers else []
        method = (request.method if location.proxy_method is None       # proxy_method
                  else render_bytes(location.proxy_method, self.vars))
        data = b""
        if location.proxy_set_body is not None:     # this body instead of the client's
            data = render_bytes(location.proxy_set_body, self.vars)
            length, chunked = len(data), False
        fixed = plan.fixed_headers
        return request_head(method, self.uri.encode("latin-1"), plan.version,
                            plan.headers(self.vars) if fixed is None else fixed,
                            plan.request_skip, client_headers, length, chunked) + data

    async def _try(self, peer: Peer, head: bytes) -> Failure | None:
        """None when a response went to the client; the failure otherwise."""
        location, plan, request, pool = self.location, self.plan, self.request, self.pool
        assert location is not None
        key = (peer.address, self.source)      # sheer.io.http.upstream_pool.pool_key
        conn: UpstreamConnection | None = None
        while True:
            cached = False
            if pool is not None:
                conn = pool.take(key)
                cached = conn is not None
            if conn is None:
                try:
                    conn = await open_upstream(peer.address, location.proxy_connect_timeout, self.bind,
                                               self.client.service.slots, plan.tls, self.vars, self.loop)
                except NoSlot:     # said once a second by the slots themselves: a 500 here, as nginx's
                    raise BindError(f"{self.client.service.slots.limit} worker_connections are not enough",
                                    level="debug") from None
                except UpstreamTlsFailed as failed:
                    self._log("error", failed.message, peer)
                    return Failure.TIMEOUT if failed.timed_out else Failure.ERROR
                except TimeoutError:
                    self._count_transparent(errno.ETIMEDOUT)
                    hint = f"; {PLUMBING_HINT}" if self.bind is not None and self.bind.transparent else ""
                    self._log("error",
                              "upstream timed out (110: Connection timed out) while connecting to upstream",
                              peer, hint)
                    return Failure.TIMEOUT
                except OSError as exc:
                    self._count_transparent(exc.errno or 0)
                    self._log("error", f"connect() failed ({errno_text(exc)}) while connecting to "
                              "upstream", peer)
                    return Failure.ERROR
            self.state.connect = self.loop.time() - self.began
            exchange = Exchange(self.client, conn, request.method, location.proxy_read_timeout,
                                location.proxy_send_timeout, self._warn)
            exchange.add_headers, exchange.variables = location.add_headers, request.vars
            exchange.expires = location.expires
            exchange.skip = plan.response_skip
            self.exchange = exchange
            try:
                # the exchange itself, inline: one coroutine level less per resume
                body = request.body
                sent = body.expected and location.proxy_pass_request_body and location.proxy_set_body is None
                exchange.send(head, body if sent else None, self.body_chunked)
                await exchange.head
                v, loop = self.vars, self.loop
                state = self.state
                header_time = state.header = loop.time() - self.began
                status = state.status = exchange.status
                columns = self.columns
                row = self.client.service.counters.row
                if columns is not None:
                    row[columns.header_time] += int(header_time * 1000)
                    row[columns.header_n] += 1
                    row[columns.classes[_STATUS_CLASS[status // 100]]] += 1
                if status == 101 and request.upgrade:
                    self.response_started = True
                    why = await tunnel_after_101(self.client, exchange, location, v, loop)
                    if why.startswith("upstream timed out"):
                        self._log("error", why, None)
                    self._record_times()
                    self.client.finish(request, plan, keepalive=False)
                    return None
                failure = (status_failure(status, location.proxy_next_upstream) if status in STATUS_FAILURES
                           else None)
                if failure is not None:
                    attempt = Attempt(request.method, body.replayable, False, self.tried.left,
                                      self.loop.time() - self.started, location.proxy_next_upstream_timeout)
                    if may_retry(failure, location.proxy_next_upstream, attempt):
                        exchange.complete = False   # drop it: the connection is not reused
                        return failure
                v.upstream_headers = exchange.headers
                client = self.client
                headers = exchange.headers
                if ((location.proxy_intercept_errors and intercepted(client, request, status, headers))
                        or (exchange.redirected and accel_redirect(client, request, headers))):
                    exchange.complete = False    # answered otherwise: the rest unread, the connection dropped
                    self.response_started = True
                    return None
                if exchange.failed and (broken := exchange.done.exception()) is not None:
                    # The body broke in the packets that brought the head: nginx has not flushed its head
                    # yet (postpone_output) and closes with nothing sent; so does sheer.
                    self.response_started = True
                    raise broken
                if request.status_override is not None:    # answering for an error_page: its code
                    exchange.status = request.status_override
                if location.gzip is not None:      # compressed: the length is no longer known
                    exchange.deflater = v.deflater = gzip_proxied(exchange, location.gzip, request)
                framing = framing_for(exchange, request, plan, client.keepalive_after(request),
                                      self._record_times)
                self.response_started = True
                v.status = exchange.status
                if exchange.redirected:     # proxy_redirect, proxy_cookie_domain, _path and _flags
                    exchange.headers = rewrite_headers(
                        exchange.headers, plan.redirects, v, location.proxy_cookie_domain,
                        location.proxy_cookie_path, location.proxy_cookie_flags)
                limited = location.limit_rate or location.proxy_limit_rate or v.limit_rate is not None
                if limited or exchange.rate_header:
                    limit_response(exchange, location, v, self.started,
                                   lambda line: self._log("error", line, peer))
                else:
                    v.limit_rate = 0        # what limit_response works out with no limit
                exchange.relay(framing)
                try:
                    await exchange.done
                finally:
                    if columns is not None:
                        row[columns.response_time] += int((loop.time() - self.began) * 1000)
                        row[columns.response_n] += 1
                        row[columns.sent] += exchange.sent
                        row[columns.received] += exchange.received
                v.body_bytes_sent = exchange.body_bytes
                v.bytes_sent += exchange.body_bytes
                self._record_times()       # before the access log line that finish() writes
                client.finish(request, plan, keepalive=framing.keepalive and request.body.done,
                              checked=True)
                return None
            except ClientBroke as broke:     # logged by the client connection
                if self.response_started:
                    self.client.abort()
                else:
                    self.client.respond_error(request, broke.rejected.status, plan, keepalive=False)
                return None
            except UpstreamFailed as failed:
                # A cached connection the upstream closed meanwhile: try again on a fresh one.
                if (cached and failed.failure is Failure.ERROR and not exchange.got_bytes
                        and request.body.replayable and not self.response_started
                        and (request.method not in NON_IDEMPOTENT
                             or "non_idempotent" in location.proxy_next_upstream)):
                    conn = None
                    continue
                self._log("error", failed.message, peer)
                if self.response_started:
                    self.client.abort()
                return failed.failure
            finally:
                exchange.release()
                if pool is not None and exchange.reusable:
                    pool.put(exchange.conn)
                elif exchange.complete:
                    exchange.conn.close()
                else:
                    exchange.conn.abort()

    def _record_times(self) -> None:
        """$upstream_response_time of this try, once, and its bytes (nginx's u->state; connect, header times
        were set as they came, None (`-`) for a phase the try never reached)."""
        if self.timed:
            return
        self.timed = True
        state = self.state
        state.time = self.loop.time() - self.began
        e = self.exchange
        state.bytes = (e.received, e.sent, e.body_bytes) if e is not None else (0, 0, 0)

    def _count_transparent(self, code: int) -> None:
        """sheer_transparent_connect_errors_total{errno=...}: connects with the client's address."""
        if code and self.bind is not None and self.bind.transparent:
            counters = self.client.service.counters
            counters.row[counters.layout.errno_column(code)] += 1

    def _warn(self, line: str) -> None:      # the exchange's (a duplicate header, data past the response)
        self._log("warn", line, self.peer)

    def _log(self, level: str, message: str, peer: Peer | None, hint: str = "") -> None:
        upstream_error(self.plan, self.vars, self.uri, level, message, peer, hint)


def proxy(client: ClientConnection, request: Request, plan: Plan) -> Coroutine[Any, Any, None]:
    """The proxied request's coroutine itself (no coroutine around it: one level less per resume)."""
    return ProxiedRequest(client, request, plan).run()
