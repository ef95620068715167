"""One try of one request on one upstream connection: send the request, parse and relay the response."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httptools

from sheer.config.model import AddHeader
from sheer.config.static import Expires
from sheer.core.http.framing import BodyMode, Framing, upstream_reusable
from sheer.core.http.gzip import Deflater
from sheer.core.http.headers import LAST_CHUNK, RESPONSE_SKIP, UNIQUE, Headers, unique_line
from sheer.core.http.nextupstream import Failure
from sheer.core.http.redirects import NOTED
from sheer.core.variables import VariableSource
from sheer.io.http.body import RequestBody
from sheer.io.http.client import ClientConnection
from sheer.io.http.failures import BadHeader, UpstreamFailed, _Unasked
from sheer.io.http.relay_head import relay_head
from sheer.io.http.sending import Sending
from sheer.io.http.throttle import Throttle
from sheer.io.http.upstream_pool import UpstreamConnection


class Exchange(Sending):
    """Implements UpstreamUser (events from the upstream socket) and httptools' response callbacks."""

    # what an exchange starts with, kept on the class: set per instance only when it changes
    status = 0
    reason = b""               # the status line's reason phrase, as it came (in one piece or several)
    # the location's add_header lines and the request's variables they render (set by proxy_pass)
    add_headers: tuple[AddHeader, ...] = ()
    expires: Expires | None = None      # the location's `expires`
    variables: VariableSource | None = None
    trailers: Callable[[], bytes] | None = None     # the last chunk, with add_trailer's lines
    skip = RESPONSE_SKIP       # the headers the client never sees (proxy_hide_header)
    redirected = False         # a Location, a Refresh or an X-Accel-Redirect came
    rate_header = False        # an X-Accel-Limit-Rate came (sheer.io.http.throttle)
    failed = False             # _abort() gave the head or the end an exception
    content_length: int | None = None
    chunked = complete = got_bytes = request_sent = body_chunked = False
    upstream_keepalive: bool | None = False     # None: it sent more than its response
    framing: Framing | None = None
    # the body's bytes relayed; bytes from the upstream and to it (its peer's `received` and `sent`)
    body_bytes = received = sent = 0
    write_paused_at = last_activity = 0.0      # last_activity: set when the request is sent
    body: RequestBody | None = None
    early = b""           # the upstream's bytes right after a 101 (sheer.io.http.tunnel)
    throttle: Throttle | None = None        # limit_rate, proxy_limit_rate (None: no limit)
    batch: list[bytes] | None = None       # the request's head and body as send() gathers them
    deflater: Deflater | None = None        # gzip (sheer.io.http.gzipping); None: as it comes

    def __init__(self, client: ClientConnection, conn: UpstreamConnection, method: bytes,
                 read_timeout: float, send_timeout: float, warn: Callable[[str], None]) -> None:
        self.client, self.conn, self.method, self.loop = client, conn, method, client.loop
        self.warn = warn                 # a line for the error log, with the request's context
        self.read_timeout, self.send_timeout = read_timeout, send_timeout
        self.parser = parser = httptools.HttpResponseParser(self)
        # nginx's upstream parser (ngx_http_parse_status_line, ngx_http_parse_header_line) ends a line at
        # a bare LF as well as at CRLF; llhttp wants the CR unless told, and would make such an answer a 502
        parser.set_dangerous_leniencies(lenient_optional_cr_before_lf=True)
        self.head: asyncio.Future[None] = self.loop.create_future()
        self.done: asyncio.Future[None] = self.loop.create_future()
        self.headers: Headers = []
        self.pending: list[bytes] = []
        conn.user = self
        conn.requests += 1

    # -- timeouts: the connection's one timer, re-armed lazily from timestamps instead of per chunk; a
    # keepalive connection's stays armed from one request to the next (sheer.io.http.upstream_pool) --

    def _arm(self, when: float) -> None:
        conn = self.conn
        conn.timed = self._check_timeout
        timer = conn.timer
        if timer is not None:
            if timer.when() <= when:
                return
            timer.cancel()
        conn.timer = self.loop.call_at(when, conn.timed_out)

    def _check_timeout(self) -> None:
        if self.done.done():
            return
        now = self.loop.time()
        if self.conn.write_paused:
            deadline = self.write_paused_at + self.send_timeout
            phase = "sending request to upstream"
        elif not self.request_sent or self.client.write_paused or self.throttled:
            deadline = now + self.read_timeout   # waiting on the client, not the upstream
            phase = ""
        else:
            deadline = self.last_activity + self.read_timeout
            phase = ("reading response header from upstream" if not self.head.done()
                     else "reading upstream")
        if now >= deadline and phase:
            self._fail(Failure.TIMEOUT, f"upstream timed out (110: Connection timed out) while {phase}")
        else:
            self._arm(max(deadline, now + 0.001))

    # -- UpstreamUser --

    def upstream_data(self, data: bytes) -> None:
        self.received += len(data)
        self.last_activity = self.loop.time()
        self.got_bytes = True
        if self.complete and self.status:
            self._unasked()
            return
        try:
            self.parser.feed_data(data)
            if self.framing is None:
                if self.status and not self.complete:
                    self._hold()     # until the proxy decided what to do with this response
            elif self.deflater is not None and not self.complete:
                self._to_client(self._framed(self.deflater.flush(), raw=True))   # nothing held back
        except httptools.HttpParserUpgrade as upgrade:    # a 101: what follows its head is the tunnel's
            self.early = data[upgrade.args[0]:]
        except httptools.HttpParserError as exc:
            if isinstance(exc.__context__, _Unasked) or (self.complete and self.status):
                self._unasked()
            elif not self.head.done():
                bad = exc.__context__
                why = bad if isinstance(bad, BadHeader) else "upstream sent invalid header"
                self._fail(Failure.INVALID_HEADER, f"{why} while reading response header from upstream")
            elif not self.complete:
                self._fail(Failure.ERROR, "upstream sent invalid chunked response while reading upstream")

    def _hold(self) -> None:
        """The upstream is not read until relay(): a response that came whole in one read never is."""
        transport = self.conn.transport
        if transport is not None:
            transport.pause_reading()

    def upstream_eof(self) -> None:
        self._ended("upstream prematurely closed connection")

    def upstream_lost(self, exc: Exception | None) -> None:
        self._ended(f"recv() failed ({exc.errno}: {exc.strerror})" if isinstance(exc, OSError) and exc.errno
                    else "upstream prematurely closed connection")

    def _ended(self, why: str) -> None:
        if self.complete:
            return
        if not self.head.done():
            self._fail(Failure.ERROR, f"{why} while reading response header from upstream")
        elif self.content_length is None and not self.chunked:     # a close-delimited body ends here
            self.upstream_keepalive = None if self.upstream_keepalive is None else False
            self.on_message_complete()
        else:
            self._fail(Failure.ERROR, f"{why} while reading upstream")

    def client_paused(self, paused: bool) -> None:
        transport = self.conn.transport
        if transport is None or self.conn.closed:
            return
        if paused:
            transport.pause_reading()
        elif not self.throttled:
            self.last_activity = self.loop.time()
            transport.resume_reading()

    def _unasked(self) -> None:
        """nginx: the response ends where its framing says; what follows is dropped, said at warn
        level, and the connection is not reused (it would be read as the next request's answer)."""
        if self.upstream_keepalive is None:
            return                                   # said once
        self.upstream_keepalive = None
        if self.chunked:
            self.warn("upstream sent data after final chunk while reading upstream")
        else:
            self.warn('upstream sent more data than specified in "Content-Length" header while reading '
                      "upstream")
        transport = self.conn.transport
        if transport is not None:
            transport.pause_reading()

    # -- httptools callbacks --

    def on_message_begin(self) -> None:
        if self.complete and self.status:
            raise _Unasked()

    def on_status(self, status: bytes) -> None:
        self.reason += status

    def on_header(self, name: bytes, value: bytes) -> None:
        lname = name.lower()
        if lname in UNIQUE and (verdict := unique_line(self.headers, lname, name, value)) is not None:
            if verdict[0] == "error":
                raise BadHeader(verdict[1])
            self.warn(f"{verdict[1]} while reading response header from upstream")
            return
        self.headers.append((name, value))
        if lname == b"content-length":
            self.content_length = int(value)
        elif lname == b"transfer-encoding":
            self.chunked = b"chunked" in value.lower()
        elif lname in NOTED:
            self.redirected = True
        elif lname == b"x-accel-limit-rate":
            self.rate_header = True

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            self.reason, self.headers = b"", []     # interim response: wait for the final one
            return
        self.status = status
        if self.upstream_keepalive is not None:     # never after a 101: the connection is the tunnel's
            self.upstream_keepalive = status != 101 and self.parser.should_keep_alive()
        if self.chunked:
            self.content_length = None
        if self.method == b"HEAD" or status == 101:
            self.complete = True
            self._hold()
        if not self.head.done():
            self.head.set_result(None)

    def on_body(self, body: bytes) -> None:
        if self.complete:           # a body after a HEAD response or with a 204/304: not ours
            self._unasked()
            return
        if self.framing is None:
            self.pending.append(body)
        else:
            self._write_body(body)

    def on_message_complete(self) -> None:
        if self.status == 0:
            return   # the end of an interim response
        self.complete = True
        if self.framing is not None:
            self._finish_body()

    # -- response --

    def relay(self, framing: Framing) -> None:
        """Send the response head to the client, then the body as it arrives."""
        self.framing = framing
        client = self.client
        client.relay = self
        if client.current is not None and client.current.http09:
            head = b""      # HTTP/0.9: no status line, no headers (framing is CLOSE)
        else:
            head = relay_head(self, framing, client.site.date())
        # The head, what already arrived of the body and, if complete, the last chunk leave in one
        # write: a small response costs one send() instead of two or three.
        buffers = [head]
        pending = self.pending
        if pending:
            self.pending = []
            if framing.mode is BodyMode.LENGTH and self.deflater is None:     # _framed(), as they are
                for data in pending:
                    self.body_bytes += len(data)
                buffers += pending
            else:
                for data in pending:
                    buffers += self._framed(data)
        if self.deflater is not None:
            buffers += self._framed(self._deflated() if self.complete else self.deflater.flush(), raw=True)
        last = self.complete and framing.mode is BodyMode.CHUNKED and not (self.throttle and self.trailers)
        if last:
            buffers.append(self._last_chunk())
        if self.throttle is not None:
            self.throttle.write(buffers)
            buffers = []
        client.write_buffers(buffers, counted=len(head))
        if self.complete:     # the connection is read again in the pool (or closed)
            self._finish_body(last_chunk_written=last)
            return
        upstream = self.conn.transport
        if upstream is not None and not self.conn.closed and not client.write_paused and not self.throttled:
            upstream.resume_reading()

    def _framed(self, data: bytes, raw: bool = False) -> list[bytes]:
        """The bytes that carry `data` to the client in this response's framing (counted as body),
        compressed first with gzip (unless `raw`: the compressor's own output)."""
        framing = self.framing
        assert framing is not None
        if not data or framing.mode is BodyMode.NONE:
            return []
        if self.deflater is not None and not raw:
            data = self.deflater.compress(data)
            if not data:
                return []
        self.body_bytes += len(data)
        if framing.mode is BodyMode.CHUNKED:
            return [b"%x\r\n" % len(data), data, b"\r\n"]
        return [data]

    def _deflated(self) -> bytes:
        """gzip's last bytes (its trailer): the compressor is done."""
        deflater, self.deflater = self.deflater, None
        assert deflater is not None
        return deflater.finish()

    def _write_body(self, data: bytes) -> None:
        self._to_client(self._framed(data))

    def _to_client(self, pieces: list[bytes]) -> None:
        transport = self.client.transport
        if transport is None or self.client.closed:
            return
        if self.throttle is not None:
            self.throttle.write(pieces)
        elif len(pieces) == 1:
            transport.write(pieces[0])
        elif pieces:
            transport.writelines(pieces)

    def _finish_body(self, last_chunk_written: bool = False) -> None:
        assert self.framing is not None
        if self.deflater is not None:
            self._to_client(self._framed(self._deflated(), raw=True))
        if self.framing.mode is BodyMode.CHUNKED and not last_chunk_written:
            if self.throttle is not None and self.trailers is not None:
                self.throttle.finish(self._trailers_sent)    # made once the limit let the body through
                return
            self._to_client([self._last_chunk()])
        if self.throttle is not None:
            self.throttle.finish(self._body_sent)
        else:
            self._body_sent()

    def _last_chunk(self) -> bytes:
        return LAST_CHUNK if self.trailers is None else self.trailers()

    def _trailers_sent(self) -> None:
        transport = self.client.transport
        if transport is not None and not self.client.closed:
            transport.write(self._last_chunk())
        self._body_sent()

    def _body_sent(self) -> None:
        self.conn.timed = None         # _cancel_timer(), inline: no more timeouts for this exchange
        if not self.done.done():
            self.done.set_result(None)

    @property
    def reusable(self) -> bool:
        return (self.complete and self.request_sent and not self.conn.closed
                and (self.body is None or self.body.done)
                and upstream_reusable(self.method, self.status, bool(self.upstream_keepalive),
                                      self.content_length, self.chunked))

    def _fail(self, failure: Failure, message: str) -> None:
        self._abort(UpstreamFailed(failure, message))

    @property
    def throttled(self) -> bool:      # limit_rate holds the response back: the client sets the pace
        return self.throttle is not None and self.throttle.holding

    def _abort(self, error: Exception) -> None:
        """The exchange ends with `error` for whoever awaits it (the head, else the end); the
        upstream connection is dropped: it is never reused after a failure."""
        self._cancel_timer(close_throttle=True)
        self.failed = True
        for future in (self.head, self.done):
            if not future.done():
                future.set_exception(error)
                break
        self.conn.user = None
        self.conn.abort()

    def release(self) -> None:
        self.conn.timed = None
        if self.throttle is not None:
            self.throttle.close()
        body, client = self.body, self.client
        if body is not None and body.sink is not None and not body.done:
            body.detach()
        if client.relay is self:
            client.relay = None
        if client.paused:
            client.resume("upstream")     # whatever of the body still comes is read (and dropped)
        if self.failed:
            for future in (self.head, self.done):
                if future.done() and not future.cancelled():
                    future.exception()   # consumed: a failure after the client left is not an error

    def upgraded(self) -> bytes:
        """A tunnel takes the connection over: this exchange stops timing it."""
        self._cancel_timer()
        if not self.done.done():
            self.done.set_result(None)
        return self.early

    def _cancel_timer(self, close_throttle: bool = False) -> None:
        """No more timeouts for this exchange (its connection's timer may serve the next one)."""
        self.conn.timed = None
        if close_throttle and self.throttle is not None:
            self.throttle.close()
