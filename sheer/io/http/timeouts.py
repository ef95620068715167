"""The client connection's timeouts, as nginx's: client_header_timeout from a head's first byte,
client_body_timeout between two reads of a body (buffered or streamed), keepalive_timeout while
idle, send_timeout while the client does not read. They move with every request and every read, so
they are timestamps, and one timer wakes up now and then to compare them (what they mean is
decided when it fires) rather than a timer made and cancelled each time."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING

from sheer.config.model import ClientLimits
from sheer.core.http.reader import RequestReader
from sheer.core.http.verdict import Rejected
from sheer.io.http.answers import Client, refused_request
from sheer.io.http.logline import client_error
from sheer.io.http.request import Request

_TIMED_OUT = "client timed out (110: Connection timed out)"
LINGERING_TIMEOUT = 5.0     # nginx's lingering_timeout: between two reads of a body being dropped
LINGERING_TIME = 30.0       # nginx's lingering_time: for all of it


class Timeouts:
    """Part of sheer.io.http.client.ClientConnection, which has the loop, the state and closes."""

    loop: asyncio.AbstractEventLoop
    timer: asyncio.TimerHandle | None          # wakes up at (or before) the earliest deadline
    send_timer: asyncio.TimerHandle | None     # send_timeout, while the client does not read
    closed: bool
    paused: set[str]
    in_head: bool
    requests: int
    idle_since: float
    head_since: float
    body_since: float
    idle_timeout: float
    body_timeout: float
    lingering: bool
    linger_until: float
    receiving: Request | None
    current: Request | None
    queue: deque[Request]
    reader: RequestReader

    if TYPE_CHECKING:      # what the connection that combines the parts has
        @property
        def limits(self) -> ClientLimits:
            ...

        @property
        def client(self) -> Client:
            ...

        def close(self) -> None:
            ...

        def abort(self) -> None:
            ...

        def _count_head(self, reading: bool) -> None:
            ...

        def _log_access_now(self, request: Request) -> None:
            ...

    def _send_timed_out(self) -> None:
        self.send_timer = None
        client_error(self.client, self.current, "info", _TIMED_OUT, "sending to client")
        if self.current is not None and self.current.vars is not None:
            self.current.vars.status = self.current.vars.status or 408
        self.abort()

    def linger(self) -> None:
        """The answer is out, the connection will close: first the rest of the request's body is
        read and dropped (nginx's discard and lingering close), within nginx's limits."""
        self.lingering = True
        now = self.loop.time()
        self.linger_until = now + LINGERING_TIME
        self.body_timeout = LINGERING_TIMEOUT
        self.body_since = now
        self._arm(now + LINGERING_TIMEOUT)

    def _arm(self, deadline: float) -> None:
        timer = self.timer
        if timer is not None:
            if timer.when() <= deadline:
                return
            timer.cancel()
        self.timer = self.loop.call_at(deadline, self._expire)

    def _expire(self) -> None:
        self.timer = None
        if self.closed:
            return
        now = self.loop.time()
        receiving = self.receiving
        if receiving is not None and not receiving.body.done:
            due = now + self.body_timeout if self.paused else self.body_since + self.body_timeout
            if self.lingering:
                due = min(due, self.linger_until)
                if now >= due:
                    self.close()        # the body's rest did not come in time: nginx closes too
                    return
            elif now >= due:
                self._body_timed_out(receiving)
                return
        elif self.current is not None or self.queue:
            return                            # answering: the proxy's timeouts and send_timeout rule
        elif self.in_head:
            due = self.head_since + self.limits.client_header_timeout
            if now >= due:
                self._head_timed_out()
                return
        else:
            due = self.idle_since + self.idle_timeout
            if now >= due:
                if not self.requests:
                    client_error(self.client, None, "info", _TIMED_OUT, "waiting for request")
                self.close()
                return
        self.timer = self.loop.call_at(due, self._expire)

    def _head_timed_out(self) -> None:
        """nginx: "client timed out", the request closed with 408 in the access log, no answer."""
        line = self.reader.partial_line()
        request = refused_request(self.client, Rejected(408, _TIMED_OUT), line, self.client.site.default_plan)
        action = "reading client request headers" if b"\n" in self.reader.pending() else \
            "reading client request line"
        client_error(self.client, request, "info", _TIMED_OUT, action)
        assert request.vars is not None
        request.vars.status = 408
        self._log_access_now(request)
        self._count_head(False)
        self.abort()

    def _body_timed_out(self, request: Request) -> None:
        """nginx: 408 in the access log, the connection (and the upstream's) closed, no answer."""
        if request.body.sink is not None:      # streaming to the upstream: nginx's unbuffered case
            client_error(self.client, request, "info", _TIMED_OUT, "sending request to upstream")
        if request.vars is not None:
            request.vars.status = 408
        self.abort()

    def _cancel_timers(self) -> None:
        """Closing: no timer may keep the connection alive."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.send_timer is not None:
            self.send_timer.cancel()
            self.send_timer = None
