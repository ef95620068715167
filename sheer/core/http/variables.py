"""The variables of one HTTP request ($remote_addr, $request, $upstream_status, ...): a VariableSource."""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Callable

from sheer import NGINX_VERSION
from sheer.config.referers import Referers
from sheer.core.http.gzip import Deflater
from sheer.core.http.headers import Headers, forwarded, forwarded_for
from sheer.core.http.referer import invalid_referer
from sheer.core.maps import Table, lookup
from sheer.core.proxy_protocol import TLV_PREFIX, ProxyHeader, tlv_variable
from sheer.core.tls_vars import VARIABLES as TLS_VARIABLES
from sheer.core.tls_vars import TlsInfo
from sheer.core.variables import binary_address, time_iso8601, time_local


class Connection:
    """Per client connection values, shared by its requests."""

    __slots__ = ("connections", "hostname", "maps", "number", "pid", "proxy", "remote_addr", "remote_port",
                 "server_addr", "server_port", "start", "tls")

    def __init__(self, remote: tuple[str, int | None], local: tuple[str, int | None], number: int,
                 hostname: str, pid: int) -> None:
        # a unix-domain socket's port is None: $remote_port and $server_port are empty, as nginx's
        self.remote_addr, self.remote_port = remote[0], "" if remote[1] is None else str(remote[1])
        self.server_addr, self.server_port = local[0], "" if local[1] is None else str(local[1])
        self.number = str(number)
        self.hostname = hostname
        self.pid = str(pid)
        self.proxy: ProxyHeader | None = None      # what `listen ... proxy_protocol` received
        self.maps: dict[str, Table] = {}             # the http block's `map` and `geo` variables
        self.tls: TlsInfo | None = None            # `listen ... ssl`: what the handshake settled
        self.start = 0.0                             # when it was accepted (the clock of `now`)
        # stub_status's active, reading, writing and waiting connections ($connections_*), when asked
        self.connections: Callable[[], tuple[int, int, int, int]] | None = None


class UpstreamTry:
    """One try of proxy_pass (nginx's u->state): its peer's address (the group's name for a try that
    found no peer, `timed` False: no times of its own), its status once a head came, its times in
    seconds (None: `-`, a phase not reached; formatted when read) and, once it is over, its bytes."""

    # kept on the class until known: a try sets only what it reaches
    status: int | None = None
    time: float | None = None
    connect: float | None = None
    header: float | None = None
    bytes: tuple[int, int, int] | None = None      # received, sent, body length
    timed = True

    def __init__(self, addr: str) -> None:
        self.addr = addr


