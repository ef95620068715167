"""Whether `allow`/`deny` let a client in (ngx_http_access_module's and ngx_stream_access_module's
handlers): the first rule whose network holds the address decides; none matching lets it in."""

from __future__ import annotations

import ipaddress

from sheer.config.access import AccessRule


def allowed(rules: tuple[AccessRule, ...], address: str) -> bool:
    if not rules:
        return True
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        ip = None
    # nginx checks an IPv4-mapped IPv6 client (::ffff:192.0.2.1) against the IPv4 rules
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    unix = ip is None and address.startswith("unix:")
    for rule in rules:
        network = rule.network
        if rule.unix:       # `allow unix:`: the clients of unix-domain listeners, and only them
            if unix:
                return rule.allow
        elif network is None or (ip is not None and ip.version == network.version and ip in network):
            return rule.allow
    return True


FORBIDDEN = "access forbidden by rule"
