"""The PROXY protocol (haproxy's proxy-protocol.txt), versions 1 and 2: strict parsing and writing, sans-IO.

`parse(buffer)` looks at the bytes a connection has received so far and answers `NeedMore`
(a valid header may still come), `Malformed` (close the connection) or `Parsed` (the header
and how many bytes it took; the rest is the client's payload). Parsing is bounded: a v1 line
is at most 107 bytes, a v2 header at most `V2_MAX` bytes, so a reader never buffers more.
`v1()`/`v2()` write headers byte for byte as nginx's ngx_proxy_protocol_write does.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass
from typing import Literal

from sheer.config.template import TLV_PREFIX as TLV_PREFIX  # noqa: PLC0414  (re-exported)

V1_MAX = 107                                  # "PROXY TCP6 " + 2 * 39 + 2 * 5 + 3 spaces + CRLF
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
# nginx's NGX_PROXY_PROTOCOL_MAX_HEADER; the spec allows 16 + 65535
V2_MAX = 4096
_V1_PREFIX = b"PROXY "

Transport = Literal["stream", "dgram", "unspec"]
Family = Literal["inet", "inet6", "unix", "unspec"]
Address = tuple[str, int]

# v2 TLV types the parser knows by name (section 2.2 of the specification).
PP2_TYPE_ALPN, PP2_TYPE_AUTHORITY, PP2_TYPE_CRC32C = 0x01, 0x02, 0x03
PP2_TYPE_NOOP, PP2_TYPE_UNIQUE_ID = 0x04, 0x05
PP2_TYPE_SSL, PP2_TYPE_NETNS = 0x20, 0x30

_FAMILIES: dict[int, tuple[Family, int]] = {0x0: ("unspec", 0), 0x1: ("inet", 12), 0x2: ("inet6", 36),
                                            0x3: ("unix", 216)}
_TRANSPORTS: dict[int, Transport] = {0x0: "unspec", 0x1: "stream", 0x2: "dgram"}


@dataclass(frozen=True, slots=True)
class ProxyHeader:
    """What a PROXY header carried. `source`/`destination` are None when it carries no usable
    addresses (v1 UNKNOWN, v2 LOCAL, AF_UNSPEC or AF_UNIX): the connection's own endpoints stand."""

    version: Literal[1, 2]
    local: bool = False                       # v2 LOCAL command: a health check by the proxy itself
    family: Family = "unspec"
    transport: Transport = "stream"
    source: Address | None = None
    destination: Address | None = None
    tlvs: tuple[tuple[int, bytes], ...] = ()


@dataclass(frozen=True, slots=True)
class Parsed:
    header: ProxyHeader
    length: int                               # bytes of the buffer the header took


@dataclass(frozen=True, slots=True)
class NeedMore:
    pass


@dataclass(frozen=True, slots=True)
class Malformed:
    reason: str                               # for the error log: `broken header: "..."` in nginx's words


ParseResult = Parsed | NeedMore | Malformed
NEED_MORE = NeedMore()


def parse(buffer: bytes) -> ParseResult:
    """Decide on the bytes received so far; never needs more than V2_MAX bytes to decide."""
    if buffer[:12] == V2_SIGNATURE[:len(buffer)]:
        return _v2(buffer) if len(buffer) >= 16 else NEED_MORE
    if buffer[:6] == _V1_PREFIX[:len(buffer)]:
        return _v1(buffer) if len(buffer) > 6 else NEED_MORE
    return Malformed(f'broken header: "{_printable(buffer)}"')


# --- version 1 -------------------------------------------------------------------------------

def _v1(buffer: bytes) -> ParseResult:
    window = buffer[:V1_MAX]
    end = window.find(b"\r\n")
    if end < 0:
        # No line end yet: reject as soon as the line cannot become a valid one.
        if len(buffer) >= V1_MAX or b"\n" in window or b"\r" in window[:-1]:
            return _broken(buffer)
        return NEED_MORE
    if b"\r" in window[:end] or b"\n" in window[:end]:
        return _broken(buffer)
    line = buffer[6:end]
    if line == b"UNKNOWN" or line.startswith(b"UNKNOWN "):
        return Parsed(ProxyHeader(1, family="unspec"), end + 2)   # the receiver ignores the rest
    words = line.split(b" ")
    if len(words) != 5 or words[0] not in (b"TCP4", b"TCP6"):
        return _broken(buffer)
    version = 4 if words[0] == b"TCP4" else 6
    source, destination = _v1_address(words[1], version), _v1_address(words[2], version)
    source_port, destination_port = _v1_port(words[3]), _v1_port(words[4])
    if source is None or destination is None or source_port is None or destination_port is None:
        return _broken(buffer)
    family: Family = "inet" if version == 4 else "inet6"
    return Parsed(ProxyHeader(1, family=family, source=(source, source_port),
                              destination=(destination, destination_port)), end + 2)


