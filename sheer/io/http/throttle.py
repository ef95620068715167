"""`limit_rate` (and `proxy_limit_rate`) on one response: what the limits do not let go now waits here, in
order, and the upstream is not read meanwhile, so what waits stays about one read's worth.

The arithmetic is nginx's (sheer.core.rate): a response may have sent `rate` bytes for each second begun
since it started, and after each send it pauses for what it sent. Only responses with a limit have a
throttle; the others write straight to the client as before.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from sheer.core.http.headers import Headers
from sheer.core.rate import RateLimit, evaluate

if TYPE_CHECKING:
    from sheer.config.model import Location
    from sheer.core.http.variables import RequestVariables


class Side(Protocol):
    """A side of the exchange (sheer.io.http.client.ClientConnection, upstream_pool.UpstreamConnection)."""

    @property
    def transport(self) -> asyncio.Transport | None: ...

    @property
    def closed(self) -> bool: ...


class Client(Side, Protocol):
    @property
    def write_paused(self) -> bool: ...


class Exchange(Protocol):
    """The response's exchange (sheer.io.http.exchange.Exchange), as the throttle sees it."""

    headers: Headers
    last_activity: float
    throttle: Throttle | None

    @property
    def client(self) -> Client: ...

    @property
    def conn(self) -> Side: ...

    @property
    def loop(self) -> asyncio.AbstractEventLoop: ...


def accel_limit_rate(headers: Headers) -> bytes | None:
    """The upstream's X-Accel-Limit-Rate, taken out of the response: nginx acts on it, never passes it on."""
    for index, (name, value) in enumerate(headers):
        if len(name) == 18 and name.lower() == b"x-accel-limit-rate":
            del headers[index]
            return value
    return None


def limit_response(exchange: Exchange, location: Location, variables: RequestVariables, started: float,
                   complain: Callable[[str], None]) -> None:
    """The limits of a proxied response, as nginx works them out when it starts: X-Accel-Limit-Rate from
    the upstream, else a rate already set (`set $limit_rate`), else `limit_rate`; `limit_rate_after`;
    `proxy_limit_rate`. With none, the response is written as it comes."""
    header = accel_limit_rate(exchange.headers)
    ignored = "x-accel-limit-rate" in location.proxy_ignore_headers     # taken out even so: never passed on
    limits = response_limits(location, variables, started, complain,
                             int(header) if header is not None and header.isdigit() and not ignored else None)
    if location.proxy_limit_rate:
        limits.append(RateLimit(location.proxy_limit_rate, started))
    if limits:
        client, conn = exchange.client, exchange.conn

        def source_paused(paused: bool) -> None:
            transport = conn.transport
            if transport is None or conn.closed:
                return
            if paused:
                transport.pause_reading()
            elif not client.write_paused:
                exchange.last_activity = exchange.loop.time()
                transport.resume_reading()

        exchange.throttle = Throttle(exchange.loop, limits,
                                     lambda: None if client.closed else client.transport, source_paused)


def response_limits(location: Location, variables: RequestVariables, started: float,
                    complain: Callable[[str], None], rate: int | None = None) -> list[RateLimit]:
    """`limit_rate` and `limit_rate_after` of one response (a proxied one's or a file's): `rate` (the
    upstream's X-Accel-Limit-Rate), else a rate already set (`set $limit_rate`), else `limit_rate`."""
    if rate is None:
        rate = variables.limit_rate
    if rate is None:
        rate, problem = evaluate(location.limit_rate, variables) if location.limit_rate else (0, None)
        if problem is not None:
            complain(problem)
    variables.limit_rate = rate
    if not rate:
        return []
    after, problem = evaluate(location.limit_rate_after, variables)
    if problem is not None:
        complain(problem)
    return [RateLimit(rate, started, after)]


class Throttle:
    __slots__ = ("finished", "limits", "loop", "moved", "queue", "source_paused", "timer", "transport")

    def __init__(self, loop: asyncio.AbstractEventLoop, limits: list[RateLimit],
                 transport: Callable[[], asyncio.WriteTransport | None],
                 source_paused: Callable[[bool], None]) -> None:
        self.loop = loop
        self.limits = limits
        self.transport = transport           # the client's transport, None once it is gone
        self.source_paused = source_paused   # stop (True) or resume (False) reading the upstream
        self.queue: deque[bytes] = deque()
        self.moved = 0                       # bytes of this response sent so far (its head included)
        self.timer: asyncio.TimerHandle | None = None
        self.finished: Callable[[], None] | None = None    # called once all that was written is sent

    @property
    def holding(self) -> bool:
        """The limit holds bytes back (or pauses): the client, not the upstream, sets the pace."""
        return bool(self.queue) or self.timer is not None

    def write(self, pieces: list[bytes]) -> None:
        self.queue.extend(piece for piece in pieces if piece)
        if self.timer is None:
            self._send()
        if self.queue:
            self.source_paused(True)

    def finish(self, done: Callable[[], None]) -> None:
        """`done` once the queue is sent (at once if it is): nginx ends the request with its last send."""
        if self.queue:
            self.finished = done
        else:
            done()

    def close(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.queue.clear()
        self.finished = None

    def _send(self) -> None:
        transport = self.transport()
        if transport is None:
            self.close()
            return
        now = self.loop.time()
        allowance = min(limit.allowance(self.moved, now) for limit in self.limits)
        if allowance <= 0:
            self._wait(max(limit.wait(limit.allowance(self.moved, now)) for limit in self.limits
                           if limit.allowance(self.moved, now) <= 0))
            return
        out: list[bytes] = []
        size = 0
        queue = self.queue
        while queue and size < allowance:
            piece = queue.popleft()
            room = allowance - size
            if len(piece) > room:
                queue.appendleft(piece[room:])
                piece = piece[:room]
            out.append(piece)
            size += len(piece)
        if out:
            transport.writelines(out)
        before, self.moved = self.moved, self.moved + size
        pause = max(limit.pause(before, self.moved) for limit in self.limits)
        if pause > 0:
            self._wait(pause)
        elif queue:
            self._wait(0.001)
        if not queue:
            self._drained()

    def _wait(self, seconds: float) -> None:
        self.timer = self.loop.call_later(seconds, self._tick)

    def _tick(self) -> None:
        self.timer = None
        if self.queue:
            self._send()
        else:
            self.source_paused(False)

    def _drained(self) -> None:
        finished, self.finished = self.finished, None
        if finished is not None:
            finished()
        elif self.timer is None:
            self.source_paused(False)