class RequestVariables:
    """Filled by the io driver as the request progresses; `now` is set before each rendering."""

    # what a request starts with, on the class: set per instance only when it changes (slots were
    # stored per request, and most of these are never read by a proxied request that logs nothing)
    proxy_host = ""
    status = 0
    bytes_sent = 0
    body_bytes_sent = 0
    _lower: dict[str, str] | None = None
    _mapped: dict[str, str] | None = None    # the maps' values worked out (made when first asked)
    request_id: str | None = None            # made when first asked
    # nginx's r->limit_rate: None until set (`set $limit_rate`, X-Accel-Limit-Rate) or worked out from
    # `limit_rate` when the response starts
    limit_rate: int | None = None
    referers: Referers | None = None         # the location's valid_referers ($invalid_referer)
    user: dict[str, str] | None = None       # `set` variables and regex captures (the rewrite module)
    upstream_headers: Headers | None = None  # the last upstream answer's ($upstream_http_*)
    body: Callable[[], bytes] | None = None  # $request_body, once the proxy read it whole
    deflater: Deflater | None = None         # the response's gzip, for $gzip_ratio
    pipe = False                             # $pipe: pipelined (came before the one before ended)
    # the response's head as sent (or, while add_header renders, the lines added so far): $sent_http_*
    sent: Headers | bytes | None = None
    trailers: Headers | None = None          # the add_trailer lines made so far ($sent_trailer_*)
    body_file: Callable[[], str] | None = None   # $request_body_file (written when first asked)

    def __init__(self, conn: Connection, method: bytes, request_uri: str, uri: str, args: str,
                 version: str, headers: Headers, host: str, server_name: str, request_length: int,
                 start: float, line: bytes | str | None = None, connection_requests: int = 1) -> None:
        self.conn = conn
        # realip may replace these per request (a trusted hop's header); the connection keeps the peer.
        self.remote_addr, self.remote_port = conn.remote_addr, conn.remote_port
        self.method = method
        self.request_uri = request_uri
        self.uri = uri
        self.args = args
        self.version = version
        self.headers = headers
        self.host = host
        self.server_name = server_name
        self.request_length = request_length
        self.start = start
        self.now = start
        self.upstream: list[UpstreamTry] = []     # proxy_pass's tries ($upstream_addr, ...), in order
        # $request as the client wrote it (nginx's request_line), decoded when first asked
        self.line = line
        self.connection_requests = connection_requests    # its place on the connection

    def referer(self) -> str | None:
        """The Referer as sent, None when there is none (an empty one is a Referer)."""
        self.header("referer")
        assert self._lower is not None
        return self._lower.get("referer")

    def header(self, name: str) -> str:
        """A request header by lowercase name (`x-forwarded-for`), or ""."""
        if self._lower is None:
            lower: dict[str, str] = {}
            for key, value in self.headers:
                field, text = key.decode("latin-1").lower(), value.decode("latin-1")
                if field in lower:    # nginx 1.23: several lines are one value, `; ` for Cookie, else `, `
                    text = lower[field] + ("; " if field == "cookie" else ", ") + text
                lower[field] = text
            self._lower = lower
        return self._lower.get(name, "")

    def variable(self, name: str) -> str:
        getter = _GETTERS.get(name)
        if getter is not None:
            return getter(self)
        user = self.user
        if user is not None:
            value = user.get(name)
            if value is not None:
                return value
        if self.conn.maps:
            if self._mapped is None:
                self._mapped = {}
            mapped = lookup(self.conn.maps, name, self, self._mapped)
            if mapped is not None:
                return mapped
        if name.startswith("http_"):
            return self.header(name[5:].replace("_", "-"))
        if name.startswith(TLV_PREFIX):
            return tlv_variable(self.conn.proxy, name)
        if name.startswith("arg_"):
            return _arg(self.args, name[4:])
        if name.startswith("cookie_"):
            return _cookie(self.header("cookie"), name[7:])
        if name.startswith("upstream_http_") and self.upstream_headers is not None:
            return joined(self.upstream_headers, name[14:])
        if name.startswith("upstream_cookie_") and self.upstream_headers is not None:
            return set_cookie(self.upstream_headers, name[16:])
        if name.startswith("sent_http_") and self.sent is not None:
            if isinstance(self.sent, bytes):
                self.sent = head_lines(self.sent)
            return joined(self.sent, name[10:])
        if name.startswith("sent_trailer_") and self.trailers is not None:
            return joined(self.trailers, name[13:])
        return ""

    def set(self, name: str, value: str) -> None:
        """`set $name value`: the request's own variable, over a map's or a header's of that name."""
        if self.user is None:
            self.user = {}
        self.user[name] = value

    def captured(self, match: re.Match[str]) -> None:
        """A regex matched (a rewrite's, an if's, a location's): $1..$9 and its named captures."""
        user = self.user
        if user is None:
            user = self.user = {}
        groups = match.re.groups
        for index in range(1, 10):
            user[str(index)] = (match.group(index) or "") if index <= groups else ""
        for name in match.re.groupindex:
            user[name] = match.group(name) or ""


def joined(headers: Headers, name: str) -> str:
    """A header's lines by variable name (`set_cookie`) joined as nginx 1.23 does: `; ` for Cookie,
    `, ` for the others."""
    wanted = name.replace("_", "-").encode("latin-1")
    values = [value for key, value in headers if key.lower() == wanted]
    if len(values) < 2:
        return values[0].decode("latin-1") if values else ""
    return (b"; " if wanted == b"cookie" else b", ").join(values).decode("latin-1")


