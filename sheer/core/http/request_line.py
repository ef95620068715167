"""The request line, judged as nginx 1.22 judges it (ngx_http_parse_request_line).

Almost every request line is `METHOD /path HTTP/1.x`: one compiled regular expression takes those.
Anything else (several spaces, an absolute-form target, HTTP/0.9, another version, a byte nginx
refuses) goes through `_careful`, a port of nginx's state machine, so that the verdict and its
error-log line are nginx's: 400 "client sent invalid method", 400 "client sent invalid request",
505 "client sent invalid version", 400 "client sent invalid method in HTTP/0.9 request".
"""

from __future__ import annotations

import re

from sheer.core.http.verdict import Rejected

# nginx's http_version: major * 1000 + minor; HTTP/0.9 (no version at all) is 9.
HTTP_09, HTTP_10, HTTP_11 = 9, 1000, 1001

INVALID_METHOD = Rejected(400, "client sent invalid method")
INVALID_REQUEST = Rejected(400, "client sent invalid request")
INVALID_VERSION = Rejected(505, "client sent invalid version")
INVALID_09_METHOD = Rejected(400, "client sent invalid method in HTTP/0.9 request")
TOO_LONG = Rejected(414, "client sent too long URI")

_COMMON = re.compile(rb"((?!CONNECT )[A-Z]+) (/[^\x00-\x20\x7f]*) HTTP/1\.([01])\r?\n")
_METHOD_CHARS = re.compile(rb"[\r\n]*([A-Z_-]*)")


class RequestLine:
    """A request line nginx accepts. `target` is the unparsed URI ($request_uri): for an
    absolute-form target the part after the authority (`/` when there is none), `host` its
    authority (validate_host takes the port off)."""

    __slots__ = ("empty_path", "host", "length", "line", "method", "target", "version")

    def __init__(self, method: bytes, target: bytes, version: int, line: bytes, length: int,
                 host: bytes | None = None, empty_path: bool = False) -> None:
        self.method = method
        self.target = target
        self.version = version
        self.line = line              # as $request shows it: from the method to the version, no CRLF
        self.length = length          # bytes taken from the buffer, the line terminator included
        self.host = host
        self.empty_path = empty_path  # `GET http://host?args`: the path is "/", the target not sent as is


def parse_request_line(buffer: bytes, start: int = 0, limit: int = 8192) -> RequestLine | Rejected | None:
    """The request line at `start`, after the empty lines nginx skips; None: not complete yet.
    A line longer than `limit` (large_client_header_buffers) is 414, unless nginx finds it wrong
    within those bytes."""
    found = _COMMON.match(buffer, start)
    if found is not None:
        end = found.end()
        line_end = end - 2 if buffer[end - 2] == 13 else end - 1
        return RequestLine(found[1], found[2], HTTP_10 if found[3] == b"0" else HTTP_11,
                           buffer[start:line_end], end - start)
    method = _METHOD_CHARS.match(buffer, start)
    assert method is not None
    begin, stop = method.start(1), method.end()
    newline = buffer.find(b"\n", begin)
    if newline - begin >= limit or (newline < 0 and len(buffer) - begin > limit):
        verdict = _careful(buffer, begin, begin + limit)
        return verdict if isinstance(verdict, Rejected) else TOO_LONG
    if newline >= 0:
        result = _careful(buffer, begin, newline + 1)
        if isinstance(result, RequestLine):
            result.length += begin - start
        return result
    # nginx refuses a wrong method byte at once, not when the line ends (a TLS handshake, say)
    if stop < len(buffer) and (buffer[stop] != 32 or stop == begin):
        return INVALID_METHOD
    return None


def _letter(ch: int) -> bool:
    return 97 <= (ch | 0x20) <= 122


