"""The client's address through a hop in front: PROXY protocol and realip directives.

nginx's spellings: `listen ... proxy_protocol` (accept a header), `proxy_protocol on` and
`proxy_protocol_version 1|2` (send one to stream upstreams), `proxy_protocol_timeout`,
`set_real_ip_from`, `real_ip_header`, `real_ip_recursive` (ngx_{http,stream}_realip_module).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sheer.config.errors import ConfigError, Source

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
UNIX_CLIENTS = "unix:"


@dataclass(frozen=True, slots=True)
class RealIp:
    """Which peers are trusted to tell the client's address, and where they tell it."""

    trusted: tuple[Network, ...]
    header: str = "X-Real-IP"      # http: a header name, or "proxy_protocol"; stream: always the PROXY header
    recursive: bool = False        # X-Forwarded-For: skip trusted addresses from the right
    unix: bool = False             # `set_real_ip_from unix:`: clients of unix-domain listeners are trusted

    def trusts(self, host: str) -> bool:
        if host.startswith("unix:"):
            return self.unix
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
        return any(address in net or (mapped is not None and mapped in net) for net in self.trusted)


# --- converters (used by the directive table) --------------------------------------------------

def network(args: list[str], source: Source) -> Network | str:
    """`set_real_ip_from 192.0.2.0/24 | 2001:db8::/32 | 192.0.2.1 | name`: a name (nginx resolves it at
    load, every address trusted alone) stays a string until the builder resolves it."""
    text = args[0]
    if text == UNIX_CLIENTS:
        return text        # nginx (ngx_http_realip_from): exactly "unix:", every unix-domain client
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        if "/" in text or ":" in text:
            raise ConfigError(f'invalid parameter "{text}"', source) from None
        return text


def protocol_version(args: list[str], source: Source) -> int:
    if args[0] not in ("1", "2"):
        raise ConfigError(f'invalid value "{args[0]}" in "proxy_protocol_version" directive, it must be "1" '
                          'or "2"',
                          source)
    return int(args[0])


# --- building ----------------------------------------------------------------------------------

def _inherited(chain: list[Any], key: str, default: Any) -> Any:
    for block in chain:
        if key in block.settings:
            return block.settings[key]
    return default


# How a name in set_real_ip_from becomes networks (sheer.config.names.Names.networks).
ResolveNetworks = Callable[[str, Source | None], list[Network]]


def _trusted(chain: list[Any], resolve: ResolveNetworks) -> tuple[tuple[Network, ...], bool]:
    """The trusted networks, and whether `set_real_ip_from unix:` trusts unix-domain clients."""
    # nginx: a level's set_real_ip_from list replaces the outer one wholesale.
    found: list[Network] = []
    unix = False
    for net, source in _inherited(chain, "set_real_ip_from", []):
        if net == UNIX_CLIENTS:
            unix = True
            continue
        found.extend(resolve(net, source) if isinstance(net, str) else [net])
    return tuple(found), unix


def http_real_ip(chain: list[Any], resolve: ResolveNetworks) -> RealIp | None:
    trusted, unix = _trusted(chain, resolve)
    if not trusted and not unix:
        return None
    return RealIp(trusted, _inherited(chain, "real_ip_header", ["X-Real-IP"])[0],
                  _inherited(chain, "real_ip_recursive", False), unix)


def stream_options(chain: list[Any], resolve: ResolveNetworks) -> dict[str, Any]:
    """The StreamServer fields of this module, checked."""
    trusted, unix = _trusted(chain, resolve)
    sending = _inherited(chain, "proxy_protocol", False)
    if sending and _inherited(chain, "proxy_responses", None) == 0:
        bind = _inherited(chain, "proxy_bind", ["off"])
        if "$remote_port" in bind[0] or "${remote_port}" in bind[0]:
            where = next((block.sources["proxy_protocol"] for block in chain
                          if "proxy_protocol" in block.sources),
                         None)
            raise ConfigError('"proxy_protocol on" cannot be used with direct server return: the datagrams '
                              "leave sheer as the client sent them", where)
    return {
        "proxy_protocol": sending,
        "proxy_protocol_version": _inherited(chain, "proxy_protocol_version", 1),
        "proxy_protocol_timeout": _inherited(chain, "proxy_protocol_timeout", 30.0),
        "real_ip": RealIp(trusted, "proxy_protocol", unix=unix) if trusted or unix else None,
    }
