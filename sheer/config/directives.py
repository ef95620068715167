"""The directive table: every directive sheer accepts, where, with how many arguments, converted how.

A directive missing here is an error (`unknown directive`), one present but used elsewhere is
`"x" directive is not allowed here`, exactly like `nginx -t`. Directives of nginx's article that a
later part of sheer implements are listed with `todo` and refused with "not implemented yet".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from sheer.config import (
    accepted,
    access,
    announce,
    balance,
    error_pages,
    gzip,
    health,
    proxy_headers,
    request_body,
    responses,
    rewrite,
    static,
    tls,
    unsupported,
)
from sheer.config.addresses import listen as _listen
from sheer.config.addresses import upstream_server as _upstream_server
from sheer.config.error_logs import error_log_arg
from sheer.config.errors import ConfigError, Source
from sheer.config.model import NEXT_UPSTREAM_CONDITIONS
from sheer.config.rates import rate_value
from sheer.config.realip import network as _network
from sheer.config.realip import protocol_version as _protocol_version
from sheer.config.resolver import resolver_args
from sheer.config.table import (
    EVENTS,
    GEO,
    HTTP,
    HTTP_ALL,
    HTTP_IF,
    HTTP_LIF,
    HTTP_LMT,
    HTTP_LOCATION,
    HTTP_MATCH,
    HTTP_SERVER,
    HTTP_UPSTREAM,
    MAIN,
    MAP,
    SPLIT,
    STREAM,
    STREAM_ALL,
    STREAM_MATCH,
    STREAM_SERVER,
    STREAM_UPSTREAM,
    Convert,
    Directive,
    entry,
)
from sheer.config.template import HTTP_PREFIXES, HTTP_VARIABLES, STREAM_VARIABLES
from sheer.config.values import (
    parse_flag,
    parse_number,
    parse_size,
    parse_time,
    unescape,
)

# --- converters ------------------------------------------------------------------------------

def _one(name: str, parse: Callable[[str, str, Source], Any]) -> Convert:
    return lambda args, src: parse(args[0], name, src)


def _time(name: str) -> Convert:
    return _one(name, parse_time)


def _number(name: str, minimum: int = 0) -> Convert:
    return lambda args, src: parse_number(args[0], name, src, minimum)


def _flag(name: str) -> Convert:
    return _one(name, parse_flag)


def _worker_processes(args: list[str], src: Source) -> int | None:
    return None if args[0] == "auto" else parse_number(args[0], "worker_processes", src, 1)


def _user(args: list[str], src: Source) -> tuple[str, str | None]:
    return args[0], (args[1] if len(args) > 1 else None)


KEEPALIVE_DISABLE = ("none", "msie6", "safari")     # the browsers of sheer.core.http.browsers


def _keepalive_disable(args: list[str], src: Source) -> frozenset[str]:
    for arg in args:
        if arg not in KEEPALIVE_DISABLE:
            raise ConfigError(f'invalid value "{arg}"', src)
    return frozenset(args)


def _next_upstream_conditions(args: list[str], src: Source) -> frozenset[str]:
    for word in args:
        if word not in NEXT_UPSTREAM_CONDITIONS:
            raise ConfigError(f'invalid value "{word}" in "proxy_next_upstream" directive', src)
    if "off" in args and len(args) > 1:
        raise ConfigError('"off" cannot be combined with other values in "proxy_next_upstream"', src)
    return frozenset(args)


def _proxy_responses(args: list[str], src: Source) -> int:
    return parse_number(args[0], "proxy_responses", src)


def _proxy_bind(args: list[str], src: Source) -> list[str]:
    if args[0] == "off":
        if len(args) > 1:
            raise ConfigError('invalid number of arguments in "proxy_bind" directive', src)
        return args
    if len(args) == 2 and args[1] != "transparent":
        raise ConfigError(f'invalid parameter "{args[1]}"', src)
    return args


def _http_version(args: list[str], src: Source) -> str:
    if args[0] not in ("1.0", "1.1"):
        raise ConfigError(f'invalid value "{args[0]}" in "proxy_http_version" directive, it must be "1.0" or '
                          '"1.1"', src)
    return args[0]


def _header_buffers(args: list[str], src: Source) -> tuple[int, int]:
    number = parse_number(args[0], "large_client_header_buffers", src, 1)
    size = parse_size(args[1], "large_client_header_buffers", src)
    if size <= 1:
        raise ConfigError('invalid value "large_client_header_buffers" size: it must be bigger than 1', src)
    return number, size


def _keepalive_timeout(args: list[str], src: Source) -> tuple[float, float | None]:
    """The timeout, and the Keep-Alive header's `timeout=` when a second argument gives one."""
    header = parse_time(args[1], "keepalive_timeout", src) if len(args) == 2 else None
    return parse_time(args[0], "keepalive_timeout", src), header


