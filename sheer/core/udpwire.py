"""IPv4/UDP datagram building for the DSR sender (sans-IO): the client's ip:port as the source."""

from __future__ import annotations

import array
import struct

_IP_HEADER = struct.Struct("!BBHHHBBH4s4s")
_UDP_HEADER = struct.Struct("!HHHH")
IPPROTO_UDP = 17
MAX_UDP_PAYLOAD = 65535 - 20 - 8


def checksum(data: bytes) -> int:
    """RFC 1071 ones' complement sum, computed on native-order words (byte-order independent),
    returned as the value to store in native order."""
    if len(data) % 2:
        data += b"\0"
    total = sum(array.array("H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def udp_datagram(src: bytes, sport: int, dst: bytes, dport: int, payload: bytes, ttl: int = 64) -> bytes:
    """A whole IPv4 packet. `src`/`dst` are 4-byte addresses. The kernel fills in the IP
    header's checksum, total length and id when sent on an IP_HDRINCL socket; the UDP checksum
    is ours and must be right (veth would hide a wrong one: it never verifies)."""
    length = 8 + len(payload)
    udp = _UDP_HEADER.pack(sport, dport, length, 0) + payload
    pseudo = src + dst + struct.pack("!BBH", 0, IPPROTO_UDP, length)
    value = checksum(pseudo + udp) or 0xFFFF
    udp = udp[:6] + struct.pack("=H", value) + udp[8:]
    header = _IP_HEADER.pack(0x45, 0, 20 + length, 0, 0, ttl, IPPROTO_UDP, 0, src, dst)
    return header + udp


_IP6_HEADER = struct.Struct("!IHBB16s16s")
MAX_UDP6_PAYLOAD = 65535 - 8       # IPv6's payload length counts the UDP header, not the fixed header


def udp6_datagram(src: bytes, sport: int, dst: bytes, dport: int, payload: bytes,
                  hop_limit: int = 64) -> bytes:
    """A whole IPv6 packet (no extension headers). `src`/`dst` are 16-byte addresses. The kernel
    fills in nothing on a raw IPv6 socket with the header included: the payload length is ours, and
    the UDP checksum is mandatory in IPv6 (RFC 8200 8.1: a zero checksum is dropped by the receiver),
    over a pseudo-header of both addresses, the 32-bit length and the next header."""
    length = 8 + len(payload)
    udp = _UDP_HEADER.pack(sport, dport, length, 0) + payload
    pseudo = src + dst + struct.pack("!IxxxB", length, IPPROTO_UDP)
    value = checksum(pseudo + udp) or 0xFFFF
    udp = udp[:6] + struct.pack("=H", value) + udp[8:]
    return _IP6_HEADER.pack(6 << 28, length, IPPROTO_UDP, hop_limit, src, dst) + udp
