"""The head of a proxied response and the end of its body, as nginx's filters make them: `expires`
then `add_header` on the head, and for a location with `add_trailer` lines that apply, a chunked body
whose last chunk carries them (rendered when the upstream's body has ended). A body gzip compresses
(sheer.io.http.gzipping changed its headers) has no length: chunked, or to the connection's end."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from sheer.config.responses import AddHeader
from sheer.config.static import Expires
from sheer.core.http.add_header import added, chunked_with_trailers, last_chunk
from sheer.core.http.conditional import upstream_expires
from sheer.core.http.framing import BodyMode, Framing, response_framing
from sheer.core.http.gzip import Deflater
from sheer.core.http.headers import Headers, response_head
from sheer.core.http.variables import RequestVariables
from sheer.core.variables import VariableSource
from sheer.io.http.request import Request
from sheer.io.http.site import SERVER, Plan

_NONE: frozenset[bytes] = frozenset()


class Exchange(Protocol):
    """The upstream's answer being relayed (sheer.io.http.exchange.Exchange)."""

    status: int
    method: bytes
    content_length: int | None
    reason: bytes
    headers: Headers
    skip: frozenset[bytes]
    add_headers: tuple[AddHeader, ...]
    expires: Expires | None
    variables: VariableSource | None
    trailers: Callable[[], bytes] | None
    deflater: Deflater | None        # gzip compresses the body: its length is no longer known


def framing_for(exchange: Exchange, request: Request, plan: Plan, keepalive: bool,
                ended: Callable[[], None]) -> Framing:
    """The client's framing of the upstream's answer; with trailers to send, a chunked one whatever the
    upstream's Content-Length, and the exchange's last chunk made by them (`ended` runs first: the
    try's $upstream_* are then known)."""
    status, replies = exchange.status, plan.replies
    http11 = request.version == "HTTP/1.1"
    variables = request.vars
    if (replies.add_trailers and variables is not None
            and chunked_with_trailers(replies.add_trailers, replies.chunked, status, request.method,
                                      request.version)):
        def trailers() -> bytes:
            ended()
            assert variables is not None
            return last_chunk(replies.add_trailers, status, variables)
        exchange.trailers = trailers
        return Framing(BodyMode.CHUNKED, keepalive, keepalive_line=plan.keepalive_line)
    length = exchange.content_length if exchange.deflater is None else None
    return response_framing(request.method, status, length, client_http11=http11 and replies.chunked,
                            client_keepalive=keepalive, keepalive_line=plan.keepalive_line)


def relay_head(exchange: Exchange, framing: Framing, date: bytes) -> bytes:
    """The head sent to the client (noted for $sent_http_*); its length is the framing's (the
    upstream's, unless gzip dropped it)."""
    mode = framing.mode
    content_length = (framing.content_length if mode is BodyMode.LENGTH
                      or (mode is BodyMode.NONE and exchange.method == b"HEAD") else None)
    extra: list[tuple[bytes, bytes]] = []
    replaced = _NONE
    variables = exchange.variables
    if exchange.add_headers and variables is not None:
        extra, replaced = added(exchange.add_headers, exchange.status, variables)
    if exchange.expires is not None and variables is not None:    # before add_header's, as nginx
        lines, gone = upstream_expires(exchange.expires, exchange.status, exchange.headers, variables,
                                       time.time())
        extra, replaced = lines + extra, replaced | gone
    head = response_head(exchange.status, exchange.reason, exchange.headers, server=SERVER,
                         date=date, content_length=content_length,
                         chunked=mode is BodyMode.CHUNKED, keepalive=framing.keepalive,
                         added=extra, replaced=replaced, skip=exchange.skip,
                         keepalive_line=framing.keepalive_line)
    if isinstance(variables, RequestVariables):
        variables.sent = head
    return head
