"""The http part of the model: servers, locations, proxy_pass, headers, return."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Protocol

from sheer.config import build_health, proxy_headers
from sheer.config import directives as d
from sheer.config.access import access_rules
from sheer.config.build_gzip import gzip_of
from sheer.config.build_rewrite import script_of
from sheer.config.build_static import expires_of, static_of
from sheer.config.build_tls import server_tls, upstream_tls
from sheer.config.errors import ConfigError, Source
from sheer.config.handlers import api_location, status_handler
from sheer.config.limit_except import allowed_methods, limit_block
from sheer.config.locations import check_nesting, duplicate_key, location_args, location_regex
from sheer.config.made_variables import made_variables
from sheer.config.model import (
    DEFAULT_PROXY_HEADERS,
    AccessLog,
    ClientLimits,
    ErrorLog,
    Http,
    HttpReturn,
    HttpServer,
    Listen,
    Location,
    LogFormat,
    ProxyPass,
    Upstream,
)
from sheer.config.names import Names
from sheer.config.realip import http_real_ip
from sheer.config.referers import referers_of, server_names_of
from sheer.config.request_body import request_body_of
from sheer.config.resolver import effective as effective_resolver
from sheer.config.responses import added_lines, replies_of
from sheer.config.scope import (
    check_unix_peers,
    implicit_address,
    implicit_upstream,
    inherited,
    log_files,
    parse_unix_url,
    proxy_bind,
)
from sheer.config.server_names import server_name_regexes
from sheer.config.table import HTTP_LIF, HTTP_LOCATION, NoticeLevel
from sheer.config.template import HTTP_PREFIXES, HTTP_VARIABLES, Template, compile_template
from sheer.config.tree import Block

COMBINED = ('$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent '
            '"$http_referer" "$http_user_agent"')


class Shared(Protocol):
    """What the http block takes from the main builder (`sheer.config.build.Builder`), which also builds
    the stream block with it: upstream blocks, listens, log formats and logs, paths under the prefix,
    and how names are resolved."""

    names: Names
    prefix: str

    def upstreams(self, block: Block, default_port: int | None) -> dict[str, Upstream]: ...

    def log_formats(self, block: Block, variables: frozenset[str],
                    prefixes: tuple[str, ...], predefined: dict[str, str]) -> dict[str, LogFormat]: ...

    def access_logs(self, chain: list[Block], formats: dict[str, LogFormat],
                    default_format: str | None) -> tuple[AccessLog, ...]: ...

    def error_log(self, lines: list[Any]) -> ErrorLog: ...

    def path(self, value: str) -> str: ...

    def listens(self, block: Block) -> list[Listen]: ...

    def note(self, level: NoticeLevel, message: str, source: Source | None) -> None: ...


class HttpBuilder:
    def __init__(self, top: Shared, block: Block) -> None:
        self.top = top
        self.block = block

    def build(self) -> Http:
        upstreams = self.top.upstreams(self.block, default_port=80)
        formats = self.top.log_formats(self.block, HTTP_VARIABLES, HTTP_PREFIXES, {"combined": COMBINED})
        self.matches = build_health.http_matches(self.block)
        maps, geos, splits = made_variables(self.block, HTTP_VARIABLES, HTTP_PREFIXES, http=True)
        self.addresses: set[tuple[str, int]] = set()     # seen: the first server on one is its default
        servers = tuple(self.server(child, upstreams, formats)
                        for child in self.block.children if child.context == "http.server")
        _check_default_servers(servers)
        return Http(servers, tuple(upstreams.values()), maps, geos, splits,
                    log_files=log_files(self.block, self.top.path))

    def template(self, text: str, source: Source) -> Template:
        return compile_template(text, source, HTTP_VARIABLES, HTTP_PREFIXES)

    def server(self, block: Block, upstreams: dict[str, Upstream],
               formats: dict[str, LogFormat]) -> HttpServer:
        listens = tuple(replace(listen, port=80) if listen.port == 0 and not listen.unix else listen
                        for listen in self.top.listens(block)) or (Listen("", 80, source=block.source),)
        names = tuple(name for args, _ in block.get("server_name", []) for name in args) or ("",)
        self.api = api_location(block)
        tree = self.locations(block, [block, self.block], None, upstreams, formats)
        chain = [block, self.block]
        script = script_of(block, chain)
        returned = block.get("return") if script is None else None
        error_log = inherited(chain, "error_log", None)
        addresses = {(listen.bind_host, listen.port) for listen in listens}
        default = bool(addresses - self.addresses)
        self.addresses |= addresses
        return HttpServer(
            listens=listens,
            server_names=names,
            locations=tuple(_flat(tree)),
            location_tree=tuple(tree),
            name_regexes=server_name_regexes(names, block.sources.get("server_name")),
            status_zone=block.get("status_zone", [None])[0],
            return_=self.return_(returned, block.sources["return"]) if returned else None,
            real_ip=http_real_ip([block, self.block], self.top.names.networks),
            limits=_limits(chain),
            access_logs=self.top.access_logs(chain, formats, "combined"),
            error_log=self.top.error_log(error_log) if error_log else None,
            error_pages=tuple(page for page, _ in inherited(chain, "error_page", [])),
            source=block.source,
            tls=server_tls(chain, [listen.source for listen in listens if listen.ssl], default),
            http2=inherited(chain, "http2", False),
            static=None if returned else static_of(chain, self.top.prefix, "", "", None),
            add_headers=added_lines(chain, "add_header"),
            replies=replies_of(chain),
            gzip=gzip_of(chain),
            rewrite=script,
        )

    def locations(self, block: Block, chain: list[Block], parent: tuple[str, str] | None,
                  upstreams: dict[str, Upstream], formats: dict[str, LogFormat]) -> list[Location]:
        """The locations of one level (the server's or a location's), each with its nested ones, in the
        order written."""
        found: list[Location] = []
        seen: set[tuple[str, str]] = set()
        for child in block.children:
            if child.context != HTTP_LOCATION:
                continue
            modifier, path = location_args(child.args, child.source)
            check_nesting(modifier, path, parent, child.source)
            key = duplicate_key(modifier, path)
            if key is not None and key in seen:
                raise ConfigError(f'duplicate location "{path}"', child.source)
            if key is not None:
                seen.add(key)
            nested = self.locations(child, [child, *chain], (modifier, path), upstreams, formats)
            location = self.location(child, [child, *chain], upstreams, formats, modifier, path)
            # each `if` a nameless location inheriting from this one (ngx_http_rewrite_if)
            ifs = tuple(self.location(inner, [inner, child, *chain], upstreams, formats, modifier, path,
                                      location) for inner in child.children if inner.context == HTTP_LIF)
            limited = limit_block(child)
            restricted = None if limited is None else (allowed_methods(limited), self.location(
                limited, [limited, child, *chain], upstreams, formats, modifier, path, location))
            found.append(replace(location, nested=tuple(nested), if_configs=ifs, limit_except=restricted))
        return found

    def location(self, block: Block, chain: list[Block], upstreams: dict[str, Upstream],
                 formats: dict[str, LogFormat], modifier: str, path: str,
                 parent: Location | None = None) -> Location:
        """A location, or with `parent` the configuration of an `if` in it: what the `if` does not set is
        the location's (its proxy_pass too, as nginx's proxy module merges a nameless one), save try_files
        and the rewrite directives, which run in the location's script."""
        exact = modifier == "="
        proxy_pass = block.get("proxy_pass")
        # an `if` without its own proxy_pass proxies as its location does
        inherits = parent is not None and not proxy_pass and parent.proxy_pass is not None
        script = script_of(block, chain) if parent is None else None
        returned = block.get("return") if script is None and parent is None else None
        handler = status_handler(block) if parent is None else None if proxy_pass else parent.handler
        if parent is None and handler is not None and handler.kind == "dashboard":
            # a dashboard reads (and, with `api write=on`, changes) through the `api` location of its server
            if self.api is None:
                raise ConfigError('"dashboard" needs a location with "api" in the same server '
                                  '(add `location /api/ { api; }`)', handler.source)
            handler = replace(handler, api=self.api[0], write=self.api[1])
        if proxy_pass and returned:
            raise ConfigError('"return" and "proxy_pass" cannot both be set in one location', block.source)
        if handler is not None and (proxy_pass or returned):
            raise ConfigError(f'"{handler.kind}" cannot be combined with '
                              f'"{"proxy_pass" if proxy_pass else "return"}" in one location', handler.source)
        regex = location_regex(modifier, path, block.source) if parent is None else parent.regex
        # no other content handler: files from `root` or `alias`, as nginx's static and index modules
        static = (static_of(chain, self.top.prefix, modifier, path, regex)
                  if not proxy_pass and not inherits and not returned and handler is None else None)
        error_log = inherited(chain, "error_log", None)
        health_check = build_health.resolve(block.get("health_check"), self.matches,
                                            inherited(chain, "proxy_read_timeout", 60.0),
                                            inherited(chain, "proxy_connect_timeout", 60.0))
        if health_check is not None and not proxy_pass:
            raise ConfigError('"health_check" needs "proxy_pass"', health_check.source)
        target = (self.proxy_pass(proxy_pass[0], upstreams, block.sources["proxy_pass"])
                  if proxy_pass else parent.proxy_pass if parent is not None else None)
        if health_check is not None and target is not None and target.upstream is None:
            raise ConfigError('"health_check" needs "proxy_pass" to an upstream group, not a URL with '
                              'variables',
                              health_check.source)
        if proxy_pass and target is not None and target.uri is not None and (modifier in ("~", "~*", "@")
                                                                         or parent is not None):
            raise ConfigError('"proxy_pass" cannot have URI part in location given by regular expression, '
                              'or inside named location, or inside "if" statement, or inside "limit_except" '
                              "block", block.sources["proxy_pass"])
        bind = proxy_bind(chain, HTTP_VARIABLES, HTTP_PREFIXES)
        if target is not None:
            check_unix_peers(target.upstream, bind, False, _bind_source(chain) or block.source)
        return Location(
            path=path,
            exact=exact,
            modifier=modifier,
            regex=regex,
            proxy_pass=target,
            static=static,
            expires=expires_of(chain) if target is not None else None,
            gzip=gzip_of(chain),
            return_=self.return_(returned, block.sources["return"]) if returned else None,
            proxy_set_header=self.headers(chain),
            add_headers=added_lines(chain, "add_header"),
            replies=replies_of(chain),
            proxy_http_version=inherited(chain, "proxy_http_version", "1.0"),
            proxy_pass_request_headers=inherited(chain, "proxy_pass_request_headers", True),
            proxy_pass_request_body=inherited(chain, "proxy_pass_request_body", True),
            proxy_connect_timeout=inherited(chain, "proxy_connect_timeout", 60.0),
            proxy_read_timeout=inherited(chain, "proxy_read_timeout", 60.0),
            proxy_send_timeout=inherited(chain, "proxy_send_timeout", 60.0),
            proxy_next_upstream=self.next_upstream(chain),
            proxy_next_upstream_tries=inherited(chain, "proxy_next_upstream_tries", 0),
            proxy_next_upstream_timeout=inherited(chain, "proxy_next_upstream_timeout", 0.0),
            access_logs=self.top.access_logs(chain, formats, "combined"),
            error_log=self.top.error_log(error_log) if error_log else None,
            proxy_bind=bind,
            real_ip=http_real_ip(chain, self.top.names.networks),
            health_check=health_check,
            handler=handler,
            client_body_timeout=inherited(chain, "client_body_timeout", 60.0),
            client_max_body_size=inherited(chain, "client_max_body_size", 1024 * 1024),
            request_body=request_body_of(chain, self.top.prefix),
            send_timeout=inherited(chain, "send_timeout", 60.0),
            keepalive_timeout=inherited(chain, "keepalive_timeout", (75.0, None))[0],
            keepalive_requests=inherited(chain, "keepalive_requests", 1000),
            keepalive_time=inherited(chain, "keepalive_time", 3600.0),
            keepalive_disable=inherited(chain, "keepalive_disable", frozenset({"msie6"})),
            access=access_rules(chain),
            error_pages=tuple(page for page, _ in inherited(chain, "error_page", [])),
            resolver=effective_resolver(chain, self.top.names),
            source=block.source,
            proxy_ssl=(parent.proxy_ssl if parent is not None and inherits
                       else upstream_tls(chain, target.text.split("://", 1)[1].split("/", 1)[0],
                                         block.sources["proxy_pass"])
                       if target is not None and target.ssl else None),
            limit_rate=inherited(chain, "limit_rate", 0),
            limit_rate_after=inherited(chain, "limit_rate_after", 0),
            proxy_limit_rate=inherited(chain, "proxy_limit_rate", 0),
            rewrite=script,
            proxy_redirect=proxy_headers.redirects(
                inherited(chain, "proxy_redirect", None), target.text if target is not None else None,
                target is not None and target.url is not None, path,
                modifier in ("~", "~*", "@") or parent is not None, block.source)
            if parent is None or not inherits else parent.proxy_redirect,
            proxy_hidden=proxy_headers.hidden(inherited(chain, "proxy_hide_header", []),
                                              inherited(chain, "proxy_pass_header", [])),
            proxy_intercept_errors=inherited(chain, "proxy_intercept_errors", False),
            referers=referers_of(inherited(chain, "valid_referers", None), server_names_of(chain)),
            proxy_ignore_headers=inherited(chain, "proxy_ignore_headers", frozenset()),
            internal="internal" in block.settings if parent is None else parent.internal,
            proxy_set_body=inherited(chain, "proxy_set_body", None),
            proxy_method=inherited(chain, "proxy_method", None),
            post_action=inherited(chain, "post_action", None),
            proxy_cookie_domain=proxy_headers.cookie_rules(inherited(chain, "proxy_cookie_domain", None)),
            proxy_cookie_path=proxy_headers.cookie_rules(inherited(chain, "proxy_cookie_path", None)),
            proxy_cookie_flags=proxy_headers.cookie_flags(inherited(chain, "proxy_cookie_flags", None)),
        )

    def proxy_pass(self, target: str, upstreams: dict[str, Upstream], source: Source) -> ProxyPass:
        ssl = target.startswith("https://")
        if ssl and "$" in target:
            raise ConfigError('"proxy_pass https://" with variables is not supported yet; name the upstream',
                              source)
        if ssl:
            target = "http://" + target[len("https://"):]
        if "$" in target:
            # nginx (ngx_http_proxy_eval): the URL is made per request; its host is an upstream
            # group, an address, or a name the location's resolver resolves.
            url = self.template(target, source)
            literal = target.split("$", 1)[0]      # `http:/$uri` is whole only per request: checked then
            if "://" in literal and not literal.startswith("http://"):
                raise ConfigError(f'invalid URL prefix in "{target}"', source)
            return ProxyPass(None, None, target, url)
        if not target.startswith("http://"):
            raise ConfigError(f'invalid URL prefix in "{target}"', source)
        rest = target[len("http://"):]
        host, slash, uri = rest.partition("/")
        if rest[:5].lower() == "unix:":
            # nginx (ngx_parse_unix_domain_url with uri_part): the path ends at the next colon
            socket_at, after = parse_unix_url(rest, source)
            upstream = implicit_upstream(socket_at.host, 0, (socket_at.host,), source)
            return ProxyPass(upstream, after or None, ("https://" + rest) if ssl else target, ssl=ssl)
        if host in upstreams:
            upstream = upstreams[host]
        else:
            address = implicit_address(host, source)
            port = address.port or (443 if ssl else 80)
            upstream = implicit_upstream(address.host, port, self.top.names.implicit(address.host, source),
                                         source)
        return ProxyPass(upstream, "/" + uri if slash else None, ("https://" + rest) if ssl else target,
                         ssl=ssl)

    def next_upstream(self, chain: list[Block]) -> frozenset[str]:
        for block in chain:
            if "proxy_next_upstream" in block.settings:
                return d._next_upstream_conditions(block.settings["proxy_next_upstream"],
                                                   block.sources["proxy_next_upstream"])
        return frozenset({"error", "timeout"})

    def headers(self, chain: list[Block]) -> tuple[tuple[str, Template], ...]:
        # nginx: a level's proxy_set_header list replaces the outer one wholesale.
        entries = inherited(chain, "proxy_set_header", [])
        headers = [(args[0], self.template(args[1], source)) for args, source in entries]
        given = {name.lower() for name, _ in headers}
        for name, value in DEFAULT_PROXY_HEADERS:
            if name.lower() not in given:
                headers.append((name, self.template(value, chain[0].source)))
        return tuple(headers)

    def return_(self, args: list[str], source: Source) -> HttpReturn:
        first = args[0]
        if not (first.isascii() and first.isdigit()):
            if len(args) == 2 or not first.startswith(("http://", "https://", "$scheme")):
                raise ConfigError(f'invalid return code "{first}"', source)
            return HttpReturn(302, self.template(first, source))
        code = int(first)
        if code > 999:
            raise ConfigError(f'invalid return code "{first}"', source)
        text = self.template(args[1], source) if len(args) == 2 else None
        return HttpReturn(code, text)


