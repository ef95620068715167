"""The http part of the model: servers, locations, proxy_pass, headers, return."""

from __future__ import annotations

from dataclasses import replace
from typing import Protocol

from sheer.config import build_health
from sheer.config import directives as d
from sheer.config.build_tls import server_tls, upstream_tls
from sheer.config.errors import ConfigError, Source
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
    StatusHandler,
    Upstream,
)
from sheer.config.names import Names
from sheer.config.realip import http_real_ip
from sheer.config.resolver import effective as effective_resolver
from sheer.config.scope import implicit_address, implicit_upstream, inherited, proxy_bind
from sheer.config.template import HTTP_PREFIXES, HTTP_VARIABLES, Template, compile_template
from sheer.config.tree import Block

COMBINED = ('$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent '
            '"$http_referer" "$http_user_agent"')


class Shared(Protocol):
    """What the http block takes from the main builder (`sheer.config.build.Builder`), which also builds
    the stream block with it: upstream blocks, listens, log formats and logs, paths under the prefix,
    and how names are resolved."""

    names: Names

    def upstreams(self, block: Block, default_port: int | None) -> dict[str, Upstream]: ...

    def log_formats(self, block: Block, variables: frozenset[str],
                    prefixes: tuple[str, ...], predefined: dict[str, str]) -> dict[str, LogFormat]: ...

    def access_logs(self, chain: list[Block], formats: dict[str, LogFormat],
                    default_format: str | None) -> tuple[AccessLog, ...]: ...

    def error_log(self, value: tuple[str, str]) -> ErrorLog: ...

    def listens(self, block: Block) -> list[Listen]: ...


