"""The frozen, typed configuration model. It is also the Python API: build a `Config`, run it."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Literal

from sheer.config.access import AccessRule
from sheer.config.announce import Announcing
from sheer.config.computed import Geo, Split
from sheer.config.computed import Map as Map  # noqa: PLC0414  (re-exported)
from sheer.config.error_pages import ErrorPage
from sheer.config.errors import Source
from sheer.config.gzip import Gzip
from sheer.config.health import HealthCheck
from sheer.config.log_model import LOG_LEVELS as LOG_LEVELS  # noqa: PLC0414  (re-exported)
from sheer.config.log_model import AccessLog as AccessLog  # noqa: PLC0414  (re-exported)
from sheer.config.log_model import ErrorLog as ErrorLog  # noqa: PLC0414  (re-exported)
from sheer.config.log_model import LogFormat as LogFormat  # noqa: PLC0414  (re-exported)
from sheer.config.log_model import LogLevel as LogLevel  # noqa: PLC0414  (re-exported)
from sheer.config.log_model import Syslog as Syslog  # noqa: PLC0414  (re-exported)
from sheer.config.proxy_headers import HIDDEN_BY_DEFAULT, CookieFlags, Redirect
from sheer.config.realip import RealIp
from sheer.config.referers import Referers
from sheer.config.request_body import BODY_DEFAULTS, RequestBodyConfig
from sheer.config.resolver import Resolver
from sheer.config.responses import DEFAULT_REPLIES, Replies
from sheer.config.responses import AddHeader as AddHeader  # noqa: PLC0414  (re-exported)
from sheer.config.script import Script
from sheer.config.static import Expires, Static
from sheer.config.template import Template
from sheer.config.tls import ServerTls, UpstreamTls
from sheer.config.values import Endpoint

# proxy_next_upstream conditions (http); stream has only on/off.
NEXT_UPSTREAM_CONDITIONS = frozenset({
    "error", "timeout", "invalid_header", "http_500", "http_502", "http_503", "http_504",
    "http_403", "http_404", "http_429", "non_idempotent", "off",
})


@dataclass(frozen=True, slots=True)
class Listen(Endpoint):
    host: str                  # literal address; "" is the IPv4 wildcard
    port: int
    udp: bool = False
    reuseport: bool = False
    ipv6only: bool = True
    backlog: int = 511
    source: Source | None = None
    proxy_protocol: bool = False   # the hop in front sends a PROXY protocol header first
    text: str = ""                 # the address as written (a name is resolved at load: one Listen each)
    default_server: bool = False   # http: the server for a Host no server_name of this address matches
    ssl: bool = False              # `listen ... ssl`: TLS is terminated on this address
    http2: bool = False            # `listen ... http2`: accepted; HTTP/1.1 is what is served
    sndbuf: int | None = None      # `sndbuf=`/`rcvbuf=`: SO_SNDBUF/SO_RCVBUF (accepted sockets inherit them)
    rcvbuf: int | None = None
    port_end: int = 0              # `listen 127.0.0.1:8000-8009`: the range's last port (sheer.config.build
                                   # makes one Listen per port of it)

    @property
    def bind_host(self) -> str:
        return self.host or "0.0.0.0"

    @property
    def is_wildcard(self) -> bool:
        return self.host in ("", "0.0.0.0", "::")

    def __str__(self) -> str:
        if self.unix:
            return self.host + (" udp" if self.udp else "")
        host = f"[{self.host}]" if self.family == 6 else (self.host or "0.0.0.0")
        return f"{host}:{self.port}{' udp' if self.udp else ''}"


@dataclass(frozen=True, slots=True)
class UpstreamServer(Endpoint):
    host: str
    port: int
    weight: int = 1
    max_fails: int = 1
    fail_timeout: float = 10.0
    backup: bool = False
    down: bool = False
    max_conns: int = 0          # 0 = unlimited
    source: Source | None = None
    # the address as written ("10.0.0.1", "[::1]:53", "app:80"): what ketama hashes
    text: str = ""
    resolve: bool = False       # `resolve`: `host` is a name the resolver re-resolves at run time

    @property
    def name(self) -> str:
        """How nginx prints a peer in logs and $upstream_addr (`unix:/path` for a unix-domain socket)."""
        family = self.family
        if family == 0:
            return self.host
        return f"[{self.host}]:{self.port}" if family == 6 else f"{self.host}:{self.port}"


BalanceMethod = Literal["round_robin", "least_conn", "hash", "consistent", "maglev", "ip_hash",
                        "random", "random_two"]


@dataclass(frozen=True, slots=True)
class Balance:
    """The upstream's load-balancing method and, for the hashing ones, the key it hashes."""

    method: BalanceMethod = "round_robin"
    key: Template | None = None   # `hash KEY ...`; ip_hash hashes $remote_addr
    source: Source | None = None


