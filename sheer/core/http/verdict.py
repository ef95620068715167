"""What nginx answers a request it refuses, and the line it writes to the error log about it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Rejected:
    """A request refused before it reached a handler: the status (494 is sent as 400 with its own
    page, as nginx does), nginx's error-log message, and its level there."""

    status: int
    message: str
    level: str = "info"
    # The body its head had declared when nginx refused it: nginx reads it and drops it before
    # closing (ngx_http_discard_request_body), so the client is not cut off while still sending.
    content_length: int = 0
    chunked: bool = False
    http09: bool = False      # an HTTP/0.9 request's: answered with the page alone, no status line
