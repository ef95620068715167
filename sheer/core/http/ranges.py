"""`Range: bytes=...` as nginx's range filter reads it (ngx_http_range_parse), and the multipart/byteranges
body nginx builds for several ranges (`If-Range`: sheer.core.http.conditional). Ranges are (start, end),
`end` exclusive."""

from __future__ import annotations

from enum import Enum

Span = tuple[int, int]


class Verdict(Enum):
    FULL = "full"                   # answer 200 with the whole body (nginx: NGX_DECLINED)
    UNSATISFIABLE = "unsatisfiable"  # 416


_MAX = (1 << 63) - 1


def parse_range(value: str, size: int, max_ranges: int | None = None) -> list[Span] | Verdict:
    """The ranges of `Range`'s value for a body of `size` bytes, or what to answer instead."""
    if len(value) < 7 or value[:6].lower() != "bytes=":
        return Verdict.FULL
    text = value[6:] + "\0"
    pos = 0
    ranges: list[Span] = []
    total = 0
    left = max_ranges if max_ranges is not None else 0x7FFFFFFF
    while True:
        start = end = 0
        suffix = False
        while text[pos] == " ":
            pos += 1
        bounded = True
        if text[pos] != "-":
            found = _number(text, pos)
            if found is None:
                return Verdict.UNSATISFIABLE
            start, pos = found
            while text[pos] == " ":
                pos += 1
            if text[pos] != "-":
                return Verdict.UNSATISFIABLE
            pos += 1
            while text[pos] == " ":
                pos += 1
            if text[pos] in ",\0":
                end = size
                bounded = False
        else:
            suffix = True
            pos += 1
        if bounded:
            found = _number(text, pos)
            if found is None:
                return Verdict.UNSATISFIABLE
            end, pos = found
            while text[pos] == " ":
                pos += 1
            if text[pos] not in ",\0":
                return Verdict.UNSATISFIABLE
            if suffix:
                start = size - end if end < size else 0
                end = size - 1
            end = size if end >= size else end + 1
        if start < end:
            ranges.append((start, end))
            total += end - start
            if left == 0:
                return Verdict.FULL
            left -= 1
        elif start == 0:
            return Verdict.FULL
        if text[pos] != ",":
            break
        pos += 1
    if not ranges:
        return Verdict.UNSATISFIABLE
    if len(ranges) == 1:
        return ranges
    if total > size:
        return Verdict.FULL       # ranges that add up to more than the body: nginx sends it whole
    if max_ranges is None and total + len(ranges) * 256 > size + 4096:
        return Verdict.FULL
    return ranges


def content_range(span: Span, size: int) -> bytes:
    return b"bytes %d-%d/%d" % (span[0], span[1] - 1, size)


def multipart(spans: list[Span], size: int, content_type: str, boundary: int
              ) -> tuple[bytes, list[bytes | Span], int]:
    """nginx's multipart/byteranges: the Content-Type, the body as literal pieces and file spans, and
    its length."""
    mark = b"%020d" % boundary
    header = b"\r\n--%s\r\n" % mark
    if content_type:
        header += b"Content-Type: %s\r\n" % content_type.encode("latin-1")
    header += b"Content-Range: bytes "
    pieces: list[bytes | Span] = []
    length = 0
    for start, end in spans:
        part = header + b"%d-%d/%d\r\n\r\n" % (start, end - 1, size)
        pieces += [part, (start, end)]
        length += len(part) + end - start
    closing = b"\r\n--%s--\r\n" % mark
    pieces.append(closing)
    length += len(closing)
    return b"multipart/byteranges; boundary=" + mark, pieces, length


def _number(text: str, pos: int) -> tuple[int, int] | None:
    """The decimal number at `pos` and the position after it; None when no digit is there or the
    number is larger than nginx's off_t allows."""
    if not "0" <= text[pos] <= "9":
        return None
    begin = pos
    while "0" <= text[pos] <= "9":
        pos += 1
    value = int(text[begin:pos])
    return None if value > _MAX else (value, pos)