@dataclass(frozen=True, slots=True)
class Upstream:
    name: str
    # one per address: names written without `resolve` are resolved at load
    servers: tuple[UpstreamServer, ...]
    keepalive: int = 0          # idle connections cached per worker (http)
    keepalive_requests: int = 1000     # requests per cached connection (nginx's upstream default)
    keepalive_timeout: float = 60.0    # how long a cached connection may stay idle
    keepalive_time: float = 3600.0     # how old a cached connection may be when it is put back
    implicit: bool = False      # made from `proxy_pass 1.2.3.4:80`, not an upstream block
    source: Source | None = None
    balance: Balance = Balance()
    resolve: tuple[UpstreamServer, ...] = ()  # `server NAME resolve`: its peers come and go as NAME resolves
    zone: str | None = None                   # `zone NAME [size]` (needed by `resolve`, as in nginx)
    resolver: Resolver | None = None          # the upstream's own `resolver`, else its http/stream block's


@dataclass(frozen=True, slots=True)
class ProxyBind:
    """`proxy_bind address [transparent]`: the local address of upstream connections."""

    address: Template            # "$remote_addr", "$remote_addr:$remote_port", "192.0.2.1", ...
    transparent: bool = False    # IP_TRANSPARENT: the address need not be local (the client's own)
    source: Source | None = None

    @property
    def client_address(self) -> bool:
        """Binds the client's own address: IP Transparency."""
        return "remote_addr" in self.address.variables

    @property
    def client_port(self) -> bool:
        """Binds the client's port too: what DSR needs (the reply goes to the client's ip:port)."""
        return "remote_port" in self.address.variables


