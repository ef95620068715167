"""nginx 1.22's verdicts on request heads and bodies (sheer.core.http): every case here was checked
against ngx_http_parse.c / ngx_http_request.c; the differential fuzzer (tests/lab) checks them
against a running nginx."""

from __future__ import annotations

import pytest

from sheer.core.http.chunked import Chunked, ChunkedDecoder
from sheer.core.http.host import validate_host
from sheer.core.http.reader import END, RequestReader
from sheer.core.http.request_head import Limits, RequestHead, parse_head
from sheer.core.http.uri import parse_uri
from sheer.core.http.verdict import Rejected

REFUSED = [
    # request line
    (b"get / HTTP/1.1\r\n\r\n", 400, "client sent invalid method"),
    (b"\x16\x03\x01\x02\x00", 400, "client sent invalid method"),          # TLS to a plain port: at once
    (b"G\x00T / HTTP/1.1\r\n\r\n", 400, "client sent invalid method"),
    (b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", 400, "client sent invalid request"),
    (b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", 400, "client sent invalid request"),
    (b"GET a HTTP/1.1\r\nHost: a\r\n\r\n", 400, "client sent invalid request"),
    (b"GET / http/1.1\r\nHost: a\r\n\r\n", 400, "client sent invalid request"),
    (b"GET / HTTP/1.1x\r\nHost: a\r\n\r\n", 400, "client sent invalid request"),
    (b"GET / HTTP/0.9\r\n\r\n", 400, "client sent invalid request"),
    (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505, "client sent invalid version"),
    (b"GET / HTTP/9.9\r\nHost: a\r\n\r\n", 505, "client sent invalid version"),
    (b"POST /\r\n", 400, "client sent invalid method in HTTP/0.9 request"),
    (b"GET /" + b"x" * 9000 + b" HTTP/1.1\r\n\r\n", 414, "client sent too long URI"),
    (b"HEAD /" + b"x" * 9000 + b"\r\n", 414, "client sent too long URI"),
    (b"GET /%zz HTTP/1.1\r\nHost: a\r\n\r\n", 400, "client sent invalid request"),
    (b"GET /../x HTTP/1.1\r\nHost: a\r\n\r\n", 400, "client sent invalid request"),
    (b"GET /%00 HTTP/1.1\r\nHost: a\r\n\r\n", 400, "client sent invalid request"),
    (b"GET http://a..b/ HTTP/1.1\r\nHost: a\r\n\r\n", 400, "client sent invalid host in request line"),
    # header lines
    (b"GET / HTTP/1.1\r\nHost: a\r\n\tX: 0\r\n\r\n", 400, 'client sent invalid header line: "\\x09..."'),
    (b"GET / HTTP/1.1\r\nHost: a\r\nX A: 1\r\n\r\n", 400, 'client sent invalid header line: "X\\x20..."'),
    (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x00\r\n\r\n", 400, 'client sent invalid header line: "X: a\\x00'),
    (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", 400, 'client sent invalid header line: "X: a\\x0d..."'),
    (b"GET / HTTP/1.1\r\nHost: a\r\nX: " + b"x" * 9000 + b"\r\n\r\n", 494, "client sent too long header"),
    # what ngx_http_process_request_header checks
    (b"GET / HTTP/1.1\r\n\r\n", 400, 'client sent HTTP/1.1 request without "Host" header'),
    (b"GET http://a/ HTTP/1.1\r\n\r\n", 400, 'client sent HTTP/1.1 request without "Host" header'),
    (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400,
     'client sent duplicate host header: "Host: b", previous value: "Host: a"'),
    (b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400, "client sent invalid host header"),
    (b"GET / HTTP/1.1\r\nHost: a/../b\r\n\r\n", 400, "client sent invalid host header"),
    (b"GET / HTTP/1.1\r\nHost: \r\n\r\n", 400, "client sent invalid host header"),
    (b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1x\r\n\r\n", 400,
     'client sent invalid "Content-Length" header'),
    (b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 100000000000000000000\r\n\r\n", 400,
     'client sent invalid "Content-Length" header'),
    (b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n", 400,
     'client sent duplicate header line: "Content-Length: 1", previous value: "Content-Length: 1"'),
    (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400,
     'client sent HTTP/1.0 request with "Transfer-Encoding" header'),
    (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400,
     'client sent "Content-Length" and "Transfer-Encoding" headers at the same time'),
    (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity, chunked\r\n\r\n", 501,
     'client sent unknown "Transfer-Encoding": "identity, chunked"'),
    (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501,
     'client sent unknown "Transfer-Encoding": "gzip, chunked"'),
    (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \tchunked\r\n\r\n", 501,
     'client sent unknown "Transfer-Encoding": "\\x09chunked"'),
    (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n", 501,
     'client sent unknown "Transfer-Encoding": "xchunked"'),
    (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunkedx\r\n\r\n", 501,
     'client sent unknown "Transfer-Encoding": "chunkedx"'),
    (b'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: "chunked"\r\n\r\n', 501,
     'client sent unknown "Transfer-Encoding": "\\x22chunked\\x22"'),
    (b"TRACE / HTTP/1.1\r\nHost: a\r\n\r\n", 405, "client sent TRACE method"),
    # nginx 1.29.3: CONNECT's target is a host and a port, then its 405
    (b"CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n", 405, "client sent CONNECT method"),
    (b"CONNECT [::1]:443 HTTP/1.0\r\n\r\n", 405, "client sent CONNECT method"),
    (b"CONNECT / HTTP/1.1\r\nHost: a\r\n\r\n", 400, "client sent invalid request"),
    (b"CONNECT a HTTP/1.1\r\nHost: a\r\n\r\n", 400, "client sent invalid request"),
    (b"CONNECT a: HTTP/1.1\r\nHost: a\r\n\r\n", 400, "client sent invalid request"),
    (b"CONNECT a:443/x HTTP/1.1\r\nHost: a\r\n\r\n", 400, "client sent invalid request"),
    (b"CONNECT a:99999 HTTP/1.1\r\nHost: a\r\n\r\n", 400, "client sent invalid host in request line"),
]


@pytest.mark.parametrize(("data", "status", "message"), REFUSED)
def test_refused_as_nginx_refuses(data: bytes, status: int, message: str) -> None:
    verdict = parse_head(data, 0, Limits())
    assert isinstance(verdict, Rejected), verdict
    assert verdict.status == status
    assert verdict.message.startswith(message)


def head(data: bytes) -> RequestHead:
    found = parse_head(data, 0, Limits())
    assert isinstance(found, RequestHead), found
    return found


def test_the_common_head() -> None:
    h = head(b"GET /index.html?a=1 HTTP/1.1\r\nHost: Example.COM:8080\r\nX-A:  v  \r\nAccept: */*\r\n\r\n")
    assert (h.method, h.target, h.version, h.line) == (b"GET", b"/index.html?a=1", 1001,
                                                        b"GET /index.html?a=1 HTTP/1.1")
    assert (h.uri, h.args, h.host, h.keepalive) == ("/index.html", "a=1", "example.com", True)
    assert h.headers == [(b"Host", b"Example.COM:8080"), (b"X-A", b"v"), (b"Accept", b"*/*")]


def test_what_nginx_accepts_that_is_unusual() -> None:
    assert head(b"GET / HTTP/1.1 \r\nHost: a\r\n\r\n").line == b"GET / HTTP/1.1 "    # spaces after it
    assert head(b"GET  /  HTTP/1.0\n\n").target == b"/"
    assert head(b"\r\n\r\nGET / HTTP/1.0\r\n\r\n").line == b"GET / HTTP/1.0"     # empty lines before it
    assert head(b"PROPFIND / HTTP/1.10\r\nHost: a\r\n\r\n").version == 1010
    assert head(b"FOO_BAR / HTTP/1.0\r\n\r\n").method == b"FOO_BAR"       # any method nginx can parse
    h = head(b"GET / HTTP/1.1\r\nHost: a\r\nX-\xff: 1\r\nX_Y: 2\r\nX-Ctl: \x01\x7f\xff\r\nEmpty\r\n\r\n")
    assert h.headers == [(b"Host", b"a"), (b"X-Ctl", b"\x01\x7f\xff"), (b"Empty", b"")]
    assert h.ignored == ['client sent invalid header line: "X-\\xFF: 1"',
                         'client sent invalid header line: "X_Y: 2"']


def test_ignore_invalid_headers_off_and_underscores_in_headers() -> None:
    text = b"GET / HTTP/1.1\r\nHost: a\r\nX_Y: 2\r\n_z: 3\r\nx.f: 4\r\n</kie>: 5\r\n\r\n"
    kept = parse_head(text, 0, Limits(ignore_invalid=False))
    assert isinstance(kept, RequestHead) and kept.ignored is None
    # nginx starts the name again after a character that cannot begin one
    assert kept.headers[1:] == [(b"X_Y", b"2"), (b"_z", b"3"), (b"x.f", b"4"), (b"kie>", b"5")]
    underscores = parse_head(text, 0, Limits(underscores=True))
    assert isinstance(underscores, RequestHead)
    assert underscores.headers[1:] == [(b"X_Y", b"2"), (b"_z", b"3")]
    assert underscores.ignored == ['client sent invalid header line: "x.f: 4"',
                                   'client sent invalid header line: "</kie>: 5"']
    refused = parse_head(b"GET / HTTP/1.1\r\nHost: a\r\n:x: 1\r\n\r\n", 0, Limits(ignore_invalid=False))
    assert isinstance(refused, Rejected) and refused.status == 400


def test_absolute_form_takes_its_host_from_the_request_line() -> None:
    h = head(b"GET http://Example.com:80/p?q HTTP/1.1\r\nHost: other\r\n\r\n")
    assert (h.target, h.uri, h.args, h.host) == (b"/p?q", "/p", "q", "example.com")
    h = head(b"GET http://example.com HTTP/1.1\r\nHost: other\r\n\r\n")
    assert (h.target, h.uri) == (b"/", "/")
    h = head(b"GET http://[::1]:8080/x HTTP/1.1\r\nHost: other\r\n\r\n")
    assert (h.target, h.host) == (b"/x", "[::1]")


def test_http09() -> None:
    h = head(b"GET /x\r\n")
    assert (h.version, h.keepalive, h.headers, h.line) == (9, False, [], b"GET /x")


def test_absolute_form_port_is_checked() -> None:
    refused = parse_head(b"GET http://1.2.3.4:123456/ HTTP/1.1\r\nHost: a\r\n\r\n", 0, Limits())
    assert isinstance(refused, Rejected) and refused.message == "client sent invalid host in request line"
    assert head(b"GET http://A.b:8080/x HTTP/1.1\r\nHost: c\r\n\r\n").host == "a.b"


def test_framing_and_connection() -> None:
    assert head(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n").chunked
    assert head(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 007\r\n\r\n").content_length == 7
    assert not head(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Close\r\n\r\n").keepalive
    assert head(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").keepalive
    assert head(b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\n\r\n").expect_continue


@pytest.mark.parametrize(("target", "expected"), [
    (b"/", ("/", "")), (b"/a//b", ("/a/b", "")), (b"/a/./b/../c", ("/a/c", "")), (b"/a/..", ("/", "")),
    (b"/a%2Fb", ("/a/b", "")), (b"/%2e%2e/x", None), (b"/..", None), (b"/%", None), (b"/%zz", None),
    (b"/a#frag", ("/a", "")), (b"/x?a=/../#b", ("/x", "a=/../")), (b"/%3F?x", ("/?", "x")),
])
def test_uri_as_nginx_normalizes_it(target: bytes, expected: tuple[str, str] | None) -> None:
    assert parse_uri(target) == expected


@pytest.mark.parametrize(("host", "expected"), [
    (b"example.com", "example.com"), (b"Example.COM.:80", "example.com"), (b"[::1]:80", "[::1]"),
    (b"a b", None), (b"a/../b", None), (b"a..b", None), (b"", None), (b":80", None),
    (b"\xc3\xa9", "\xc3\xa9"),
    # nginx 1.29.4's stricter port and IPv6 literal
    (b"a:65535", "a"), (b"a:", "a"), (b"1.2.3.4:65536", None), (b"1.2.3.4:98777", None), (b"a.:1.2", None),
    (b"1.2.3.4:9000:80", None), (b"[::1].", None), (b"[::1].:98", None), (b"x[::1]:98", None),
    (b"[::1", None), (b"[::1]:", "[::1]"),
])
def test_host_as_nginx_validates_it(host: bytes, expected: str | None) -> None:
    assert validate_host(host) == expected


@pytest.mark.parametrize(("body", "data", "verdict"), [
    (b"5\r\nhello\r\n0\r\n\r\n", b"hello", Chunked.DONE),
    (b"5\nhello\n0\n\n", b"hello", Chunked.DONE),
    (b"3;ext=1\r\nabc\r\n0\r\nTrailer: x\r\n\r\n", b"abc", Chunked.DONE),
    (b"5\r\nhello\r\n0\r\n", b"hello", Chunked.MORE),
    (b"z\r\nhello\r\n0\r\n\r\n", b"", 400),
    (b"-1\r\nx\r\n0\r\n\r\n", b"", 400),
    (b"5\r\nhel\r\n0\r\n\r\n", b"hel\r\n", 400),
    (b"ffffffffffffffffffff\r\nx\r\n0\r\n\r\n", b"", 400),
])
def test_chunked_as_nginx_decodes_it(body: bytes, data: bytes, verdict: Chunked | int) -> None:
    out: list[bytes] = []
    _, status = ChunkedDecoder().feed(body, 0, out)
    assert b"".join(out) == data
    assert status == verdict if isinstance(verdict, Chunked) else status.status == verdict  # type: ignore[union-attr]


def test_chunked_beyond_client_max_body_size() -> None:
    out: list[bytes] = []
    _, status = ChunkedDecoder(limit=10).feed(b"5\r\nhello\r\n6\r\nhello!\r\n0\r\n\r\n", 0, out)
    assert isinstance(status, Rejected) and status.status == 413
    assert status.message == "client intended to send too large chunked body: 5+6 bytes"


def events(*pieces: bytes) -> list[object]:
    reader = RequestReader()
    out: list[object] = []
    for piece in pieces:
        reader.feed(piece)
        while (event := reader.next_event()) is not None:
            out.append(("head", event.line) if isinstance(event, RequestHead) else
                       event.status if isinstance(event, Rejected) else event)
    return out


def test_pipelined_requests_then_a_bad_one_in_order() -> None:
    good = b"GET /g HTTP/1.1\r\nHost: a\r\n\r\n"
    got = events(good * 10 + b"GET /bad HTTP/9.9\r\n\r\n" + good * 10)
    assert got == [("head", b"GET /g HTTP/1.1")] * 10 + [505]     # nothing after the refused one


def test_bodies_between_heads_whatever_the_packets() -> None:
    data = (b"POST /1 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
            b"POST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc")
    whole = events(data)
    split = events(*(data[i:i + 7] for i in range(0, len(data), 7)))
    assert whole == [("head", b"POST /1 HTTP/1.1"), b"hello", END, ("head", b"POST /2 HTTP/1.1"), b"abc", END]
    assert [e for e in split if not isinstance(e, bytes)] == [("head", b"POST /1 HTTP/1.1"), END,
                                                              ("head", b"POST /2 HTTP/1.1"), END]
    assert b"".join(e for e in split[:split.index(END)] if isinstance(e, bytes)) == b"hello"


def test_a_declared_length_beyond_client_max_body_size() -> None:
    reader = RequestReader()
    reader.feed(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2000000\r\n\r\n")
    assert isinstance(reader.next_event(), RequestHead)
    refused = reader.limit_body(1024 * 1024)
    assert refused is not None and refused.status == 413
    assert refused.message == "client intended to send too large body: 2000000 bytes"


def test_max_headers_and_merge_slashes() -> None:
    five = b"GET / HTTP/1.0\r\nHost: a\r\n" + b"X: 1\r\n" * 4 + b"\r\n"
    assert isinstance(parse_head(five, 0, Limits(max_headers=5)), RequestHead)
    six = b"GET / HTTP/1.0\r\nHost: a\r\n" + b"X: 1\r\n" * 5 + b"\r\n"
    refused = parse_head(six, 0, Limits(max_headers=5))
    assert isinstance(refused, Rejected) and refused.message == "client sent too many header lines"
    assert isinstance(parse_head(six, 0, Limits()), RequestHead)
    ignored = b"GET / HTTP/1.0\r\nHost: a\r\n" + b"X: 1\r\n" * 4 + b"X_Y: 2\r\n\r\n"   # not counted
    assert isinstance(parse_head(ignored, 0, Limits(max_headers=5)), RequestHead)
    # Debian's nginx 1.22: 1000 by default; what the lines before decided comes first, what after, not
    many = b"".join(b"X%d: 1\r\n" % n for n in range(1000))
    assert isinstance(parse_head(b"GET / HTTP/1.1\r\nHost: a\r\n" + many[7:] + b"\r\n", 0, Limits()),
                      RequestHead)
    over = parse_head(b"GET / HTTP/1.1\r\nHost: a\r\n" + many + b"Host: b\r\n\x01\r\n\r\n", 0, Limits())
    assert isinstance(over, Rejected) and over.message == "client sent too many header lines"
    first = parse_head(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n" + many + b"\r\n", 0, Limits())
    assert isinstance(first, Rejected) and first.message.startswith("client sent duplicate host header")
    no_host = parse_head(b"GET / HTTP/1.1\r\n" + many + b"X: 1\r\n\r\n", 0, Limits())
    assert isinstance(no_host, Rejected) and no_host.message == "client sent too many header lines"
    assert parse_uri(b"/foo//../bar", merge_slashes=False) == ("/foo/bar", "")
    assert parse_uri(b"/foo///../bar", merge_slashes=False) == ("/foo//bar", "")
    assert parse_uri(b"//a//b?x", merge_slashes=False) == ("//a//b", "x")
    assert parse_uri(b"/foo///../bar") == ("/bar", "")
    off = parse_head(b"GET /a//b HTTP/1.0\r\n\r\n", 0, Limits(merge_slashes=False))
    assert isinstance(off, RequestHead) and off.uri == "/a//b"


def test_a_refused_http09_request_is_answered_as_http09() -> None:
    for line in (b"GET /%2e%2e/x\r\n", b"GET http://a..b/\r\n"):
        refused = parse_head(line, 0, Limits())
        assert isinstance(refused, Rejected) and refused.status == 400 and refused.http09
    refused = parse_head(b"GET /%2e%2e/x HTTP/1.0\r\n\r\n", 0, Limits())
    assert isinstance(refused, Rejected) and not refused.http09
