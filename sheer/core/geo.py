"""Looking a `geo` up (ngx_http_geo_variable, ngx_stream_geo_variable): the address (the client's, or the
variable written before the name), the most specific network that holds it, or with `ranges` the range,
else the default. An address that is none (a unix-domain client's, a word) is looked up as
255.255.255.255, as nginx's INADDR_NONE. With `proxy` lines, a client that is a trusted proxy is looked
up by the address its X-Forwarded-For gives (realip's rules)."""

from __future__ import annotations

import bisect
import ipaddress

from sheer.config.computed import Geo
from sheer.config.realip import RealIp
from sheer.core.realip import from_header
from sheer.core.variables import VariableSource, render

_NONE = ipaddress.IPv4Address("255.255.255.255")


class GeoTable:
    """Networks by prefix length, longest first (a lookup costs one dict probe per length written, however
    many networks there are); ranges by their first address (a binary search)."""

    __slots__ = ("geo", "proxies", "starts", "v4", "v6", "volatile")

    def __init__(self, geo: Geo) -> None:
        self.geo = geo
        self.volatile = geo.volatile
        self.starts = [first for first, _, _ in geo.ranges] if geo.ranges is not None else []
        self.proxies = (RealIp(geo.proxies, "X-Forwarded-For", geo.proxy_recursive)
                        if geo.proxies else None)
        by_length: dict[tuple[int, int], dict[int, str]] = {}
        for network, value in geo.networks:
            bits = network.max_prefixlen - network.prefixlen
            by_length.setdefault((network.version, bits), {})[int(network.network_address) >> bits] = value
        self.v4 = [(bits, keys) for (version, bits), keys in sorted(by_length.items()) if version == 4]
        self.v6 = [(bits, keys) for (version, bits), keys in sorted(by_length.items()) if version == 6]

    def evaluate(self, source: VariableSource) -> str:
        geo = self.geo
        if geo.address is not None:
            text = render(geo.address, source)
        else:
            text = source.variable("remote_addr")
            if self.proxies is not None:
                forwarded = source.variable("http_x_forwarded_for")
                found = from_header(self.proxies, text, [forwarded]) if forwarded else None
                if found is not None:
                    text = found[0]
        try:
            address: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(text)
        except ValueError:
            address = _NONE
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped            # nginx looks a mapped address up as IPv4
        number = int(address)
        if geo.ranges is not None:
            if address.version == 6:
                number = int(_NONE)
            index = bisect.bisect_right(self.starts, number) - 1
            if index >= 0:
                first, last, value = geo.ranges[index]
                if first <= number <= last:
                    return value
            return geo.default
        for bits, keys in (self.v4 if address.version == 4 else self.v6):   # the longest prefix first
            hit = keys.get(number >> bits)
            if hit is not None:
                return hit
        return geo.default
