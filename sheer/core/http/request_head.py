"""A request's head, judged as nginx 1.22 judges it: the request line, the header lines
(ngx_http_parse_header_line), then what ngx_http_process_request_header checks.

The common header block (names of letters, digits and "-", values without NUL or a lone CR) is
taken by two compiled regular expressions; a block with anything else goes line by line, and only
an unusual line through `_careful_line`, nginx's state machine. Headers nginx ignores (a name with
"_" or another character it does not allow) are left out, with its info-level line."""

from __future__ import annotations

import re
from dataclasses import replace

from sheer.core.http.host import validate_host
from sheer.core.http.request_line import HTTP_09, HTTP_10, HTTP_11, parse_request_line
from sheer.core.http.uri import parse_uri
from sheer.core.http.verdict import Rejected

Headers = list[tuple[bytes, bytes]]

# The common head at once: a plain request line, header names of letters, digits and "-",
# values without NUL or CR and not ending in a space. Anything else goes the careful way. (Possessive
# repeats and a look-behind for the value's last character: nothing is tried twice.)
_HEAD = re.compile(rb"((?!CONNECT )([A-Z]++) (/[^\x00-\x20\x7f]*+) HTTP/1\.([01]))\r?\n"
                   rb"((?:[A-Za-z0-9-]++:[^\x00\r\n]*+(?<! )\r?\n)*+)\r?\n")
_FIELD = re.compile(rb"([A-Za-z0-9-]+): *([^\r\n]*)\r?\n")
_BLOCK = re.compile(rb"(?:[A-Za-z0-9-]+:[^\x00\r\n]*\r?\n)*")
_LINE = re.compile(rb"([A-Za-z0-9-]+):[ ]*([^\x00\r]*?)[ ]*\r?")

# Headers nginx refuses to see twice (ngx_http_process_unique_header_line), and Host.
_UNIQUE = frozenset({b"if-modified-since", b"if-unmodified-since", b"if-match", b"if-none-match",
                     b"content-length", b"content-range", b"if-range", b"transfer-encoding", b"expect",
                     b"authorization"})
_WATCHED = _UNIQUE | {b"host", b"connection", b"upgrade"}


class RequestHead:
    """A request head nginx accepts: what the proxy needs to route, frame and forward it.
    `target` is the unparsed URI ($request_uri): for an absolute-form target, what follows the
    authority ("/" when nothing does); `host` the validated name, from the request line first,
    then from Host."""

    # set per head only when it changes (or always, by parse_head: length, expect_continue)
    length = 0                         # the head's bytes ($request_length without the body)
    expect_continue = False
    upgrade = False                    # an Upgrade header (nginx's headers_in.upgrade): a 101 tunnels
    empty_path = False                 # `GET http://host?args`: the target is not sent as is
    ignored: list[str] | None = None   # nginx's info lines for header lines it skipped

    def __init__(self, method: bytes, target: bytes, version: int, line: bytes, uri: str, args: str) -> None:
        self.method = method
        self.target = target
        self.version = version               # nginx's: major * 1000 + minor; 9 for HTTP/0.9
        self.line = line                     # $request: from the method to the version, no CRLF
        self.uri = uri                       # $uri: decoded, dot segments and double slashes resolved
        self.args = args
        self.headers: Headers = []
        self.host: str | None = None
        self.content_length: int | None = None
        self.chunked = False
        self.keepalive = version > HTTP_10

    @property
    def protocol(self) -> str:
        """$server_protocol."""
        version = self.version
        return f"HTTP/{version // 1000}.{version % 1000}" if version != HTTP_09 else ""


class Limits:
    """client_header_buffer_size and large_client_header_buffers (number, size); what a header name
    may hold: ignore_invalid_headers, underscores_in_headers; max_headers (Debian's nginx 1.22 has it:
    1000 header lines by default), merge_slashes."""

    __slots__ = ("buffer", "ignore_invalid", "large", "max_headers", "merge_slashes", "number", "underscores")

    def __init__(self, buffer: int = 1024, number: int = 4, large: int = 8192, *, ignore_invalid: bool = True,
                 underscores: bool = False, max_headers: int = 1000, merge_slashes: bool = True) -> None:
        self.buffer, self.number, self.large = buffer, number, large
        self.ignore_invalid, self.underscores = ignore_invalid, underscores
        self.max_headers, self.merge_slashes = max_headers, merge_slashes

    @property
    def most(self) -> int:
        return self.buffer + self.number * self.large


