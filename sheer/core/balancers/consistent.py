"""`hash KEY consistent`: ketama, compatible with nginx and Cache::Memcached::Fast, so nginx and
sheer send a key to the same server and adding or removing a server moves about 1/n of keys
(ngx_http_upstream_hash_module.c, ngx_http_upstream_update_chash / get_chash_peer).

Each server gets `weight * 160` points on a 32-bit circle: crc32(HOST "\\0" PORT PREV_HASH),
HOST and PORT split from the address *as written* in the config, PREV_HASH the previous point as
4 little-endian bytes (0 at first). A key's crc32 finds the first point at or above it; an
unusable server moves the search to the next point, 20 times, then round robin decides.
"""

from __future__ import annotations

from bisect import bisect_left
from zlib import crc32

from sheer.config.model import UpstreamServer
from sheer.core.balancers.round_robin import Peer, RoundRobin, Tried


def ketama_name(server: UpstreamServer) -> tuple[bytes, bytes]:
    """HOST and PORT as nginx splits `server->name`: the digits after the last colon are the port."""
    text = (server.text or server.name).encode()
    if text[:5].lower() == b"unix:":
        return text[5:], b""          # nginx: a unix-domain socket's path, no port
    head, colon, tail = text.rpartition(b":")
    if colon and tail.isdigit():
        return head, tail
    return text, b""


def ketama_points(servers: list[UpstreamServer]) -> list[tuple[int, int]]:
    """(point, server position) sorted by point, duplicates dropped as nginx does."""
    points: list[tuple[int, int]] = []
    for position, server in enumerate(servers):
        host, port = ketama_name(server)
        base = crc32(port, crc32(b"\0", crc32(host)))
        previous = 0
        for _ in range(server.weight * 160):
            previous = crc32(previous.to_bytes(4, "little"), base)
            points.append((previous, position))
    points.sort(key=lambda point: point[0])
    unique = points[:1]
    for point in points[1:]:
        if point[0] != unique[-1][0]:
            unique.append(point)
    return unique


class ConsistentHash(RoundRobin):
    def derive(self) -> None:
        super().derive()
        points = ketama_points([peer.server for peer in self.primary])
        self._hashes = [point for point, _ in points]
        # nginx compares the point's server *name*: every peer written the same way shares it.
        by_name: dict[str, list[Peer]] = {}
        for peer in self.primary:
            by_name.setdefault(peer.server.text or peer.server.name, []).append(peer)
        names = [peer.server.text or peer.server.name for peer in self.primary]
        self._owners = [by_name[names[position]] for _, position in points]

    def start(self, tries_limit: int = 0, key: bytes = b"") -> Tried:
        tried = super().start(tries_limit)
        tried.key = key
        if self._hashes:
            tried.hash = bisect_left(self._hashes, crc32(key))   # the first point >= the key's hash
        return tried

    def get(self, tried: Tried, now: float) -> Peer | None:
        if tried.left <= 0:
            return None
        if tried.spins > 20 or len(self.primary) < 2 or not tried.key:
            return super().get(tried, now)
        owners = self._owners
        count = len(owners)
        while True:
            best: Peer | None = None
            total = 0
            for peer in owners[tried.hash % count]:
                if not self.usable(peer, tried, now):
                    continue
                peer.current_weight += peer.effective_weight
                total += peer.effective_weight
                if peer.effective_weight < peer.server.weight:
                    peer.effective_weight += 1
                if best is None or peer.current_weight > best.current_weight:
                    best = peer
            if best is not None:
                best.current_weight -= total
                return self.take(best, tried, now)
            tried.hash += 1
            tried.spins += 1
            if tried.spins > 20:
                return super().get(tried, now)
