"""The sans-IO rules of static files: nginx's range parsing (ngx_http_range_parse), the not_modified
filter, If-Range, `expires`, HTTP dates, and where a URI is on disk (and that it stays under its root)."""

from __future__ import annotations

import calendar

import pytest

from sheer.config.static import REGEX_ALIAS, Expires, parse_expires
from sheer.core.http.conditional import (
    etag,
    etag_matches,
    expires_headers,
    http_time,
    if_range_holds,
    parse_http_time,
    precondition,
)
from sheer.core.http.files import directory_location, escapes_root, map_uri, try_path
from sheer.core.http.ranges import Verdict, content_range, multipart, parse_range

SIZE = 1000


@pytest.mark.parametrize(("header", "expected"), [
    ("bytes=0-8", [(0, 9)]),
    ("bytes=-10", [(990, 1000)]),
    ("bytes=990-", [(990, 1000)]),
    ("bytes=990-1990", [(990, 1000)]),
    ("bytes=0-10001", [(0, 1000)]),                       # last-byte-pos past the end: cut to it
    ("BYTES= 0 - 9 , -10", [(0, 10), (990, 1000)]),      # spaces and case, as nginx allows
    ("bytes=0-9, -10, 10-19", [(0, 10), (990, 1000), (10, 20)]),
    ("bytes=0-9, -10, 100000-, 10-19", [(0, 10), (990, 1000), (10, 20)]),   # one unsatisfiable is skipped
    ("bytes=-2000", [(0, 1000)]),
])
def test_ranges_nginx_takes(header: str, expected: list[tuple[int, int]]) -> None:
    assert parse_range(header, SIZE) == expected


@pytest.mark.parametrize("header", [
    "bytes=100000-", "bytes=alpha", "bytes=10-alpha", "bytes=10", "bytes=10-11 12-", "bytes=-",
    "bytes=99999999999999999999-", "bytes=5-2",          # nothing satisfiable, and not from 0
])
def test_unsatisfiable(header: str) -> None:
    assert parse_range(header, SIZE) is Verdict.UNSATISFIABLE


@pytest.mark.parametrize("header", [
    "items=0-1", "bytes=", "bytes=0-10001, 0-0",        # not bytes; empty; more than the body in all
])
def test_answered_whole(header: str) -> None:
    assert parse_range(header, SIZE) is Verdict.FULL


def test_zero_length_body_and_max_ranges() -> None:
    assert parse_range("bytes=0-", 0) is Verdict.FULL   # nginx: start == 0 == end declines
    assert parse_range("bytes=0-9, -10", SIZE, max_ranges=2) == [(0, 10), (990, 1000)]
    assert parse_range("bytes=0-9, -10, 10000-", SIZE, max_ranges=2) == [(0, 10), (990, 1000)]
    assert parse_range("bytes=0-9, -10, 10-19", SIZE, max_ranges=2) is Verdict.FULL
    # unlimited ranges: many small ones whose headers would outweigh the body are answered whole
    many = "bytes=" + ",".join(f"{i}-{i}" for i in range(40))
    assert parse_range(many, 100) is Verdict.FULL


def test_multipart_body_and_content_range() -> None:
    content_type, pieces, length = multipart([(0, 2), (5, 7)], 12, "text/html", 42)
    mark = b"%020d" % 42
    assert content_type == b"multipart/byteranges; boundary=" + mark
    assert pieces[0] == (b"\r\n--" + mark + b"\r\nContent-Type: text/html\r\n"
                         b"Content-Range: bytes 0-1/12\r\n\r\n")
    assert pieces[1] == (0, 2) and pieces[3] == (5, 7)
    assert pieces[-1] == b"\r\n--" + mark + b"--\r\n"
    assert length == sum(len(p) if isinstance(p, bytes) else p[1] - p[0] for p in pieces)
    assert content_range((990, 1000), 1000) == b"bytes 990-999/1000"


