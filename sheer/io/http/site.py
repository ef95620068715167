"""What a listener precomputes once: virtual hosts, and for each location its proxy/return plan."""

from __future__ import annotations

import time
from email.utils import formatdate

from sheer.config.model import ClientLimits, HttpReturn, HttpServer, Location, Upstream
from sheer.config.proxy_headers import HIDDEN_BY_DEFAULT
from sheer.config.responses import DEFAULT_REPLIES
from sheer.config.template import Template, Var
from sheer.config.values import is_unix
from sheer.core.balancers import Balancer
from sheer.core.http.headers import FRAMING, RESPONSE_SKIP, request_skip
from sheer.core.http.request_head import Limits
from sheer.core.http.routing import VirtualHost, VirtualHosts
from sheer.core.variables import VariableSource, render
from sheer.io.context import WorkerContext
from sheer.io.counting import ZoneColumns, peer_columns
from sheer.io.http.targets import Targets
from sheer.io.http.upstream_pool import UpstreamPool, pool_for
from sheer.io.http.upstream_tls import UpstreamTlsSetup, setup_for
from sheer.io.logs import AccessLogger, ErrorLogger

SERVER = b"sheer"
_MEMO_ROUTES = 512        # routes remembered per listener
_MEMO_URI = 256           # longer URIs are not remembered


class Plan:
    """A location (or a server-level `return`) ready to serve: templates split by name, loggers,
    the balancer and the keepalive pool of its upstream."""

    __slots__ = (
        "access",
        "add_headers",
        "balancer",
        "client_body_timeout",
        "client_max_body_size",
        "direct",
        "dynamic",
        "error_log",
        "fixed_headers",
        "gzip",
        "handler",
        "keepalive_disable",
        "keepalive_line",
        "keepalive_ok",
        "keepalive_requests",
        "keepalive_time",
        "keepalive_timeout",
        "location",
        "peer_columns",
        "pool",
        "proxy_host",
        "redirects",
        "replies",
        "request_skip",
        "response_skip",
        "return_",
        "send_timeout",
        "set_headers",
        "static",
        "tls",
        "upstream",
        "version",
    )

    def __init__(self, ctx: WorkerContext, location: Location | None, return_: HttpReturn | None,
                 server: HttpServer | None = None) -> None:
        self.location = location
        self.return_ = return_
        self.handler = location.handler if location is not None else None
        # files (sheer.io.http.static): a location's, or its server's for a request no location takes
        self.static = (location.static if location is not None
                       else server.static if server is not None and return_ is None else None)
        self.add_headers = (location.add_headers if location is not None
                            else server.add_headers if server is not None else ())
        self.gzip = location.gzip if location is not None else server.gzip if server is not None else None
        self.replies = (location.replies if location is not None
                        else server.replies if server is not None else DEFAULT_REPLIES)
        header = self.replies.keepalive_header      # keepalive_timeout's second argument
        self.keepalive_line = b"Keep-Alive: timeout=%d\r\n" % int(header) if header else b""
        if location is not None:
            self.access: AccessLogger | None = AccessLogger(location.access_logs)
            self.error_log: ErrorLogger = ctx.error_log(location.error_log)
        else:   # a server-level `return`, or a request refused before it reached a location
            self.access = AccessLogger(server.access_logs) if server is not None else None
            self.error_log = ctx.error_log(server.error_log if server is not None else None)
        if self.access is not None and not self.access:
            self.access = None          # `access_log off`: no logger to ask per request
        limits = server.limits if server is not None else ClientLimits()
        self.client_max_body_size = location.client_max_body_size if location else limits.client_max_body_size
        self.client_body_timeout = location.client_body_timeout if location else limits.client_body_timeout
        self.send_timeout = location.send_timeout if location else limits.send_timeout
        self.keepalive_timeout = location.keepalive_timeout if location else limits.keepalive_timeout
        self.keepalive_requests = location.keepalive_requests if location else 1000
        self.keepalive_time = location.keepalive_time if location else 3600.0
        self.keepalive_disable = location.keepalive_disable if location else frozenset({"msie6"})
        proxy = location.proxy_pass if location is not None else None
        self.upstream: Upstream | None = proxy.upstream if proxy else None
        self.dynamic = proxy is not None and proxy.url is not None   # proxy_pass with variables: per request
        self.balancer: Balancer | None = ctx.balancer_for(self.upstream) if self.upstream else None
        ssl = location is not None and location.proxy_ssl is not None
        # `proxy_pass https://`: this worker's context and sessions for the location
        self.tls: UpstreamTlsSetup | None = None
        if location is not None and location.proxy_ssl is not None:
            self.tls = setup_for(location.proxy_ssl)
        self.pool: UpstreamPool | None = pool_for(self.upstream, ssl) if self.upstream else None
        # counted only where an api, prometheus or dashboard location reads them (WorkerContext.peers_read)
        self.peer_columns = (peer_columns(ctx.shared.layout, self.upstream)
                             if self.upstream is not None and ctx.peers_read else ())
        self.proxy_host = self.upstream.name if self.upstream else ""
        default_port = ":443" if ssl else ":80"
        if self.upstream is not None and self.upstream.implicit and self.proxy_host.endswith(default_port):
            # nginx leaves the default port out of $proxy_host
            self.proxy_host = self.proxy_host[:-len(default_port)]
        if self.upstream is not None and self.upstream.implicit and is_unix(self.upstream.name):
            self.proxy_host = "localhost"     # nginx (ngx_http_proxy_set_vars) for a unix-domain socket
        self.version = b"1.0"
        self.set_headers: list[tuple[bytes, Template]] = []
        self.request_skip = request_skip(frozenset())     # the client's headers not passed on
        # the proxy_set_header lines when none varies per request (literals, and $proxy_host when
        # proxy_pass names no variables: the plan's own), made once
        self.fixed_headers: list[tuple[bytes, bytes]] | None = None
        self.keepalive_ok = False
        # proxy_redirect's rules; the upstream headers the client never sees (proxy_hide_header)
        self.redirects = location.proxy_redirect if location is not None else ()
        self.response_skip = RESPONSE_SKIP
        if location is not None and location.proxy_hidden != HIDDEN_BY_DEFAULT:
            self.response_skip = FRAMING | location.proxy_hidden
        if location is not None and proxy is not None:
            self.version = location.proxy_http_version.encode()
            self.set_headers = [(name.encode("latin-1"), value) for name, value in location.proxy_set_header
                                if not (value.is_literal and not value.text)]
            self.request_skip = request_skip(frozenset(name.lower().encode("latin-1")
                                                       for name, _ in location.proxy_set_header))
            if proxy.url is None:
                self.fixed_headers = _fixed(self.set_headers, self.proxy_host)
            connection = [value for name, value in location.proxy_set_header if name.lower() == "connection"]
            # nginx reuses upstream connections for HTTP/1.1 requests, when the upstream's answer keeps the
            # connection (a Connection made of variables, such as `$args`, may or may not say close: the
            # answer tells); one that always sends `Connection: close` never has one to reuse.
            self.keepalive_ok = self.version == b"1.1" and (
                not connection or not connection[0].is_literal or connection[0].text.lower() != "close")
        # nothing but the proxy answers (no script, `return`, files, status handler or allow/deny): what
        # sheer.io.http.client dispatches at once
        self.direct = (location is not None and location.rewrite is None and return_ is None
                       and self.handler is None and self.static is None and not location.access)

    def headers(self, source: VariableSource) -> list[tuple[bytes, bytes]]:
        out = []
        for name, template in self.set_headers:
            value = render(template, source)
            if value:
                out.append((name, value.encode("latin-1", "replace")))
        return out


