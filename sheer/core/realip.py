"""The client's address as a trusted hop in front tells it (ngx_http_realip_module's rules), sans-IO.

A hop is trusted when the connection's peer is in `set_real_ip_from`. It tells the address in
a PROXY protocol header, or in a request header (`X-Real-IP`, `X-Forwarded-For`, any other):
the rightmost address of the list, or with `real_ip_recursive on` the rightmost one that is not
itself trusted. An address that does not parse leaves the connection's own address in place.
"""

from __future__ import annotations

import ipaddress

from sheer.config.realip import RealIp
from sheer.core.proxy_protocol import ProxyHeader, format_ipv6

Address = tuple[str, int | None]     # host and, when the hop gave one, port


def from_proxy_protocol(real_ip: RealIp | None, peer: str, header: ProxyHeader | None) -> Address | None:
    """The PROXY header's source when `peer` is trusted and the header carries one, else None."""
    if real_ip is None or header is None or header.source is None or not real_ip.trusts(peer):
        return None
    return header.source


def from_header(real_ip: RealIp, peer: str, values: list[str]) -> Address | None:
    """The address a trusted peer's header values (in order received) give, else None."""
    if not values or not real_ip.trusts(peer):
        return None
    items = [item.strip() for item in ", ".join(values).split(",")]
    found: Address | None = None
    for item in reversed(items):
        if not item:
            continue
        address = parse_addr_port(item)
        if address is None:
            return found
        found = address
        if not (real_ip.recursive and real_ip.trusts(address[0])):
            return found
    return found


def parse_addr_port(text: str) -> Address | None:
    """`192.0.2.1`, `192.0.2.1:80`, `2001:db8::1`, `[2001:db8::1]:80` (nginx's ngx_parse_addr_port)."""
    host, port = text, ""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest and not rest.startswith(":"):
            return None
        port = rest[1:]
        if rest and not port:
            return None
    elif text.count(":") == 1:
        host, port = text.split(":")
        if not port:
            return None
    if "%" in host:
        return None
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if port and (not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536):
        return None
    text = str(address) if address.version == 4 else format_ipv6(address.packed)
    return text, (int(port) if port else None)


def for_request(real_ip: RealIp | None, peer: str, proxy: ProxyHeader | None,
                headers: list[tuple[bytes, bytes]]) -> Address | None:
    """http: the address `real_ip_header` gives for this request, or None (keep the peer's)."""
    if real_ip is None:
        return None
    if real_ip.header.lower() == "proxy_protocol":
        return from_proxy_protocol(real_ip, peer, proxy)
    wanted = real_ip.header.lower().encode("latin-1")
    return from_header(real_ip, peer, [value.decode("latin-1") for name, value in headers
                                        if name.lower() == wanted])
