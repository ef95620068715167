"""PROXY protocol v1/v2: the specification's examples, nginx's output, strictness, and fuzzing."""

from __future__ import annotations

import ipaddress
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sheer.core.proxy_protocol import (
    NEED_MORE,
    PP2_TYPE_ALPN,
    PP2_TYPE_CRC32C,
    PP2_TYPE_NOOP,
    V1_MAX,
    V2_MAX,
    V2_SIGNATURE,
    Malformed,
    NeedMore,
    Parsed,
    ProxyHeader,
    parse,
    tlv_value,
    tlv_variable,
    v1,
    v2,
)

FUZZ = settings(max_examples=300, deadline=None)
F6 = ":".join(["ffff"] * 8)


def parsed(data: bytes) -> Parsed:
    result = parse(data)
    assert isinstance(result, Parsed), result
    return result


def assert_byte_by_byte(header: bytes, payload: bytes = b"GET / HTTP/1.1\r\n") -> Parsed:
    """Every strict prefix of a valid header needs more; the whole header parses, payload untouched."""
    for cut in range(len(header)):
        assert parse(header[:cut]) == NEED_MORE, (cut, header[:cut])
    result = parsed(header + payload)
    assert result.length == len(header)
    return result


# --- the specification's version 1 examples (section 2.1) -------------------------------------

@pytest.mark.parametrize(("line", "length"), [
    (b"PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n", 56),
    (f"PROXY TCP6 {F6} {F6} 65535 65535\r\n".encode(), 104),
    (b"PROXY UNKNOWN\r\n", 15),
    (f"PROXY UNKNOWN {F6} {F6} 65535 65535\r\n".encode(), 107),
])
def test_spec_worst_case_lines(line: bytes, length: int) -> None:
    assert len(line) == length
    assert assert_byte_by_byte(line).length == length