def set_cookie(headers: Headers, name: str) -> str:
    """$upstream_cookie_NAME: the value in the first Set-Cookie line that starts with NAME (any case), then
    `=` (spaces allowed around it), up to a `;` (ngx_http_parse_set_cookie_lines)."""
    key = name.encode("latin-1").lower()
    for field, value in headers:
        if field.lower() != b"set-cookie" or len(key) >= len(value) or value[:len(key)].lower() != key:
            continue
        rest = value[len(key):].lstrip(b" ")
        if rest.startswith(b"="):
            return rest[1:].lstrip(b" ").split(b";", 1)[0].decode("latin-1")
    return ""


def remote_user(authorization: str) -> str:
    """$remote_user: the user of `Authorization: Basic` (ngx_http_auth_basic_user), else ""."""
    if len(authorization) < 6 or authorization[:6].lower() != "basic ":
        return ""
    try:
        decoded = base64.b64decode(authorization[6:].lstrip(" "), validate=True)
    except ValueError:
        return ""
    user, colon, _ = decoded.partition(b":")
    return user.decode("latin-1") if colon else ""


def head_lines(head: bytes) -> Headers:
    """A response head's header lines (the status line and what follows the empty line left out)."""
    lines = head.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]
    return [(key, value.strip()) for key, _, value in (line.partition(b":") for line in lines)]


def _arg(args: str, key: str) -> str:
    for pair in args.split("&"):
        name, _, value = pair.partition("=")
        if name.lower() == key:
            return value
    return ""


def _cookie(cookies: str, key: str) -> str:
    """$cookie_NAME as nginx finds it (ngx_http_parse_multi_header_lines): the first `;`-separated pair
    whose name is NAME in any case (spaces allowed around `=`), its value as sent, not decoded."""
    size = len(key)
    for pair in cookies.split(";"):
        pair = pair.lstrip(" ")
        if pair[:size].lower() != key.lower():
            continue
        rest = pair[size:].lstrip(" ")
        if rest.startswith("="):
            return rest[1:].lstrip(" ")
    return ""


def _proxy_part(header: ProxyHeader | None, which: int, part: int) -> str:
    """$proxy_protocol_addr and friends: empty without a header or when it carried no address."""
    if header is None:
        return ""
    address = header.source if which == 0 else header.destination
    return "" if address is None else str(address[part])


def _request_id(v: RequestVariables) -> str:
    """nginx's $request_id: 16 random bytes in hex, made once per request."""
    if v.request_id is None:
        v.request_id = os.urandom(16).hex()
    return v.request_id


def _tls(get: Callable[[TlsInfo], str]) -> Callable[[RequestVariables], str]:
    return lambda v: "" if v.conn.tls is None else get(v.conn.tls)


def _request_line(v: RequestVariables) -> str:
    line = v.line
    if isinstance(line, bytes):
        v.line = line = line.decode("latin-1")
    if line is not None:
        return line
    return f"{v.method.decode('latin-1')} {v.request_uri} {v.version}"


def _times(seconds: list[float | None]) -> str:
    """$upstream_response_time and the like: milliseconds as nginx writes them, `-` for none."""
    return ", ".join("-" if t is None else f"{t:.3f}" for t in seconds)


def _bytes(tries: list[UpstreamTry], which: int) -> str:
    return ", ".join(str(t.bytes[which]) for t in tries if t.bytes is not None)


def _connections(v: RequestVariables, which: int) -> str:
    counts = v.conn.connections
    return str(counts()[which]) if counts is not None else "0"