def test_http_dates() -> None:
    when = calendar.timegm((2037, 7, 8, 22, 53, 52))
    assert parse_http_time("Wed, 08 Jul 2037 22:53:52 GMT") == when
    assert parse_http_time("Wednesday, 08-Jul-37 22:53:52 GMT") == when
    assert parse_http_time("Wed Jul  8 22:53:52 2037") == when
    assert parse_http_time("Fri, 25 Feb 2174 09:42:23 GMT") == 0x17FFFFFFF
    for bad in ("yesterday", "Wed, 31 Feb 2037 22:53:52 GMT", "Wed, 08 Jul 2037 24:00:00 GMT", ""):
        assert parse_http_time(bad) is None
    assert http_time(0x7FFFFFFF) == b"Tue, 19 Jan 2038 03:14:07 GMT"


MTIME = 0x7F000000
TAG = etag(MTIME, 0)


def test_etag_is_nginx_form_and_lists() -> None:
    assert TAG == '"7f000000-0"'
    assert etag_matches(f'"foo", "bar", {TAG} , "baz"', TAG, weak=False)
    assert etag_matches(f'"foo", "bar",\t{TAG} , "baz"', TAG, weak=False)
    assert etag_matches("*", None, weak=False)
    assert not etag_matches('"foo"', TAG, weak=False)
    assert etag_matches(f"W/{TAG}", TAG, weak=True) and not etag_matches(f"W/{TAG}", TAG, weak=False)


@pytest.mark.parametrize(("headers", "mode", "expected"), [
    ({}, "exact", 200),
    ({"if-modified-since": "Wed, 08 Jul 2037 22:53:52 GMT"}, "exact", 304),    # 0x7F000000 exactly
    ({"if-modified-since": "Tue, 19 Jan 2038 03:14:07 GMT"}, "exact", 200),
    ({"if-modified-since": "Tue, 19 Jan 2038 03:14:07 GMT"}, "before", 304),   # later than the file
    ({"if-modified-since": "Thu, 01 Jan 1970 00:00:01 GMT"}, "before", 200),
    ({"if-modified-since": "Wed, 08 Jul 2037 22:53:52 GMT"}, "off", 200),
    ({"if-modified-since": "garbage"}, "before", 200),
    ({"if-none-match": TAG}, "exact", 304),
    ({"if-none-match": '"foo"'}, "exact", 200),
    ({"if-none-match": "*"}, "exact", 304),
    ({"if-none-match": "W/" + TAG}, "exact", 304),
    ({"if-match": TAG}, "exact", 200),
    ({"if-match": '"foo"'}, "exact", 412),
    ({"if-match": "W/" + TAG}, "exact", 412),
    ({"if-match": "*"}, "exact", 200),
    ({"if-unmodified-since": "Wed, 08 Jul 2037 22:53:52 GMT"}, "exact", 200),
    ({"if-unmodified-since": "Wed, 08 Jul 2037 22:53:51 GMT"}, "exact", 412),
    ({"if-unmodified-since": "nonsense"}, "exact", 412),
    # If-Modified-Since says modified: If-None-Match is not asked
    ({"if-modified-since": "Thu, 01 Jan 1970 00:00:01 GMT", "if-none-match": TAG}, "exact", 200),
])
def test_not_modified_filter(headers: dict[str, str], mode: str, expected: int) -> None:
    assert precondition(headers, MTIME, TAG, mode) == expected


def test_if_range() -> None:
    assert if_range_holds(None, TAG, MTIME)
    assert if_range_holds(TAG, TAG, MTIME) and not if_range_holds('"other"', TAG, MTIME)
    assert not if_range_holds(TAG, None, MTIME)
    assert if_range_holds("Wed, 08 Jul 2037 22:53:52 GMT", TAG, MTIME)
    assert not if_range_holds("wrong", TAG, MTIME)
    assert not if_range_holds("Wed, 08 Jul 2037 22:53:52 GMT", TAG, None)   # add_header Last-Modified ""


NOW = 1_000_000_000


