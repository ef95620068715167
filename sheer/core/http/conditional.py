"""Conditional requests as nginx answers them for files: its ETag, Last-Modified, the not_modified
filter (If-Unmodified-Since and If-Match: 412; If-Modified-Since per `if_modified_since`, and
If-None-Match: 304), If-Range, and the headers filter's `expires`. Times are seconds since the epoch;
`now` is an argument."""

from __future__ import annotations

import calendar
import re
import time
from typing import Literal

from sheer.config.static import Expires, parse_expires
from sheer.core.variables import VariableSource, render

_MONTHS = {name: number for number, name in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1)}
_RFC1123 = re.compile(r"[A-Za-z]+, (\d\d) ([A-Za-z]{3}) (\d{4}) (\d\d):(\d\d):(\d\d) GMT")
_RFC850 = re.compile(r"[A-Za-z]+, (\d\d)-([A-Za-z]{3})-(\d\d) (\d\d):(\d\d):(\d\d) GMT")
_ASCTIME = re.compile(r"[A-Za-z]{3} ([A-Za-z]{3}) ([ \d]\d) (\d\d):(\d\d):(\d\d) (\d{4})")


def parse_http_time(text: str) -> int | None:
    """ngx_parse_http_time: RFC 1123, RFC 850 and asctime dates; None when nginx's is -1."""
    text = text.strip(" ")
    found = _RFC1123.fullmatch(text)
    if found is not None:
        day, month, year, hour, minute, second = found.groups()
    else:
        found = _RFC850.fullmatch(text)
        if found is not None:
            day, month, year, hour, minute, second = found.groups()
            year = str(int(year) + (1900 if int(year) >= 70 else 2000))
        else:
            found = _ASCTIME.fullmatch(text)
            if found is None:
                return None
            month, day, hour, minute, second, year = found.groups()
    number = _MONTHS.get(month.lower())
    if number is None or int(hour) > 23 or int(minute) > 59 or int(second) > 59:
        return None
    if not 1 <= int(day) <= calendar.monthrange(int(year), number)[1]:
        return None
    return calendar.timegm((int(year), number, int(day), int(hour), int(minute), int(second)))


def http_time(seconds: float) -> bytes:
    """Sun, 06 Nov 1994 08:49:37 GMT."""
    return time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(seconds)).encode()


def etag(mtime: int, size: int) -> str:
    """ngx_http_set_etag: "<mtime in hex>-<size in hex>"."""
    return f'"{mtime:x}-{size:x}"'


def etag_matches(header: str, tag: str | None, weak: bool) -> bool:
    """ngx_http_test_if_match: `*`, or the ETag in the list (with `weak`, W/ prefixes are ignored)."""
    if header == "*":
        return True
    if tag is None:
        return False
    if weak and len(tag) > 2 and tag.startswith("W/"):
        tag = tag[2:]
    for item in header.split(","):
        item = item.strip(" \t")
        if weak and len(item) > 2 and item.startswith("W/"):
            item = item[2:]
        if item == tag:
            return True
    return False


Precondition = Literal[200, 304, 412]


def precondition(headers: dict[str, str], last_modified: int | None, tag: str | None,
                 if_modified_since: str) -> Precondition:
    """What the not_modified filter makes of a 200: 412, 304, or the 200 itself."""
    unmodified = headers.get("if-unmodified-since")
    if unmodified is not None:
        when = parse_http_time(unmodified)
        if last_modified is None or when is None or when < last_modified:
            return 412
    match = headers.get("if-match")
    if match is not None and not etag_matches(match, tag, weak=False):
        return 412
    modified = headers.get("if-modified-since")
    none_match = headers.get("if-none-match")
    if modified is None and none_match is None:
        return 200
    if modified is not None and _modified(modified, last_modified, if_modified_since):
        return 200
    if none_match is not None and not etag_matches(none_match, tag, weak=True):
        return 200
    return 304


def _modified(header: str, last_modified: int | None, mode: str) -> bool:
    if last_modified is None or mode == "off":
        return True
    when = parse_http_time(header)
    if when == last_modified:
        return False
    return mode == "exact" or when is None or when < last_modified


def if_range_holds(if_range: str | None, tag: str | None, last_modified: int | None) -> bool:
    """nginx's range filter: an If-Range ending in `"` must be the ETag, anything else a date equal to
    Last-Modified. Without If-Range the ranges apply."""
    if if_range is None:
        return True
    if len(if_range) >= 2 and if_range.endswith('"'):
        return tag is not None and if_range == tag
    return last_modified is not None and parse_http_time(if_range) == last_modified


def expires_headers(expires: Expires, value: str | None, last_modified: int | None,
                    now: float) -> list[tuple[bytes, bytes]]:
    """ngx_http_set_expires: Expires and Cache-Control. `value` is the rendered text of an `expires`
    written with variables (a value nginx cannot parse adds nothing)."""
    mode, seconds = expires.mode, expires.seconds
    if value is not None:
        parsed = parse_expires(value, mode == "modified")
        if isinstance(parsed, str) or parsed[0] == "off":
            return []
        mode, seconds = parsed
    if mode == "off":
        return []
    if mode == "epoch":
        return [(b"Expires", b"Thu, 01 Jan 1970 00:00:01 GMT"), (b"Cache-Control", b"no-cache")]
    if mode == "max":
        return [(b"Expires", b"Thu, 31 Dec 2037 23:55:55 GMT"), (b"Cache-Control", b"max-age=315360000")]
    now = int(now)
    if seconds == 0 and mode != "daily":
        return [(b"Expires", http_time(now)), (b"Cache-Control", b"max-age=0")]
    if mode == "daily":
        at = _next_time(seconds, now)
        max_age = at - now
    elif mode == "access" or last_modified is None:
        at, max_age = now + seconds, seconds
    else:
        at = last_modified + seconds
        max_age = at - now
    control = b"no-cache" if seconds < 0 or max_age < 0 else b"max-age=%d" % max_age
    return [(b"Expires", http_time(at)), (b"Cache-Control", control)]


def upstream_expires(expires: Expires, status: int, headers: list[tuple[bytes, bytes]],
                     variables: VariableSource, now: float
                     ) -> tuple[list[tuple[bytes, bytes]], frozenset[bytes]]:
    """`expires` on a proxied response (nginx's headers filter, for the statuses add_header takes
    without `always`): the lines, and the upstream's headers they replace (Expires, Cache-Control)."""
    if status not in _SUCCESS:
        return [], frozenset()
    value = render(expires.value, variables) if expires.value is not None else None
    last_modified = None
    for name, text in headers:
        if name.lower() == b"last-modified":
            last_modified = parse_http_time(text.decode("latin-1"))
    lines = expires_headers(expires, value, last_modified, now)
    return lines, (_EXPIRES_REPLACED if lines else frozenset())


_SUCCESS = frozenset({200, 201, 204, 206, 301, 302, 303, 304, 307, 308})
_EXPIRES_REPLACED = frozenset({b"expires", b"cache-control"})


def _next_time(seconds: int, now: int) -> int:
    """ngx_next_time: the next moment the local clock shows `seconds` after midnight."""
    local = time.localtime(now)
    midnight = time.mktime((local.tm_year, local.tm_mon, local.tm_mday, 0, 0, 0, 0, 0, -1))
    at = int(midnight) + seconds
    return at if at > now else at + 86400