def parse_head(buffer: bytes, start: int, limits: Limits) -> RequestHead | Rejected | None:
    """The head at `start`, once complete; None: more bytes are needed (and may still fit)."""
    found = _HEAD.match(buffer, start)
    if found is None or found.end() - start > limits.buffer:
        return _careful_head(buffer, start, limits)
    line, method, target, minor, block = found.groups()
    uri = parse_uri(target, False, limits.merge_slashes)
    if uri is None:
        return Rejected(400, "client sent invalid request")
    head = RequestHead(method, target, HTTP_11 if minor == b"1" else HTTP_10, line, uri[0], uri[1])
    head.length = found.end() - start
    fields = _FIELD.findall(block)
    if len(fields) > limits.max_headers:
        return _process(head, fields[:limits.max_headers], too_many=True)
    return _process(head, fields)


def _careful_head(buffer: bytes, start: int, limits: Limits) -> RequestHead | Rejected | None:
    line = parse_request_line(buffer, start, limits.large)
    if line is None or isinstance(line, Rejected):
        return line
    uri = parse_uri(line.target, line.empty_path, limits.merge_slashes)
    if uri is None:
        return Rejected(400, "client sent invalid request", http09=line.version < HTTP_10)
    head = RequestHead(line.method, line.target, line.version, line.line, uri[0], uri[1])
    head.empty_path = line.empty_path
    head.length = line.length
    if line.host is not None:
        host = validate_host(line.host)
        if host is None:
            return Rejected(400, "client sent invalid host in request line", http09=line.version < HTTP_10)
        head.host = host
    if line.version < HTTP_10:
        head.keepalive = False    # HTTP/0.9: no headers, one answer, then the connection closes
        return head
    begin = start + line.length
    end = _end_of_headers(buffer, begin)
    if end < 0:
        return _too_large_so_far(buffer, start, limits)
    block = buffer[begin:end]
    head.length = end - start + (2 if buffer[end] == 13 else 1)
    if head.length > limits.buffer:
        too_large = _fits(line.length, block, head.length - line.length - len(block), limits)
        if too_large is not None:
            return too_large
    if _BLOCK.fullmatch(block):
        fields = [(name, value.rstrip(b" ")) for name, value in _FIELD.findall(block)]
    else:
        ignored: list[str] = []
        found = _lines(block, ignored, limits)
        if isinstance(found, Rejected):
            return found
        fields = found
        head.ignored = ignored or None
    if len(fields) > limits.max_headers:      # the lines it ignores are not counted
        return _process(head, fields[:limits.max_headers], too_many=True)
    return _process(head, fields)


def _end_of_headers(buffer: bytes, begin: int) -> int:
    """Where the empty line that ends the header block starts (the block may be empty); -1: not yet."""
    if buffer.startswith((b"\r\n", b"\n"), begin):
        return begin
    crlf = buffer.find(b"\n\r\n", begin)
    lf = buffer.find(b"\n\n", begin)
    found = min(crlf, lf) if crlf >= 0 and lf >= 0 else max(crlf, lf)
    return found + 1 if found >= 0 else -1


def _too_large_so_far(buffer: bytes, start: int, limits: Limits) -> Rejected | None:
    """An unfinished head that can no longer fit: nginx gives up before the client ends it."""
    if len(buffer) - start > limits.most:
        return Rejected(494, "client sent too large request")
    if len(buffer) - buffer.rfind(b"\n") - 1 > limits.large:
        return Rejected(494, "client sent too long header line")
    return None


