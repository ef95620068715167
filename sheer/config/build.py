"""Turn the checked block tree into the frozen model: inheritance, defaults, cross-references."""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any

from sheer.config import build_health
from sheer.config import directives as d
from sheer.config.balance import upstream_balance
from sheer.config.errors import ConfigError, Source
from sheer.config.model import (
    DEFAULT_PROXY_HEADERS,
    AccessLog,
    Config,
    ErrorLog,
    Http,
    HttpReturn,
    HttpServer,
    Listen,
    Location,
    LogFormat,
    ProxyBind,
    ProxyPass,
    Stream,
    StreamServer,
    Upstream,
    UpstreamServer,
)
from sheer.config.realip import http_real_ip, stream_options
from sheer.config.template import (
    HTTP_PREFIXES,
    HTTP_VARIABLES,
    STREAM_VARIABLES,
    Template,
    compile_template,
)
from sheer.config.tree import Block
from sheer.config.values import parse_host_port

COMBINED = ('$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent '
            '"$http_referer" "$http_user_agent"')
_REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})


class Builder:
    def __init__(self, root: Block, file: str, prefix: str) -> None:
        self.root = root
        self.file = file
        self.prefix = prefix

    def path(self, value: str) -> str:
        if value in ("stderr", "stdout") or os.path.isabs(value):
            return value
        return os.path.join(self.prefix, value)

    def config(self) -> Config:
        root = self.root
        events = _single_child(root, d.EVENTS)
        error_log = root.get("error_log")
        stream_block = _single_child(root, d.STREAM)
        http_block = _single_child(root, d.HTTP)
        if stream_block is None and http_block is None:
            raise ConfigError(f'{self.file}: no "http" or "stream" block: nothing to serve')
        config = Config(
            file=self.file,
            prefix=self.prefix,
            user=root.get("user"),
            worker_processes=root.get("worker_processes", 1),
            error_log=self.error_log(error_log) if error_log else ErrorLog("stderr"),
            pid=self.path(root.get("pid")[0]) if root.get("pid") else None,
            daemon=root.get("daemon", False),
            worker_connections=events.get("worker_connections", 512) if events else 512,
            stream=StreamBuilder(self, stream_block).build() if stream_block else None,
            http=HttpBuilder(self, http_block).build() if http_block else None,
        )
        _check_listen_conflicts(config)
        return config

    def error_log(self, value: tuple[str, str]) -> ErrorLog:
        return ErrorLog(self.path(value[0]), value[1])  # type: ignore[arg-type]

    def upstreams(self, block: Block, default_port: int | None) -> dict[str, Upstream]:
        found: dict[str, Upstream] = {}
        for child in block.children:
            if not child.context.endswith(".upstream"):
                continue
            name = child.args[0]
            if name in found:
                raise ConfigError(f'duplicate upstream "{name}"', child.source)
            servers: list[UpstreamServer] = []
            for server, source in child.get("server", []):
                if server.port == 0:
                    if default_port is None:
                        raise ConfigError(f'no port in upstream "{server.host}"', source)
                    server = _with_port(server, default_port)
                servers.append(server)
            if not servers:
                raise ConfigError(f'no servers are inside upstream "{name}"', child.source)
            balance = upstream_balance(child.settings, child.sources, servers)
            if all(server.backup for server in servers):
                raise ConfigError(f'upstream "{name}" has only backup servers', child.source)
            found[name] = Upstream(name, tuple(servers), child.get("keepalive", 0), source=child.source,
                                   balance=balance)
        return found

    def log_formats(self, block: Block, variables: frozenset[str],
                    prefixes: tuple[str, ...], predefined: dict[str, str]) -> dict[str, LogFormat]:
        formats = {name: LogFormat(name, compile_template(text, block.source, variables, prefixes))
                   for name, text in predefined.items()}
        for args, source in block.get("log_format", []):
            name, parts = args[0], args[1:]
            if parts and parts[0].startswith("escape="):
                parts = parts[1:]
            if name in formats:
                raise ConfigError(f'duplicate "log_format" name "{name}"', source)
            formats[name] = LogFormat(name, compile_template("".join(parts), source, variables, prefixes))
        return formats

    def access_logs(self, chain: list[Block], formats: dict[str, LogFormat],
                    default_format: str | None) -> tuple[AccessLog, ...]:
        entries = _inherited(chain, "access_log", [])
        logs: list[AccessLog] = []
        for args, source in entries:
            if args[0] == "off":
                return ()
            format_name = args[1] if len(args) > 1 else default_format
            if format_name is None:
                raise ConfigError('"access_log" needs a log_format name in the stream module', source)
            if format_name not in formats:
                raise ConfigError(f'unknown log format "{format_name}"', source)
            for extra in args[2:]:
                if not extra.startswith(("buffer=", "flush=", "gzip")):
                    raise ConfigError(f'invalid parameter "{extra}"', source)
            logs.append(AccessLog(self.path(args[0]), formats[format_name]))
        return tuple(logs)


