"""`hash KEY`: crc32 of the key picks a point of the weight range, rehashing with a counter
prefix while the peer is unusable; after 20 misses round robin decides
(ngx_http_upstream_hash_module.c, ngx_http_upstream_get_hash_peer). Compatible with
Cache::Memcached, and with nginx: the same key picks the same server in both."""

from __future__ import annotations

from zlib import crc32

from sheer.core.balancers.round_robin import Peer, RoundRobin, Tried

# The counter prefixes nginx writes with "%ui" before the key, precomputed: no formatting per pick.
_REHASH_PREFIX = [crc32(b"%d" % n) for n in range(64)]


class Hash(RoundRobin):
    def start(self, tries_limit: int = 0, key: bytes = b"") -> Tried:
        tried = super().start(tries_limit)
        tried.key = key
        return tried

    def get(self, tried: Tried, now: float) -> Peer | None:
        if tried.left <= 0:
            return None
        key = tried.key
        if tried.spins > 20 or len(self.primary) < 2 or not key:
            return super().get(tried, now)
        while True:
            # ((crc32([REHASH] KEY) >> 16) & 0x7fff) + PREV_HASH, REHASH omitted the first time
            rehash = tried.rehash
            if rehash == 0:
                value = crc32(key)
            else:
                prefix = _REHASH_PREFIX[rehash] if rehash < 64 else crc32(b"%d" % rehash)
                value = crc32(key, prefix)
            tried.hash = (tried.hash + ((value >> 16) & 0x7FFF)) & 0xFFFFFFFF
            tried.rehash = rehash + 1
            peer = self.by_weight(tried.hash % self.total_weight)
            if self.usable(peer, tried, now):
                return self.take(peer, tried, now)
            tried.spins += 1
            if tried.spins > 20:
                return super().get(tried, now)