@dataclass(frozen=True, slots=True)
class StreamServer:
    listens: tuple[Listen, ...]
    upstream: Upstream | None
    return_value: Template | None = None
    proxy_timeout: float = 600.0
    proxy_connect_timeout: float = 60.0
    proxy_responses: int | None = None        # None: unlimited (nginx's default)
    proxy_requests: int = 0                   # 0: unlimited
    proxy_half_close: bool = False            # off: the first EOF ends the session, as in nginx
    proxy_next_upstream: bool = True
    proxy_next_upstream_tries: int = 0        # 0: as many as there are peers
    proxy_next_upstream_timeout: float = 0.0  # 0: no limit
    proxy_protocol: bool = False              # send a PROXY header to the upstream
    proxy_protocol_version: int = 1           # 1 (text) or 2 (binary); UDP always sends 2
    proxy_protocol_timeout: float = 30.0      # reading the header of `listen ... proxy_protocol`
    real_ip: RealIp | None = None             # set_real_ip_from: whose PROXY header sets $remote_addr
    access_logs: tuple[AccessLog, ...] = ()
    access: tuple[AccessRule, ...] = ()       # allow/deny, in order (sheer/core/access.py)
    error_log: ErrorLog | None = None
    proxy_bind: ProxyBind | None = None
    health_check: HealthCheck | None = None   # active checks of the upstream's peers
    dsr_without_health_check: bool = False    # sheer-only: run DSR with no active check, knowingly
    status_zone: str | None = None        # nginx Plus: its counters in /api/N/stream/server_zones
    source: Source | None = None
    # `proxy_pass $variable`: an upstream block's name or an address:port, per session (upstream None)
    proxy_pass_url: Template | None = None
    resolver: Resolver | None = None          # names in that value, resolved per session
    ssl_preread: bool = False                 # read the ClientHello first (sheer.core.tls_preread)
    preread_timeout: float = 30.0
    preread_buffer_size: int = 16384
    tls: ServerTls | None = None              # `listen ... ssl`: terminated here (sheer.io.stream_tls)
    ssl_handshake_timeout: float = 60.0
    proxy_ssl: UpstreamTls | None = None      # `proxy_ssl on`: TLS to the upstream
    # rate limits (sheer.core.rate): bytes a second (0: none), or a template rendering a size per session
    proxy_upload_rate: int | Template = 0
    proxy_download_rate: int | Template = 0
    sets: tuple[tuple[str, Template], ...] = ()   # `set $name value` (ngx_stream_set_module), in order

    @property
    def udp(self) -> bool:
        return any(listen.udp for listen in self.listens)

    @property
    def dsr(self) -> bool:
        """Direct Server Return: the upstream answers the client itself, sheer expects nothing back."""
        bind = self.proxy_bind
        return self.proxy_responses == 0 and bind is not None and bind.transparent and bind.client_port


@dataclass(frozen=True, slots=True)
class Stream:
    servers: tuple[StreamServer, ...]
    upstreams: tuple[Upstream, ...]
    maps: tuple[Map, ...] = ()
    geos: tuple[Geo, ...] = ()
    splits: tuple[Split, ...] = ()
    log_files: tuple[str, ...] = ()     # every access_log file named, used or not (nginx opens them all)


@dataclass(frozen=True, slots=True)
class HttpReturn:
    code: int
    text: Template | None      # body, or the Location for 301/302/303/307/308
    content: bool = False      # the 404 of a location that would serve files: after allow/deny, as nginx's


@dataclass(frozen=True, slots=True)
class ProxyPass:
    upstream: Upstream | None  # None: the target is written with variables (`url`), chosen per request
    uri: str | None            # `proxy_pass http://group/prefix/`: replaces the matched location part
    text: str = ""
    # `proxy_pass http://$backend...`: rendered per request (nginx's proxy_lengths)
    url: Template | None = None
    ssl: bool = False          # `proxy_pass https://...`: TLS to the upstream (Location.proxy_ssl)


HandlerKind = Literal["stub_status", "api", "prometheus", "dashboard"]


@dataclass(frozen=True, slots=True)
class StatusHandler:
    """A location answered by sheer itself: `stub_status;`, `api [write=on];` (nginx Plus), and the
    sheer-only `prometheus;` and `dashboard;`."""

    kind: HandlerKind
    write: bool = False           # api: PATCH allowed; dashboard: the API it uses allows it
    api: str = ""                 # dashboard: the path of the `api` location it reads
    source: Source | None = None


DEFAULT_PROXY_HEADERS = (("Host", "$proxy_host"), ("Connection", "close"))


