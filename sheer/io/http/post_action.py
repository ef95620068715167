"""`post_action URI|@name` (nginx's ngx_http_post_action): once a response is written, the request goes on
to that location, whose answer goes nowhere (nginx sends neither its head nor its body); the request is
logged when that answer ends. What it is for: telling another server that a response was given (a
download finished), with `proxy_pass` in the target location."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Protocol

from sheer.io.http.error_pages import Client, internal_redirect
from sheer.io.http.request import Request
from sheer.io.http.site import Plan


class Muted:
    """The client's transport while a post action runs: writes go nowhere; reading, closing and what is
    asked of the connection reach the real one (a file is never sent with sendfile() to it: no socket)."""

    def __init__(self, real: asyncio.Transport) -> None:
        self.real = real

    def write(self, data: bytes) -> None:
        pass

    def writelines(self, data: Any) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default if name in ("socket", "ssl_object") else self.real.get_extra_info(name, default)

    def get_write_buffer_size(self) -> int:
        return 0

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self.real.get_write_buffer_limits()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def pause_reading(self) -> None:
        self.real.pause_reading()

    def resume_reading(self) -> None:
        self.real.resume_reading()

    def is_closing(self) -> bool:
        return self.real.is_closing()

    def close(self) -> None:
        self.real.close()

    def abort(self) -> None:
        self.real.abort()


class Connection(Client, Protocol):
    transport: asyncio.Transport | None
    closed: bool


@dataclass(frozen=True, slots=True)
class Running:
    """A post action under way: what the response it follows decided."""

    keepalive: bool
    transport: asyncio.Transport


def begin(client: Connection, request: Request, plan: Plan | None, keepalive: bool) -> bool:
    """After the response: the location's post_action, if any, takes the request on (True: it runs, and
    the client connection's finish() comes again when it ends)."""
    location = plan.location if plan is not None else None
    if (location is None or location.post_action is None or request.post_action is not None
            or client.closed or client.transport is None or request.http09):
        return False
    real = client.transport
    request.post_action = Running(keepalive, real)
    client.transport = Muted(real)  # type: ignore[assignment]
    request.status_override = None
    if not internal_redirect(client, request, location.post_action, None):
        client.transport = real        # no location takes it: nothing more to do
        return False
    return True


def end(client: Connection, request: Request, keepalive: bool) -> bool:
    """The post action answered: the client's own transport back; the keepalive of the response it
    followed (its own answer went nowhere)."""
    running = request.post_action
    if not isinstance(running, Running):
        return keepalive
    if not client.closed:
        client.transport = running.transport
    return running.keepalive
