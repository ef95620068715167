"""The head of a proxied response as the client gets it: the upstream's status and headers, `expires`
and `add_header` lines, sheer's Server, Date and framing."""

from __future__ import annotations

import time
from typing import Protocol

from sheer.config.model import AddHeader
from sheer.config.static import Expires
from sheer.core.http.add_header import added
from sheer.core.http.conditional import upstream_expires
from sheer.core.http.framing import BodyMode, Framing
from sheer.core.http.headers import Headers, response_head
from sheer.core.http.variables import RequestVariables
from sheer.core.variables import VariableSource
from sheer.io.http.site import SERVER, Site


class Client(Protocol):
    site: Site


class Exchange(Protocol):
    """What of the exchange (sheer.io.http.exchange) its head is made of."""

    method: bytes
    status: int
    reason: list[bytes]
    headers: Headers
    add_headers: tuple[AddHeader, ...]
    expires: Expires | None
    variables: VariableSource | None
    skip: frozenset[bytes]

    @property
    def client(self) -> Client: ...


def relayed_head(exchange: Exchange, framing: Framing, http09: bool) -> bytes:
    if http09:
        return b""      # HTTP/0.9: no status line, no headers (framing is CLOSE)
    # the length said: the body's (LENGTH), or a HEAD answer's (NONE); framing.content_length is the
    # upstream's unless gzip dropped it
    content_length = framing.content_length if framing.mode in (BodyMode.LENGTH, BodyMode.NONE) else None
    if framing.mode is BodyMode.NONE and exchange.method != b"HEAD":
        content_length = None
    extra: list[tuple[bytes, bytes]] = []
    replaced: frozenset[bytes] = frozenset()
    variables = exchange.variables
    if exchange.add_headers and variables is not None:
        extra, replaced = added(exchange.add_headers, exchange.status, variables)
    if exchange.expires is not None and variables is not None:    # before add_header's, as nginx
        lines, gone = upstream_expires(exchange.expires, exchange.status, exchange.headers, variables,
                                       time.time())
        extra, replaced = lines + extra, replaced | gone
    head = response_head(exchange.status, b"".join(exchange.reason), exchange.headers, server=SERVER,
                         date=exchange.client.site.date(), content_length=content_length,
                         chunked=framing.mode is BodyMode.CHUNKED, keepalive=framing.keepalive,
                         added=extra, replaced=replaced, skip=exchange.skip)
    if isinstance(variables, RequestVariables):
        variables.sent_head = head          # $sent_http_*
    return head
