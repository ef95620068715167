"""Names in the configuration, resolved when it is loaded (and at every reload), as nginx does.

nginx's `ngx_parse_url` hands a host that is not an address literal to `ngx_inet_resolve_host`:
`getaddrinfo(host, AF_UNSPEC, SOCK_STREAM, AI_ADDRCONFIG)`, so the system's resolver answers
(/etc/hosts, then resolv.conf's name servers, as nsswitch.conf says). Every address it yields
counts: a `server` line becomes one peer per address with the line's parameters, a `listen`
listens on each address, `set_real_ip_from` trusts each address, `resolver` asks each address.
A name that does not resolve is nginx's `-t` error: `host not found in upstream "app:8080"`.

This module is the one step of a load that turns names into addresses. The lookup is a function
passed in (`load(..., lookup=)`); the default asks the system, tests pass a fake. Names written
with the `resolve` parameter of `server` are not looked up here: the resolver task re-resolves
them while sheer runs (sheer.runtime.resolver).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

from sheer.config.errors import ConfigError, Source
from sheer.config.model import Config, Listen, Upstream, UpstreamServer
from sheer.config.realip import Network
from sheer.config.values import is_address, is_unix

__all__ = ["HostNotFound", "Lookup", "Names", "is_address", "system_lookup", "with_peers"]

Lookup = Callable[[str], tuple[str, ...]]


class HostNotFound(Exception):
    """The lookup found no IPv4 or IPv6 address for the name (nginx's u->err "host not found")."""


def system_lookup(host: str) -> tuple[str, ...]:
    """The system's resolver, as ngx_inet_resolve_host asks it: IPv4 and IPv6 addresses in the
    order getaddrinfo sorts them (RFC 6724), each once. AI_ADDRCONFIG: no IPv6 addresses on a
    host without IPv6 configured, as nginx."""
    try:
        infos = socket.getaddrinfo(host, None, socket.AF_UNSPEC, socket.SOCK_STREAM, 0, socket.AI_ADDRCONFIG)
    except (OSError, UnicodeError):
        raise HostNotFound(host) from None
    found = [str(info[4][0]) for info in infos if info[0] in (socket.AF_INET, socket.AF_INET6)]
    if not found:
        raise HostNotFound(host)
    return tuple(dict.fromkeys(found))


class Names:
    """What one load resolved, through one lookup (a name is asked once per load)."""

    def __init__(self, lookup: Lookup) -> None:
        self.lookup = lookup
        self.resolved: dict[str, tuple[str, ...] | None] = {}

    def addresses(self, host: str) -> tuple[str, ...] | None:
        """The addresses of `host` (a literal stands for itself), or None: host not found (an empty
        name too, as getaddrinfo() in nginx's ngx_inet_resolve_host)."""
        if not host:
            return None
        if is_address(host) or is_unix(host):
            return (host,)
        if host not in self.resolved:
            try:
                found = tuple(str(ipaddress.ip_address(address.split("%")[0]))
                              for address in self.lookup(host))
            except (HostNotFound, ValueError):
                found = ()
            self.resolved[host] = found or None
        return self.resolved[host]

    def _must(self, host: str, message: str, source: Source | None) -> tuple[str, ...]:
        found = self.addresses(host)
        if found is None:
            raise ConfigError(message, source)
        return found

    def servers(self, server: UpstreamServer) -> list[UpstreamServer]:
        """A `server` line of an upstream block: one peer per address, each with the line's
        parameters (ngx_http_upstream_server, ngx_http_upstream_init_round_robin)."""
        if server.resolve and not is_address(server.host) and not server.unix:
            return [server]            # resolved at run time
        found = self._must(server.host, f'host not found in upstream "{server.text}"', server.source)
        return [replace(server, host=address, resolve=False) for address in found]

    def implicit(self, host: str, source: Source | None) -> tuple[str, ...]:
        """`proxy_pass http://name:port` without an upstream block of that name: nginx names the
        implicit upstream by its host (`host not found in upstream "name"`)."""
        return self._must(host, f'host not found in upstream "{host}"', source)

    def listens(self, listen: Listen) -> list[Listen]:
        """`listen name:port`: a listening socket on each address, each once (ngx_http_core_listen)."""
        if is_address(listen.host) or listen.unix:
            return [listen]
        found = self._must(listen.host,
                           f'host not found in "{listen.text or listen.host}" of the "listen" directive',
                           listen.source)
        return [replace(listen, host=address) for address in found]

    def networks(self, name: str, source: Source | None) -> list[Network]:
        """`set_real_ip_from name`: every address of the name, trusted alone (/32, /128)."""
        found = self._must(name, f'host not found in set_real_ip_from "{name}"', source)
        return [ipaddress.ip_network(address) for address in found]

    def name_servers(self, host: str, text: str, source: Source | None) -> tuple[str, ...]:
        """`resolver name`: the name servers are looked up once, at load (ngx_resolver_create)."""
        return self._must(host, f'host not found in resolver "{text}"', source)


def with_peers(config: Config, peers: Mapping[tuple[str, str], Sequence[UpstreamServer]]) -> Config:
    """The configuration as it stands at one moment of run time: the peers found for the
    `server NAME resolve` lines of an upstream (`peers[(protocol, upstream name)]`) join its
    servers, for what derives from upstream addresses (sheer net plan)."""
    memo: dict[int, Upstream] = {}

    def fill(protocol: str, upstream: Upstream) -> Upstream:
        new = memo.get(id(upstream))
        if new is None:
            extra = tuple(peers.get((protocol, upstream.name), ())) if upstream.resolve else ()
            new = memo[id(upstream)] = replace(upstream, servers=upstream.servers
                                               + extra) if extra else upstream
        return new

    stream, http = config.stream, config.http
    if stream is not None:
        stream = replace(stream, upstreams=tuple(fill("stream", u) for u in stream.upstreams),
                         servers=tuple(replace(s, upstream=fill("stream", s.upstream)) if s.upstream else s
                                       for s in stream.servers))
    if http is not None:
        servers = []
        for server in http.servers:
            locations = []
            for location in server.locations:
                proxy = location.proxy_pass
                if proxy is not None and proxy.upstream is not None:
                    location = replace(location,
                                       proxy_pass=replace(proxy, upstream=fill("http", proxy.upstream)))
                locations.append(location)
            servers.append(replace(server, locations=tuple(locations)))
        http = replace(http, upstreams=tuple(fill("http", u) for u in http.upstreams), servers=tuple(servers))
    return replace(config, stream=stream, http=http)
