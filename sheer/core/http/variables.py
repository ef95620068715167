"""The variables of one HTTP request ($remote_addr, $request, $upstream_status, ...): a VariableSource."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from urllib.parse import unquote_plus

from sheer.core.http.headers import Headers, forwarded, forwarded_for
from sheer.core.maps import MapTable, lookup
from sheer.core.proxy_protocol import ProxyHeader
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
        self.maps: dict[str, MapTable] = {}          # the http block's `map` variables
        self.tls: TlsInfo | None = None            # `listen ... ssl`: what the handshake settled
        self.start = 0.0                             # when it was accepted (the clock of `now`)
        # stub_status's active, reading, writing and waiting connections ($connections_*), when asked
        self.connections: Callable[[], tuple[int, int, int, int]] | None = None


class RequestVariables:
    """Filled by the io driver as the request progresses; `now` is set before each rendering."""

    __slots__ = (
        "_lower",
        "_mapped",
        "args",
        "body",
        "body_bytes_sent",
        "bytes_sent",
        "conn",
        "connection_requests",
        "headers",
        "host",
        "limit_rate",
        "line",
        "method",
        "now",
        "proxy_host",
        "remote_addr",
        "remote_port",
        "request_id",
        "request_length",
        "request_uri",
        "server_name",
        "start",
        "status",
        "upstream_addrs",
        "upstream_bytes",
        "upstream_connect_times",
        "upstream_header_times",
        "upstream_headers",
        "upstream_statuses",
        "upstream_times",
        "uri",
        "user",
        "version",
    )

    def __init__(self, conn: Connection, method: bytes, request_uri: str, uri: str, args: str,
                 version: str, headers: Headers, host: str, server_name: str, request_length: int,
                 start: float) -> None:
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
        self.proxy_host = ""
        self.upstream_addrs: list[str] = []
        self.upstream_statuses: list[str] = []
        self.upstream_times: list[str] = []
        self.upstream_connect_times: list[str] = []
        self.upstream_header_times: list[str] = []
        self.upstream_bytes: list[tuple[int, int, int]] = []    # received, sent, body length per try
        self.status = 0
        self.bytes_sent = 0
        self.body_bytes_sent = 0
        self._lower: dict[str, str] | None = None
        self._mapped: dict[str, str] = {}
        self.line: str | None = None          # $request as the client wrote it (nginx's request_line)
        self.connection_requests = 1          # its place on the connection ($connection_requests)
        self.request_id: str | None = None    # made when first asked
        # nginx's r->limit_rate: None until set (`set $limit_rate`, X-Accel-Limit-Rate) or worked out from
        # `limit_rate` when the response starts
        self.limit_rate: int | None = None
        self.user: dict[str, str] | None = None   # `set` variables and regex captures (the rewrite module)
        self.upstream_headers: Headers | None = None     # the last upstream answer's ($upstream_http_*)
        self.body: Callable[[], bytes] | None = None     # $request_body, once the proxy read it whole

    def header(self, name: str) -> str:
        """A request header by lowercase name (`x-forwarded-for`), or ""."""
        if self._lower is None:
            lower: dict[str, str] = {}
            for key, value in self.headers:
                lower.setdefault(key.decode("latin-1").lower(), value.decode("latin-1"))
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
            mapped = lookup(self.conn.maps, name, self, self._mapped)
            if mapped is not None:
                return mapped
        if name.startswith("http_"):
            return self.header(name[5:].replace("_", "-"))
        if name.startswith("arg_"):
            return _arg(self.args, name[4:])
        if name.startswith("cookie_"):
            return _cookie(self.header("cookie"), name[7:])
        if name.startswith("upstream_http_") and self.upstream_headers is not None:
            wanted = name[14:].replace("_", "-").encode("latin-1")
            return next((value.decode("latin-1") for key, value in self.upstream_headers
                         if key.lower() == wanted), "")
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


def _arg(args: str, key: str) -> str:
    for pair in args.split("&"):
        name, _, value = pair.partition("=")
        if name.lower() == key:
            return value
    return ""


def _cookie(cookies: str, key: str) -> str:
    for pair in cookies.split(";"):
        name, _, value = pair.strip().partition("=")
        if name == key:
            return unquote_plus(value)
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
    if v.line is not None:
        return v.line
    return f"{v.method.decode('latin-1')} {v.request_uri} {v.version}"


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
    "hostname": lambda v: v.conn.hostname,
    "pid": lambda v: v.conn.pid,
    "host": lambda v: v.host,
    "http_host": lambda v: v.header("host"),
    "server_name": lambda v: v.server_name,
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
    "remote_user": lambda v: "",
    "nginx_version": lambda v: "1.24.0",
    "proxy_host": lambda v: v.proxy_host,
    "proxy_port": lambda v: v.proxy_host.rpartition(":")[2] if ":" in v.proxy_host else "80",
    "proxy_add_x_forwarded_for": lambda v: forwarded_for(v.headers, v.remote_addr),
    "proxy_add_forwarded": lambda v: forwarded(v.headers, v.remote_addr, v.remote_port, v.header("host"),
                                               "https" if v.conn.tls is not None else "http"),
    "limit_rate": lambda v: str(v.limit_rate or 0),
    "connection_time": lambda v: f"{max(0.0, v.now - v.conn.start):.3f}",
    "connections_active": lambda v: _connections(v, 0),
    "connections_reading": lambda v: _connections(v, 1),
    "connections_writing": lambda v: _connections(v, 2),
    "connections_waiting": lambda v: _connections(v, 3),
    "upstream_addr": lambda v: ", ".join(v.upstream_addrs),
    "upstream_status": lambda v: ", ".join(v.upstream_statuses),
    "upstream_response_time": lambda v: ", ".join(v.upstream_times),
    "upstream_connect_time": lambda v: ", ".join(v.upstream_connect_times),
    "upstream_header_time": lambda v: ", ".join(v.upstream_header_times),
    "upstream_bytes_received": lambda v: ", ".join(str(b[0]) for b in v.upstream_bytes),
    "upstream_bytes_sent": lambda v: ", ".join(str(b[1]) for b in v.upstream_bytes),
    "upstream_response_length": lambda v: ", ".join(str(b[2]) for b in v.upstream_bytes),
}
# $ssl_*: the connection's TLS facts (sheer.core.tls_vars), empty on a plain connection
_GETTERS.update({name: _tls(get) for name, get in TLS_VARIABLES.items()})
