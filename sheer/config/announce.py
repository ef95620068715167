"""sheer-only: announce a service address (VIP) over BGP through the local routing daemon (BIRD 2)
while this instance can serve it, so a router in front spreads flows over every instance that does
(ECMP) and forgets the ones that stop (sheer.runtime.announce, sheer.net.announce).

    announce 192.168.100.10;                        # one line per VIP (IPv4)
    announce_bird_socket /run/bird/bird.ctl;        # BIRD's control socket (birdc -s)
    announce_bird_fragment /etc/bird/sheer.conf;    # the file `sheer net apply` writes for BIRD to include
    announce_withdraw_delay 1s;                     # on -s quit: withdraw, wait this long, then drain

All in the main context. A VIP must be served: some `listen` of a stream or http server is that
address or a wildcard.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, ip_address
from typing import Any

from sheer.config.errors import ConfigError, Source

DEFAULT_SOCKET = "/run/bird/bird.ctl"       # Debian's bird2
DEFAULT_FRAGMENT = "/etc/bird/sheer.conf"
DEFAULT_WITHDRAW_DELAY = 1.0


@dataclass(frozen=True, slots=True)
class Announce:
    address: str
    source: Source | None = None


@dataclass(frozen=True, slots=True)
class Announcing:
    """What the configuration says about announcing: the VIPs, and where BIRD is."""

    vips: tuple[Announce, ...] = ()
    bird_socket: str = DEFAULT_SOCKET
    bird_fragment: str = DEFAULT_FRAGMENT
    withdraw_delay: float = DEFAULT_WITHDRAW_DELAY

    def __bool__(self) -> bool:
        return bool(self.vips)


def announce_arg(args: list[str], src: Source) -> Announce:
    text = args[0]
    try:
        address = ip_address(text)
    except ValueError:
        raise ConfigError(f'"announce" takes an IPv4 address, got "{text}"', src) from None
    if not isinstance(address, IPv4Address):
        raise ConfigError(f'"announce {text}": only IPv4 addresses are announced yet', src)
    if address.is_unspecified or address.is_loopback or address.is_multicast:
        raise ConfigError(f'"announce {text}": a service address cannot be {_kind(address)}', src)
    return Announce(str(address), src)


def _kind(address: IPv4Address) -> str:
    if address.is_unspecified:
        return "the wildcard address"
    return "a loopback address" if address.is_loopback else "a multicast address"


def path_arg(name: str) -> Any:
    def convert(args: list[str], src: Source) -> str:
        if not args[0] or "\n" in args[0] or '"' in args[0]:
            raise ConfigError(f'"{name}" takes a file path, got "{args[0]}"', src)
        return args[0]
    return convert


def covers(listen: Any, address: str) -> bool:
    """A `listen` receives the VIP's traffic: it is that address, or IPv4's wildcard (or IPv6's, when
    it takes IPv4 too: `ipv6only=off`)."""
    return listen.host in (address, "", "0.0.0.0") or (listen.host == "::" and not listen.ipv6only)


def build(settings: dict[str, Any], path: Any, listens: list[Any]) -> Announcing:
    """The main context's announce directives; `path` makes a path absolute (the prefix), `listens`
    every `listen` of the configuration (a VIP nobody listens on is an error)."""
    entries: list[tuple[Announce, Source]] = settings.get("announce", [])
    seen: set[str] = set()
    for vip, source in entries:
        if vip.address in seen:
            raise ConfigError(f'duplicate "announce {vip.address}"', source)
        seen.add(vip.address)
        if not any(covers(listen, vip.address) for listen in listens):
            raise ConfigError(f'"announce {vip.address}": no server listens on it (add "listen '
                              f'{vip.address}:PORT" or a wildcard "listen PORT" to the server that serves '
                              "it)", source)
    return Announcing(
        tuple(vip for vip, _ in entries),
        path(settings.get("announce_bird_socket", DEFAULT_SOCKET)),
        path(settings.get("announce_bird_fragment", DEFAULT_FRAGMENT)),
        settings.get("announce_withdraw_delay", DEFAULT_WITHDRAW_DELAY),
    )
