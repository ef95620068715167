"""gzip on loopback: a real HTTP upstream (Python's http.server in a thread) behind sheer, and files; every
compressed body is decompressed with Python's gzip and compared byte for byte with what was served."""

from __future__ import annotations

import gzip
import http.client
import http.server
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sheer_process import wait_for
from test_http_harness import Harness, harness_fixture  # noqa: F401

pytestmark = pytest.mark.io

PAGE = b"<html>" + b"hello, gzip! " * 4000 + b"</html>"       # 52 KB: several upstream reads
SMALL = b"<p>a small page</p>"                            # 21 bytes


class Upstream(http.server.BaseHTTPRequestHandler):
    """/page: text/html with a length; /chunked: the same in chunks; /json, /small, /encoded, /304,
    /204, /expired, /cached, /private, /etag: what their names say."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        headers: list[tuple[str, str]] = [("Content-Type", "text/html; charset=utf-8")]
        body, status = PAGE, 200
        if path == "/json":
            headers = [("Content-Type", "application/json")]
        elif path == "/small":
            body = SMALL
        elif path == "/encoded":
            headers.append(("Content-Encoding", "br"))
        elif path == "/304":
            status, body = 304, b""
        elif path == "/204":
            status, body = 204, b""
        elif path == "/expired":
            headers.append(("Expires", "Thu, 01 Jan 1970 00:00:01 GMT"))
        elif path == "/cached":
            headers.append(("Cache-Control", "max-age=60"))
        elif path == "/private":
            headers.append(("Cache-Control", "max-age=0, private"))
        elif path == "/etag":
            headers += [("ETag", '"abc"'), ("Accept-Ranges", "bytes")]
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        if path == "/chunked":
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            if self.command != "HEAD":
                for at in range(0, len(body), 1000):
                    piece = body[at:at + 1000]
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                self.wfile.write(b"0\r\n\r\n")
            return
        if status not in (204, 304):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and status not in (204, 304):
            self.wfile.write(body)


@pytest.fixture
def upstream() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.11", 0), Upstream)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def get(port: int, path: str, method: str = "GET", **headers: str) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, headers={key.replace("_", "-"): value for key, value in headers.items()})
        response = conn.getresponse()
        body = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, body
    finally:
        conn.close()


def serve(harness: Harness, up: int, settings: str) -> int:
    proxy = harness.listen("127.0.0.1")
    harness.serve(f"""
        log_format ratio $uri:$gzip_ratio;
        server {{ listen 127.0.0.1:{proxy};
                  access_log {harness.tmp}/ratio.log ratio;
                  {settings}
                  location / {{ proxy_pass http://127.0.0.11:{up}; }}
                  location /files/ {{ alias {harness.tmp}/files/; }}
                  location /off/ {{ gzip off; proxy_pass http://127.0.0.11:{up}/; }} }}""")
    return proxy


def test_proxied_gzip_on_and_off(harness: Harness, upstream: int) -> None:
    proxy = serve(harness, upstream, "gzip on; gzip_vary on;")
    for path in ("/page", "/chunked"):
        status, headers, body = get(proxy, path, Accept_Encoding="gzip, deflate")
        assert status == 200
        assert headers["content-encoding"] == "gzip"
        assert headers["vary"] == "Accept-Encoding"
        assert "content-length" not in headers and headers["transfer-encoding"] == "chunked"
        assert gzip.decompress(body) == PAGE
        assert len(body) < len(PAGE) // 10
    status, headers, body = get(proxy, "/off/page", Accept_Encoding="gzip")      # gzip off there
    assert "content-encoding" not in headers and body == PAGE
    assert headers["content-length"] == str(len(PAGE))
    status, headers, body = get(proxy, "/page")                                  # no Accept-Encoding
    assert "content-encoding" not in headers and body == PAGE
    assert headers["vary"] == "Accept-Encoding"       # it could have been: caches must know
    log = harness.tmp / "ratio.log"
    wait_for(lambda: len(log.read_text().splitlines()) == 4, 5, "the access log's lines")
    lines = log.read_text().splitlines()
    assert lines[2:] == ["/off/page:-", "/page:-"]
    ratio = float(lines[0].split(":")[1])
    assert ratio > 10


def test_what_is_not_compressed(harness: Harness, upstream: int) -> None:
    proxy = serve(harness, upstream, "gzip on; gzip_min_length 100;")
    for path, why in (("/json", "not in gzip_types"), ("/small", "under gzip_min_length"),
                      ("/encoded", "already encoded"), ("/304", "a 304"), ("/204", "a 204")):
        _, headers, _ = get(proxy, path, Accept_Encoding="gzip")
        assert headers.get("content-encoding") in (None, "br"), why
        assert "vary" not in headers, why                  # gzip_vary off
    _, headers, body = get(proxy, "/page", Accept_Encoding="gzip;q=0")       # refused by the client
    assert "content-encoding" not in headers and body == PAGE
    for accepted in ("gzip;q=0.001", "deflate, gzip ;q=1", "GZIP", "br;q=1, gzip"):
        assert get(proxy, "/page", Accept_Encoding=accepted)[1].get("content-encoding") == "gzip", accepted
    for refused in ("gzip;q=0.000", "x-gzip", "gzipped", "gzip;q=1.5"):
        assert "content-encoding" not in get(proxy, "/page", Accept_Encoding=refused)[1], refused


def test_types_head_and_etag(harness: Harness, upstream: int) -> None:
    proxy = serve(harness, upstream, "gzip on; gzip_types application/json;")
    status, headers, body = get(proxy, "/json", Accept_Encoding="gzip")
    assert headers["content-encoding"] == "gzip" and gzip.decompress(body) == PAGE
    status, headers, body = get(proxy, "/page", "HEAD", Accept_Encoding="gzip")
    assert status == 200 and body == b""
    assert headers["content-encoding"] == "gzip" and "content-length" not in headers
    status, headers, body = get(proxy, "/etag", Accept_Encoding="gzip")
    assert headers["etag"] == 'W/"abc"'                   # weakened, as nginx 1.22
    assert "accept-ranges" not in headers
    assert gzip.decompress(body) == PAGE


def test_gzip_proxied(harness: Harness, upstream: int) -> None:
    proxy = serve(harness, upstream, "gzip on; gzip_proxied expired private;")
    via = {"Accept_Encoding": "gzip", "Via": "1.1 cache"}
    assert "content-encoding" not in get(proxy, "/cached", **via)[1]      # neither expired nor private
    assert get(proxy, "/page", **via)[1]["content-encoding"] == "gzip"    # nothing said: nginx compresses
    assert get(proxy, "/expired", **via)[1]["content-encoding"] == "gzip"
    assert get(proxy, "/private", **via)[1]["content-encoding"] == "gzip"
    assert get(proxy, "/cached", Accept_Encoding="gzip")[1]["content-encoding"] == "gzip"   # no Via
    proxy = serve(harness, upstream, "gzip on;")                          # gzip_proxied off
    assert "content-encoding" not in get(proxy, "/page", **via)[1]


def test_gzip_disable_and_version(harness: Harness, upstream: int) -> None:
    proxy = serve(harness, upstream, "gzip on; gzip_disable msie6 \"^curl/\";")
    assert "content-encoding" not in get(proxy, "/page", Accept_Encoding="gzip", User_Agent="CURL/8.0")[1]
    assert "content-encoding" not in get(proxy, "/page", Accept_Encoding="gzip",
                                         User_Agent="Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.0)")[1]
    assert get(proxy, "/page", Accept_Encoding="gzip", User_Agent="Wget/1.0")[1]["content-encoding"] == "gzip"
    conn = http.client.HTTPConnection("127.0.0.1", proxy, timeout=10)
    conn._http_vsn, conn._http_vsn_str = 10, "HTTP/1.0"       # gzip_http_version 1.1: not for HTTP/1.0
    conn.request("GET", "/page", headers={"Accept-Encoding": "gzip"})
    response = conn.getresponse()
    assert response.getheader("Content-Encoding") is None and response.read() == PAGE
    conn.close()


def test_files(harness: Harness, upstream: int) -> None:
    files = harness.tmp / "files"
    files.mkdir()
    big = bytes(range(256)) * 2000 + PAGE * 4              # 700 KB: many pieces through zlib
    (files / "big.html").write_bytes(big)
    (files / "small.html").write_bytes(SMALL)
    proxy = serve(harness, upstream, "gzip on; gzip_min_length 5; gzip_comp_level 6; gzip_vary on;")
    status, headers, body = get(proxy, "/files/big.html", Accept_Encoding="gzip")
    assert status == 200 and headers["content-encoding"] == "gzip"
    assert headers["etag"].startswith('W/"') and "accept-ranges" not in headers
    assert gzip.decompress(body) == big
    status, headers, body = get(proxy, "/files/big.html", Accept_Encoding="gzip", Range="bytes=0-9")
    assert status == 200 and gzip.decompress(body) == big       # the range is dropped, as nginx does
    status, headers, body = get(proxy, "/files/small.html", Accept_Encoding="gzip")
    assert gzip.decompress(body) == SMALL
    status, headers, body = get(proxy, "/files/big.html", "HEAD", Accept_Encoding="gzip")
    assert headers["content-encoding"] == "gzip" and body == b"" and "content-length" not in headers
    status, headers, body = get(proxy, "/files/big.html", Range="bytes=0-9")
    assert status == 206 and body == big[:10] and headers["vary"] == "Accept-Encoding"
    etag = get(proxy, "/files/big.html")[1]["etag"]
    status, headers, body = get(proxy, "/files/big.html", Accept_Encoding="gzip", If_None_Match=etag)
    assert status == 304 and body == b"" and "content-encoding" not in headers


def test_config_errors(harness: Harness, tmp_path: Path) -> None:
    for line, said in (("gzip_proxied sometimes;", 'invalid value "sometimes"'),
                       ("gzip_http_version 2.0;", 'invalid value "2.0" in "gzip_http_version"'),
                       ("gzip_comp_level 0;", '"gzip_comp_level" takes a number from 1 to 9'),
                       ("gzip_disable \"(\";", 'regular expression "(" does not compile')):
        with pytest.raises(Exception, match=said.replace("(", r"\(")):
            harness.config(f"http {{ {line} server {{ listen 127.0.0.1:1; }} }}")


def test_answers_of_sheer_itself(harness: Harness, upstream: int) -> None:
    """nginx's error pages are text/html, so gzip takes them (404 and 403 only); `return` text is text/plain,
    compressed where gzip_types names it."""
    (harness.tmp / "files").mkdir()
    proxy = serve(harness, upstream, 'gzip on; gzip_types text/plain; location /said { return 200 "%s"; } '
                  'location /denied { deny all; } location /broken { return 500; }' % ("said " * 50))
    status, headers, body = get(proxy, "/files/missing.html", Accept_Encoding="gzip")
    assert status == 404 and headers["content-encoding"] == "gzip" and "content-length" not in headers
    assert b"<center><h1>404 Not Found</h1></center>" in gzip.decompress(body)
    status, headers, body = get(proxy, "/denied", Accept_Encoding="gzip")
    assert status == 403 and b"403 Forbidden" in gzip.decompress(body)
    status, headers, body = get(proxy, "/said", Accept_Encoding="gzip")
    assert status == 200 and gzip.decompress(body) == b"said " * 50
    status, headers, body = get(proxy, "/broken", Accept_Encoding="gzip")       # a 500: never compressed
    assert status == 500 and "content-encoding" not in headers and b"500 Internal" in body
    status, headers, body = get(proxy, "/said", "HEAD", Accept_Encoding="gzip")
    assert headers["content-encoding"] == "gzip" and body == b"" and "transfer-encoding" not in headers
    status, headers, body = get(proxy, "/said")
    assert "content-encoding" not in headers and body == b"said " * 50


def _raw(port: int, request: bytes) -> tuple[bytes, bytes]:
    """The whole answer to one request on a connection the client then closes: (head, body as sent)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return head, body


def _dechunked(body: bytes) -> tuple[bytes, bytes]:
    """A chunked body's data and its trailer lines; nothing may follow its one last chunk."""
    data = b""
    while True:
        size_line, _, body = body.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            trailers, end, rest = body.partition(b"\r\n\r\n") if not body.startswith(b"\r\n") else (
                b"", b"\r\n", body[2:])
            assert end and rest == b"", body
            return data, trailers
        data, body = data + body[:size], body[size + 2:]


def test_compressed_with_trailers_and_http10(harness: Harness, upstream: int) -> None:
    """A compressed answer (sheer's own, a file, a proxied one) to HTTP/1.1 is chunked with one last chunk,
    carrying add_trailer's lines where a location has them; to HTTP/1.0 it has no length and the connection
    closes after it."""
    files = harness.tmp / "files"
    files.mkdir()
    (files / "page.html").write_bytes(PAGE)
    proxy = serve(harness, upstream, 'gzip on; gzip_http_version 1.0; gzip_types text/plain; '
                  'add_trailer X-T "done"; '
                  'location /said { return 200 "%s"; }' % ("said " * 50))
    for path, whole in (("/said", b"said " * 50), ("/files/page.html", PAGE), ("/page", PAGE)):
        head, body = _raw(proxy, b"GET %s HTTP/1.1\r\nHost: a\r\nAccept-Encoding: gzip\r\n"
                          b"Connection: close\r\n\r\n" % path.encode())
        assert b"Transfer-Encoding: chunked" in head and b"Content-Length" not in head, head
        assert b"Content-Encoding: gzip" in head
        data, trailers = _dechunked(body)
        assert gzip.decompress(data) == whole and trailers == b"X-T: done", (path, trailers)
        head, body = _raw(proxy, b"GET %s HTTP/1.0\r\nHost: a\r\nAccept-Encoding: gzip\r\n"
                          b"Connection: keep-alive\r\n\r\n" % path.encode())
        assert b"Transfer-Encoding" not in head and b"Content-Length" not in head, head
        assert b"Connection: close" in head and gzip.decompress(body) == whole, path


def test_gzip_in_if(harness: Harness, upstream: int) -> None:
    """`gzip on` inside a location's `if` (nginx's nameless location) holds when the condition does."""
    (harness.tmp / "files").mkdir()
    proxy = serve(harness, upstream, "location /maybe/ { if ($arg_z) { gzip on; } "
                  f"proxy_pass http://127.0.0.11:{upstream}/; }}")
    status, headers, body = get(proxy, "/maybe/page?z=1", Accept_Encoding="gzip")
    assert status == 200 and headers["content-encoding"] == "gzip" and gzip.decompress(body) == PAGE
    status, headers, body = get(proxy, "/maybe/page", Accept_Encoding="gzip")
    assert status == 200 and "content-encoding" not in headers and body == PAGE