class StreamBuilder:
    def __init__(self, top: Builder, block: Block) -> None:
        self.top = top
        self.block = block

    def build(self) -> Stream:
        upstreams = self.top.upstreams(self.block, default_port=None)
        formats = self.top.log_formats(self.block, STREAM_VARIABLES, (), {})
        self.matches = build_health.stream_matches(self.block)
        servers = tuple(self.server(child, upstreams, formats)
                        for child in self.block.children if child.context == "stream.server")
        build_health.check_dsr_is_checked(servers)
        return Stream(servers, tuple(upstreams.values()))

    def server(self, block: Block, upstreams: dict[str, Upstream],
               formats: dict[str, LogFormat]) -> StreamServer:
        chain = [block, self.block]
        listens = tuple(listen for listen, _ in block.get("listen", []))
        for listen in listens:
            if listen.port == 0:  # nginx's stream module has no default port
                raise ConfigError(f'no port in "{listen.host or "*"}" of the "listen" directive', listen.source)
        if not listens:
            raise ConfigError('no "listen" is defined for server', block.source)
        proxy_pass = block.get("proxy_pass")
        returned = block.get("return")
        if proxy_pass and returned:
            raise ConfigError('"return" and "proxy_pass" cannot both be set in one server', block.source)
        if not proxy_pass and not returned:
            raise ConfigError('no handler for server: add "proxy_pass" or "return"', block.source)
        upstream = None
        if proxy_pass:
            upstream = _stream_upstream(proxy_pass[0], upstreams, block.sources["proxy_pass"])
        return_value = None
        if returned:
            if len(returned) != 1:
                raise ConfigError('invalid number of arguments in "return" directive', block.sources["return"])
            return_value = compile_template(returned[0], block.sources["return"], STREAM_VARIABLES)
        next_upstream = _inherited(chain, "proxy_next_upstream", ["on"])
        if next_upstream not in (["on"], ["off"]):
            raise ConfigError(f'invalid value "{" ".join(next_upstream)}" in "proxy_next_upstream" '
                              'directive, it must be "on" or "off"', block.sources.get("proxy_next_upstream"))
        error_log = _inherited(chain, "error_log", None)
        bind = _proxy_bind(chain, STREAM_VARIABLES, ())
        _check_dsr(listens, bind, _inherited(chain, "proxy_responses", None),
                   upstream, block.sources.get("proxy_bind") or block.source)
        check_timeout = _inherited(chain, "health_check_timeout", 5.0)
        health_check = build_health.resolve(block.get("health_check"), self.matches, check_timeout, check_timeout)
        if health_check is not None and upstream is None:
            raise ConfigError('"health_check" needs "proxy_pass"', health_check.source)
        return StreamServer(
            listens=listens,
            upstream=upstream,
            return_value=return_value,
            proxy_timeout=_inherited(chain, "proxy_timeout", 600.0),
            proxy_connect_timeout=_inherited(chain, "proxy_connect_timeout", 60.0),
            proxy_responses=_inherited(chain, "proxy_responses", None),
            proxy_requests=_inherited(chain, "proxy_requests", 0),
            proxy_next_upstream=next_upstream == ["on"],
            proxy_next_upstream_tries=_inherited(chain, "proxy_next_upstream_tries", 0),
            proxy_next_upstream_timeout=_inherited(chain, "proxy_next_upstream_timeout", 0.0),
            access_logs=self.top.access_logs(chain, formats, None),
            error_log=self.top.error_log(error_log) if error_log else None,
            proxy_bind=bind,
            **stream_options(chain),
            health_check=health_check,
            dsr_without_health_check=_inherited(chain, "dsr_without_health_check", False),
            source=block.source,
        )