def _keepalive(args: list[str], src: Source) -> int:
    return parse_number(args[0], "keepalive", src, 1)


def _zone(args: list[str], src: Source) -> tuple[str, int | None]:
    return args[0], (parse_size(args[1], "zone", src) if len(args) > 1 else None)


_d = entry


_ACCESS_LEVELS = HTTP_ALL | STREAM_ALL     # allow and deny (limit_except's too: LIMIT_EXCEPT below)


TABLE: tuple[Directive, ...] = (
    # main
    _d("user", {MAIN}, (1, 2), _user),
    _d("worker_processes", {MAIN}, (1, 1), _worker_processes),
    _d("error_log", {MAIN} | HTTP_ALL | STREAM_ALL, (1, 2), error_log_arg, multi=True),
    _d("pid", {MAIN}, (1, 1)),
    _d("daemon", {MAIN}, (1, 1), _flag("daemon")),
    _d("events", {MAIN}, (0, 0), block=EVENTS),
    _d("worker_connections", {EVENTS}, (1, 1), _number("worker_connections", 1)),
    _d("worker_rlimit_nofile", {MAIN}, (1, 1), _number("worker_rlimit_nofile")),
    _d("worker_shutdown_timeout", {MAIN}, (1, 1), _time("worker_shutdown_timeout")),
    _d("http", {MAIN}, (0, 0), block=HTTP),
    _d("stream", {MAIN}, (0, 0), block=STREAM),
    # sheer-only: announce a VIP over BGP through the local BIRD (sheer/config/announce.py)
    _d("announce", {MAIN}, (1, 1), announce.announce_arg, multi=True),
    _d("announce_bird_socket", {MAIN}, (1, 1), announce.path_arg("announce_bird_socket")),
    _d("announce_bird_fragment", {MAIN}, (1, 1), announce.path_arg("announce_bird_fragment")),
    _d("announce_withdraw_delay", {MAIN}, (1, 1), _time("announce_withdraw_delay")),
    # shared by http and stream
    _d("upstream", {HTTP, STREAM}, (1, 1), block="upstream"),
    _d("log_format", {HTTP, STREAM}, (2, None), multi=True),
    _d("access_log", HTTP_ALL | STREAM_ALL, (1, None), multi=True),
    _d("proxy_connect_timeout", HTTP_ALL | STREAM_ALL, (1, 1), _time("proxy_connect_timeout")),
    _d("proxy_next_upstream_tries", HTTP_ALL | STREAM_ALL, (1, 1), _number("proxy_next_upstream_tries")),
    _d("proxy_next_upstream_timeout", HTTP_ALL | STREAM_ALL, (1, 1), _time("proxy_next_upstream_timeout")),
    # upstream blocks
    _d("server", {HTTP_UPSTREAM, STREAM_UPSTREAM}, (1, None), _upstream_server, multi=True),
    _d("server", {HTTP, STREAM}, (0, 0), block="server"),
    _d("keepalive", {HTTP_UPSTREAM}, (1, 1), _keepalive),
    # sheer's state is shared anyway; `resolve` needs it
    _d("zone", {HTTP_UPSTREAM, STREAM_UPSTREAM}, (1, 2), _zone),
    # names re-resolved at run time (sheer/config/resolver.py): `server NAME resolve`, proxy_pass with
    # variables
    _d("resolver", HTTP_ALL | STREAM_ALL | {HTTP_UPSTREAM, STREAM_UPSTREAM}, (1, None), resolver_args),
    _d("resolver_timeout", HTTP_ALL | STREAM_ALL | {HTTP_UPSTREAM, STREAM_UPSTREAM}, (1, 1),
       _time("resolver_timeout")),
    # balancing methods (sheer/config/balance.py, sheer/core/balancers/)
    _d("least_conn", {HTTP_UPSTREAM, STREAM_UPSTREAM}, (0, 0), balance.least_conn),
    _d("hash", {HTTP_UPSTREAM}, (1, 2), balance.hash_of(HTTP_VARIABLES, HTTP_PREFIXES)),
    _d("hash", {STREAM_UPSTREAM}, (1, 2), balance.hash_of(STREAM_VARIABLES, ())),
    _d("ip_hash", {HTTP_UPSTREAM}, (0, 0), balance.ip_hash),
    _d("random", {HTTP_UPSTREAM, STREAM_UPSTREAM}, (0, 2), balance.random),
    # stream server
    _d("listen", {STREAM_SERVER, HTTP_SERVER}, (1, None), _listen, multi=True),
    _d("proxy_pass", {STREAM_SERVER, HTTP_LOCATION}, (1, 1)),
    _d("proxy_timeout", STREAM_ALL, (1, 1), _time("proxy_timeout")),
    _d("proxy_responses", STREAM_ALL, (1, 1), _proxy_responses),
    _d("proxy_requests", STREAM_ALL, (1, 1), _number("proxy_requests")),
    _d("proxy_half_close", STREAM_ALL, (1, 1), _flag("proxy_half_close")),
    _d("proxy_next_upstream", STREAM_ALL | HTTP_ALL, (1, None)),
    _d("return", {STREAM_SERVER, HTTP_SERVER, HTTP_LOCATION, HTTP_IF, HTTP_LIF}, (1, 2), script=True),
    _d("proxy_bind", STREAM_ALL | HTTP_ALL, (1, 2), _proxy_bind),
    # rate limits (sheer/core/rate.py): sizes, or variables worked out per session or request
    _d("proxy_upload_rate", STREAM_ALL, (1, 1), rate_value("proxy_upload_rate", STREAM_VARIABLES)),
    _d("proxy_download_rate", STREAM_ALL, (1, 1), rate_value("proxy_download_rate", STREAM_VARIABLES)),
    _d("limit_rate", HTTP_ALL, (1, 1), rate_value("limit_rate", HTTP_VARIABLES, HTTP_PREFIXES)),
    _d("limit_rate_after", HTTP_ALL, (1, 1),
       rate_value("limit_rate_after", HTTP_VARIABLES, HTTP_PREFIXES)),
    _d("proxy_limit_rate", HTTP_ALL, (1, 1), lambda args, src: parse_size(args[0], "proxy_limit_rate", src)),
    # active health checks (sheer/config/health.py)
    _d("health_check", {STREAM_SERVER}, (0, None), health.stream_health_check),
    _d("health_check", {HTTP_LOCATION}, (0, None), health.http_health_check),
    _d("health_check_timeout", STREAM_ALL, (1, 1), _time("health_check_timeout")),
    _d("dsr_without_health_check", STREAM_ALL, (1, 1), _flag("dsr_without_health_check")),  # sheer-only
    _d("match", {HTTP, STREAM}, (1, 1), block="match"),
    _d("send", {STREAM_MATCH}, (1, 1), health.send),
    _d("expect", {STREAM_MATCH}, (1, 2), health.expect),
    _d("status", {HTTP_MATCH}, (1, None), health.status, multi=True),
    _d("header", {HTTP_MATCH}, (1, 3), health.header, multi=True),
    _d("body", {HTTP_MATCH}, (2, 2), health.body),
    # PROXY protocol and the client's address from a trusted hop (sheer/config/realip.py)
    _d("proxy_protocol", STREAM_ALL, (1, 1), _flag("proxy_protocol")),
    _d("proxy_protocol_version", STREAM_ALL, (1, 1), _protocol_version),
    _d("proxy_protocol_timeout", STREAM_ALL, (1, 1), _time("proxy_protocol_timeout")),
    _d("set_real_ip_from", STREAM_ALL | HTTP_ALL, (1, 1), _network, multi=True),
    _d("real_ip_header", HTTP_ALL, (1, 1)),
    _d("real_ip_recursive", HTTP_ALL, (1, 1), _flag("real_ip_recursive")),
    # http
    _d("server_name", {HTTP_SERVER}, (1, None), multi=True),      # nginx: every line adds its names
    _d("valid_referers", {HTTP_SERVER, HTTP_LOCATION}, (1, None), multi=True),   # sheer.config.referers
    _d("location", {HTTP_SERVER, HTTP_LOCATION}, (1, 2), block=HTTP_LOCATION),
    _d("limit_except", {HTTP_LOCATION}, (1, None), block=HTTP_LMT),      # sheer/config/limit_except.py
    _d("proxy_set_header", HTTP_ALL, (2, 2), multi=True),
    _d("proxy_http_version", HTTP_ALL, (1, 1), _http_version),
    _d("proxy_pass_request_headers", HTTP_ALL, (1, 1), _flag("proxy_pass_request_headers")),
    _d("proxy_pass_request_body", HTTP_ALL, (1, 1), _flag("proxy_pass_request_body")),
    _d("proxy_read_timeout", HTTP_ALL, (1, 1), _time("proxy_read_timeout")),
    _d("proxy_send_timeout", HTTP_ALL, (1, 1), _time("proxy_send_timeout")),
    # what a client may take (sheer/io/http/client.py), nginx's defaults in sheer/config/build_http.py
    _d("client_header_timeout", {HTTP, HTTP_SERVER}, (1, 1), _time("client_header_timeout")),
    _d("client_header_buffer_size", {HTTP, HTTP_SERVER}, (1, 1),
       lambda args, src: parse_size(args[0], "client_header_buffer_size", src)),
    _d("large_client_header_buffers", {HTTP, HTTP_SERVER}, (2, 2), _header_buffers),
    _d("ignore_invalid_headers", {HTTP, HTTP_SERVER}, (1, 1), _flag("ignore_invalid_headers")),
    _d("underscores_in_headers", {HTTP, HTTP_SERVER}, (1, 1), _flag("underscores_in_headers")),
    _d("max_headers", {HTTP, HTTP_SERVER}, (1, 1), _number("max_headers")),     # Debian's nginx 1.22
    _d("merge_slashes", {HTTP, HTTP_SERVER}, (1, 1), _flag("merge_slashes")),
    _d("client_body_timeout", HTTP_ALL, (1, 1), _time("client_body_timeout")),
    _d("client_max_body_size", HTTP_ALL, (1, 1), lambda args, src: parse_size(args[0], "client_max_body_size",
                                                                               src)),
    _d("send_timeout", HTTP_ALL, (1, 1), _time("send_timeout")),
    _d("keepalive_timeout", HTTP_ALL | {HTTP_UPSTREAM}, (1, 2), _keepalive_timeout),
    # nginx 1.19.10's defaults: 1000 requests and 1h per client connection; in `upstream`, per
    # cached upstream connection (sheer/io/http/upstream_pool.py)
    # allow/deny, http and stream: one list in the order written (sheer/config/access.py)
    _d("allow", _ACCESS_LEVELS, (1, 1), access.rule(True), multi=True, key="access"),
    _d("deny", _ACCESS_LEVELS, (1, 1), access.rule(False), multi=True, key="access"),
    _d("error_page", HTTP_ALL, (2, None), error_pages.error_page, multi=True),
    _d("keepalive_requests", HTTP_ALL | {HTTP_UPSTREAM}, (1, 1), _number("keepalive_requests")),
    _d("keepalive_time", HTTP_ALL | {HTTP_UPSTREAM}, (1, 1), _time("keepalive_time")),
    _d("keepalive_disable", HTTP_ALL, (1, None), _keepalive_disable),
)

