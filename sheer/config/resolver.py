"""`resolver ADDRESS ... [valid=TIME] [ipv4=on|off] [ipv6=on|off] [status_zone=NAME]` and
`resolver_timeout TIME` (ngx_resolver_create, ngx_http_core_module, ngx_stream_core_module, and
the upstream block since nginx 1.27.3): the DNS servers that names are re-resolved with while
sheer runs, for `server NAME resolve` and for `proxy_pass http://$variable`.

Where they apply, as in nginx: a location or stream server uses its own, else its server's,
else the http/stream block's; an upstream block uses its own, else the http/stream block's
(not a server's: an upstream belongs to no server).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from sheer.config.errors import ConfigError, Source
from sheer.config.values import HostPort, parse_host_port, parse_time

DEFAULT_TIMEOUT = 30.0          # resolver_timeout
DNS_PORT = 53
PEERS_PER_NAME = 16             # peers one `server NAME resolve` may have (nginx: as many as the zone holds)


@dataclass(frozen=True, slots=True)
class Resolver:
    """The DNS servers to ask and how (the merged `resolver` and `resolver_timeout`)."""

    servers: tuple[tuple[str, int], ...]      # (address, port), asked in turn
    valid: float | None = None                # valid=: overrides the answers' TTL
    ipv4: bool = True                         # ask A records
    ipv6: bool = True                         # ask AAAA records (nginx's default since 1.5.8)
    timeout: float = DEFAULT_TIMEOUT          # resolver_timeout: one resolution, all retries included
    status_zone: str | None = None            # nginx Plus: accepted; sheer has no /resolvers in its API
    source: Source | None = None

    @property
    def names(self) -> str:
        """How the log names the servers: "127.0.0.53:53, [::1]:53"."""
        return ", ".join(f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
                         for host, port in self.servers)


@dataclass(frozen=True, slots=True)
class ResolverArgs:
    """`resolver ...` as written; name servers given by name are looked up when the config is built."""

    servers: tuple[tuple[HostPort, str], ...]
    valid: float | None
    ipv4: bool
    ipv6: bool
    status_zone: str | None
    source: Source


def _flag(word: str, source: Source) -> bool:
    value = word.partition("=")[2]
    if value not in ("on", "off"):
        raise ConfigError(f"invalid parameter: {word}", source)
    return value == "on"


def resolver_args(args: list[str], source: Source) -> ResolverArgs:
    """The directive's arguments, checked with nginx's wording (ngx_resolver_create)."""
    servers: list[tuple[HostPort, str]] = []
    valid: float | None = None
    ipv4 = ipv6 = True
    zone: str | None = None
    for word in args:
        if word.startswith("valid="):
            try:
                valid = parse_time(word[6:], "resolver", source)
            except ConfigError:
                raise ConfigError(f"invalid parameter: {word}", source) from None
        elif word.startswith("ipv4="):
            ipv4 = _flag(word, source)
        elif word.startswith("ipv6="):
            ipv6 = _flag(word, source)
        elif word.startswith("status_zone="):
            zone = word[12:]
            if not zone:
                raise ConfigError(f"invalid parameter: {word}", source)
        else:
            try:
                address = parse_host_port(word, source)
            except ConfigError as exc:
                raise ConfigError(f'{exc.message.split(" in ")[0]} in resolver "{word}"', source) from None
            servers.append((address, word))
    if not ipv4 and not ipv6:
        raise ConfigError('"ipv4" and "ipv6" cannot both be "off"', source)
    if not servers:
        raise ConfigError("no name servers defined", source)
    return ResolverArgs(tuple(servers), valid, ipv4, ipv6, zone, source)


def _inherited(chain: list[Any], key: str) -> tuple[Any, Source | None] | None:
    for block in chain:
        if key in block.settings:
            return block.settings[key], block.sources.get(key)
    return None


class NameServers(Protocol):
    """How `resolver NAME` finds its name servers at load (sheer.config.names.Names)."""

    def name_servers(self, host: str, text: str, source: Source | None) -> tuple[str, ...]: ...


def effective(chain: list[Any], names: NameServers) -> Resolver | None:
    """The resolver in effect for the innermost block of `chain` (innermost first), with its
    timeout; None when no level names one (nginx: "no resolver defined to resolve ...")."""
    found = _inherited(chain, "resolver")
    if found is None:
        return None
    args: ResolverArgs = found[0]
    timeout = _inherited(chain, "resolver_timeout")
    servers: list[tuple[str, int]] = []
    for address, text in args.servers:
        for host in names.name_servers(address.host, text, args.source):
            servers.append((host, address.port or DNS_PORT))
    return Resolver(tuple(dict.fromkeys(servers)), args.valid, args.ipv4, args.ipv6,
                    timeout[0] if timeout else DEFAULT_TIMEOUT, args.status_zone, args.source)