class HttpBuilder:
    def __init__(self, top: Shared, block: Block) -> None:
        self.top = top
        self.block = block

    def build(self) -> Http:
        upstreams = self.top.upstreams(self.block, default_port=80)
        formats = self.top.log_formats(self.block, HTTP_VARIABLES, HTTP_PREFIXES, {"combined": COMBINED})
        self.matches = build_health.http_matches(self.block)
        self.addresses: set[tuple[str, int]] = set()     # seen: the first server on one is its default
        servers = tuple(self.server(child, upstreams, formats)
                        for child in self.block.children if child.context == "http.server")
        return Http(servers, tuple(upstreams.values()))

    def template(self, text: str, source: Source) -> Template:
        return compile_template(text, source, HTTP_VARIABLES, HTTP_PREFIXES)

    def server(self, block: Block, upstreams: dict[str, Upstream],
               formats: dict[str, LogFormat]) -> HttpServer:
        listens = tuple(replace(listen, port=80) if listen.port == 0 else listen
                        for listen in self.top.listens(block)) or (Listen("", 80, source=block.source),)
        names = tuple(block.get("server_name", [""]))
        locations: list[Location] = []
        seen: set[tuple[bool, str]] = set()
        for child in block.children:
            location = self.location(child, [child, block, self.block], upstreams, formats)
            key = (location.exact, location.path)
            if key in seen:
                raise ConfigError(f'duplicate location "{location.path}"', child.source)
            seen.add(key)
            locations.append(location)
        returned = block.get("return")
        chain = [block, self.block]
        error_log = inherited(chain, "error_log", None)
        addresses = {(listen.bind_host, listen.port) for listen in listens}
        default = bool(addresses - self.addresses)
        self.addresses |= addresses
        return HttpServer(
            listens=listens,
            server_names=names,
            locations=tuple(_link_dashboards(locations)),
            status_zone=block.get("status_zone", [None])[0],
            return_=self.return_(returned, block.sources["return"]) if returned else None,
            real_ip=http_real_ip([block, self.block], self.top.names.networks),
            limits=_limits(chain),
            access_logs=self.top.access_logs(chain, formats, "combined"),
            error_log=self.top.error_log(error_log) if error_log else None,
            source=block.source,
            tls=server_tls(chain, [listen.source for listen in listens if listen.ssl], default),
            http2=inherited(chain, "http2", False),
        )

    def location(self, block: Block, chain: list[Block], upstreams: dict[str, Upstream],
                 formats: dict[str, LogFormat]) -> Location:
        args = block.args
        exact = False
        if len(args) == 2:
            if args[0] != "=":
                raise ConfigError(f'location modifier "{args[0]}" is not supported (only prefix and "=")',
                                  block.source)
            exact, path = True, args[1]
        elif args[0] in ("=", "~", "~*", "^~", "@") or args[0].startswith(("~", "@")):
            raise ConfigError(f'location "{args[0]}" is not supported: sheer has prefix and "=" locations',
                              block.source)
        else:
            path = args[0]
        proxy_pass = block.get("proxy_pass")
        returned = block.get("return")
        handler = _handler(block)
        if proxy_pass and returned:
            raise ConfigError('"return" and "proxy_pass" cannot both be set in one location', block.source)
        if handler is not None and (proxy_pass or returned):
            raise ConfigError(f'"{handler.kind}" cannot be combined with '
                              f'"{"proxy_pass" if proxy_pass else "return"}" in one location', handler.source)
        if not proxy_pass and not returned and handler is None:
            raise ConfigError(f'location "{path}" has neither "proxy_pass" nor "return" '
                              '(sheer does not serve files)', block.source)
        error_log = inherited(chain, "error_log", None)
        health_check = build_health.resolve(block.get("health_check"), self.matches,
                                            inherited(chain, "proxy_read_timeout", 60.0),
                                            inherited(chain, "proxy_connect_timeout", 60.0))
        if health_check is not None and not proxy_pass:
            raise ConfigError('"health_check" needs "proxy_pass"', health_check.source)
        target = self.proxy_pass(proxy_pass[0], upstreams,
                                 block.sources["proxy_pass"]) if proxy_pass else None
        if health_check is not None and target is not None and target.upstream is None:
            raise ConfigError('"health_check" needs "proxy_pass" to an upstream group, not a URL with '
                              'variables',
                              health_check.source)
        return Location(
            path=path,
            exact=exact,
            proxy_pass=target,
            return_=self.return_(returned, block.sources["return"]) if returned else None,
            proxy_set_header=self.headers(chain),
            proxy_http_version=inherited(chain, "proxy_http_version", "1.0"),
            proxy_connect_timeout=inherited(chain, "proxy_connect_timeout", 60.0),
            proxy_read_timeout=inherited(chain, "proxy_read_timeout", 60.0),
            proxy_send_timeout=inherited(chain, "proxy_send_timeout", 60.0),
            proxy_next_upstream=self.next_upstream(chain),
            proxy_next_upstream_tries=inherited(chain, "proxy_next_upstream_tries", 0),
            proxy_next_upstream_timeout=inherited(chain, "proxy_next_upstream_timeout", 0.0),
            access_logs=self.top.access_logs(chain, formats, "combined"),
            error_log=self.top.error_log(error_log) if error_log else None,
            proxy_bind=proxy_bind(chain, HTTP_VARIABLES, HTTP_PREFIXES),
            real_ip=http_real_ip(chain, self.top.names.networks),
            health_check=health_check,
            handler=handler,
            client_body_timeout=inherited(chain, "client_body_timeout", 60.0),
            client_max_body_size=inherited(chain, "client_max_body_size", 1024 * 1024),
            send_timeout=inherited(chain, "send_timeout", 60.0),
            keepalive_timeout=inherited(chain, "keepalive_timeout", 75.0),
            resolver=effective_resolver(chain, self.top.names),
            source=block.source,
            proxy_ssl=(upstream_tls(chain, target.text.split("://", 1)[1].split("/", 1)[0],
                                    block.sources["proxy_pass"])
                       if target is not None and target.ssl else None),
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
            if not target.startswith(("http://", "$")):
                raise ConfigError(f'invalid URL prefix in "{target}"', source)
            return ProxyPass(None, None, target, url)
        if not target.startswith("http://"):
            raise ConfigError(f'invalid URL prefix in "{target}"', source)
        rest = target[len("http://"):]
        host, slash, uri = rest.partition("/")
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
        client_body_timeout=inherited(chain, "client_body_timeout", 60.0),
        client_max_body_size=inherited(chain, "client_max_body_size", 1024 * 1024),
        send_timeout=inherited(chain, "send_timeout", 60.0),
        keepalive_timeout=inherited(chain, "keepalive_timeout", 75.0),
    )


HANDLERS = ("stub_status", "api", "prometheus", "dashboard")


def _handler(block: Block) -> StatusHandler | None:
    """The location's status handler, if it names one (at most one per location)."""
    named = [kind for kind in HANDLERS if kind in block.settings]
    if not named:
        return None
    if len(named) > 1:
        raise ConfigError(f'"{named[1]}" cannot be combined with "{named[0]}" in one location',
                          block.sources[named[1]])
    kind = named[0]
    source = block.sources[kind]
    if kind == "stub_status" and block.get(kind) not in ([], ["on"]):
        raise ConfigError('invalid parameter of "stub_status"', source)
    write = bool(block.get("api")) if kind == "api" else False
    return StatusHandler(kind, write=write, source=source)  # type: ignore[arg-type]


def _link_dashboards(locations: list[Location]) -> list[Location]:
    """A dashboard reads (and, with `api write=on`, changes) through the `api` location of its server."""
    api = next((location for location in locations
                if location.handler is not None and location.handler.kind == "api"), None)
    linked = []
    for location in locations:
        handler = location.handler
        if handler is not None and handler.kind == "dashboard":
            if api is None:
                raise ConfigError('"dashboard" needs a location with "api" in the same server '
                                  '(add `location /api/ { api; }`)', handler.source)
            assert api.handler is not None
            location = replace(location, handler=replace(handler, api=api.path, write=api.handler.write))
        linked.append(location)
    return linked