def _api(args: list[str], src: Source) -> bool:
    for arg in args:
        if not arg.startswith("write="):
            raise ConfigError(f'invalid parameter "{arg}"', src)
    return parse_flag(args[0][6:], "api write", src) if args else False


TABLE += (
    # status, API and metrics (sheer/io/http/status.py): nginx's stub_status, nginx Plus's api and
    # status_zone, and the sheer-only handlers prometheus and dashboard
    _d("stub_status", {HTTP_LOCATION}, (0, 1)),
    _d("internal", {HTTP_LOCATION}, (0, 0)),
    _d("api", {HTTP_LOCATION}, (0, 1), _api),
    _d("prometheus", {HTTP_LOCATION}, (0, 0)),
    _d("dashboard", {HTTP_LOCATION}, (0, 0)),
    _d("status_zone", {HTTP_SERVER, STREAM_SERVER}, (1, 1)),
)

TABLE += (
    # variables made from others (sheer/config/maps.py, sheer/core/maps.py)
    _d("map", {HTTP, STREAM}, (2, 2), block=MAP),
    _d("geo", {HTTP, STREAM}, (1, 2), block=GEO),
    _d("split_clients", {HTTP, STREAM}, (2, 2), block=SPLIT),
)

# response headers and trailers, chunked, redirects (sheer/config/responses.py, sheer/core/http/add_header.py)
TABLE += responses.DIRECTIVES
# reading request bodies (sheer/config/request_body.py)
TABLE += request_body.DIRECTIVES

