"""How a setting is found for a block: inheritance along the context chain, and the small
resolutions the stream and http builders share (proxy_bind, implicit upstreams)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from sheer.config.errors import ConfigError, Source
from sheer.config.model import ProxyBind, Upstream, UpstreamServer
from sheer.config.template import compile_template
from sheer.config.tree import Block
from sheer.config.values import HostPort, is_address, parse_host_port, parse_unix


def inherited(chain: list[Block], key: str, default: Any) -> Any:
    for block in chain:
        if key in block.settings:
            return block.settings[key]
    return default


def single_child(block: Block, context: str) -> Block | None:
    found = [child for child in block.children if child.context == context]
    if len(found) > 1:
        raise ConfigError(f'"{context}" directive is duplicate', found[1].source)
    return found[0] if found else None


def proxy_bind(chain: list[Block], variables: frozenset[str], prefixes: tuple[str, ...]) -> ProxyBind | None:
    for block in chain:
        if "proxy_bind" in block.settings:
            args = block.settings["proxy_bind"]
            source = block.sources["proxy_bind"]
            if args[0] == "off":
                return None
            template = compile_template(args[0], source, variables, prefixes)
            if template.is_literal:
                # nginx (ngx_parse_addr_port): a local address, never a name
                address = parse_host_port(args[0], source)
                if not is_address(address.host):
                    raise ConfigError(f'invalid address "{args[0]}"', source)
            return ProxyBind(template, len(args) == 2, source)
    return None


def check_unix_peers(upstream: Upstream | None, bind: ProxyBind | None, udp: bool, source: Source) -> None:
    """A unix-domain peer has no IP address: refuse what derives from one. UDP (and so DSR) goes to IP
    peers only; IP Transparency binds the client's address, which a unix-domain socket cannot carry
    (nginx accepts the line and fails every connection to that peer; sheer says so at -t)."""
    unix = next((server for server in upstream.servers if server.unix), None) if upstream else None
    if unix is None:
        return
    if udp:
        raise ConfigError(f'upstream server "{unix.name}" is a unix-domain socket: sheer proxies UDP to IP '
                          "peers only", unix.source or source)
    if bind is not None and bind.transparent and bind.client_address:
        raise ConfigError(f'"proxy_bind {bind.address.text} transparent" (IP Transparency) with upstream '
                          f'server "{unix.name}": a unix-domain socket has no IP address to show the '
                          "client's; proxy to it from a server or location without proxy_bind", source)


def with_port(server: UpstreamServer, port: int) -> UpstreamServer:
    return replace(server, port=port)


def implicit_address(text: str, source: Source) -> HostPort:
    try:
        return parse_host_port(text, source)
    except ConfigError as exc:   # nginx: `%s in upstream "%V"` with ngx_parse_url's reason
        raise ConfigError(f'{exc.message.rsplit(" in ", 1)[0]} in upstream "{text}"', source) from None


def parse_unix_url(text: str, source: Source) -> tuple[HostPort, str | None]:
    """`unix:/path[:uri]` of `proxy_pass http://`: the socket and the URI after the colon, if any."""
    try:
        return parse_unix(text, source, uri_part=True)
    except ConfigError as exc:   # nginx: `%s in upstream "%V"`
        raise ConfigError(f'{exc.message.rsplit(" in ", 1)[0]} in upstream "{text}"', source) from None


def implicit_upstream(host: str, port: int, addresses: tuple[str, ...], source: Source) -> Upstream:
    """`proxy_pass ADDRESS:PORT` (or NAME:PORT) without an upstream block: one peer per address,
    named as written (nginx's $proxy_host)."""
    written = UpstreamServer(host, port).name
    servers = tuple(UpstreamServer(address, port, source=source, text=written) for address in addresses)
    return Upstream(written, servers, implicit=True, source=source)


def log_files(block: Block, path: Callable[[str], str]) -> tuple[str, ...]:
    """Every access_log file `block` and the blocks inside it name (without variables): nginx opens them
    all when it starts, whether a request or a session ever writes to them."""
    found = [path(args[0]) for args, _ in block.get("access_log", [])
             if args[0] != "off" and "$" not in args[0]]
    for child in block.children:
        found += log_files(child, path)
    return tuple(dict.fromkeys(found))