def _fits(line_length: int, block: bytes, last: int, limits: Limits) -> Rejected | None:
    """nginx reads a head into a client_header_buffer_size buffer, then moves the line that does not
    fit to one of the large_client_header_buffers: a line longer than one of those, or a head
    needing more of them, is refused (414 for the request line, 494 for a header line)."""
    room, used, taken = limits.buffer, 0, 0
    lengths = [line_length, *(len(text) + 1 for text in block.split(b"\n")[:-1]), last]
    for index, length in enumerate(lengths):
        if used + length <= room:
            used += length
            continue
        if length > limits.large or taken == limits.number:
            if index == 0:
                return Rejected(414, "client sent too long URI")
            if index == len(lengths) - 1:
                return Rejected(494, "client sent too large request")
            start = sum(lengths[1:index])
            text = block[start:start + min(length, _MAX_ERROR_STR)]
            return Rejected(494, f'client sent too long header line: "{log_text(text)}..."')
        taken += 1
        room, used = limits.large, length
    return None


_TOO_MANY = Rejected(400, "client sent too many header lines")
_MAX_ERROR_STR = 2048 - 300     # NGX_MAX_ERROR_STR - 300: what nginx quotes of a line it refuses


def _lines(block: bytes, ignored: list[str], limits: Limits) -> list[tuple[bytes, bytes]] | Rejected:
    fields = []
    for text in block.split(b"\n")[:-1]:
        found = _LINE.fullmatch(text)
        result = (found[1], found[2]) if found is not None else _careful_line(text, limits)
        if isinstance(result, Rejected):
            return result
        if isinstance(result, str):
            ignored.append(result)
            continue
        fields.append(result)
        if len(fields) > limits.max_headers:
            break                          # max_headers: nginx reads no further
    return fields


# nginx's `lowcase` table: the characters a header name may have (and "_" with underscores_in_headers)
_NAME = bytes(1 if (48 <= ch <= 57 or 65 <= ch <= 90 or 97 <= ch <= 122 or ch == 45) else 0
              for ch in range(256))
_NAME_UNDERSCORES = bytes(1 if _NAME[ch] or ch == 95 else 0 for ch in range(256))


def _careful_line(text: bytes, limits: Limits) -> tuple[bytes, bytes] | str | Rejected:
    """One header line (its LF taken off) through nginx's states: the header, the info line of a
    header nginx ignores (ignore_invalid_headers), or the 400 of one it refuses."""
    state = "start"
    invalid = False
    name_start = 0
    name_end = value_start = value_end = len(text)
    table = _NAME_UNDERSCORES if limits.underscores else _NAME
    for p, ch in enumerate(text):
        if state == "start":
            if ch == 13:
                state = "header_almost_done"
            elif table[ch]:
                state = "name"
            elif ch == 95:
                invalid, state = True, "name"
            elif ch <= 0x20 or ch == 0x7F or ch == 58:
                return _invalid_line(text, p)
            else:     # nginx stays at the start: the name begins after such characters
                invalid, name_start = True, p + 1
        elif state == "name":
            if table[ch]:
                continue
            if ch == 58:
                name_end, state = p, "space_before_value"
            elif ch == 13:
                name_end = value_start = value_end = p
                state = "almost_done"
            elif ch <= 0x20 or ch == 0x7F:
                return _invalid_line(text, p)
            else:
                invalid = True       # "_" too: underscores_in_headers is off
        elif state == "space_before_value":
            if ch == 13:
                value_start = value_end = p
                state = "almost_done"
            elif ch == 0:
                return _invalid_line(text, p)
            elif ch != 32:
                value_start, state = p, "value"
        elif state in ("value", "space_after_value"):
            if ch == 32:
                if state == "value":
                    value_end, state = p, "space_after_value"
            elif ch == 13:
                if state == "value":
                    value_end = p
                state = "almost_done"
            elif ch == 0:
                return _invalid_line(text, p)
            else:
                state = "value"
                value_end = len(text)
        elif ch != 13 or state == "header_almost_done":   # more CRs may come before the LF
            return _invalid_line(text, 0 if state == "header_almost_done" else value_end)
    if state == "value":
        value_end = len(text)
    if invalid and limits.ignore_invalid:
        return f'client sent invalid header line: "{log_text(text[:value_end])}"'
    return text[name_start:name_end], text[value_start:value_end]


def _invalid_line(text: bytes, at: int) -> Rejected:
    return Rejected(400, f'client sent invalid header line: "{log_text(text[:at])}\\x{text[at]:02x}..."')


