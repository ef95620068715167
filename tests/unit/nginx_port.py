"""nginx's balancing arithmetic, ported line by line from its C for the balancer tests.

Deliberately independent of sheer.core.balancers: its own bitwise CRC32 (ngx_crc32_*), its own
loops shaped like ngx_http_upstream_hash_module.c and ngx_http_upstream_ip_hash_module.c. Tests
compare the peer sheer picks with the one these functions say nginx picks. Every function
assumes all peers usable unless `unusable` says otherwise, as on a fresh nginx worker.
"""

from __future__ import annotations

import struct


def _table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0xEDB88320 if c & 1 else c >> 1
        table.append(c)
    return table


CRC_TABLE = _table()


def ngx_crc32_init() -> int:
    return 0xFFFFFFFF


def ngx_crc32_update(crc: int, data: bytes) -> int:
    for byte in data:
        crc = CRC_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc


def ngx_crc32_final(crc: int) -> int:
    return crc ^ 0xFFFFFFFF


def ngx_crc32_long(data: bytes) -> int:
    return ngx_crc32_final(ngx_crc32_update(ngx_crc32_init(), data))


def hash_peer(key: bytes, weights: list[int], unusable: frozenset[int] = frozenset()) -> int | None:
    """ngx_http_upstream_get_hash_peer: the index nginx picks, None when it falls back to round robin."""
    total_weight = sum(weights)
    hp_hash = 0
    rehash = 0
    tries = 0
    while True:
        h = ngx_crc32_init()
        if rehash > 0:
            h = ngx_crc32_update(h, b"%d" % rehash)          # ngx_sprintf(buf, "%ui", hp->rehash)
        h = ngx_crc32_update(h, key)
        h = ngx_crc32_final(h)
        h = (h >> 16) & 0x7FFF
        hp_hash = (hp_hash + h) & 0xFFFFFFFF                  # uint32_t hp->hash
        rehash += 1
        w = hp_hash % total_weight
        p = 0
        while w >= weights[p]:
            w -= weights[p]
            p += 1
        if p not in unusable:
            return p
        tries += 1
        if tries > 20:
            return None


def chash_points(servers: list[tuple[str, int]]) -> list[tuple[int, str]]:
    """ngx_http_upstream_update_chash: (hash, server name) points, sorted, duplicates removed."""
    points: list[tuple[int, str]] = []
    for name, weight in servers:
        data = name.encode()
        host, port = data, b""
        for j in range(len(data)):                            # scan back for ':' past the digits
            c = data[len(data) - j - 1]
            if c == ord(":"):
                host, port = data[:len(data) - j - 1], data[len(data) - j:]
                break
            if not ord("0") <= c <= ord("9"):
                break
        base = ngx_crc32_init()
        base = ngx_crc32_update(base, host)
        base = ngx_crc32_update(base, b"\0")
        base = ngx_crc32_update(base, port)
        prev = 0
        for _ in range(weight * 160):
            h = ngx_crc32_update(base, struct.pack("<I", prev))   # prev_hash.byte[4], little endian
            h = ngx_crc32_final(h)
            points.append((h, name))
            prev = h
    points.sort(key=lambda point: point[0])
    unique = points[:1]
    for point in points[1:]:
        if point[0] != unique[-1][0]:
            unique.append(point)
    return unique


def chash_peer(key: bytes, servers: list[tuple[str, int]],
               unusable: frozenset[str] = frozenset()) -> str | None:
    """ngx_http_upstream_init_chash_peer + get_chash_peer: the server name nginx picks."""
    points = chash_points(servers)
    h = ngx_crc32_long(key)
    i, j = 0, len(points)                                     # find first point >= hash
    while i < j:
        k = (i + j) // 2
        if h > points[k][0]:
            i = k + 1
        elif h < points[k][0]:
            j = k
        else:
            i = k
            break
    tries = 0
    while True:
        server = points[i % len(points)][1]
        if server not in unusable:
            return server
        i += 1
        tries += 1
        if tries > 20:
            return None


def ip_hash_peer(addr: bytes, weights: list[int], unusable: frozenset[int] = frozenset()) -> int | None:
    """ngx_http_upstream_get_ip_hash_peer for one request; addr is the sockaddr's address bytes."""
    addrlen = 3 if len(addr) == 4 else 16
    total_weight = sum(weights)
    h = 89
    tries = 0
    while True:
        for i in range(addrlen):
            h = (h * 113 + addr[i]) % 6271
        w = h % total_weight
        p = 0
        while w >= weights[p]:
            w -= weights[p]
            p += 1
        if p not in unusable:
            return p
        tries += 1
        if tries > 20:
            return None
