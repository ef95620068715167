"""`add_header`, as nginx's headers filter adds them (ngx_http_headers_filter_module.c): to responses
whose status is 200, 201, 204, 206, 301, 302, 303, 304, 307 or 308, and with `always` to every one;
a value that renders empty adds nothing. `Last-Modified` and `ETag` replace the response's own (an
empty value removes it); any other name is one more header line, even when the response has one.
`add_trailer` lines, by the same rules, follow the last chunk of a chunked HTTP/1.1 response (nginx's
trailers filter: a response expecting any loses its Content-Length and is chunked)."""

from __future__ import annotations

import time
from collections.abc import Iterable

from sheer.config.responses import AddHeader
from sheer.core.http.variables import RequestVariables
from sheer.core.variables import VariableSource, render_bytes

SUCCESS = frozenset({200, 201, 204, 206, 301, 302, 303, 304, 307, 308})
REPLACED = frozenset({b"last-modified", b"etag"})


def added(entries: Iterable[AddHeader], status: int, variables: VariableSource
          ) -> tuple[list[tuple[bytes, bytes]], frozenset[bytes]]:
    """The header lines to add, and the (lowercase) names of the response's own headers they replace."""
    lines: list[tuple[bytes, bytes]] = []
    replaced: set[bytes] = set()
    success = status in SUCCESS
    if isinstance(variables, RequestVariables):
        variables.now = time.time()        # $msec, $request_time: when the header is made
    for entry in entries:
        if not (success or entry.always):
            continue
        name = entry.name.encode("latin-1")
        if entry.sent and isinstance(variables, RequestVariables):
            variables.sent = lines          # $sent_http_*: the lines added so far (nginx's headers_out)
        value = render_bytes(entry.value, variables)
        if name.lower() in REPLACED:
            # nginx keeps one of each: a later line replaces (an empty one removes) an earlier one
            replaced.add(name.lower())
            lines = [line for line in lines if line[0].lower() != name.lower()]
        if value:
            lines.append((name, value))
    return lines, frozenset(replaced)


def expects_trailers(entries: Iterable[AddHeader], status: int) -> bool:
    """Whether add_trailer has a line for this status (nginx's r->expect_trailers)."""
    success = status in SUCCESS
    return any(success or entry.always for entry in entries)


def chunked_with_trailers(entries: tuple[AddHeader, ...], chunked: bool, status: int, method: bytes,
                          version: str) -> bool:
    """nginx's chunked filter for a response expecting trailers: an HTTP/1.1 answer with a body, unless
    `chunked_transfer_encoding off`."""
    return (bool(entries) and chunked and version == "HTTP/1.1" and method != b"HEAD"
            and status >= 200 and status not in (204, 304) and expects_trailers(entries, status))


def last_chunk(entries: Iterable[AddHeader], status: int, variables: VariableSource) -> bytes:
    """The last chunk with the trailers, rendered now (as nginx's filter, when the last buffer passes);
    `$sent_trailer_*` sees the lines made before it."""
    lines: list[tuple[bytes, bytes]] = []
    if isinstance(variables, RequestVariables):
        variables.trailers = lines
        variables.now = time.time()
    success = status in SUCCESS
    for entry in entries:
        if success or entry.always:
            value = render_bytes(entry.value, variables)
            if value:
                lines.append((entry.name.encode("latin-1"), value))
    return b"0\r\n" + b"".join(b"%s: %s\r\n" % line for line in lines) + b"\r\n"


def chunk(body: bytes) -> bytes:
    """`body` as one chunk (nothing for an empty one: the last chunk follows)."""
    return b"%x\r\n%s\r\n" % (len(body), body) if body else b""