class HttpBuilder:
    def __init__(self, top: Builder, block: Block) -> None:
        self.top = top
        self.block = block

    def build(self) -> Http:
        upstreams = self.top.upstreams(self.block, default_port=80)
        formats = self.top.log_formats(self.block, HTTP_VARIABLES, HTTP_PREFIXES, {"combined": COMBINED})
        self.matches = build_health.http_matches(self.block)
        servers = tuple(self.server(child, upstreams, formats)
                        for child in self.block.children if child.context == "http.server")
        return Http(servers, tuple(upstreams.values()))

    def template(self, text: str, source: Source) -> Template:
        return compile_template(text, source, HTTP_VARIABLES, HTTP_PREFIXES)

    def server(self, block: Block, upstreams: dict[str, Upstream],
               formats: dict[str, LogFormat]) -> HttpServer:
        listens = tuple(replace(listen, port=80) if listen.port == 0 else listen
                        for listen, _ in block.get("listen", [])) or (Listen("", 80, source=block.source),)
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
        return HttpServer(
            listens=listens,
            server_names=names,
            locations=tuple(locations),
            return_=self.return_(returned, block.sources["return"]) if returned else None,
            real_ip=http_real_ip([block, self.block]),
            source=block.source,
        )

    def location(self, block: Block, chain: list[Block], upstreams: dict[str, Upstream],
                 formats: dict[str, LogFormat]) -> Location:
        args = block.args
        exact = False
        if len(args) == 2:
            if args[0] != "=":
                raise ConfigError(f'location modifier "{args[0]}" is not supported (only prefix and "=")', block.source)
            exact, path = True, args[1]
        elif args[0] in ("=", "~", "~*", "^~", "@") or args[0].startswith(("~", "@")):
            raise ConfigError(f'location "{args[0]}" is not supported: sheer has prefix and "=" locations',
                              block.source)
        else:
            path = args[0]
        proxy_pass = block.get("proxy_pass")
        returned = block.get("return")
        if proxy_pass and returned:
            raise ConfigError('"return" and "proxy_pass" cannot both be set in one location', block.source)
        if not proxy_pass and not returned:
            raise ConfigError(f'location "{path}" has neither "proxy_pass" nor "return" '
                              '(sheer does not serve files)', block.source)
        error_log = _inherited(chain, "error_log", None)
        health_check = build_health.resolve(block.get("health_check"), self.matches,
                                            _inherited(chain, "proxy_read_timeout", 60.0),
                                            _inherited(chain, "proxy_connect_timeout", 60.0))
        if health_check is not None and not proxy_pass:
            raise ConfigError('"health_check" needs "proxy_pass"', health_check.source)
        return Location(
            path=path,
            exact=exact,
            proxy_pass=_http_proxy_pass(proxy_pass[0], upstreams, block.sources["proxy_pass"])
            if proxy_pass else None,
            return_=self.return_(returned, block.sources["return"]) if returned else None,
            proxy_set_header=self.headers(chain),
            proxy_http_version=_inherited(chain, "proxy_http_version", "1.0"),
            proxy_connect_timeout=_inherited(chain, "proxy_connect_timeout", 60.0),
            proxy_read_timeout=_inherited(chain, "proxy_read_timeout", 60.0),
            proxy_send_timeout=_inherited(chain, "proxy_send_timeout", 60.0),
            proxy_next_upstream=self.next_upstream(chain),
            proxy_next_upstream_tries=_inherited(chain, "proxy_next_upstream_tries", 0),
            proxy_next_upstream_timeout=_inherited(chain, "proxy_next_upstream_timeout", 0.0),
            access_logs=self.top.access_logs(chain, formats, "combined"),
            error_log=self.top.error_log(error_log) if error_log else None,
            proxy_bind=_proxy_bind(chain, HTTP_VARIABLES, HTTP_PREFIXES),
            real_ip=http_real_ip(chain),
            health_check=health_check,
            source=block.source,
        )

    def next_upstream(self, chain: list[Block]) -> frozenset[str]:
        for block in chain:
            if "proxy_next_upstream" in block.settings:
                return d._next_upstream_conditions(block.settings["proxy_next_upstream"],
                                                   block.sources["proxy_next_upstream"])
        return frozenset({"error", "timeout"})

    def headers(self, chain: list[Block]) -> tuple[tuple[str, Template], ...]:
        # nginx: a level's proxy_set_header list replaces the outer one wholesale.
        entries = _inherited(chain, "proxy_set_header", [])
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


