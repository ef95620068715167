"""sheer.core.http.gzip: nginx's decisions (Accept-Encoding with q-values, gzip_proxied, gzip_disable,
types, lengths, statuses), the header changes, the stream and $gzip_ratio; and the directives' merging."""

from __future__ import annotations

import gzip as gzip_module
import re
from pathlib import Path

import pytest

from sheer.config import load
from sheer.config.gzip import Gzip
from sheer.core.http.gzip import (
    Deflater,
    accepts_gzip,
    compressed_headers,
    content_type_key,
    eligible,
    request_ok,
    weak_etag,
)


@pytest.mark.parametrize(("value", "ok"), [
    (b"gzip", True), (b"gzip, deflate", True), (b"deflate,gzip", True), (b"br, gzip", True),
    (b"GZIP", True), (b"gzip;q=1", True), (b"gzip; q=0.5", True), (b"gzip;q=0.001", True),
    (b"gzip ;q=1.000", True), (b"gzip;q=1,br", True), (b"gzip;", True),
    (b"gzip;q=0", False), (b"gzip;q=0.000", False), (b"gzip;q=1.5", False), (b"gzip;q=0.0001", False),
    (b"gzip;q=2", False), (b"gzip;r=1", False), (b"gzip;q", False), (b"x-gzip", False), (b"gzipx", False),
    (b"deflate", False), (b"gzi", False), (b"", False),
    (b"x-gzip, gzip", True),      # the second one counts
])
def test_accept_encoding_as_nginx_reads_it(value: bytes, ok: bool) -> None:
    assert accepts_gzip(value) is ok


def test_content_type_key() -> None:
    assert content_type_key(b"Text/HTML; charset=utf-8") == b"text/html"
    assert content_type_key(b"text/html;charset=\"utf-8\"") == b"text/html"
    assert content_type_key(b"text/html; level=1") == b"text/html; level=1"     # as nginx: no match then
    assert content_type_key(b"application/json") == b"application/json"


def test_eligible() -> None:
    on = Gzip()
    assert eligible(on, 200, b"text/html", 100, None)
    assert eligible(on, 404, b"text/html", None, None)
    assert not eligible(on, 206, b"text/html", 100, None)
    assert not eligible(on, 304, b"text/html", None, None)
    assert not eligible(on, 200, b"text/html", 19, None)                # gzip_min_length 20
    assert eligible(on, 200, b"text/html", 20, None)
    assert not eligible(on, 200, b"text/css", 100, None)
    assert not eligible(on, 200, None, 100, None)
    assert not eligible(on, 200, b"text/html", 100, b"br")
    assert eligible(on, 200, b"text/html", 100, b"")                    # an empty one counts as none
    assert eligible(Gzip(types=frozenset({"*"})), 200, None, 100, None)


def test_request_ok() -> None:
    on = Gzip()
    asks = [(b"Accept-Encoding", b"gzip")]
    assert request_ok(on, asks, 11, [], 0.0)
    assert not request_ok(on, [], 11, [], 0.0)
    assert not request_ok(on, asks, 10, [], 0.0)                          # gzip_http_version 1.1
    assert request_ok(Gzip(http_version=10), asks, 10, [], 0.0)
    msie = [*asks, (b"User-Agent", b"Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1)")]
    assert request_ok(on, msie, 11, [], 0.0)
    assert not request_ok(Gzip(disable_msie6=True), msie, 11, [], 0.0)
    curl = [*asks, (b"User-Agent", b"curl/8")]
    assert not request_ok(Gzip(disable=(re.compile(b"^CURL", re.IGNORECASE),)), curl, 11, [], 0.0)