def test_expires() -> None:
    assert expires_headers(Expires("epoch"), None, MTIME, NOW) == [
        (b"Expires", b"Thu, 01 Jan 1970 00:00:01 GMT"), (b"Cache-Control", b"no-cache")]
    assert expires_headers(Expires("max"), None, MTIME, NOW)[1] == (b"Cache-Control", b"max-age=315360000")
    assert expires_headers(Expires("access", 2048), None, MTIME, NOW) == [
        (b"Expires", http_time(NOW + 2048)), (b"Cache-Control", b"max-age=2048")]
    assert expires_headers(Expires("access", -2048), None, MTIME, NOW)[1] == (b"Cache-Control", b"no-cache")
    assert expires_headers(Expires("access", 0), None, MTIME, NOW) == [
        (b"Expires", http_time(NOW)), (b"Cache-Control", b"max-age=0")]
    modified = expires_headers(Expires("modified", 2048), None, NOW - 10, NOW)
    assert modified == [(b"Expires", http_time(NOW + 2038)), (b"Cache-Control", b"max-age=2038")]
    daily = expires_headers(Expires("daily", 33), None, MTIME, NOW)
    assert daily[0][1].endswith(b":33 GMT") or b":00:33" in daily[0][1]
    # with variables: parsed per request; what does not parse adds nothing
    assert expires_headers(Expires("access", 0, None), "off", MTIME, NOW) == []
    assert expires_headers(Expires("access"), "bad", MTIME, NOW) == []
    assert expires_headers(Expires("modified"), "epoch", MTIME, NOW) == []


def test_parse_expires_as_nginx() -> None:
    assert parse_expires("epoch", False) == ("epoch", 0)
    assert parse_expires("@15h30m33s", False) == ("daily", 55833)
    assert parse_expires("-1h", False) == ("access", -3600)
    assert parse_expires("@1h", True) == 'daily time cannot be used with "modified" parameter'
    assert parse_expires("@25h", False) == "daily time value must be less than 24 hours"
    assert parse_expires("1x", False) == "invalid value"
    assert parse_expires("epoch", True) == "invalid value"


def test_paths_root_and_alias() -> None:
    assert map_uri("/srv/www", 0, "/a/b.html").path == "/srv/www/a/b.html"
    assert map_uri("/srv/files/", len("/static/"), "/static/a.css").path == "/srv/files/a.css"
    regex = map_uri("/srv/img/x.png", REGEX_ALIAS, "/i/x.png")
    assert regex.path == "/srv/img/x.png"
    assert map_uri("/srv/dir", REGEX_ALIAS, "/a.html", add_uri_to_alias=True).path == "/srv/dir/a.html"
    # try_files: a name made from variables under an alias loses the location prefix first
    assert try_path("/srv/", len("/n/"), "/n/f.html", "/n/f.html", literal=False).path == "/srv/f.html"
    assert try_path("/srv/", len("/n/"), "/n/f.html", "/n/f.html", literal=True).path == "/srv//n/f.html"


def test_a_request_never_leaves_its_root() -> None:
    # the off-by-slash alias: `location /img { alias /data/img/; }` and /img../secret
    assert escapes_root(map_uri("/data/img/", len("/img"), "/img../secret"))
    assert escapes_root(map_uri("/data/img", len("/img"), "/img/.."))
    assert escapes_root(map_uri("/srv", 0, "/a\0.html"))
    assert not escapes_root(map_uri("/srv", 0, "/a..b/c...html"))
    assert not escapes_root(map_uri("/data/img/", len("/img/"), "/img/x.png"))


def test_directory_redirect_location() -> None:
    assert directory_location("/dir", "") == "/dir/"
    assert directory_location("/a dir", "x=1") == "/a%20dir/?x=1"
    assert directory_location("/100%", "") == "/100%25/"


def test_expires_on_a_proxied_response() -> None:
    from sheer.core.http.conditional import upstream_expires
    from sheer.core.variables import MappingSource
    upstream = [(b"Last-Modified", b"Mon, 28 Sep 1970 06:00:00 GMT"), (b"Expires", b"never")]
    lines, replaced = upstream_expires(Expires("modified", 2048), 200, upstream, MappingSource({}), NOW)
    assert lines[0] == (b"Expires", b"Mon, 28 Sep 1970 06:34:08 GMT")
    assert replaced == {b"expires", b"cache-control"}          # the upstream's own go
    assert upstream_expires(Expires("access", 60), 404, upstream, MappingSource({}), NOW) == ([], frozenset())
    var = Expires("access", 0, None)
    assert upstream_expires(var, 200, [], MappingSource({}), NOW)[0][1] == (b"Cache-Control", b"max-age=0")
