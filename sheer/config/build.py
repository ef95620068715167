"""Turn the checked block tree into the frozen model: inheritance, defaults, cross-references."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from sheer.config import announce, build_health, table
from sheer.config.access import access_rules
from sheer.config.balance import upstream_balance
from sheer.config.build_http import HttpBuilder
from sheer.config.build_tls import check_stream_tls, stream_proxy_ssl, stream_tls
from sheer.config.error_logs import error_logs
from sheer.config.errors import ConfigError, Source
from sheer.config.made_variables import made_variables
from sheer.config.model import (
    AccessLog,
    Config,
    ErrorLog,
    Listen,
    LogFormat,
    ProxyBind,
    Stream,
    StreamServer,
    Upstream,
    UpstreamServer,
)
from sheer.config.names import Names
from sheer.config.prefix import STDERR, Prefixes
from sheer.config.realip import stream_options
from sheer.config.resolver import PEERS_PER_NAME
from sheer.config.resolver import effective as effective_resolver
from sheer.config.scope import (
    check_unix_peers,
    implicit_address,
    implicit_upstream,
    inherited,
    log_files,
    proxy_bind,
    single_child,
    with_port,
)
from sheer.config.table import NoticeLevel
from sheer.config.template import (
    HTTP_PREFIXES,
    HTTP_VARIABLES,
    STREAM_VARIABLES,
    compile_template,
)
from sheer.config.tree import Block


class Builder:
    def __init__(self, root: Block, where: Prefixes, names: Names,
                 default_error_log: str | None = None) -> None:
        self.root = root
        self.where = where
        self.file = where.conf_file
        self.prefix = where.prefix
        self.names = names
        self.default_error_log = default_error_log
        self.notices: list[tuple[NoticeLevel, str]] = []

    def note(self, level: NoticeLevel, message: str, source: Source | None) -> None:
        self.notices.append((level, f"{source}: {message}" if source else message))

    def path(self, value: str) -> str:
        """`pid`, `error_log`, `access_log`: relative to the prefix, as nginx (ngx_conf_open_file)."""
        return self.where.path(value)

    def config(self) -> Config:
        root = self.root
        events = single_child(root, table.EVENTS)
        error_log = root.get("error_log")
        stream_block = single_child(root, table.STREAM)
        http_block = single_child(root, table.HTTP)
        if stream_block is None and http_block is None:
            raise ConfigError(f'{self.file}: no "http" or "stream" block: nothing to serve')
        config = Config(
            file=self.file,
            prefix=self.prefix,
            user=root.get("user"),
            worker_processes=root.get("worker_processes", 1),
            error_log=self.error_log(error_log) if error_log else self.main_error_log(),
            pid=self.path(root.get("pid")[0]) if root.get("pid") else None,
            daemon=root.get("daemon", False),
            worker_connections=events.get("worker_connections", 512) if events else 512,
            worker_rlimit_nofile=root.get("worker_rlimit_nofile"),
            worker_shutdown_timeout=root.get("worker_shutdown_timeout"),
            stream=StreamBuilder(self, stream_block).build() if stream_block else None,
            http=HttpBuilder(self, http_block).build() if http_block else None,
        )
        _check_listen_conflicts(config)
        if root.get("announce"):
            config = replace(config, announce=announce.build(root.settings, self.path, list(config.listens)))
        return config

    def main_error_log(self) -> ErrorLog:
        """No `error_log` in main: `-e`'s file (nginx's ngx_log_open_default), at level error; stderr
        without -e (sheer's NGX_ERROR_LOG_PATH, as Debian's nginx is built)."""
        return ErrorLog(self.path(self.default_error_log or STDERR))

    def error_log(self, lines: list[Any]) -> ErrorLog:
        return error_logs(lines, self.path)

    def upstreams(self, block: Block, default_port: int | None) -> dict[str, Upstream]:
        found: dict[str, Upstream] = {}
        for child in block.children:
            if not child.context.endswith(".upstream"):
                continue
            name = child.args[0]
            if name in found:
                raise ConfigError(f'duplicate upstream "{name}"', child.source)
            servers: list[UpstreamServer] = []
            templates: list[UpstreamServer] = []
            for server, source in child.get("server", []):
                if server.port == 0 and not server.unix:
                    if default_port is None:
                        raise ConfigError(f'no port in upstream "{server.host}"', source)
                    server = with_port(server, default_port)
                for peer in self.names.servers(server):
                    (templates if peer.resolve else servers).append(peer)
            if not servers and not templates:
                raise ConfigError(f'no servers are inside upstream "{name}"', child.source)
            # A `resolve` server counts as the peers it may have, for the tables weights expand into.
            balance = upstream_balance(child.settings, child.sources, servers + templates * PEERS_PER_NAME)
            if all(server.backup for server in servers + templates):
                raise ConfigError(f'upstream "{name}" has only backup servers', child.source)
            zone = child.get("zone")
            if child.get("keepalive_timeout", (0, None))[1] is not None:     # one argument in an upstream
                raise ConfigError('invalid number of arguments in "keepalive_timeout" directive',
                                  child.sources["keepalive_timeout"])
            resolver = effective_resolver([child, block], self.names)
            if templates and zone is None:
                raise ConfigError(f'resolving names at run time requires upstream "{name}" to be in shared '
                                  'memory (add "zone NAME 64k;" to it)', templates[0].source)
            if templates and resolver is None:
                raise ConfigError(f'no resolver defined to resolve names at run time in upstream "{name}" '
                                  f'(add "resolver ADDRESS;" to it or to the {block.context} block)',
                                  templates[0].source)
            found[name] = Upstream(name, tuple(servers), child.get("keepalive", 0),
                                   keepalive_requests=child.get("keepalive_requests", 1000),
                                   keepalive_timeout=child.get("keepalive_timeout", (60.0, None))[0],
                                   keepalive_time=child.get("keepalive_time", 3600.0),
                                   source=child.source,
                                   balance=balance, resolve=tuple(templates), zone=zone[0] if zone else None,
                                   resolver=resolver)
        return found

    def listens(self, block: Block) -> list[Listen]:
        """The block's `listen` lines, a name giving one per address (each address once)."""
        found: list[Listen] = []
        for listen, _ in block.get("listen", []):
            for each in self.names.listens(listen):
                if each.port_end:       # a port range: one listener per port, as nginx opens them
                    found.extend(replace(each, port=port, port_end=0)
                                 for port in range(each.port, each.port_end + 1))
                else:
                    found.append(each)
        return list(dict.fromkeys(found))

    def log_formats(self, block: Block, variables: frozenset[str],
                    prefixes: tuple[str, ...], predefined: dict[str, str]) -> dict[str, LogFormat]:
        formats = {name: LogFormat(name, compile_template(text, block.source, variables, prefixes))
                   for name, text in predefined.items()}
        for args, source in block.get("log_format", []):
            name, parts = args[0], args[1:]
            escape = "default"
            if parts and parts[0].startswith("escape="):
                escape = parts[0][7:]
                if escape not in ("default", "json", "none"):
                    raise ConfigError(f'unknown log format escaping "{escape}"', source)
                parts = parts[1:]
            if name in formats:
                raise ConfigError(f'duplicate "log_format" name "{name}"', source)
            if not parts:
                raise ConfigError('invalid number of arguments in "log_format" directive', source)
            formats[name] = LogFormat(name, compile_template("".join(parts), source, variables, prefixes),
                                      escape)
        return formats

    def access_logs(self, chain: list[Block], formats: dict[str, LogFormat],
                    default_format: str | None) -> tuple[AccessLog, ...]:
        entries = inherited(chain, "access_log", [])
        logs: list[AccessLog] = []
        for args, source in entries:
            if args[0] == "off":
                return ()
            format_name = args[1] if len(args) > 1 else default_format
            if format_name is None:
                raise ConfigError('"access_log" needs a log_format name in the stream module', source)
            if format_name not in formats:
                raise ConfigError(f'unknown log format "{format_name}"', source)
            condition = None
            gzip = 0
            # http's variables when the module has `combined` (http), stream's otherwise
            known = (HTTP_VARIABLES, HTTP_PREFIXES) if default_format else (STREAM_VARIABLES, ())
            path = self.path(args[0])
            variable_path = compile_template(path, source, *known) if "$" in args[0] else None
            for extra in args[2:]:
                if extra.startswith("if="):
                    condition = compile_template(extra[3:], source, *known)
                elif extra.startswith(("buffer=", "flush=")):
                    self.note("notice", f'"{extra}": sheer writes each line at once', source)
                elif extra == "gzip":
                    gzip = 1                                  # nginx's Z_BEST_SPEED
                elif extra.startswith("gzip="):
                    level = extra[5:]
                    if not (level.isascii() and level.isdigit()) or not 1 <= int(level) <= 9:
                        raise ConfigError(f'invalid compression level "{level}"', source)
                    gzip = int(level)
                else:
                    raise ConfigError(f'invalid parameter "{extra}"', source)
            logs.append(AccessLog(path, formats[format_name], condition, gzip, variable_path))
        return tuple(logs)


