"""`geo [$address] $variable { ... }` (ngx_http_geo_module, ngx_stream_geo_module), read into a `Geo`.

Inside the block: `default VALUE;`, `CIDR VALUE;` (an address alone is a /32 or /128), `delete CIDR;`,
`include FILE;`, `volatile;`; http also `proxy CIDR;` and `proxy_recursive;` (the address is then taken
from X-Forwarded-For when the client is a trusted proxy, as realip does). With `ranges;` the keys are
IPv4 ranges `START-END`: a range written later takes its addresses from the ones before it (which are
cut around it), and `delete START-END` takes them away, as nginx's range table does. Values are plain
strings, as nginx's.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from sheer.config.computed import Geo, Range, Split
from sheer.config.errors import ConfigError, Source
from sheer.config.realip import Network
from sheer.config.template import compile_template
from sheer.config.tree import Block


def build_geo(block: Block, known: frozenset[str], prefixes: tuple[str, ...], http: bool) -> Geo:
    args = block.args
    variable = args[-1]
    if not variable.startswith("$") or len(variable) < 2:
        raise ConfigError(f'invalid variable name "{variable}"', block.source)
    address = None
    if len(args) == 2:
        if not args[0].startswith("$"):
            raise ConfigError(f'invalid variable name "{args[0]}"', block.source)
        address = compile_template(args[0], block.source, known, prefixes)
    entries: list[tuple[str, list[str], Source]] = block.get("entries", [])
    ranges = any(key == "ranges" and not rest for key, rest, _ in entries)
    table = _Ranges() if ranges else None
    networks: dict[Network, str] = {}
    default = ""
    proxies: list[Network] = []
    recursive = volatile = False
    for key, rest, source in entries:
        if not rest and key in ("ranges", "volatile", "proxy_recursive"):
            if key == "proxy_recursive":
                if not http:
                    raise ConfigError('invalid parameter "proxy_recursive"', source)
                recursive = True
            volatile = volatile or key == "volatile"
            continue
        if len(rest) != 1:
            raise ConfigError("invalid number of the geo parameters", source)
        value = rest[0]
        if key == "default":
            default = value
        elif key == "proxy" and http:
            proxies.append(_network(value, source))
        elif key == "delete":
            if table is not None:
                table.delete(*_range(value, source))
            else:
                networks.pop(_network(value, source), None)
        elif table is not None:
            table.add(*_range(key, source), value)
        else:
            networks[_network(key, source)] = value
    ordered = sorted(networks.items(), key=lambda item: (-item[0].prefixlen, item[0].version))
    return Geo(variable[1:], address, tuple(ordered), table.spans() if table is not None else None, default,
               tuple(proxies), recursive, volatile, block.source)


def geos_of(block: Block, known: frozenset[str], prefixes: tuple[str, ...], http: bool) -> tuple[Geo, ...]:
    return tuple(build_geo(child, known, prefixes, http)
                 for child in block.children if child.context == "geo")


def check_unique(taken: Iterable[str], made: tuple[Geo | Split, ...], known: frozenset[str]) -> None:
    """A variable made twice (by two blocks of maps, geos and split_clients, or one sheer has) is nginx's
    error."""
    seen = set(taken)
    for block in made:
        if block.variable in seen or block.variable in known:
            raise ConfigError(f'the duplicate "{block.variable}" variable', block.source)
        seen.add(block.variable)


def _network(text: str, source: Source) -> Network:
    if text == "255.255.255.255":             # nginx's INADDR_NONE: what an address that is none finds
        return ipaddress.ip_network(text)
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise ConfigError(f'invalid network "{text}"', source) from None


def _range(text: str, source: Source) -> tuple[int, int]:
    first, dash, last = text.partition("-")
    try:
        start, end = int(ipaddress.IPv4Address(first)), int(ipaddress.IPv4Address(last))
    except ValueError:
        raise ConfigError(f'invalid range "{text}"', source) from None
    if not dash or end < start:
        raise ConfigError(f'invalid range "{text}"', source)
    return start, end


class _Ranges:
    """Non-overlapping ranges in order; a new range cuts the ones it covers."""

    def __init__(self) -> None:
        self.items: list[Range] = []

    def delete(self, start: int, end: int) -> None:
        kept: list[Range] = []
        for first, last, value in self.items:
            if last < start or first > end:
                kept.append((first, last, value))
                continue
            if first < start:
                kept.append((first, start - 1, value))
            if last > end:
                kept.append((end + 1, last, value))
        self.items = kept

    def add(self, start: int, end: int, value: str) -> None:
        self.delete(start, end)
        self.items.append((start, end, value))
        self.items.sort()

    def spans(self) -> tuple[Range, ...]:
        return tuple(self.items)