def _v1_address(word: bytes, version: int) -> str | None:
    # The canonical form only: ipaddress refuses leading zeros in IPv4 (octal confusion) and zone ids.
    try:
        text = word.decode("ascii")
        address = ipaddress.ip_address(text)
    except (UnicodeDecodeError, ValueError):
        return None
    if address.version != version or "%" in text:
        return None
    return text if version == 4 else format_ipv6(address.packed)


def _v1_port(word: bytes) -> int | None:
    if not word.isdigit() or len(word) > 5 or (len(word) > 1 and word.startswith(b"0")):
        return None
    port = int(word)
    return port if port <= 65535 else None


def _broken(buffer: bytes) -> Malformed:
    return Malformed(f'broken header: "{_printable(buffer)}"')


def _printable(buffer: bytes) -> str:
    """The start of what the client sent, up to CR/LF, as nginx logs it (escaped, bounded)."""
    line = buffer[:V1_MAX]
    for stop in (b"\r", b"\n"):
        cut = line.find(stop)
        if cut >= 0:
            line = line[:cut]
    text = "".join(chr(b) if 0x20 <= b < 0x7F and b != 0x22 else "\\\"" if b == 0x22 else f"\\x{b:02x}"
                   for b in line)
    return text if len(text) <= 160 else text[:160] + "..."     # control bytes never reach the log raw


# --- version 2 -------------------------------------------------------------------------------

def _v2(buffer: bytes) -> ParseResult:
    version_command, family_transport, length = struct.unpack_from("!BBH", buffer, 12)
    if version_command >> 4 != 2:
        return Malformed(f"unknown PROXY protocol version: {version_command >> 4}")
    command = version_command & 0x0F
    if command > 1:
        return Malformed(f"unknown PROXY protocol v2 command: {command}")
    if family_transport >> 4 not in _FAMILIES or family_transport & 0x0F not in _TRANSPORTS:
        return Malformed(f"unknown PROXY protocol v2 address family and transport: 0x{family_transport:02x}")
    family, needed = _FAMILIES[family_transport >> 4]
    transport = _TRANSPORTS[family_transport & 0x0F]
    if 16 + length > V2_MAX:
        return Malformed(f"PROXY protocol v2 header is too large: {16 + length} bytes (at most {V2_MAX})")
    if length < needed:
        return Malformed(f"PROXY protocol v2 header too short for its address family: {length} bytes")
    if len(buffer) < 16 + length:
        return NEED_MORE
    body = buffer[16:16 + length]
    tlvs = _tlvs(body[needed:])
    if isinstance(tlvs, Malformed):
        return tlvs
    # A CRC32C TLV is kept as it came and not verified: nginx does not verify it either
    # ($proxy_protocol_tlv_crc32c gives it)
    source = destination = None
    if command == 1 and family == "inet":
        source = (str(ipaddress.IPv4Address(body[0:4])), int.from_bytes(body[8:10], "big"))
        destination = (str(ipaddress.IPv4Address(body[4:8])), int.from_bytes(body[10:12], "big"))
    elif command == 1 and family == "inet6":
        source = (format_ipv6(body[0:16]), int.from_bytes(body[32:34], "big"))
        destination = (format_ipv6(body[16:32]), int.from_bytes(body[34:36], "big"))
    header = ProxyHeader(2, local=command == 0, family=family, transport=transport,
                         source=source, destination=destination, tlvs=tuple(tlvs))
    return Parsed(header, 16 + length)


def _tlvs(data: bytes) -> list[tuple[int, bytes]] | Malformed:
    found: list[tuple[int, bytes]] = []
    pos = 0
    while pos < len(data):
        if len(data) - pos < 3:
            return Malformed("PROXY protocol v2 TLV truncated")
        kind, size = data[pos], int.from_bytes(data[pos + 1:pos + 3], "big")
        if pos + 3 + size > len(data):
            return Malformed(f"PROXY protocol v2 TLV 0x{kind:02x} overruns the header")
        found.append((kind, data[pos + 3:pos + 3 + size]))
        pos += 3 + size
    return found


def format_ipv6(packed: bytes) -> str:
    """inet_ntop's text (what nginx and the kernel print): IPv4-mapped as ::ffff:a.b.c.d."""
    address = ipaddress.IPv6Address(packed)
    mapped = address.ipv4_mapped
    return f"::ffff:{mapped}" if mapped is not None else str(address)


# --- writing ---------------------------------------------------------------------------------

