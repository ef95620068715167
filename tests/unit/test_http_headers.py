"""Upstream request heads, client response heads, X-Forwarded-For, framing and retry decisions."""

from __future__ import annotations

from sheer.core.http.framing import BodyMode, response_framing, upstream_reusable
from sheer.core.http.headers import forwarded_for, request_head, request_skip, response_head
from sheer.core.http.nextupstream import (
    Attempt,
    Failure,
    final_status,
    may_retry,
    peer_failed,
    status_failure,
)
from sheer.core.http.pages import error_response, simple_response

CLIENT = [(b"Host", b"example.com"), (b"Connection", b"keep-alive"), (b"Keep-Alive", b"300"),
          (b"TE", b"trailers"), (b"Upgrade", b"h2c"), (b"Proxy-Connection", b"x"),
          (b"Transfer-Encoding", b"chunked"), (b"Content-Length", b"5"), (b"X-Forwarded-For", b"10.0.0.1"),
          (b"Accept", b"*/*"), (b"Expect", b"100-continue")]


def test_request_head_sets_headers_and_drops_what_nginx_drops() -> None:
    # nginx's proxy_set_header defaults: Host, Connection, Content-Length, Transfer-Encoding, TE,
    # Keep-Alive, Expect, Upgrade; the rest (Proxy-Connection too) goes as it came
    head = request_head(b"POST", b"/x", b"1.0", [(b"Host", b"group"), (b"Connection", b"close"),
                                                  (b"X-Forwarded-For", b"10.0.0.1, 127.0.0.1")],
                        request_skip(frozenset({b"host", b"connection", b"x-forwarded-for", b"x-real-ip"})),
                        CLIENT, 5, False)
    assert head == (b"POST /x HTTP/1.0\r\nHost: group\r\nConnection: close\r\n"
                    b"X-Forwarded-For: 10.0.0.1, 127.0.0.1\r\nContent-Length: 5\r\nProxy-Connection: x\r\n"
                    b"Accept: */*\r\n\r\n")


def test_request_head_chunked_and_no_body() -> None:
    head = request_head(b"PUT", b"/", b"1.1", [], request_skip(frozenset()), [(b"A", b"b")], None, True)
    assert head == b"PUT / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nA: b\r\n\r\n"
    assert request_head(b"GET", b"/", b"1.1", [], request_skip(frozenset()), [], None,
                        False) == b"GET / HTTP/1.1\r\n\r\n"


def test_forwarded_for() -> None:
    assert forwarded_for([], "192.168.99.1") == "192.168.99.1"
    assert forwarded_for([(b"X-Forwarded-For", b"1.1.1.1"), (b"x-forwarded-for", b"2.2.2.2")],
                         "192.168.99.1") == "1.1.1.1, 2.2.2.2, 192.168.99.1"


def test_response_head_reframes() -> None:
    upstream = [(b"Content-Type", b"text/plain"), (b"Connection", b"close"),
                (b"Transfer-Encoding", b"chunked"),
                (b"Server", b"origin"), (b"Date", b"old"), (b"Set-Cookie", b"a=b")]
    head = response_head(200, b"OK", upstream, server=b"sheer", date=b"D", content_length=None, chunked=True,
                         keepalive=True)
    assert head == (b"HTTP/1.1 200 OK\r\nServer: sheer\r\nDate: D\r\nContent-Type: text/plain\r\n"
                    b"Set-Cookie: a=b\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n")
    head = response_head(404, b"", [], server=b"s", date=b"D", content_length=3, chunked=False,
                         keepalive=False)
    assert head.startswith(b"HTTP/1.1 404 Not Found\r\n") and head.endswith(b"Content-Length: "
                                                                            b"3\r\nConnection: close\r\n\r\n")


def test_response_framing_decisions() -> None:
    f = response_framing(b"GET", 200, 10, client_http11=True, client_keepalive=True)
    assert (f.mode, f.keepalive, f.content_length) == (BodyMode.LENGTH, True, 10)
    assert response_framing(b"GET", 200, None, client_http11=True,
                            client_keepalive=True).mode is BodyMode.CHUNKED
    close = response_framing(b"GET", 200, None, client_http11=False, client_keepalive=True)
    assert (close.mode, close.keepalive) == (BodyMode.CLOSE, False)
    for method, status in ((b"HEAD", 200), (b"GET", 204), (b"GET", 304)):
        f = response_framing(method, status, None, client_http11=False, client_keepalive=True)
        assert (f.mode, f.keepalive) == (BodyMode.NONE, True)


def test_upstream_reusable() -> None:
    assert upstream_reusable(b"GET", 200, True, 5, False)
    assert upstream_reusable(b"GET", 200, True, None, True)
    assert not upstream_reusable(b"GET", 200, True, None, False)     # close-delimited
    assert not upstream_reusable(b"GET", 200, False, 5, False)
    assert not upstream_reusable(b"HEAD", 200, True, 5, False)
    assert upstream_reusable(b"GET", 304, True, None, False)


def attempt(method: bytes = b"GET", **kw: object) -> Attempt:
    values: dict[str, object] = {"replayable": True, "response_started": False, "tries_left": 1,
                                 "elapsed": 0.0, "timeout": 0.0}
    values.update(kw)
    return Attempt(method, **values)  # type: ignore[arg-type]


def test_next_upstream_rules() -> None:
    default = frozenset({"error", "timeout"})
    assert may_retry(Failure.ERROR, default, attempt())
    assert not may_retry(Failure.INVALID_HEADER, default, attempt())
    assert not may_retry(Failure.ERROR, default, attempt(tries_left=0))
    assert not may_retry(Failure.ERROR, default, attempt(response_started=True))
    assert not may_retry(Failure.ERROR, default, attempt(replayable=False))
    assert not may_retry(Failure.ERROR, default, attempt(b"POST"))
    assert may_retry(Failure.ERROR, default | {"non_idempotent"}, attempt(b"PATCH"))
    assert not may_retry(Failure.ERROR, default, attempt(elapsed=2.0, timeout=1.0))
    assert not may_retry(Failure.ERROR, frozenset({"off"}), attempt())
    assert status_failure(503, default) is None
    assert status_failure(503, default | {"http_503"}) is Failure.HTTP_503
    assert peer_failed(Failure.HTTP_503) and not peer_failed(Failure.HTTP_404)
    assert (final_status(Failure.TIMEOUT), final_status(Failure.ERROR)) == (504, 502)


def test_generated_responses() -> None:
    page = error_response(502, server=b"sheer", date=b"D", keepalive=False)
    assert page.startswith(b"HTTP/1.1 502 Bad Gateway\r\n") and b"<title>502 Bad Gateway</title>" in page
    head_only = simple_response(200, server=b"s", date=b"D", body=b"hi", content_type=b"text/plain",
                                keepalive=True, head=True)
    assert head_only.endswith(b"Content-Length: 2\r\nConnection: keep-alive\r\n\r\n")
    moved = simple_response(301, server=b"s", date=b"D", body=b"", content_type=None, keepalive=True,
                            location=b"http://x/")
    assert b"Location: http://x/\r\n" in moved
