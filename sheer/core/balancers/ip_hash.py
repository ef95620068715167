"""`ip_hash` (http): the first three octets of the client's IPv4 address (all 16 bytes of an IPv6
one) drive a `hash = (hash * 113 + byte) % 6271` walk from 89 over the weight range; after 20
unusable picks round robin decides (ngx_http_upstream_ip_hash_module.c)."""

from __future__ import annotations

import ipaddress

from sheer.core.balancers.round_robin import Peer, RoundRobin, Tried

_PSEUDO = b"\0\0\0"     # nginx's ngx_http_upstream_ip_hash_pseudo_addr, for non-IP clients


def address_bytes(text: bytes) -> bytes:
    """What nginx hashes of $remote_addr: 3 bytes of IPv4, 16 of IPv6."""
    try:
        address = ipaddress.ip_address(text.decode("latin-1"))
    except ValueError:
        return _PSEUDO
    return address.packed[:3] if address.version == 4 else address.packed


class IpHash(RoundRobin):
    def start(self, tries_limit: int = 0, key: bytes = b"") -> Tried:
        tried = super().start(tries_limit)
        tried.key = address_bytes(key)
        tried.hash = 89
        return tried

    def get(self, tried: Tried, now: float) -> Peer | None:
        if tried.left <= 0:
            return None
        if tried.spins > 20 or len(self.primary) < 2:
            return super().get(tried, now)
        value = tried.hash
        while True:
            for byte in tried.key:
                value = (value * 113 + byte) % 6271
            peer = self.by_weight(value % self.total_weight)
            if self.usable(peer, tried, now):
                tried.hash = value
                return self.take(peer, tried, now)
            tried.spins += 1
            if tried.spins > 20:
                return super().get(tried, now)