def v1(source: Address | None, destination: Address | None) -> bytes:
    """nginx's header: `PROXY TCP4 src dst sport dport\\r\\n`, or `PROXY UNKNOWN\\r\\n`."""
    if source is None or destination is None or source[0].startswith("unix:"):
        return b"PROXY UNKNOWN\r\n"      # nginx: a client of a unix-domain socket is UNKNOWN too
    keyword = "TCP6" if ":" in source[0] else "TCP4"
    return f"PROXY {keyword} {source[0]} {destination[0]} {source[1]} {destination[1]}\r\n".encode("ascii")


def v2(source: Address | None, destination: Address | None, transport: Transport = "stream",
       tlvs: tuple[tuple[int, bytes], ...] = ()) -> bytes:
    """A PROXY command header; IPv6 when either side is IPv6 (the other mapped), as nginx writes it."""
    kind = {"unspec": 0x0, "stream": 0x1, "dgram": 0x2}[transport]
    if source is None or destination is None or "unix:" in (source[0][:5], destination[0][:5]):
        family, addresses = 0x0, b""       # a unix-domain socket's side: AF_UNSPEC, no addresses
    elif ":" in source[0] or ":" in destination[0]:
        family = 0x2
        addresses = (_packed6(source[0]) + _packed6(destination[0])
                     + struct.pack("!HH", source[1], destination[1]))
    else:
        family = 0x1
        addresses = (ipaddress.IPv4Address(source[0]).packed + ipaddress.IPv4Address(destination[0]).packed
                     + struct.pack("!HH", source[1], destination[1]))
    extra = b"".join(struct.pack("!BH", tlv_type, len(value)) + value for tlv_type, value in tlvs)
    body = addresses + extra
    return V2_SIGNATURE + struct.pack("!BBH", 0x21, family << 4 | kind, len(body)) + body


def _packed6(host: str) -> bytes:
    address = ipaddress.ip_address(host)
    if address.version == 4:
        return bytes(10) + b"\xff\xff" + address.packed
    return address.packed



# $proxy_protocol_tlv_NAME (nginx's ngx_proxy_protocol_get_tlv): names of v2 TLVs, and of the SSL TLV's
# sub-TLVs after `ssl_`
_TLV_NAMES = {"alpn": PP2_TYPE_ALPN, "authority": PP2_TYPE_AUTHORITY, "unique_id": PP2_TYPE_UNIQUE_ID,
              "ssl": PP2_TYPE_SSL, "netns": PP2_TYPE_NETNS}
_SSL_NAMES = {"version": 0x21, "cn": 0x22, "cipher": 0x23, "sig_alg": 0x24, "key_alg": 0x25}
_SSL_HEAD = 5           # the SSL TLV's client (1 byte) and verify (4 bytes) fields, before its sub-TLVs


def tlv_value(header: ProxyHeader | None, name: str) -> bytes | None:
    """The value $proxy_protocol_tlv_`name` takes: `alpn`, `0x01` (any type, in hex), `ssl_cn`,
    `ssl_0x22`, `ssl_verify` (the SSL TLV's verify field, in decimal); the first TLV of that type as it
    came. None when the header has no such TLV (or no header came), or `name` is none nginx knows."""
    if header is None:
        return None
    tlvs: list[tuple[int, bytes]] | tuple[tuple[int, bytes], ...] = header.tlvs
    names = _TLV_NAMES
    if name.startswith("ssl_"):
        ssl = _first_tlv(header.tlvs, PP2_TYPE_SSL)
        if ssl is None or len(ssl) < _SSL_HEAD:
            return None
        name = name[4:]
        if name == "verify":
            return b"%d" % int.from_bytes(ssl[1:5], "big")
        inner = _tlvs(ssl[_SSL_HEAD:])
        if isinstance(inner, Malformed):
            return None
        tlvs, names = inner, _SSL_NAMES
    if name.startswith("0x"):
        digits = name[2:]
        if not digits or any(c not in "0123456789abcdefABCDEF" for c in digits):
            return None
        return _first_tlv(tlvs, int(digits, 16))
    kind = names.get(name)
    return _first_tlv(tlvs, kind) if kind is not None else None


def tlv_variable(header: ProxyHeader | None, variable: str) -> str:
    """$proxy_protocol_tlv_* (`variable` is the whole name) as text, bytes kept (latin-1); "" when absent."""
    value = tlv_value(header, variable[len(TLV_PREFIX):])
    return "" if value is None else value.decode("latin-1")


def _first_tlv(tlvs: list[tuple[int, bytes]] | tuple[tuple[int, bytes], ...], wanted: int) -> bytes | None:
    return next((value for kind, value in tlvs if kind == wanted), None)
