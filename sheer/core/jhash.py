"""The kernel's jhash (Bob Jenkins' lookup3, as include/linux/jhash.h has it) and the flow key both
of sheer's DSR paths hash, so user space and the kernel pick the same Maglev slot for a client.

nftables computes `jhash ip saddr . udp sport mod N seed S` (net/netfilter/nft_hash.c) as
`reciprocal_scale(jhash(reg, len, S), N)`: the registers hold the concatenation with every
field padded to 4 bytes (`ip saddr` 4 bytes, `udp sport` 2 bytes + 2 zero bytes: len 8), and
"mod" is a multiply-shift, not a remainder. `flow_key()` builds exactly those register bytes and
`slot()` the same arithmetic, so `slot(flow_key(addr, port), N)` is the entry nft reads.

jhash reads whole 12-byte blocks as native-endian words and assembles the tail byte by byte in
little-endian order; keys up to 12 bytes (IPv4 with a port) therefore hash the same on every CPU,
longer ones (IPv6) as on little-endian CPUs (x86, arm64), which is what this implements.
"""

from __future__ import annotations

import ipaddress

# sheer's fixed seed ("shee"): every sheer instance and every kernel table uses it, so a fleet
# agrees on where a client goes. Changing it moves every client.
SEED = 0x73686565
_INITVAL = 0xDEADBEEF
_M = 0xFFFFFFFF


def _rol(x: int, k: int) -> int:
    return ((x << k) | (x >> (32 - k))) & _M


def _final(a: int, b: int, c: int) -> int:
    # __jhash_final, rotations written out: this runs once per datagram on the user-space path
    m = _M
    c = ((c ^ b) - (((b << 14) | (b >> 18)) & m)) & m
    a = ((a ^ c) - (((c << 11) | (c >> 21)) & m)) & m
    b = ((b ^ a) - (((a << 25) | (a >> 7)) & m)) & m
    c = ((c ^ b) - (((b << 16) | (b >> 16)) & m)) & m
    a = ((a ^ c) - (((c << 4) | (c >> 28)) & m)) & m
    b = ((b ^ a) - (((a << 14) | (a >> 18)) & m)) & m
    return ((c ^ b) - (((b << 24) | (b >> 8)) & m)) & m


def _mix(a: int, b: int, c: int) -> tuple[int, int, int]:
    a = ((a - c) & _M) ^ _rol(c, 4)
    c = (c + b) & _M
    b = ((b - a) & _M) ^ _rol(a, 6)
    a = (a + c) & _M
    c = ((c - b) & _M) ^ _rol(b, 8)
    b = (b + a) & _M
    a = ((a - c) & _M) ^ _rol(c, 16)
    c = (c + b) & _M
    b = ((b - a) & _M) ^ _rol(a, 19)
    a = (a + c) & _M
    c = ((c - b) & _M) ^ _rol(b, 4)
    b = (b + a) & _M
    return a, b, c


def jhash(data: bytes, seed: int = SEED) -> int:
    """jhash(key, length, initval) of include/linux/jhash.h."""
    length = len(data)
    a = b = c = (_INITVAL + length + seed) & _M
    at = 0
    while length > 12:
        a = (a + int.from_bytes(data[at:at + 4], "little")) & _M
        b = (b + int.from_bytes(data[at + 4:at + 8], "little")) & _M
        c = (c + int.from_bytes(data[at + 8:at + 12], "little")) & _M
        a, b, c = _mix(a, b, c)
        length -= 12
        at += 12
    if length == 0:
        return c
    if length == 8 and at == 0:        # IPv4 address and port: the common key
        return _final((a + int.from_bytes(data[0:4], "little")) & _M,
                      (b + int.from_bytes(data[4:8], "little")) & _M, c)
    tail = data[at:] + bytes(12 - length)
    a = (a + int.from_bytes(tail[0:4], "little")) & _M
    b = (b + int.from_bytes(tail[4:8], "little")) & _M
    c = (c + int.from_bytes(tail[8:12], "little")) & _M
    return _final(a, b, c)


def slot(key: bytes, size: int, seed: int = SEED) -> int:
    """nft's `jhash ... mod size seed S`: reciprocal_scale(jhash(key), size), in [0, size)."""
    return (jhash(key, seed) * size) >> 32


def flow_key(packed: bytes, port: int | None = None) -> bytes:
    """The nft registers of `ip saddr [. udp sport]` (or `ip6 saddr`): the address's bytes and,
    with a port, its two bytes in network order padded to a 4-byte register."""
    if port is None:
        return packed
    return packed + port.to_bytes(2, "big") + b"\0\0"


def address_key(address: str, port: int | None = None) -> bytes:
    """flow_key() from the text of an address ("192.0.2.1", "2001:db8::1"); b"" when it is none."""
    try:
        packed = ipaddress.ip_address(address).packed
    except ValueError:
        return b""
    return flow_key(packed, port)