_GETTERS: dict[str, Callable[[RequestVariables], str]] = {
    "remote_addr": lambda v: v.remote_addr,
    "binary_remote_addr": lambda v: binary_address(v.remote_addr),
    "remote_port": lambda v: v.remote_port,
    "realip_remote_addr": lambda v: v.conn.remote_addr,
    "realip_remote_port": lambda v: v.conn.remote_port,
    "proxy_protocol_addr": lambda v: _proxy_part(v.conn.proxy, 0, 0),
    "proxy_protocol_port": lambda v: _proxy_part(v.conn.proxy, 0, 1),
    "proxy_protocol_server_addr": lambda v: _proxy_part(v.conn.proxy, 1, 0),
    "proxy_protocol_server_port": lambda v: _proxy_part(v.conn.proxy, 1, 1),
    "server_addr": lambda v: v.conn.server_addr,
    "server_port": lambda v: v.conn.server_port,
    "connection": lambda v: v.conn.number,
    "connection_requests": lambda v: str(v.connection_requests),
    "request_id": _request_id,
    "request_body": lambda v: v.body().decode("latin-1") if v.body is not None else "",
    "request_body_file": lambda v: v.body_file() if v.body_file is not None else "",
    "hostname": lambda v: v.conn.hostname,
    "pid": lambda v: v.conn.pid,
    "host": lambda v: v.host,
    "http_host": lambda v: v.header("host"),
    "server_name": lambda v: v.server_name,
    "invalid_referer": lambda v: invalid_referer(v.referers, v.referer()),
    "request_uri": lambda v: v.request_uri,
    "uri": lambda v: v.uri,
    "document_uri": lambda v: v.uri,
    "args": lambda v: v.args,
    "query_string": lambda v: v.args,
    "is_args": lambda v: "?" if v.args else "",
    "request": _request_line,
    "request_method": lambda v: v.method.decode("latin-1"),
    "scheme": lambda v: "https" if v.conn.tls is not None else "http",
    "https": lambda v: "on" if v.conn.tls is not None else "",
    "server_protocol": lambda v: v.version,
    "status": lambda v: f"{v.status:03d}",
    "bytes_sent": lambda v: str(v.bytes_sent),
    "body_bytes_sent": lambda v: str(v.body_bytes_sent),
    "request_length": lambda v: str(v.request_length),
    "request_time": lambda v: f"{max(0.0, v.now - v.start):.3f}",
    "msec": lambda v: f"{v.now:.3f}",
    "time_local": lambda v: time_local(v.now),
    "time_iso8601": lambda v: time_iso8601(v.now),
    "content_length": lambda v: v.header("content-length"),
    "content_type": lambda v: v.header("content-type"),
    "remote_user": lambda v: remote_user(v.header("authorization")),
    "nginx_version": lambda v: NGINX_VERSION,
    "proxy_host": lambda v: v.proxy_host,
    "proxy_port": lambda v: v.proxy_host.rpartition(":")[2] if ":" in v.proxy_host else "80",
    "proxy_add_x_forwarded_for": lambda v: forwarded_for(v.headers, v.remote_addr),
    "proxy_add_forwarded": lambda v: forwarded(v.headers, v.remote_addr, v.remote_port, v.header("host"),
                                               "https" if v.conn.tls is not None else "http"),
    "limit_rate": lambda v: str(v.limit_rate or 0),
    "pipe": lambda v: "p" if v.pipe else ".",
    "gzip_ratio": lambda v: v.deflater.ratio if v.deflater is not None else "",
    "connection_time": lambda v: f"{max(0.0, v.now - v.conn.start):.3f}",
    "connections_active": lambda v: _connections(v, 0),
    "connections_reading": lambda v: _connections(v, 1),
    "connections_writing": lambda v: _connections(v, 2),
    "connections_waiting": lambda v: _connections(v, 3),
    "upstream_addr": lambda v: ", ".join([t.addr for t in v.upstream]),
    "upstream_status": lambda v: ", ".join([str(t.status) for t in v.upstream if t.status is not None]),
    "upstream_response_time": lambda v: _times([t.time for t in v.upstream if t.timed]),
    "upstream_connect_time": lambda v: _times([t.connect for t in v.upstream if t.timed]),
    "upstream_header_time": lambda v: _times([t.header for t in v.upstream if t.timed]),
    "upstream_bytes_received": lambda v: _bytes(v.upstream, 0),
    "upstream_bytes_sent": lambda v: _bytes(v.upstream, 1),
    "upstream_response_length": lambda v: _bytes(v.upstream, 2),
}
# $ssl_*: the connection's TLS facts (sheer.core.tls_vars), empty on a plain connection
_GETTERS.update({name: _tls(get) for name, get in TLS_VARIABLES.items()})