def test_spec_example_tcp4() -> None:
    result = assert_byte_by_byte(b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n")
    assert result.header == ProxyHeader(1, family="inet", source=("192.168.0.1", 56324),
                                        destination=("192.168.0.11", 443))


def test_unknown_carries_no_address() -> None:
    header = parsed(f"PROXY UNKNOWN {F6} {F6} 65535 65535\r\n".encode()).header
    assert header.source is None and header.destination is None


def test_v1_line_longer_than_107_bytes_is_refused() -> None:
    line = f"PROXY UNKNOWN {F6} {F6} 65535 655355\r\n".encode()
    assert len(line) == V1_MAX + 1
    assert isinstance(parse(line), Malformed)
    assert isinstance(parse(line[:V1_MAX]), Malformed)   # no CRLF within 107 bytes: decided already


@pytest.mark.parametrize("line", [
    b"PROXY TCP4 192.168.0.01 192.168.0.11 56324 443\r\n",    # leading zero (octal confusion)
    b"PROXY TCP4 192.168.0.1 192.168.0.11 056324 443\r\n",    # leading zero in a port
    b"PROXY TCP4 192.168.0.1 192.168.0.11 65536 443\r\n",     # port out of range
    b"PROXY TCP4 192.168.0.1 192.168.0.11 -1 443\r\n",
    b"PROXY TCP4 2001:db8::1 192.168.0.11 56324 443\r\n",     # family mismatch
    b"PROXY TCP6 192.168.0.1 2001:db8::1 56324 443\r\n",
    b"PROXY TCP6 fe80::1%eth0 2001:db8::1 56324 443\r\n",     # zone ids are not addresses on the wire
    b"PROXY TCP4 192.168.0.1  192.168.0.11 56324 443\r\n",    # two spaces
    b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443 \r\n",    # trailing space
    b"PROXY TCP4 192.168.0.1 192.168.0.11 56324\r\n",         # a field missing
    b"PROXY tcp4 192.168.0.1 192.168.0.11 56324 443\r\n",     # keywords are upper case
    b"PROXY UDP4 192.168.0.1 192.168.0.11 56324 443\r\n",
    b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\n",       # LF without CR
    b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\rX\n",
    b"PROXY TCP4 example.com 192.168.0.11 56324 443\r\n",
    b"PROXY  TCP4 192.168.0.1 192.168.0.11 56324 443\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",                    # a client that speaks no PROXY at all
    b"proxy TCP4 1.2.3.4 1.2.3.4 1 1\r\n",
])
def test_v1_strictness(line: bytes) -> None:
    result = parse(line)
    assert isinstance(result, Malformed), result
    assert result.reason.startswith('broken header: "')


def test_v1_garbage_is_refused_at_the_first_wrong_byte() -> None:
    assert isinstance(parse(b"G"), Malformed)
    assert isinstance(parse(b"PROXX"), Malformed)
    assert isinstance(parse(b"\r\n\r\n\x00\r\nQUIX"), Malformed)


def test_error_names_what_the_client_sent_on_one_line() -> None:
    assert parse(b'GET /"x" HTTP/1.1\r\nHost: a\r\n').reason == 'broken header: "GET /\\"x\\" HTTP/1.1"'  # type: ignore[union-attr]


# --- writing version 1, as nginx does ---------------------------------------------------------

def test_v1_nginx_output() -> None:
    # nginx 1.x in front of netcat: "PROXY TCP4 172.19.0.1 172.19.0.3 42272 80" then the request.
    assert v1(("172.19.0.1", 42272), ("172.19.0.3", 80)) == b"PROXY TCP4 172.19.0.1 172.19.0.3 42272 80\r\n"
    assert v1(("2001:db8::1", 1), ("2001:db8::2", 443)) == b"PROXY TCP6 2001:db8::1 2001:db8::2 1 443\r\n"
    assert v1(None, None) == b"PROXY UNKNOWN\r\n"


# --- version 2 --------------------------------------------------------------------------------

HAPROXY_V2 = bytes.fromhex("0d0a0d0a000d0a515549540a" "2111000c" "ac130001ac130003" "a652" "0050")


def test_v2_haproxy_capture() -> None:
    # haproxy `send-proxy-v2` toward netcat: 172.19.0.1:42578 -> 172.19.0.3:80, no TLVs.
    result = assert_byte_by_byte(HAPROXY_V2)
    assert result.header == ProxyHeader(2, family="inet", transport="stream", source=("172.19.0.1", 42578),
                                        destination=("172.19.0.3", 80))
    assert v2(("172.19.0.1", 42578), ("172.19.0.3", 80)) == HAPROXY_V2


def test_v2_nginx_layout() -> None:
    # nginx's proxy_protocol_version 2: 0x21 (v2, PROXY), 0x11 (INET, STREAM), len 12, no TLVs.
    header = v2(("127.0.0.1", 50000), ("127.0.0.1", 8143))
    assert header[:12] == V2_SIGNATURE == b"\r\n\r\n\0\r\nQUIT\n"
    assert header[12:16] == b"\x21\x11\x00\x0c"
    assert header[16:] == b"\x7f\x00\x00\x01" * 2 + struct.pack("!HH", 50000, 8143)


def test_v2_ipv6_and_mapped() -> None:
    header = v2(("2001:db8::1", 1234), ("2001:db8::2", 443))
    assert header[12:16] == b"\x21\x21\x00\x24" and len(header) == 52
    assert parsed(header).header.source == ("2001:db8::1", 1234)
    # Mixed families: the IPv4 side is written IPv4-mapped, as nginx does.
    mixed = parsed(v2(("192.0.2.1", 1), ("2001:db8::2", 2))).header
    assert mixed.family == "inet6" and mixed.source == ("::ffff:192.0.2.1", 1)


def test_v2_udp_transport() -> None:
    header = v2(("192.0.2.1", 53000), ("192.0.2.53", 53), transport="dgram")
    assert header[13] == 0x12
    assert parsed(header).header.transport == "dgram"


def test_v2_local_and_unspec_carry_no_address() -> None:
    local = V2_SIGNATURE + b"\x20\x00\x00\x00"
    assert parsed(local).header == ProxyHeader(2, local=True, family="unspec", transport="unspec")
    # LOCAL with addresses: the receiver ignores them.
    local_inet = V2_SIGNATURE + b"\x20\x11\x00\x0c" + bytes(12)
    assert parsed(local_inet).header.source is None
    unix = V2_SIGNATURE + b"\x21\x31" + struct.pack("!H", 216) + b"/a".ljust(108, b"\0") * 2
    assert parsed(unix).header.family == "unix" and parsed(unix).header.source is None
    assert v2(None, None) == V2_SIGNATURE + b"\x21\x01\x00\x00"


def test_v2_tlvs() -> None:
    header = v2(("192.0.2.1", 1), ("192.0.2.2", 2), tlvs=((PP2_TYPE_ALPN, b"h2"), (PP2_TYPE_NOOP, b"")))
    assert parsed(header).header.tlvs == ((PP2_TYPE_ALPN, b"h2"), (PP2_TYPE_NOOP, b""))
    assert_byte_by_byte(header)


def test_crc32c_is_kept_not_verified() -> None:
    # nginx does not verify a CRC32C TLV; sheer neither: it is $proxy_protocol_tlv_crc32c
    header = v2(("192.0.2.1", 1), ("192.0.2.2", 2), tlvs=((PP2_TYPE_CRC32C, b"4321"),))
    assert parsed(header).header.tlvs == ((PP2_TYPE_CRC32C, b"4321"),)
    assert tlv_value(parsed(header).header, "0x3") == b"4321"


def test_tlv_variables_as_nginx_names_them() -> None:
    ssl = bytes([0x01]) + (255).to_bytes(4, "big") + b"".join(
        bytes([kind]) + len(value).to_bytes(2, "big") + value
        for kind, value in ((0x21, b"TLSv1.2"), (0x22, b"example.com"), (0x25, b"RSA512")))
    header = parsed(v2(("192.0.2.1", 1), ("192.0.2.2", 2), tlvs=(
        (PP2_TYPE_ALPN, b"h2"), (PP2_TYPE_ALPN, b"second"), (0xAE, b"12345"), (0x20, ssl)))).header
    assert tlv_value(header, "alpn") == b"h2" == tlv_value(header, "0x01")     # the first of its type
    assert tlv_value(header, "0x000ae") == b"12345"
    assert tlv_value(header, "ssl_verify") == b"255"
    assert tlv_value(header, "ssl_version") == b"TLSv1.2" == tlv_value(header, "ssl_0x21")
    assert tlv_value(header, "ssl_cn") == b"example.com"
    assert tlv_value(header, "ssl_key_alg") == b"RSA512"
    assert tlv_value(header, "ssl_cipher") is None
    for missing in ("authority", "0x0f", "0xzz", "0x", "nonsense", "ssl_nonsense"):
        assert tlv_value(header, missing) is None, missing
    assert tlv_value(None, "alpn") is None
    assert tlv_variable(header, "proxy_protocol_tlv_0x20").startswith("\x01")
    assert tlv_variable(header, "proxy_protocol_tlv_netns") == ""


@pytest.mark.parametrize(("header", "reason"), [
    (V2_SIGNATURE + b"\x11\x11\x00\x0c" + bytes(12), "unknown PROXY protocol version: 1"),
    (V2_SIGNATURE + b"\x22\x11\x00\x0c" + bytes(12), "unknown PROXY protocol v2 command: 2"),
    (V2_SIGNATURE + b"\x21\x41\x00\x0c" + bytes(12), "address family and transport: 0x41"),
    (V2_SIGNATURE + b"\x21\x13\x00\x0c" + bytes(12), "address family and transport: 0x13"),
    (V2_SIGNATURE + b"\x21\x11\x00\x0b" + bytes(11), "too short for its address family: 11"),
    (V2_SIGNATURE + b"\x21\x21\x00\x0c" + bytes(12), "too short for its address family: 12"),
    (V2_SIGNATURE + b"\x21\x11\xff\xff", "too large: 65551 bytes"),
    (V2_SIGNATURE + b"\x21\x11\x00\x0e" + bytes(14), "TLV truncated"),
    (V2_SIGNATURE + b"\x21\x11\x00\x10" + bytes(12) + b"\x01\x00\x05\x00", "TLV 0x01 overruns"),
])
def test_v2_strictness(header: bytes, reason: str) -> None:
    result = parse(header)
    assert isinstance(result, Malformed) and reason in result.reason, result


def test_v2_size_is_decided_from_the_fixed_header() -> None:
    # The length field alone refuses an oversized header: nothing more is buffered for it.
    assert isinstance(parse(V2_SIGNATURE + b"\x21\x11" + struct.pack("!H", V2_MAX - 15)), Malformed)
    assert parse(V2_SIGNATURE + b"\x21\x11" + struct.pack("!H", V2_MAX - 16)) == NEED_MORE


# --- property-based -------------------------------------------------------------------------

ipv4 = st.builds(lambda n: str(ipaddress.IPv4Address(n)), st.integers(0, 2**32 - 1))
ipv6 = st.builds(lambda n: str(ipaddress.IPv6Address(n)), st.integers(0, 2**128 - 1)).filter(
    lambda text: ipaddress.IPv6Address(text).ipv4_mapped is None)
port = st.integers(0, 65535)
pair_v4 = st.tuples(st.tuples(ipv4, port), st.tuples(ipv4, port))
pair_v6 = st.tuples(st.tuples(ipv6, port), st.tuples(ipv6, port))
tlv = st.tuples(st.integers(0, 255).filter(lambda kind: kind != PP2_TYPE_CRC32C), st.binary(max_size=40))


@FUZZ
@given(pair=st.one_of(pair_v4, pair_v6), payload=st.binary(max_size=64))
def test_v1_round_trip(pair: tuple[tuple[str, int], tuple[str, int]], payload: bytes) -> None:
    header = v1(*pair)
    assert len(header) <= V1_MAX
    result = parsed(header + payload)
    assert (result.header.source, result.header.destination, result.length) == (pair[0], pair[1], len(header))


@FUZZ
@given(pair=st.one_of(pair_v4, pair_v6), tlvs=st.lists(tlv, max_size=4), payload=st.binary(max_size=64),
       transport=st.sampled_from(["stream", "dgram"]))
def test_v2_round_trip(pair: tuple[tuple[str, int], tuple[str, int]], tlvs: list[tuple[int, bytes]],
                       payload: bytes, transport: str) -> None:
    header = v2(pair[0], pair[1], transport, tuple(tlvs))  # type: ignore[arg-type]
    result = parsed(header + payload)
    assert result.length == len(header)
    assert (result.header.source, result.header.destination) == pair
    assert result.header.tlvs == tuple(tlvs) and result.header.transport == transport
    for cut in range(0, len(header), 7):
        assert parse(header[:cut]) == NEED_MORE


def check_any(data: bytes) -> None:
    result = parse(data)
    assert isinstance(result, (Parsed, NeedMore, Malformed))
    if isinstance(result, Parsed):
        assert result.length <= min(len(data), V2_MAX)
        assert parse(data[:result.length]) == result           # the payload never changes the header
    elif isinstance(result, NeedMore):
        assert len(data) < V2_MAX
    else:
        assert "\n" not in result.reason and len(result.reason) < 200


@FUZZ
@given(st.binary(max_size=300))
def test_fuzz_arbitrary_bytes(data: bytes) -> None:
    check_any(data)


@FUZZ
@given(prefix=st.sampled_from([b"PROXY ", b"PROXY TCP4 ", b"PROXY TCP6 ", V2_SIGNATURE, V2_SIGNATURE
                               + b"\x21"]),
       rest=st.binary(max_size=200))
def test_fuzz_after_a_valid_start(prefix: bytes, rest: bytes) -> None:
    check_any(prefix + rest)


@FUZZ
@given(pair=pair_v4, version=st.sampled_from([1, 2]), position=st.integers(0, 200), value=st.integers(0, 255))
def test_fuzz_one_byte_changed(pair: tuple[tuple[str, int], tuple[str, int]], version: int,
                               position: int, value: int) -> None:
    header = bytearray(v1(*pair) if version == 1 else v2(*pair))
    header[position % len(header)] = value
    check_any(bytes(header) + b"payload")


def test_control_bytes_never_reach_the_log_raw() -> None:
    """A client's NULs and escapes are logged escaped and bounded (log-line and terminal injection)."""
    result = parse(b"\x00" * 31 + b"\x1b[2J" + b"\x80" * 40)
    assert isinstance(result, Malformed)
    assert result.reason.startswith('broken header: "\\x00\\x00') and "\x00" not in result.reason
    assert "\x1b" not in result.reason and len(result.reason) < 200
