"""nginx's gzip filter on one response, without I/O: whether it is compressed (ngx_http_gzip_header_filter,
ngx_http_gzip_ok with its Accept-Encoding reader), what that does to its headers, and the deflate stream
itself (zlib, gzip framing) with the counts `$gzip_ratio` is made of.

zlib is the library nginx links for this; Python's module is the same C code, so sheer compresses as fast
as nginx does and a client reads the same format.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable

from sheer.config.gzip import ANY_TYPE, Gzip
from sheer.core.http.browsers import msie6
from sheer.core.http.conditional import parse_http_time
from sheer.core.http.headers import Headers

STATUSES = (200, 403, 404)        # the only ones nginx compresses
GZIP_WBITS = 16 + zlib.MAX_WBITS  # deflate in gzip's framing (header and CRC trailer), a 32 KiB window


def accepts_gzip(value: bytes) -> bool:
    """The request's Accept-Encoding allows gzip as nginx reads it: "gzip" as a word, and a q-value, if
    any, above 0 (q=0.001 is on; q=0, q=0.000 and anything nginx cannot read are off)."""
    if len(value) < 4:
        return False
    return value.startswith(b"gzip,") or _accept_encoding(value)


def _accept_encoding(value: bytes) -> bool:
    """ngx_http_gzip_accept_encoding, step by step."""
    lower, start, last = value.lower(), 0, len(value)
    while True:
        at = lower.find(b"gzip", start)
        if at < 0:
            return False
        if at == start or value[at - 1] in b", ":
            break
        start = at + 4
    p = at + 4
    while p < last:
        c = value[p]
        p += 1
        if c == 0x2C:             # ,
            return True
        if c == 0x3B:             # ;
            break
        if c != 0x20:
            return False
    else:
        return True
    while p < last:
        c = value[p]
        p += 1
        if c in b"qQ":
            break
        if c != 0x20:
            return False
    else:
        return True
    if p + 2 > last or value[p] != 0x3D:      # =
        return False
    return _quantity(value, p + 1, last) != 0


def _quantity(value: bytes, p: int, last: int) -> int:
    """ngx_http_gzip_quantity: "1", "0.5", "0.001"; each decimal digit simply added (nginx's own sum)."""
    c = value[p]
    p += 1
    if c not in b"01":
        return 0
    q = (c - 0x30) * 100
    if p == last:
        return q
    c = value[p]
    p += 1
    if c in b", ":
        return q
    if c != 0x2E:                 # .
        return 0
    digits = 0
    while p < last:
        c = value[p]
        p += 1
        if c in b", ":
            break
        if 0x30 <= c <= 0x39:
            q += c - 0x30
            digits += 1
            continue
        return 0
    return 0 if q > 100 or digits > 3 else q


def _first(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    for key, value in headers:
        if len(key) == len(name) and key.lower() == name:
            return value
    return None


def content_type_key(value: bytes) -> bytes:
    """What gzip_types is matched against (ngx_http_upstream_copy_content_type): the type in lower case,
    cut at a `; charset=` parameter (other parameters stay, as nginx leaves them)."""
    at = value.find(b";")
    while at >= 0:
        rest = value[at + 1:].lstrip(b" ")
        if not rest:
            break
        if rest[:8].lower() == b"charset=":
            return value[:at].lower()
        at = value.find(b";", at + 1)
    return value.lower()


def eligible(gzip: Gzip, status: int, content_type: bytes | None, content_length: int | None,
             content_encoding: bytes | None) -> bool:
    """The response itself may be compressed (and, with gzip_vary, says Vary: Accept-Encoding)."""
    if status not in STATUSES or content_encoding:
        return False
    if content_length is not None and content_length < gzip.min_length:
        return False
    if ANY_TYPE in gzip.types:
        return True
    return content_type is not None and content_type_key(content_type).decode("latin-1") in gzip.types


def request_ok(gzip: Gzip, request: Headers, version: int, response: Headers, now: float) -> bool:
    """ngx_http_gzip_ok: the client takes gzip, is not a browser gzip_disable names, speaks the
    gzip_http_version (`version`: 9, 10 or 11), and, when the request came through a proxy (Via),
    gzip_proxied allows this response (judged on the response's Expires, Date, Cache-Control,
    Last-Modified and ETag)."""
    accept = _first(request, b"accept-encoding")
    if accept is None or not accepts_gzip(accept):
        return False
    agent = _first(request, b"user-agent")
    if gzip.disable_msie6 and agent is not None and msie6(agent):
        return False
    if version < gzip.http_version:
        return False
    if _first(request, b"via") is not None and not _proxied_ok(gzip.proxied, request, response, now):
        return False
    return agent is None or not any(regex.search(agent) for regex in gzip.disable)


def _proxied_ok(proxied: frozenset[str], request: Headers, response: Headers, now: float) -> bool:
    if "off" in proxied:
        return False
    if "any" in proxied or ("auth" in proxied and _first(request, b"authorization") is not None):
        return True
    expires = _first(response, b"expires")
    if expires is not None:
        if "expired" not in proxied:
            return False
        when = parse_http_time(expires.decode("latin-1"))
        date_header = _first(response, b"date")
        date = parse_http_time(date_header.decode("latin-1")) if date_header is not None else int(now)
        return when is not None and date is not None and when < date
    controls = [value for name, value in response if name.lower() == b"cache-control"]
    if controls:
        return any(word in proxied and _has_token(controls, word.encode())
                   for word in ("no-cache", "no-store", "private"))
    if "no_last_modified" in proxied and _first(response, b"last-modified") is not None:
        return False
    return not ("no_etag" in proxied and _first(response, b"etag") is not None)


def _has_token(values: list[bytes], token: bytes) -> bool:
    """ngx_http_parse_multi_header_lines: `token` as a word of one of the values (case ignored)."""
    for value in values:
        lower = value.lower()
        at = lower.find(token)
        while at >= 0:
            end = at + len(token)
            if (at == 0 or lower[at - 1] in b" ,") and (end == len(lower) or lower[end] in b" ,;="):
                return True
            at = lower.find(token, at + 1)
    return False


def weak_etag(value: bytes) -> bytes | None:
    """ngx_http_weak_etag: a strong ETag made weak (W/"..."); one that is not quoted is dropped."""
    if len(value) > 2 and value.startswith(b"W/"):
        return value
    if not value.startswith(b'"'):
        return None
    return b"W/" + value


def compressed_headers(headers: Headers) -> Headers:
    """The response's headers once compressed: no Content-Length nor Accept-Ranges, a weak ETag."""
    out: Headers = []
    for name, value in headers:
        lower = name.lower()
        if lower in (b"content-length", b"accept-ranges"):
            continue
        if lower == b"etag":
            weak = weak_etag(value)
            if weak is None:
                continue
            value = weak
        out.append((name, value))
    return out


CONTENT_ENCODING = (b"Content-Encoding", b"gzip")
VARY = (b"Vary", b"Accept-Encoding")


class Deflater:
    """One response's deflate stream in gzip's framing; `zin` and `zout` count what went in and out."""

    __slots__ = ("_held", "_stream", "zin", "zout")

    def __init__(self, level: int) -> None:
        self._stream = zlib.compressobj(level, zlib.DEFLATED, GZIP_WBITS)
        self._held = False          # zlib holds input it has not written out yet
        self.zin = 0
        self.zout = 0

    def compress(self, data: bytes) -> bytes:
        self.zin += len(data)
        self._held = True
        out = self._stream.compress(data)
        self.zout += len(out)
        return out

    def flush(self) -> bytes:
        """What was given so far, out now (Z_SYNC_FLUSH), for a response that comes in pieces over time;
        nothing when nothing new was given."""
        if not self._held:
            return b""
        self._held = False
        out = self._stream.flush(zlib.Z_SYNC_FLUSH)
        self.zout += len(out)
        return out

    def finish(self) -> bytes:
        out = self._stream.flush(zlib.Z_FINISH)
        self.zout += len(out)
        return out

    @property
    def ratio(self) -> str:
        """$gzip_ratio: in / out with two decimals, rounded half up as nginx does ("" before any output)."""
        if not self.zout:
            return ""
        whole, frac = self.zin // self.zout, self.zin * 100 // self.zout % 100
        if self.zin * 1000 // self.zout % 10 > 4:
            frac += 1
            if frac > 99:
                whole, frac = whole + 1, 0
        return f"{whole}.{frac:02d}"