# static files (sheer/config/static.py)
TABLE += static.DIRECTIVES

# compression (sheer/config/gzip.py, sheer/core/http/gzip.py)
TABLE += gzip.DIRECTIVES

# what sheer reads, checks and says it does nothing with (sheer/config/accepted.py)
TABLE += accepted.TABLE

# the rewrite module: rewrite, if, set, break (sheer/config/rewrite.py, sheer/core/http/rewrite.py)
TABLE += rewrite.DIRECTIVES
# the upstream's response headers, the body sent (sheer/config/proxy_headers.py)
TABLE += proxy_headers.DIRECTIVES

# TLS (sheer/config/tls.py): nginx's ngx_http_ssl_module
TABLE += tuple(_d(name, contexts, nargs, conv, multi=multi)
               for name, contexts, nargs, conv, multi in tls.DIRECTIVES)

# `if` in a location is a nameless location of its own (sheer.config.build_http): the directives nginx
# allows there (NGX_HTTP_LIF_CONF) that sheer has; at server level `if` takes the rewrite module's only
IF_IN_LOCATION = frozenset({"access_log", "add_header", "add_trailer", "error_page", "expires", "gzip",
                            "limit_rate", "limit_rate_after", "proxy_pass", "root", "sendfile"})
# `limit_except` too (NGX_HTTP_LMT_CONF)
LIMIT_EXCEPT = frozenset({"access_log", "allow", "deny", "proxy_pass"})