Route = tuple[VirtualHost, Location, Plan, ZoneColumns | None]



def _fixed(set_headers: list[tuple[bytes, Template]], proxy_host: str) -> list[tuple[bytes, bytes]] | None:
    """What Plan.headers() renders for every request, when no line varies (None: one does)."""
    out = []
    for name, template in set_headers:
        parts = template.parts
        if all(isinstance(part, str) for part in parts):
            value = "".join(part for part in parts if isinstance(part, str))
        elif len(parts) == 1 and isinstance(parts[0], Var) and parts[0].name == "proxy_host":
            value = proxy_host
        else:
            return None
        if value:
            out.append((name, value.encode("latin-1", "replace")))
    return out

class Site:
    """Per listener: routing and plans, plus the cached Date header."""

    def __init__(self, servers: list[HttpServer], ctx: WorkerContext) -> None:
        self.ctx = ctx
        self.vhosts = VirtualHosts(servers)
        self.plans: dict[int, Plan] = {}
        self.server_plans: dict[int, Plan] = {}
        # what a request refused before reaching a location is answered and logged with
        self.refusal_plans: dict[int, Plan] = {}
        for server in servers:
            if server.return_ is not None:
                self.server_plans[id(server)] = Plan(ctx, None, server.return_, server)
            self.refusal_plans[id(server)] = Plan(ctx, None, None, server)
            for location in server.locations:
                self.plans[id(location)] = Plan(ctx, location, location.return_)
        default = servers[0]
        # Before a request names its host, the default server's limits hold (nginx: the same).
        self.limits = default.limits
        number, size = default.limits.large_client_header_buffers
        self.header_limits = Limits(default.limits.client_header_buffer_size, number, size,
                                    ignore_invalid=default.limits.ignore_invalid_headers,
                                    underscores=default.limits.underscores_in_headers,
                                    max_headers=default.limits.max_headers,
                                    merge_slashes=default.limits.merge_slashes)
        self.default_plan = self.refusal_plans[id(default)]
        self._date_second = -1
        self._date = b""
        self.hostname = ctx.hostname
        self.pid = ctx.pid
        self._targets: Targets | None = None
        # where a host and URI were routed, when nothing else decided it (sheer.io.http.dispatch)
        self.routes: dict[tuple[str, str], Route] = {}

    @property
    def targets(self) -> Targets:
        """Where `proxy_pass http://$variable` requests go (made when one first asks)."""
        if self._targets is None:
            self._targets = Targets(self.ctx)
        return self._targets

    def date(self) -> bytes:
        now = int(time.time())
        if now != self._date_second:
            self._date_second = now
            self._date = formatdate(now, usegmt=True).encode()
        return self._date

    def plan(self, location: Location, method: bytes) -> Plan:
        """The location's plan; with `limit_except`, a method it does not name gets the block's (nginx's
        ngx_http_update_location_config)."""
        limited = location.limit_except
        if limited is not None and method not in limited[0]:
            location = limited[1]
        return self.plans[id(location)]

    def remember(self, host: str, uri: str, route: Route) -> None:
        """A route that depends on the host and URI alone (its server, location, plan and the server's
        status_zone); a few hundred kept at most (a client's endless new URIs only start the memo again)."""
        if len(uri) > _MEMO_URI:
            return
        if len(self.routes) >= _MEMO_ROUTES:
            self.routes.clear()
        self.routes[(host, uri)] = route

    def connections(self) -> tuple[int, int, int, int]:
        """stub_status's active, reading, writing and waiting connections ($connections_active, ...)."""
        glob, value = self.ctx.shared.layout.glob, self.ctx.shared.value
        active, reading, writing = (value(glob.at(name)) for name in ("active", "reading", "writing"))
        return active, reading, writing, max(0, active - reading - writing)