@dataclass(frozen=True, slots=True)
class Location:
    path: str
    exact: bool = False
    modifier: str = ""                          # "", "=", "^~", "~", "~*", or "@" (a named location)
    regex: re.Pattern[str] | None = None        # of "~" and "~*", compiled once
    nested: tuple[Location, ...] = ()           # the locations inside this one (HttpServer.locations too)
    # its `if` blocks' nameless configurations, in the order written (sheer.config.script If.config)
    if_configs: tuple[Location, ...] = ()
    limit_except: tuple[frozenset[bytes], Location] | None = None   # methods it serves; the others' config
    proxy_pass: ProxyPass | None = None
    return_: HttpReturn | None = None
    # Effective headers (defaults and inheritance already applied); an empty value removes the header.
    proxy_set_header: tuple[tuple[str, Template], ...] = ()
    add_headers: tuple[AddHeader, ...] = ()     # the innermost level's add_header lines (nginx's inheritance)
    proxy_http_version: str = "1.0"
    proxy_pass_request_headers: bool = True     # off: only proxy_set_header's lines go upstream
    proxy_pass_request_body: bool = True        # off: the body is read and dropped, not sent
    proxy_connect_timeout: float = 60.0
    proxy_read_timeout: float = 60.0
    proxy_send_timeout: float = 60.0
    proxy_next_upstream: frozenset[str] = frozenset({"error", "timeout"})
    proxy_next_upstream_tries: int = 0
    proxy_next_upstream_timeout: float = 0.0
    real_ip: RealIp | None = None
    access_logs: tuple[AccessLog, ...] = ()
    error_log: ErrorLog | None = None
    proxy_bind: ProxyBind | None = None
    health_check: HealthCheck | None = None
    handler: StatusHandler | None = None
    client_body_timeout: float = 60.0
    client_max_body_size: int = 1024 * 1024      # 0: no limit
    request_body: RequestBodyConfig = BODY_DEFAULTS   # client_body_*, proxy_request_buffering
    send_timeout: float = 60.0
    keepalive_timeout: float = 75.0
    keepalive_requests: int = 1000               # per client connection, then Connection: close
    keepalive_time: float = 3600.0               # a client connection's age after which it closes
    keepalive_disable: frozenset[str] = frozenset({"msie6"})    # browsers answered with Connection: close
    access: tuple[AccessRule, ...] = ()          # allow/deny, in order (sheer/core/access.py)
    error_pages: tuple[ErrorPage, ...] = ()      # the innermost level's error_page lines
    resolver: Resolver | None = None     # for `proxy_pass` with variables: names are resolved per request
    source: Source | None = None
    proxy_ssl: UpstreamTls | None = None  # `proxy_pass https://`: the proxy_ssl_* settings
    static: Static | None = None          # no proxy_pass, return or handler: files (sheer.config.static)
    expires: Expires | None = None        # `expires` for proxied responses (files: static.expires)
    gzip: Gzip | None = None              # `gzip on` (sheer/config/gzip.py); None: off
    limit_rate: int | Template = 0        # sheer.core.rate: bytes a second (0: none) or a size per request
    limit_rate_after: int | Template = 0
    proxy_limit_rate: int = 0             # reading a buffered response from the upstream
    rewrite: Script | None = None         # rewrite, if, set, break, return (sheer/core/http/rewrite.py)
    # what the proxy does to the response's headers (sheer/config/proxy_headers.py)
    proxy_redirect: tuple[Redirect, ...] = ()
    proxy_hidden: frozenset[bytes] = HIDDEN_BY_DEFAULT
    proxy_intercept_errors: bool = False
    internal: bool = False                      # `internal`: reached only by internal redirects (else 404)
    referers: Referers | None = None            # valid_referers, for $invalid_referer
    proxy_ignore_headers: frozenset[str] = frozenset()    # lowercase names (sheer.config.proxy_headers)
    proxy_set_body: Template | None = None
    proxy_method: Template | None = None      # the upstream request's method (the client's when None)
    post_action: str | None = None            # a URI or @name run after the response (its answer dropped)
    proxy_cookie_domain: tuple[Redirect, ...] = ()
    proxy_cookie_path: tuple[Redirect, ...] = ()
    proxy_cookie_flags: tuple[CookieFlags, ...] = ()
    replies: Replies = DEFAULT_REPLIES    # add_trailer, chunked_transfer_encoding, redirects' form