def _nameless(each: Directive) -> Directive:
    if HTTP_LOCATION not in each.contexts:
        return each
    more = {HTTP_LIF} if each.name in IF_IN_LOCATION else set()
    more |= {HTTP_LMT} if each.name in LIMIT_EXCEPT else set()
    return replace(each, contexts=each.contexts | more) if more else each


TABLE = tuple(_nameless(each) for each in TABLE)

_BY_CONTEXT: dict[tuple[str, str], Directive] = {}
_NAMES: set[str] = set()
for _entry in TABLE:
    _NAMES.add(_entry.name)
    for _context in _entry.contexts:
        _BY_CONTEXT[(_entry.name, _context)] = _entry



def lookup(name: str, context: str, source: Source) -> Directive:
    """The table entry for `name` in `context`, or nginx's error for it."""
    entry = _BY_CONTEXT.get((name, context))
    if entry is None:
        if name in _NAMES:
            raise ConfigError(f'"{name}" directive is not allowed here', source)
        raise ConfigError(unsupported.refusal(name) or tls.unsupported(name) or f'unknown directive "{name}"',
                          source)
    if entry.todo is not None:
        raise ConfigError(f'"{name}" is not implemented yet (planned with {entry.todo})', source)
    return entry


def check_arity(entry: Directive, args: list[str], source: Source) -> None:
    low, high = entry.nargs
    if len(args) < low or (high is not None and len(args) > high):
        raise ConfigError(f'invalid number of arguments in "{entry.name}" directive', source)


def convert(entry: Directive, args: list[str], source: Source) -> Any:
    words = [unescape(arg) for arg in args]
    check_arity(entry, words, source)
    return words if entry.convert is None else entry.convert(words, source)