def _careful(buffer: bytes, start: int, stop: int) -> RequestLine | Rejected | None:
    """nginx's switch, state by state and in its order, so that the two read side by side; only
    the states that decide a verdict are kept (nginx's others set flags sheer computes later).
    None: `stop` came before the line's end and nothing was wrong so far."""
    state = "start"
    request_start = method_end = start
    uri_start = uri_end = schema_end = host_start = host_end = request_end = -1
    major = minor = 0
    empty_path = connect = False
    port_digits = 0
    p = start
    while True:
        ch = buffer[p]
        if state == "start":
            request_start = p
            if ch not in (13, 10):
                if not (65 <= ch <= 90 or ch in (95, 45)):
                    return INVALID_METHOD
                state = "method"
        elif state == "method":
            if ch == 32:
                method_end = p
                # nginx 1.29.3: CONNECT takes a host and a port (the authority form), nothing else
                connect = buffer[request_start:p] == b"CONNECT"
                state = "spaces_before_host" if connect else "spaces_before_uri"
            elif not (65 <= ch <= 90 or ch in (95, 45)):
                return INVALID_METHOD
        elif state == "spaces_before_uri":
            if ch == 47:
                uri_start = p
                state = "uri"
            elif _letter(ch):
                state = "schema"
            elif ch != 32:
                return INVALID_REQUEST
        elif state == "schema":
            if ch == 58:
                schema_end = p
                state = "schema_slash"
            elif not (_letter(ch) or 48 <= ch <= 57 or ch in (43, 45, 46)):
                return INVALID_REQUEST
        elif state in ("schema_slash", "schema_slash_slash"):
            if ch != 47:
                return INVALID_REQUEST
            state = "host_start" if state == "schema_slash_slash" else "schema_slash_slash"
        elif state == "spaces_before_host" and ch == 32:
            pass
        elif state in ("host_start", "spaces_before_host") and ch == 91:
            host_start = p
            state = "host_ip_literal"
        elif state == "host_ip_literal":
            if ch == 93:
                state = "host_end"
            elif not (48 <= ch <= 57 or _letter(ch) or ch in b":-._~!$&'()*+,;="):
                return INVALID_REQUEST
        elif state in ("host_start", "spaces_before_host", "host", "host_end", "port"):
            if state in ("host_start", "spaces_before_host"):
                host_start = p
                state = "host"
            host_char = _letter(ch) or 48 <= ch <= 57 or ch in (46, 45)
            if (state == "host" and host_char) or (state == "port" and 48 <= ch <= 57):
                port_digits += state == "port"
            elif ch == 58 and state != "port":
                state = "port"
            else:
                host_end = p        # with its port, as nginx 1.29 has validate_host check it
                if connect:         # a port of one digit or more, then the protocol
                    if state != "port" or not port_digits or ch != 32:
                        return INVALID_REQUEST
                    state = "http_09"
                elif ch == 47:
                    uri_start = p
                    state = "uri"
                elif ch == 63:
                    uri_start = p
                    empty_path = True
                    state = "uri"
                elif ch == 32:
                    uri_start, uri_end = schema_end + 1, schema_end + 2    # the single "/" of "//"
                    state = "http_09"
                else:
                    return INVALID_REQUEST
        elif state == "uri":
            if ch == 32:
                uri_end = p
                state = "http_09"
            elif ch in (13, 10):
                uri_end = p
                minor = 9
                if ch == 10:
                    break
                state = "almost_done"
            elif ch < 0x20 or ch == 0x7F:
                return INVALID_REQUEST
        elif state == "http_09":
            if ch in (13, 10):
                minor = 9
                if ch == 10:
                    break
                state = "almost_done"
            elif ch == 72:
                state = "http_H"
            elif ch != 32:
                return INVALID_REQUEST
        elif state in _PROTOCOL:
            expected, following = _PROTOCOL[state]
            if ch != expected:
                return INVALID_REQUEST
            state = following
        elif state == "first_major_digit":
            if not 49 <= ch <= 57:
                return INVALID_REQUEST
            major = ch - 48
            if major > 1:
                return INVALID_VERSION
            state = "major_digit"
        elif state == "major_digit":
            if ch == 46:
                state = "first_minor_digit"
            elif not 48 <= ch <= 57:
                return INVALID_REQUEST
            else:
                major = major * 10 + ch - 48
                if major > 1:
                    return INVALID_VERSION
        elif state == "first_minor_digit":
            if not 48 <= ch <= 57:
                return INVALID_REQUEST
            minor = ch - 48
            state = "minor_digit"
        elif state == "minor_digit":
            if ch == 13:
                state = "almost_done"
            elif ch == 10:
                break
            elif ch == 32:
                state = "spaces_after_digit"
            elif not 48 <= ch <= 57 or minor > 99:
                return INVALID_REQUEST
            else:
                minor = minor * 10 + ch - 48
        elif state == "spaces_after_digit":
            if ch == 13:
                state = "almost_done"
            elif ch == 10:
                break
            elif ch != 32:
                return INVALID_REQUEST
        elif state == "almost_done":
            request_end = p - 1
            if ch != 10:
                return INVALID_REQUEST
            break
        p += 1
        if p >= stop:
            return None
    if request_end < 0:
        request_end = p
    version = major * 1000 + minor
    method = buffer[request_start:method_end]
    if version == HTTP_09 and method != b"GET":
        return INVALID_09_METHOD
    host = buffer[host_start:host_end] if host_end >= 0 else None
    target = b"/" if connect else buffer[uri_start:uri_end]     # nginx takes the "/" of "HTTP/"
    return RequestLine(method, target, version, buffer[request_start:request_end], p + 1 - start, host,
                       empty_path)


_PROTOCOL = {
    "http_H": (84, "http_HT"),
    "http_HT": (84, "http_HTT"),
    "http_HTT": (80, "http_HTTP"),
    "http_HTTP": (47, "first_major_digit"),
}
