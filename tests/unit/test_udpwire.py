"""The DSR sender's IPv4/UDP packets: header fields and the UDP checksum, checked against an
independent big-endian RFC 768/1071 implementation (veth never verifies checksums, so a wrong
one would only show on real NICs)."""

from __future__ import annotations

import socket
import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from sheer.core.udpwire import udp6_datagram, udp_datagram


def reference_checksum(src: bytes, dst: bytes, sport: int, dport: int, payload: bytes) -> int:
    length = 8 + len(payload)
    data = src + dst + struct.pack("!BBH", 0, 17, length) + struct.pack("!HHHH", sport, dport, length,
                                                                        0) + payload
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return (~total & 0xFFFF) or 0xFFFF


def test_header_fields() -> None:
    src, dst = socket.inet_aton("192.168.99.1"), socket.inet_aton("172.16.0.11")
    packet = udp_datagram(src, 40000, dst, 53, b"query")
    version_ihl, _tos, total, _id, _frag, ttl, proto, _csum, got_src, got_dst = struct.unpack(
        "!BBHHHBBH4s4s", packet[:20])
    assert (version_ihl, total, ttl, proto, got_src, got_dst) == (0x45, 20 + 8 + 5, 64, 17, src, dst)
    sport, dport, length, _ = struct.unpack("!HHHH", packet[20:28])
    assert (sport, dport, length) == (40000, 53, 13)
    assert packet[28:] == b"query"


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=4, max_size=4), st.binary(min_size=4, max_size=4),
       st.integers(0, 65535), st.integers(0, 65535), st.binary(max_size=600))
def test_udp_checksum_matches_the_reference(src: bytes, dst: bytes, sport: int, dport: int,
                                            payload: bytes) -> None:
    packet = udp_datagram(src, sport, dst, dport, payload)
    assert struct.unpack("!H", packet[26:28])[0] == reference_checksum(src, dst, sport, dport, payload)


def test_a_zero_sum_is_sent_as_all_ones() -> None:
    # RFC 768: a computed checksum of zero is transmitted as 0xFFFF (zero means "no checksum").
    src = dst = bytes(4)
    for port in range(65536):
        if reference_checksum(src, dst, port, 0, b"") == 0xFFFF:
            packet = udp_datagram(src, port, dst, 0, b"")
            assert packet[26:28] == b"\xff\xff"
            return
    raise AssertionError("no zero-sum case found")



def reference_checksum6(src: bytes, dst: bytes, sport: int, dport: int, payload: bytes) -> int:
    """RFC 8200 8.1's pseudo-header: source, destination, 32-bit upper-layer length, 3 zero bytes, 17."""
    length = 8 + len(payload)
    data = (src + dst + struct.pack("!I", length) + b"\0\0\0\x11"
            + struct.pack("!HHHH", sport, dport, length, 0) + payload)
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return (~total & 0xFFFF) or 0xFFFF


def test_ipv6_header_fields() -> None:
    src = socket.inet_pton(socket.AF_INET6, "fd00:99::1")
    dst = socket.inet_pton(socket.AF_INET6, "fd00:16::11")
    packet = udp6_datagram(src, 40000, dst, 53, b"query")
    first, plen, nexthdr, hops, got_src, got_dst = struct.unpack("!IHBB16s16s", packet[:40])
    assert (first >> 28, plen, nexthdr, hops, got_src, got_dst) == (6, 8 + 5, 17, 64, src, dst)
    assert struct.unpack("!HHH", packet[40:46]) == (40000, 53, 13)
    assert packet[48:] == b"query"


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=16, max_size=16), st.binary(min_size=16, max_size=16),
       st.integers(0, 65535), st.integers(0, 65535), st.binary(max_size=600))
def test_ipv6_udp_checksum_matches_the_reference(src: bytes, dst: bytes, sport: int, dport: int,
                                                 payload: bytes) -> None:
    packet = udp6_datagram(src, sport, dst, dport, payload)
    assert struct.unpack("!H", packet[46:48])[0] == reference_checksum6(src, dst, sport, dport, payload)
    assert packet[46:48] != b"\0\0"                       # mandatory in IPv6: never "no checksum"