def _proxy_bind(chain: list[Block], variables: frozenset[str], prefixes: tuple[str, ...]) -> ProxyBind | None:
    for block in chain:
        if "proxy_bind" in block.settings:
            args = block.settings["proxy_bind"]
            source = block.sources["proxy_bind"]
            if args[0] == "off":
                return None
            template = compile_template(args[0], source, variables, prefixes)
            if template.is_literal:
                parse_host_port(args[0], source)
            return ProxyBind(template, len(args) == 2, source)
    return None


def _check_dsr(listens: tuple[Listen, ...], bind: ProxyBind | None, responses: int | None,
               upstream: Upstream | None, source: Source) -> None:
    """Direct server return: `proxy_responses 0` with the client's address bound transparently."""
    if responses != 0 or bind is None or not bind.transparent or not bind.client_address:
        return
    tcp = [listen for listen in listens if not listen.udp]
    if bind.client_port and tcp:
        raise ConfigError(f'direct server return (proxy_bind with $remote_port, proxy_responses 0) works for UDP only, '
                          f'but "listen {tcp[0]}" is TCP: a TCP upstream cannot answer the client directly; '
                          "use a separate server for TCP, without $remote_port", source)
    if not bind.client_port:
        raise ConfigError('proxy_responses 0 with proxy_bind $remote_addr: the upstream would answer the client '
                          "at a port the client never used; for direct server return write "
                          "`proxy_bind $remote_addr:$remote_port transparent;`", source)
    if any(listen.family == 6 for listen in listens) or (
            upstream is not None and any(server.family == 6 for server in upstream.servers)):
        raise ConfigError("direct server return over IPv6 is not supported yet", source)


def _single_child(block: Block, context: str) -> Block | None:
    found = [child for child in block.children if child.context == context]
    if len(found) > 1:
        raise ConfigError(f'"{context}" directive is duplicate', found[1].source)
    return found[0] if found else None


def _inherited(chain: list[Block], key: str, default: Any) -> Any:
    for block in chain:
        if key in block.settings:
            return block.settings[key]
    return default


def _with_port(server: UpstreamServer, port: int) -> UpstreamServer:
    from dataclasses import replace
    return replace(server, port=port)


def _stream_upstream(target: str, upstreams: dict[str, Upstream], source: Source) -> Upstream:
    if "$" in target:
        raise ConfigError(f'variables in "proxy_pass" are not supported: "{target}"', source)
    if target in upstreams:
        return upstreams[target]
    address = _implicit_address(target, source)
    if address.port is None:
        raise ConfigError(f'no port in upstream "{target}" (and no upstream block of that name)', source)
    return _implicit(address.host, address.port, source)


def _http_proxy_pass(target: str, upstreams: dict[str, Upstream], source: Source) -> ProxyPass:
    if "$" in target:
        raise ConfigError(f'variables in "proxy_pass" are not supported: "{target}"', source)
    if target.startswith("https://"):
        raise ConfigError('"proxy_pass https://" is not supported: sheer proxies plain HTTP', source)
    if not target.startswith("http://"):
        raise ConfigError(f'invalid URL prefix in "{target}"', source)
    rest = target[len("http://"):]
    host, slash, uri = rest.partition("/")
    if host in upstreams:
        upstream = upstreams[host]
    else:
        address = _implicit_address(host, source)
        upstream = _implicit(address.host, address.port or 80, source)
    return ProxyPass(upstream, "/" + uri if slash else None, target)


def _implicit_address(text: str, source: Source) -> Any:
    try:
        return parse_host_port(text, source)
    except ConfigError:
        raise ConfigError(f'host not found in upstream "{text}"', source) from None


def _implicit(host: str, port: int, source: Source) -> Upstream:
    server = UpstreamServer(host, port, source=source)
    return Upstream(server.name, (server,), implicit=True, source=source)


def _check_listen_conflicts(config: Config) -> None:
    seen: dict[tuple[str, int, bool], str] = {}
    if config.stream:
        for server in config.stream.servers:
            for listen in server.listens:
                key = (listen.bind_host, listen.port, listen.udp)
                if key in seen:
                    raise ConfigError(f'duplicate "{listen}" address and port pair', listen.source)
                seen[key] = "stream"
    if config.http:
        for http_server in config.http.servers:
            for listen in http_server.listens:
                key = (listen.bind_host, listen.port, False)
                if seen.get(key) == "stream":
                    raise ConfigError(f'"{listen}" is used by both a stream and an http server', listen.source)
                seen[key] = "http"


