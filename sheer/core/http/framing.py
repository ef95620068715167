"""Body framing decisions for a response relayed to the client."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class BodyMode(Enum):
    NONE = "none"          # HEAD, 1xx, 204, 304
    LENGTH = "length"      # Content-Length passthrough
    CHUNKED = "chunked"    # re-encoded: upstream chunked or close-delimited, HTTP/1.1 client
    CLOSE = "close"        # close-delimited: HTTP/1.0 client without a known length


@dataclass(slots=True)      # not frozen: a frozen dataclass's __init__ costs twice as much, per response
class Framing:
    mode: BodyMode
    keepalive: bool
    content_length: int | None = None
    keepalive_line: bytes = b""         # keepalive_timeout's `Keep-Alive: timeout=N` line


def has_body(method: bytes, status: int) -> bool:
    return not (method == b"HEAD" or status < 200 or status in (204, 304))


def response_framing(method: bytes, status: int, content_length: int | None, *,
                     client_http11: bool, client_keepalive: bool, keepalive_line: bytes = b"") -> Framing:
    """`content_length` is the upstream's, or None when its body is chunked or close-delimited."""
    if method == b"HEAD" or status < 200 or status == 204 or status == 304:    # has_body()
        return Framing(BodyMode.NONE, client_keepalive, content_length, keepalive_line)
    if content_length is not None:
        return Framing(BodyMode.LENGTH, client_keepalive, content_length, keepalive_line)
    if client_http11:
        return Framing(BodyMode.CHUNKED, client_keepalive, None, keepalive_line)
    return Framing(BodyMode.CLOSE, False, None, keepalive_line)


def upstream_reusable(method: bytes, status: int, upstream_keepalive: bool, content_length: int | None,
                      chunked: bool) -> bool:
    """Whether the upstream connection can go back to the pool after this response: the upstream
    allowed keepalive and the body had its own end (not close-delimited)."""
    if not upstream_keepalive or method == b"HEAD":
        # A HEAD response carries no body whatever its Content-Length says; the parser can't be told.
        return False
    if status < 200 or status in (204, 304):
        return True
    return content_length is not None or chunked