def _limits(chain: list[Block]) -> ClientLimits:
    """nginx's defaults: client_header_timeout 60s, client_header_buffer_size 1k,
    large_client_header_buffers 4 8k, client_body_timeout 60s, client_max_body_size 1m,
    send_timeout 60s, keepalive_timeout 75s."""
    return ClientLimits(
        client_header_timeout=inherited(chain, "client_header_timeout", 60.0),
        client_header_buffer_size=inherited(chain, "client_header_buffer_size", 1024),
        large_client_header_buffers=inherited(chain, "large_client_header_buffers", (4, 8192)),
        ignore_invalid_headers=inherited(chain, "ignore_invalid_headers", True),
        underscores_in_headers=inherited(chain, "underscores_in_headers", False),
        max_headers=inherited(chain, "max_headers", 1000),
        merge_slashes=inherited(chain, "merge_slashes", True),
        client_body_timeout=inherited(chain, "client_body_timeout", 60.0),
        client_max_body_size=inherited(chain, "client_max_body_size", 1024 * 1024),
        send_timeout=inherited(chain, "send_timeout", 60.0),
        keepalive_timeout=inherited(chain, "keepalive_timeout", (75.0, None))[0],
    )


def _check_default_servers(servers: tuple[HttpServer, ...]) -> None:
    """One `default_server` per address and port, as nginx requires."""
    seen: set[tuple[str, int]] = set()
    for server in servers:
        for listen in server.listens:
            if not listen.default_server:
                continue
            key = (listen.bind_host, listen.port)
            if key in seen:
                raise ConfigError(f"a duplicate default server for {listen}", listen.source)
            seen.add(key)


def _flat(tree: list[Location]) -> list[Location]:
    """Every location of the tree, each before the ones inside it."""
    out: list[Location] = []
    for location in tree:
        out.append(location)
        out += location.if_configs
        out += (location.limit_except[1],) if location.limit_except is not None else ()
        out += _flat(list(location.nested))
    return out


def _bind_source(chain: list[Block]) -> Source | None:
    """Where the proxy_bind in effect was written."""
    return next((block.sources["proxy_bind"] for block in chain if "proxy_bind" in block.sources), None)