class StreamBuilder:
    def __init__(self, top: Builder, block: Block) -> None:
        self.top = top
        self.block = block

    def build(self) -> Stream:
        upstreams = self.top.upstreams(self.block, default_port=None)
        formats = self.top.log_formats(self.block, STREAM_VARIABLES, (), {})
        self.matches = build_health.stream_matches(self.block)
        maps, geos, splits = made_variables(self.block, STREAM_VARIABLES, (), http=False)
        servers = tuple(self.server(child, upstreams, formats)
                        for child in self.block.children if child.context == "stream.server")
        build_health.check_dsr_is_checked(servers)
        return Stream(servers, tuple(upstreams.values()), maps, geos, splits,
                      log_files=log_files(self.block, self.top.path))

    def server(self, block: Block, upstreams: dict[str, Upstream],
               formats: dict[str, LogFormat]) -> StreamServer:
        chain = [block, self.block]
        for listen, _ in block.get("listen", []):
            if listen.port == 0 and not listen.unix:  # nginx's stream module has no default port
                raise ConfigError(f'no port in "{listen.host or "*"}" of the "listen" directive',
                                  listen.source)
            if listen.http2:
                raise ConfigError('invalid parameter "http2"', listen.source)
        listens = tuple(self.top.listens(block))
        if not listens:
            raise ConfigError('no "listen" is defined for server', block.source)
        proxy_pass = block.get("proxy_pass")
        returned = block.get("return")
        if proxy_pass and returned:
            raise ConfigError('"return" and "proxy_pass" cannot both be set in one server', block.source)
        if not proxy_pass and not returned:
            raise ConfigError('no handler for server: add "proxy_pass" or "return"', block.source)
        upstream = None
        proxy_pass_url = None
        if proxy_pass and "$" in proxy_pass[0]:
            # nginx (ngx_stream_proxy_eval): the value is an upstream block's name or an address:port
            proxy_pass_url = compile_template(proxy_pass[0], block.sources["proxy_pass"], STREAM_VARIABLES)
            if any(listen.udp for listen in listens):
                raise ConfigError('"proxy_pass" with variables is supported for TCP servers only',
                                  block.sources["proxy_pass"])
        elif proxy_pass:
            upstream = _stream_upstream(proxy_pass[0], upstreams, block.sources["proxy_pass"], self.top.names)
        return_value = None
        if returned:
            if len(returned) != 1:
                raise ConfigError('invalid number of arguments in "return" directive',
                                  block.sources["return"])
            return_value = compile_template(returned[0], block.sources["return"], STREAM_VARIABLES)
        next_upstream = inherited(chain, "proxy_next_upstream", ["on"])
        if next_upstream not in (["on"], ["off"]):
            raise ConfigError(f'invalid value "{" ".join(next_upstream)}" in "proxy_next_upstream" '
                              'directive, it must be "on" or "off"', block.sources.get("proxy_next_upstream"))
        error_log = inherited(chain, "error_log", None)
        bind = proxy_bind(chain, STREAM_VARIABLES, ())
        check_unix_peers(upstream, bind, any(listen.udp for listen in listens),
                         block.sources.get("proxy_bind") or block.source)
        _check_dsr(listens, bind, inherited(chain, "proxy_responses", None),
                   upstream, block.sources.get("proxy_bind") or block.source)
        check_timeout = inherited(chain, "health_check_timeout", 5.0)
        health_check = build_health.resolve(block.get("health_check"), self.matches, check_timeout,
                                            check_timeout)
        if health_check is not None and upstream is None:
            raise ConfigError('"health_check" needs "proxy_pass"', health_check.source)
        return check_stream_tls(StreamServer(
            sets=tuple(value for value, _ in block.get("stream_set", [])),
            listens=listens,
            upstream=upstream,
            return_value=return_value,
            proxy_timeout=inherited(chain, "proxy_timeout", 600.0),
            proxy_connect_timeout=inherited(chain, "proxy_connect_timeout", 60.0),
            proxy_responses=inherited(chain, "proxy_responses", None),
            proxy_requests=inherited(chain, "proxy_requests", 0),
            proxy_half_close=inherited(chain, "proxy_half_close", False),
            proxy_next_upstream=next_upstream == ["on"],
            proxy_next_upstream_tries=inherited(chain, "proxy_next_upstream_tries", 0),
            proxy_next_upstream_timeout=inherited(chain, "proxy_next_upstream_timeout", 0.0),
            access_logs=self.top.access_logs(chain, formats, None),
            access=access_rules(chain),
            error_log=self.top.error_log(error_log) if error_log else None,
            proxy_bind=bind,
            **stream_options(chain, self.top.names.networks),
            health_check=health_check,
            dsr_without_health_check=inherited(chain, "dsr_without_health_check", False),
            status_zone=block.get("status_zone", [None])[0],
            source=block.source,
            proxy_pass_url=proxy_pass_url,
            resolver=effective_resolver(chain, self.top.names) if proxy_pass_url is not None else None,
            ssl_preread=inherited(chain, "ssl_preread", False),
            tls=stream_tls(chain, listens),
            ssl_handshake_timeout=inherited(chain, "ssl_handshake_timeout", 60.0),
            proxy_ssl=stream_proxy_ssl(chain, upstream, block.sources["proxy_pass"]) if proxy_pass else None,
            preread_timeout=inherited(chain, "preread_timeout", 30.0),
            preread_buffer_size=inherited(chain, "preread_buffer_size", 16384),
            proxy_upload_rate=inherited(chain, "proxy_upload_rate", 0),
            proxy_download_rate=inherited(chain, "proxy_download_rate", 0),
        ))


