"""The ClientHello read without consuming it, for `ssl_preread on` (nginx's ngx_stream_ssl_preread_module):
the server name, the ALPN protocols and the version, so that a stream server can route passthrough TLS
by name. Bytes in, a verdict out; nothing is answered and nothing is changed: the bytes go on as they came.

nginx's verdicts are kept: the first record not a handshake, not SSL 3/TLS, not a ClientHello, or a
malformed one, "declines" (the variables stay empty and the session goes on, unrouted by name); an
SSLv2-style hello gives only its version. What the caller bounds: how many bytes (preread_buffer_size,
16k: "preread buffer full") and how long (preread_timeout, 30s: then the session goes on as it is)."""

from __future__ import annotations

from dataclasses import dataclass

HANDSHAKE = 0x16
CLIENT_HELLO = 1
EXT_SERVER_NAME, EXT_ALPN, EXT_SUPPORTED_VERSIONS = 0, 16, 43
_VERSIONS = {0x0002: "SSLv2", 0x0300: "SSLv3", 0x0301: "TLSv1", 0x0302: "TLSv1.1", 0x0303: "TLSv1.2",
             0x0304: "TLSv1.3"}


@dataclass(frozen=True, slots=True)
class NeedMore:
    """The ClientHello is not complete yet: read on (within the caller's bounds)."""


@dataclass(frozen=True, slots=True)
class Declined:
    """Not a TLS ClientHello, or a broken one: nginx's ssl preread declines (logged at debug)."""

    reason: str


@dataclass(frozen=True, slots=True)
class ClientHello:
    version: int            # 0x0303: TLS 1.2; 0x0304 when a supported_versions extension is present
    server_name: str = ""
    alpn: tuple[str, ...] = ()

    @property
    def protocol(self) -> str:
        """$ssl_preread_protocol"""
        return _VERSIONS.get(self.version, "")

    @property
    def alpn_protocols(self) -> str:
        """$ssl_preread_alpn_protocols: nginx joins them with commas."""
        return ",".join(self.alpn)


Preread = NeedMore | Declined | ClientHello


class _Short(Exception):
    """The ClientHello ends before a field does: a broken one."""


class _Reader:
    __slots__ = ("data", "end", "pos")

    def __init__(self, data: bytes, pos: int = 0, end: int | None = None) -> None:
        self.data, self.pos, self.end = data, pos, len(data) if end is None else end

    def take(self, n: int) -> bytes:
        if self.pos + n > self.end:
            raise _Short()
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def number(self, size: int) -> int:
        return int.from_bytes(self.take(size), "big")

    def vector(self, size: int) -> _Reader:
        """A length-prefixed part, as a reader of its own."""
        length = self.number(size)
        inner = _Reader(self.data, self.pos, self.pos + length)
        if inner.end > self.end:
            raise _Short()
        self.pos = inner.end
        return inner

    @property
    def left(self) -> int:
        return self.end - self.pos

    def take_all(self) -> str:
        return self.take(self.left).decode("latin-1")


def preread(buffer: bytes) -> Preread:
    """What the bytes read so far say (call again with more while NeedMore)."""
    handshake = b""
    pos = 0
    while len(buffer) - pos >= 5:
        head = buffer[pos:pos + 5]
        if head[0] & 0x80 and head[2] == 1 and head[3] in (0, 3):
            return ClientHello((head[3] << 8) | head[4])      # an SSLv2-style ClientHello: its version only
        if head[0] != HANDSHAKE:
            return Declined("not a handshake")
        if head[1] != 3:
            return Declined("unsupported SSL version")
        length = (head[3] << 8) | head[4]
        if len(buffer) - pos < 5 + length:
            break                                             # the whole record before parsing
        handshake += buffer[pos + 5:pos + 5 + length]
        pos += 5 + length
        if len(handshake) >= 4:
            if handshake[0] != CLIENT_HELLO:
                return Declined("not a client hello")
            size = int.from_bytes(handshake[1:4], "big")
            if len(handshake) >= 4 + size:
                return _client_hello(handshake[4:4 + size])
    if len(buffer) >= 1 and buffer[0] != HANDSHAKE and not buffer[0] & 0x80:
        return Declined("not a handshake")
    return NeedMore()


def _client_hello(body: bytes) -> Preread:
    reader = _Reader(body)
    try:
        version = reader.number(2)
        reader.take(32)                   # random
        reader.vector(1)                  # session_id
        reader.vector(2)                  # cipher_suites
        reader.vector(1)                  # compression_methods
        if reader.left == 0:
            return ClientHello(version)
        extensions = reader.vector(2)
        name = ""
        alpn: list[str] = []
        seen_name = seen_alpn = False
        while extensions.left:
            kind = extensions.number(2)
            data = extensions.vector(2)
            if kind == EXT_SERVER_NAME and not seen_name:
                seen_name = True
                names = data.vector(2)
                if names.number(1) != 0:
                    return Declined("SNI hostname type is not DNS")
                name = names.vector(2).take_all()
            elif kind == EXT_ALPN and not seen_alpn:
                seen_alpn = True
                protocols = data.vector(2)
                while protocols.left:
                    proto = protocols.vector(1)
                    if proto.left == 0:
                        return Declined("ALPN empty protocol")
                    alpn.append(proto.take_all())
            elif kind == EXT_SUPPORTED_VERSIONS:
                version = 0x0304                 # nginx: the extension means TLSv1.3
    except _Short:
        return Declined("failed to parse handshake")
    return ClientHello(version, name, tuple(alpn))


def bounded(buffer: bytes, limit: int) -> Preread | None:
    """preread() within preread_buffer_size: None when `limit` bytes came and no verdict yet (nginx's
    "preread buffer full"). Only the first `limit` bytes are looked at, as nginx's buffer holds no more:
    a ClientHello that arrived whole but is longer gives no verdict either."""
    result = preread(buffer[:limit])
    return None if isinstance(result, NeedMore) and len(buffer) >= limit else result
