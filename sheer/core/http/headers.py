"""Header blocks sent upstream and back to the client. Names and values stay bytes (latin-1 on the wire)."""

from __future__ import annotations

from collections.abc import Iterable

Headers = list[tuple[bytes, bytes]]

# Never forwarded in either direction: they describe one hop, or sheer re-frames the body.
HOP_BY_HOP = frozenset({
    b"connection", b"keep-alive", b"te", b"trailer", b"upgrade", b"proxy-connection",
    b"transfer-encoding",
})
# nginx's proxy_set_header defaults leave these out of the upstream request (Host and Connection
# come with every location's proxy_set_header names); the others are forwarded as they came.
_REQUEST_SKIP = frozenset({b"content-length", b"transfer-encoding", b"te", b"keep-alive", b"expect",
                           b"upgrade"})
# nginx sends its own Date and Server, and hides X-Pad and X-Accel-* (proxy_hide_header's defaults).
FRAMING = HOP_BY_HOP | {b"content-length"}
RESPONSE_SKIP = FRAMING | {b"date", b"server", b"x-pad", b"x-accel-expires", b"x-accel-redirect",
                           b"x-accel-limit-rate", b"x-accel-buffering", b"x-accel-charset"}

STATUS_REASONS: dict[int, bytes] = {
    100: b"Continue", 101: b"Switching Protocols",
    200: b"OK", 201: b"Created", 202: b"Accepted", 203: b"Non-Authoritative Information",
    204: b"No Content", 205: b"Reset Content", 206: b"Partial Content",
    300: b"Multiple Choices", 301: b"Moved Permanently", 302: b"Found", 303: b"See Other",
    304: b"Not Modified", 307: b"Temporary Redirect", 308: b"Permanent Redirect",
    400: b"Bad Request", 401: b"Unauthorized", 402: b"Payment Required", 403: b"Forbidden",
    404: b"Not Found", 405: b"Not Allowed", 406: b"Not Acceptable", 408: b"Request Time-out",
    409: b"Conflict", 410: b"Gone", 411: b"Length Required", 412: b"Precondition Failed",
    413: b"Request Entity Too Large", 414: b"Request-URI Too Large", 415: b"Unsupported Media Type",
    416: b"Requested Range Not Satisfiable", 421: b"Misdirected Request", 429: b"Too Many Requests",
    500: b"Internal Server Error", 501: b"Not Implemented", 502: b"Bad Gateway",
    503: b"Service Temporarily Unavailable", 504: b"Gateway Time-out", 505: b"HTTP Version Not Supported",
    507: b"Insufficient Storage",
}


def reason(status: int) -> bytes:
    return STATUS_REASONS.get(status, b"")


def request_skip(set_names: frozenset[bytes]) -> frozenset[bytes]:
    """The client's headers a request_head() leaves out: those nginx never passes on and those
    proxy_set_header names (lowercase): made once per location."""
    return _REQUEST_SKIP | set_names


def request_head(method: bytes, uri: bytes, version: bytes, set_headers: Iterable[tuple[bytes, bytes]],
                 skip: frozenset[bytes], client_headers: Headers,
                 body_length: int | None, chunked: bool) -> bytes:
    """The upstream request head as nginx builds it: proxy_set_header values (empty ones already left
    out), the body's framing (nginx's Content-Length and Transfer-Encoding defaults come right after
    Host and Connection), then the client's headers minus those in `skip` (request_skip())."""
    lines = [b"%s %s HTTP/%s\r\n" % (method, uri, version)]
    for name, value in set_headers:
        lines.append(b"%s: %s\r\n" % (name, value))
    if body_length is not None:
        lines.append(b"Content-Length: %d\r\n" % body_length)
    elif chunked:
        lines.append(b"Transfer-Encoding: chunked\r\n")
    for name, value in client_headers:
        if name.lower() not in skip:
            lines.append(b"%s: %s\r\n" % (name, value))
    lines.append(b"\r\n")
    return b"".join(lines)