@dataclass(frozen=True, slots=True)
class ClientLimits:
    """What a server allows a client before a request is routed (nginx's http and server level)."""

    client_header_timeout: float = 60.0
    client_header_buffer_size: int = 1024
    large_client_header_buffers: tuple[int, int] = (4, 8192)     # number, size
    ignore_invalid_headers: bool = True
    underscores_in_headers: bool = False
    max_headers: int = 1000                # Debian's nginx 1.22 has it (so has freenginx)
    merge_slashes: bool = True
    client_body_timeout: float = 60.0
    client_max_body_size: int = 1024 * 1024
    send_timeout: float = 60.0
    keepalive_timeout: float = 75.0


@dataclass(frozen=True, slots=True)
class HttpServer:
    listens: tuple[Listen, ...]
    server_names: tuple[str, ...] = ("",)
    locations: tuple[Location, ...] = ()        # every location, nested and named ones too
    location_tree: tuple[Location, ...] = ()    # the server level's own, each with its nested ones
    error_pages: tuple[ErrorPage, ...] = ()     # the server level's (for a request no location takes)
    name_regexes: tuple[re.Pattern[str], ...] = ()   # the `server_name ~regex` ones, compiled
    return_: HttpReturn | None = None           # server-level `return`: answers before any location
    real_ip: RealIp | None = None
    status_zone: str | None = None              # nginx Plus: counters in /api/N/http/server_zones
    limits: ClientLimits = ClientLimits()
    # The server level's logs: where a request refused before it reached a location is logged.
    access_logs: tuple[AccessLog, ...] = ()
    error_log: ErrorLog | None = None
    source: Source | None = None
    tls: ServerTls | None = None                # ssl_* (sheer.config.tls); None: no certificate, no ssl
    http2: bool = False                         # `http2 on;` (accepted; HTTP/1.1 is served)
    static: Static | None = None                # files for a request no location takes
    add_headers: tuple[AddHeader, ...] = ()     # the server level's add_header lines (for those files)
    gzip: Gzip | None = None                    # the server level's `gzip` (for those files)
    rewrite: Script | None = None               # the server level's: before a location is chosen
    replies: Replies = DEFAULT_REPLIES          # the server level's (for a request no location takes)


@dataclass(frozen=True, slots=True)
class Http:
    servers: tuple[HttpServer, ...]
    upstreams: tuple[Upstream, ...]
    maps: tuple[Map, ...] = ()
    geos: tuple[Geo, ...] = ()
    splits: tuple[Split, ...] = ()
    log_files: tuple[str, ...] = ()     # every access_log file named, used or not (nginx opens them all)


@dataclass(frozen=True, slots=True)
class Config:
    file: str = "<api>"
    files: tuple[str, ...] = ()                 # every file read, includes too (for -T)
    prefix: str = field(default_factory=os.getcwd)
    user: tuple[str, str | None] | None = None
    worker_processes: int | None = 1            # None: auto (one per core)
    error_log: ErrorLog = ErrorLog("stderr")    # noqa: RUF009  (frozen: safe to share)
    pid: str | None = None
    daemon: bool = False
    worker_connections: int = 512
    worker_rlimit_nofile: int | None = None     # RLIMIT_NOFILE of the workers (None: inherited)
    worker_shutdown_timeout: float | None = None    # a graceful shutdown closes what is left after it
    stream: Stream | None = None
    http: Http | None = None
    # What `sheer -t` and start-up say about what was accepted but is not done: (level, "file:line: ...").
    notices: tuple[tuple[str, str], ...] = ()
    # sheer-only: VIPs announced over BGP (config/announce.py)
    announce: Announcing = field(default_factory=Announcing)

    @property
    def workers(self) -> int:
        return self.worker_processes or (os.cpu_count() or 1)

    @property
    def listens(self) -> tuple[Listen, ...]:
        found: list[Listen] = []
        for server in (self.stream.servers if self.stream else ()):
            found.extend(server.listens)
        for http_server in (self.http.servers if self.http else ()):
            found.extend(http_server.listens)
        return tuple(dict.fromkeys(found))