def _process(head: RequestHead, fields: list[tuple[bytes, bytes]],
             too_many: bool = False) -> RequestHead | Rejected:
    """ngx_http_process_request_headers' handlers line by line, then ngx_http_process_request_header;
    `too_many`: the line after these was one more than max_headers allows (nginx stops there)."""
    head.headers = fields
    unique: dict[bytes, tuple[bytes, bytes]] | None = None
    host_seen: tuple[bytes, bytes] | None = None
    connection: bytes | None = None
    for field in fields:
        lname = field[0].lower()
        if lname not in _WATCHED:
            continue
        if lname == b"host":
            if host_seen is not None:
                return Rejected(400, f"client sent duplicate host header: {_pair(*field)}, "
                                     f"previous value: {_pair(*host_seen)}")
            host_seen = field
            host = validate_host(field[1])
            if host is None:
                return Rejected(400, "client sent invalid host header")
            if head.host is None:
                head.host = host
        elif lname == b"connection":
            connection = field[1].lower()
        elif lname == b"upgrade":
            head.upgrade = True
        else:
            if unique is None:
                unique = {}
            previous = unique.get(lname)
            if previous is not None:
                return Rejected(400, f"client sent duplicate header line: {_pair(*field)}, "
                                     f"previous value: {_pair(*previous)}")
            unique[lname] = field
    if too_many:
        return _TOO_MANY
    if host_seen is None and head.version > HTTP_10:
        return Rejected(400, 'client sent HTTP/1.1 request without "Host" header')
    if unique is not None:
        refused = _framing(head, unique)
        if refused is not None:
            return _with_body(refused, head)
    if connection is not None:
        if b"close" in connection:
            head.keepalive = False
        elif b"keep-alive" in connection:
            head.keepalive = True
    if head.method in _NOT_ALLOWED:
        return _with_body(Rejected(405, f"client sent {head.method.decode()} method"), head)
    return head


def _with_body(rejected: Rejected, head: RequestHead) -> Rejected:
    """The refusal, with the body the head declared before it (nginx parses Content-Length, then
    Transfer-Encoding, then the method: what was parsed is what it discards)."""
    if head.chunked or head.content_length:
        return replace(rejected, content_length=head.content_length or 0, chunked=head.chunked)
    return rejected


_NOT_ALLOWED = frozenset({b"CONNECT", b"TRACE"})


def _framing(head: RequestHead, unique: dict[bytes, tuple[bytes, bytes]]) -> Rejected | None:
    """Content-Length, Transfer-Encoding and Expect, as ngx_http_process_request_header reads them."""
    length = unique.get(b"content-length")
    if length is not None:
        text = length[1]
        if not (text.isdigit() and int(text) <= _MAX_OFF_T):
            return Rejected(400, 'client sent invalid "Content-Length" header')
        head.content_length = int(text)
    coding = unique.get(b"transfer-encoding")
    if coding is not None:
        if head.version < HTTP_11:
            return Rejected(400, 'client sent HTTP/1.0 request with "Transfer-Encoding" header')
        if coding[1].lower() != b"chunked":
            return Rejected(501, f'client sent unknown "Transfer-Encoding": "{log_text(coding[1])}"')
        if length is not None:
            return Rejected(400, 'client sent "Content-Length" and "Transfer-Encoding" headers at the '
                                 "same time")
        head.chunked = True
    expect = unique.get(b"expect")
    head.expect_continue = (expect is not None and head.version >= HTTP_11
                            and expect[1].lower() == b"100-continue")
    return None


_MAX_OFF_T = (1 << 63) - 1


def _pair(name: bytes, value: bytes) -> str:
    return f'"{log_text(name)}: {log_text(value)}"'


def log_text(data: bytes) -> str:
    """Bytes from the wire for a log line: printable ASCII as is, the rest as \\xHH (as nginx's
    access log escapes them), so that a client cannot write lines of its own into the logs."""
    text = data.decode("latin-1")
    if _PLAIN.fullmatch(data):
        return text
    return "".join(ch if " " <= ch <= "~" and ch not in '"\\' else f"\\x{ord(ch):02X}" for ch in text)


_PLAIN = re.compile(rb'[\x20-\x21\x23-\x5b\x5d-\x7e]*')