def response_head(status: int, reason_phrase: bytes, headers: Headers, *, server: bytes, date: bytes,
                  content_length: int | None, chunked: bool, keepalive: bool,
                  added: Iterable[tuple[bytes, bytes]] = (),
                  replaced: frozenset[bytes] = frozenset(), skip: frozenset[bytes] = RESPONSE_SKIP,
                  keepalive_line: bytes = b"") -> bytes:
    """The client's response head: the upstream's status and end-to-end headers (less those `add_header`
    replaces and those `skip` hides: proxy_hide_header), the added ones, sheer's framing. sheer's own
    Server and Date unless proxy_pass_header lets the upstream's through."""
    if skip is RESPONSE_SKIP:
        lines = [b"HTTP/1.1 %d %s\r\nServer: %s\r\nDate: %s\r\n" % (status, reason_phrase or reason(status),
                                                                  server, date)]
    else:
        lines = [b"HTTP/1.1 %d %s\r\n" % (status, reason_phrase or reason(status))]
        names = {name.lower() for name, _ in headers}
        if b"server" in skip or b"server" not in names:
            lines.append(b"Server: %s\r\n" % server)
        if b"date" in skip or b"date" not in names:
            lines.append(b"Date: %s\r\n" % date)
    for name, value in headers:
        lower = name.lower()
        if lower not in skip and lower not in replaced:
            lines.append(b"%s: %s\r\n" % (name, value))
    for name, value in added:
        lines.append(b"%s: %s\r\n" % (name, value))
    if content_length is not None:
        lines.append(b"Content-Length: %d\r\n" % content_length)
    elif chunked:
        lines.append(b"Transfer-Encoding: chunked\r\n")
    lines.append(b"Connection: keep-alive\r\n%s\r\n" % keepalive_line if keepalive
                 else b"Connection: close\r\n\r\n")
    return b"".join(lines)


def forwarded_for(client_headers: Headers, remote_addr: str) -> str:
    """$proxy_add_x_forwarded_for: the client's X-Forwarded-For values, then $remote_addr."""
    values = [value.decode("latin-1") for name, value in client_headers if name.lower() == b"x-forwarded-for"]
    if not values:
        return remote_addr
    return ", ".join(values) + ", " + remote_addr


def forwarded(client_headers: Headers, remote_addr: str, remote_port: str, host: str, scheme: str) -> str:
    """$proxy_add_forwarded (sheer-only): the client's Forwarded values, then this hop's element
    (RFC 7239): `for=192.0.2.1`, `for="192.0.2.1:4711"`, `for="[2001:db8::1]:4711"`, then host and proto."""
    values = [value.decode("latin-1") for name, value in client_headers if name.lower() == b"forwarded"]
    node = f"[{remote_addr}]" if ":" in remote_addr else remote_addr
    if remote_port:
        node = f"{node}:{remote_port}"
    element = f"for={_token_or_quoted(node)}"
    if host:
        element += f";host={_token_or_quoted(host)}"
    element += f";proto={scheme}"
    return ", ".join([*values, element])


_TCHAR = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def _token_or_quoted(value: str) -> str:
    if value and all(ch in _TCHAR for ch in value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


LAST_CHUNK = b"0\r\n\r\n"


UNIQUE = frozenset({b"transfer-encoding", b"expires"})    # upstream header lines nginx checks as they come


def unique_line(headers: Headers, lower: bytes, name: bytes, value: bytes) -> tuple[str, str] | None:
    """nginx's checks of an upstream's Transfer-Encoding and Expires lines (ngx_http_upstream_process_
    transfer_encoding, ngx_http_upstream_process_expires): ("error", why) makes the answer an invalid
    header (a second Transfer-Encoding, one that is not "chunked"); ("warn", why) drops a second Expires."""
    previous = next(((key, text) for key, text in headers if key.lower() == lower), None)
    if previous is not None:
        now, before = b"%s: %s" % (name, value), b"%s: %s" % previous
        said = (f'upstream sent duplicate header line: "{now.decode("latin-1")}", '
                f'previous value: "{before.decode("latin-1")}"')
        return ("warn", said + ", ignored") if lower == b"expires" else ("error", said)
    if lower == b"transfer-encoding" and value.lower() != b"chunked":
        return "error", f'upstream sent unknown "Transfer-Encoding": "{value.decode("latin-1")}"'
    return None
