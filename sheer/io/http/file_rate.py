"""`limit_rate` and `limit_rate_after` on a file's response, as nginx paces its static files: the rate
set for the request (`set $limit_rate`) or the location's, the head counted with the body. A file under
a limit is read a piece at a time and written through the same throttle as a proxied response
(sheer.io.http.throttle); a file without one goes out with sendfile() as before."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable

from sheer.config.model import Location
from sheer.core.http.variables import RequestVariables
from sheer.core.rate import RateLimit, evaluate
from sheer.io.http.sendfile import PIECE, Client, Span
from sheer.io.http.throttle import Throttle


def file_limits(location: Location | None, variables: RequestVariables, started: float,
                complain: Callable[[str], None]) -> list[RateLimit]:
    """The response's limits, worked out when it starts (nginx's $limit_rate then says the rate)."""
    rate = variables.limit_rate
    if rate is None:
        configured = location.limit_rate if location is not None else 0
        rate, problem = evaluate(configured, variables) if configured else (0, None)
        if problem is not None:
            complain(problem)
    variables.limit_rate = rate
    if not rate or location is None:
        return []
    after, problem = evaluate(location.limit_rate_after, variables)
    if problem is not None:
        complain(problem)
    return [RateLimit(rate, started, after)]


async def send_limited(client: Client, fd: int, head: bytes, pieces: list[bytes | Span],
                       limits: list[RateLimit]) -> tuple[bool, int]:
    """Write `head` and the pieces under `limits`: (all written, body bytes written)."""
    loop = asyncio.get_running_loop()
    waiter: list[asyncio.Future[None]] = []

    def source_paused(paused: bool) -> None:
        if not paused and waiter and not waiter[0].done():
            waiter[0].set_result(None)

    async def until_sent() -> None:
        while throttle.holding and not client.closed:
            waiter[:] = [loop.create_future()]
            await waiter[0]

    throttle = Throttle(loop, limits, lambda: None if client.closed else client.transport, source_paused)
    sent = 0
    try:
        throttle.write([head])
        for piece in pieces:
            spans = [piece] if isinstance(piece, bytes) else None
            offset, end = (0, 0) if spans is not None else piece
            while spans or offset < end:
                await until_sent()
                if client.closed:
                    return False, sent
                data = spans.pop() if spans else os.pread(fd, min(PIECE, end - offset), offset)
                if not data:
                    return False, sent           # the file is shorter than it was
                offset += 0 if isinstance(piece, bytes) else len(data)
                throttle.write([data])
                sent += len(data)
        done: asyncio.Future[None] = loop.create_future()

        def finished() -> None:
            if not done.done():
                done.set_result(None)

        throttle.finish(finished)
        await done
        return not client.closed, sent
    finally:
        throttle.close()
