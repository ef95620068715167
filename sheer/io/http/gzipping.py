"""gzip on the two kinds of responses it meets: a proxied one (the exchange compresses what it relays,
read by read) and a file (read in pieces, compressed and written as the client takes it, never whole in
memory). What is compressed and how the headers change is sheer.core.http.gzip's; a location without
`gzip on` never comes here."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from sheer.config.gzip import Gzip
from sheer.core.http.gzip import (
    CONTENT_ENCODING,
    VARY,
    Deflater,
    compressed_headers,
    eligible,
    request_ok,
)
from sheer.core.http.headers import LAST_CHUNK, Headers
from sheer.core.rate import RateLimit
from sheer.io.http.sendfile import PIECE, Client
from sheer.io.http.throttle import Throttle

if TYPE_CHECKING:
    from sheer.io.http.request import Request


class Exchange(Protocol):
    """The proxied response (sheer.io.http.exchange.Exchange), as gzip sees it."""

    status: int
    headers: Headers
    content_length: int | None
    skip: frozenset[bytes]


def http_version(request: Request) -> int:
    """ngx's r->http_version as gzip_http_version compares it: 9, 10 or 11."""
    if request.http09:
        return 9
    return 11 if request.version == "HTTP/1.1" else 10


def _first(headers: Headers, name: bytes) -> bytes | None:
    return next((value for key, value in headers if key.lower() == name), None)


def gzip_proxied(exchange: Exchange, gzip: Gzip, request: Request) -> Deflater | None:
    """The proxied response's gzip, decided on the headers the client will see: a Deflater (its headers
    changed: Content-Encoding, no Content-Length nor Accept-Ranges, a weak ETag), or None (as it came,
    with Vary when gzip_vary says so and the response could have been)."""
    skip = exchange.skip
    visible = [(name, value) for name, value in exchange.headers if name.lower() not in skip]
    if not eligible(gzip, exchange.status, _first(visible, b"content-type"), exchange.content_length,
                    _first(visible, b"content-encoding")):
        return None
    if gzip.vary:
        exchange.headers.append(VARY)
    if not request_ok(gzip, request.headers, http_version(request), visible, time.time()):
        return None
    exchange.headers = compressed_headers(exchange.headers)
    exchange.headers.append(CONTENT_ENCODING)
    return Deflater(gzip.comp_level)


def file_gzip(gzip: Gzip, request: Request, status: int, own: Headers, extra: Headers) -> Deflater | None:
    """A file's gzip, once its response is known to be one gzip takes (sheer.core.http.gzip.eligible):
    `extra` (the header list: ETag, expires, add_header) gets Vary if gzip_vary says so, and, when the
    client is one to compress for, Content-Encoding and a weak ETag."""
    if gzip.vary:
        extra.insert(0, VARY)        # nginx's header filter writes it right after Connection
    if not request_ok(gzip, request.headers, http_version(request), own + extra, time.time()):
        return None
    extra[:] = compressed_headers(extra)
    extra.append(CONTENT_ENCODING)
    return Deflater(gzip.comp_level)


def gzip_answer(gzip: Gzip, request: Request, status: int, content_type: bytes | None, body: bytes,
                extra: Headers) -> tuple[bytes, Deflater | None]:
    """An answer sheer makes itself (an error page, `return`), whole in memory: its body compressed and
    Content-Encoding added to `extra` when gzip takes it (Vary too, where gzip_vary says so)."""
    if not eligible(gzip, status, content_type, len(body), None):
        return body, None
    if gzip.vary:
        extra.append(VARY)
    if not request_ok(gzip, request.headers, http_version(request), extra, time.time()):
        return body, None
    extra[:] = compressed_headers(extra)
    extra.append(CONTENT_ENCODING)
    deflater = Deflater(gzip.comp_level)
    return deflater.compress(body) + deflater.finish(), deflater


class CompressedFile:
    """A file's bytes through gzip to the client: a piece is read and compressed only when the client
    took what was written before (the client connection tells it, as it tells sheer.io.http.sendfile's
    FileSender)."""

    def __init__(self, client: Client, fd: int, deflater: Deflater, chunked: bool,
                 limits: list[RateLimit] | None = None, end: Callable[[], bytes] | None = None) -> None:
        self.client = client
        self.fd = fd
        self.deflater = deflater
        self.chunked = chunked
        self.end = end         # the last chunk with add_trailer's lines (rendered when the body has gone)
        self.resumed: asyncio.Future[None] | None = None
        self.sent = 0          # body bytes written (compressed)
        # limit_rate (sheer.io.http.throttle.response_limits): what is written goes through a throttle
        self.throttle = (Throttle(asyncio.get_running_loop(), limits,
                                  lambda: None if client.closed else client.transport, self._throttled)
                         if limits else None)

    def client_paused(self, paused: bool) -> None:
        if not paused and self.resumed is not None and not self.resumed.done():
            self.resumed.set_result(None)

    def _throttled(self, paused: bool) -> None:
        self.client_paused(paused)

    async def send(self, head: bytes, size: int) -> bool:
        """Write `head`, then the file's first `size` bytes compressed. False when the connection went
        away (or the file shrank) before everything was written."""
        transport = self.client.transport
        if transport is None or self.client.closed:
            return False
        pending = [head]
        offset = 0
        self.client.relay = self
        throttle = self.throttle
        write = throttle.write if throttle is not None else transport.writelines
        try:
            while True:
                piece = os.pread(self.fd, min(PIECE, size - offset), offset) if offset < size else b""
                if offset < size and not piece:
                    return False             # the file is shorter than it was
                offset += len(piece)
                last = offset >= size
                out = self.deflater.compress(piece)
                if last:
                    out += self.deflater.finish()
                pending += self._framed(out)
                if last:
                    if self.chunked:
                        pending.append(self.end() if self.end is not None else LAST_CHUNK)
                    write(pending)
                    await self._drained()
                    return not self.client.closed
                if len(pending) > 1 or sum(len(p) for p in pending) >= PIECE:
                    write(pending)
                    pending = []
                while not self.client.closed and (self.client.write_paused
                                                  or (throttle is not None and throttle.holding)):
                    self.resumed = asyncio.get_running_loop().create_future()
                    try:
                        await self.resumed
                    finally:
                        self.resumed = None
                if self.client.closed:
                    return False
        finally:
            if self.client.relay is self:
                self.client.relay = None
            if throttle is not None:
                throttle.close()

    async def _drained(self) -> None:
        """Until a throttle sent what it holds (at once without one)."""
        if self.throttle is None or self.client.closed:
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def finished() -> None:
            if not done.done():
                done.set_result(None)

        self.throttle.finish(finished)
        await done

    def _framed(self, data: bytes) -> list[bytes]:
        if not data:
            return []
        self.sent += len(data)
        return [b"%x\r\n" % len(data), data, b"\r\n"] if self.chunked else [data]