@pytest.mark.parametrize(("proxied", "request_extra", "response", "ok"), [
    ({"off"}, [], [], False),
    ({"any"}, [], [(b"Cache-Control", b"max-age=9")], True),
    ({"auth"}, [(b"Authorization", b"Basic x")], [(b"Expires", b"Thu, 01 Jan 2099 00:00:00 GMT")], True),
    ({"expired"}, [], [(b"Expires", b"Thu, 01 Jan 1970 00:00:01 GMT")], True),
    ({"expired"}, [], [(b"Expires", b"Thu, 01 Jan 2099 00:00:00 GMT")], False),
    ({"expired"}, [], [(b"Expires", b"0")], False),
    ({"no-cache"}, [], [(b"Expires", b"Thu, 01 Jan 1970 00:00:01 GMT")], False),   # an Expires decides
    ({"no-cache"}, [], [(b"Cache-Control", b"private, no-cache")], True),
    ({"no-store"}, [], [(b"Cache-Control", b"no-cache")], False),
    ({"private"}, [], [(b"Cache-Control", b"max-age=0"), (b"Cache-Control", b"private")], True),
    ({"private"}, [], [(b"Cache-Control", b"privateer")], False),
    ({"expired"}, [], [], True),                                        # nothing said: compressed
    ({"no_last_modified"}, [], [(b"Last-Modified", b"Thu, 01 Jan 1970 00:00:01 GMT")], False),
    ({"no_etag"}, [], [(b"ETag", b'"x"')], False),
    ({"no_etag"}, [], [], True),
])
def test_gzip_proxied(proxied: set[str], request_extra: list[tuple[bytes, bytes]],
                      response: list[tuple[bytes, bytes]], ok: bool) -> None:
    headers = [(b"Accept-Encoding", b"gzip"), (b"Via", b"1.1 cache"), *request_extra]
    assert request_ok(Gzip(proxied=frozenset(proxied)), headers, 11, response, 1e9) is ok


def test_headers_once_compressed() -> None:
    assert weak_etag(b'"abc"') == b'W/"abc"'
    assert weak_etag(b'W/"abc"') == b'W/"abc"'
    assert weak_etag(b"abc") is None
    headers = [(b"Content-Length", b"9"), (b"ETag", b'"a"'), (b"Accept-Ranges", b"bytes"), (b"X", b"y"),
               (b"Etag", b"bare")]
    assert compressed_headers(headers) == [(b"ETag", b'W/"a"'), (b"X", b"y")]


def test_deflater_streams_and_counts() -> None:
    deflater = Deflater(1)
    assert deflater.ratio == ""
    data = b"0123456789" * 10000
    out = [deflater.compress(data[at:at + 4096]) for at in range(0, len(data), 4096)]
    out.append(deflater.flush())
    assert deflater.flush() == b""          # nothing new: no empty block
    out.append(deflater.finish())
    assert gzip_module.decompress(b"".join(out)) == data
    assert deflater.zin == len(data) and deflater.zout == len(b"".join(out))


def test_ratio_rounds_as_nginx() -> None:
    deflater = Deflater(1)
    deflater.zin, deflater.zout = 2125, 1000
    assert deflater.ratio == "2.13"
    deflater.zin, deflater.zout = 1999, 1000
    assert deflater.ratio == "2.00"
    deflater.zin, deflater.zout = 100, 300
    assert deflater.ratio == "0.33"


def test_directives_merge(tmp_path: Path) -> None:
    conf = tmp_path / "lb.conf"
    conf.write_text("""http {
    gzip on; gzip_types text/css; gzip_types application/json; gzip_proxied expired auth;
    gzip_disable msie6; gzip_http_version 1.0;
    server { listen 127.0.0.1:8080;
        location / { gzip_min_length 1k; gzip_comp_level 5; }
        location /off { gzip off; }
        location /all { gzip_types *; gzip_vary on; } } }
""")
    server = load(str(conf)).http.servers[0]     # type: ignore[union-attr]
    root, off, every = server.locations
    assert root.gzip == Gzip(types=frozenset({"text/html", "text/css", "application/json"}), min_length=1024,
                             comp_level=5, proxied=frozenset({"expired", "auth"}), http_version=10,
                             disable_msie6=True)
    assert off.gzip is None
    assert every.gzip is not None and every.gzip.types == frozenset({"*"}) and every.gzip.vary
    assert server.gzip is not None