def _check_dsr(listens: tuple[Listen, ...], bind: ProxyBind | None, responses: int | None,
               upstream: Upstream | None, source: Source) -> None:
    """Direct server return: `proxy_responses 0` with the client's address bound transparently."""
    if responses != 0 or bind is None or not bind.transparent or not bind.client_address:
        return
    tcp = [listen for listen in listens if not listen.udp]
    if bind.client_port and tcp:
        raise ConfigError('direct server return (proxy_bind with $remote_port, proxy_responses 0) works for '
                          f'UDP only, but "listen {tcp[0]}" is TCP: a TCP upstream cannot answer the client '
                          "directly; use a separate server for TCP, without $remote_port", source)
    if not bind.client_port:
        raise ConfigError("proxy_responses 0 with proxy_bind $remote_addr: the upstream would answer the "
                          "client at a port the client never used; for direct server return write "
                          "`proxy_bind $remote_addr:$remote_port transparent;`", source)
    families = {listen.family for listen in listens}
    if len(families) > 1:
        raise ConfigError("direct server return with IPv4 and IPv6 listeners in one server: the upstreams "
                          "must answer from the client's family; use one server per family", source)
    family = families.pop() if families else 4
    other = "IPv4" if family == 6 else "IPv6"
    if family == 6 and any(not listen.ipv6only for listen in listens):
        raise ConfigError("direct server return on an IPv6 listener with ipv6only=off: its IPv4 clients "
                          "cannot be the source of an IPv6 datagram; leave ipv6only on and add an IPv4 "
                          "server", source)
    if upstream is not None:
        for server in upstream.servers:
            if not server.resolve and server.family != family:
                raise ConfigError(f'direct server return: upstream server "{server.text or server.host}" is '
                                  f'{other} but the listener takes IPv{family} clients, whose address and '
                                  'port '
                                  "become the datagram's source; put each family's upstreams behind a "
                                  "server of that family", source)
    if upstream is not None and upstream.resolve and upstream.resolver is not None and (
            upstream.resolver.ipv6 if family == 4 else upstream.resolver.ipv4):
        raise ConfigError(f'direct server return over IPv{family}: upstream "{upstream.name}" resolves names '
                          f'at run time with {other} too: add "{other.lower()}=off" to its "resolver"',
                          source)


def _stream_upstream(target: str, upstreams: dict[str, Upstream], source: Source, names: Names) -> Upstream:
    if target in upstreams:
        return upstreams[target]
    address = implicit_address(target, source)
    if address.unix:
        return implicit_upstream(address.host, 0, (address.host,), source)
    if address.port is None:
        raise ConfigError(f'no port in upstream "{target}" (and no upstream block of that name)', source)
    return implicit_upstream(address.host, address.port, names.implicit(address.host, source), source)


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
                    raise ConfigError(f'"{listen}" is used by both a stream and an http server',
                                      listen.source)
                seen[key] = "http"

