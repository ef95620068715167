"""Static files on loopback, asked by real clients (curl, http.client, raw sockets): root, alias, index,
try_files, types, the 301 for a directory, 403/404/405 and their error-log lines, conditional requests,
ranges, expires, error pages from files, sendfile of a large file to a slow reader, keepalive after it,
and that no request leaves its root (.., %2F, %00, the alias off-by-slash, symlinks)."""

from __future__ import annotations

import hashlib
import http.client
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest
from test_http_harness import Harness, harness_fixture  # noqa: F401
from test_http_proxy import get

pytestmark = pytest.mark.io


def raw(port: int, request: bytes, slow: float = 0.0) -> bytes:
    """Send `request` as it is; read until the server closes (a reader that waits `slow` first)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        if slow:
            time.sleep(slow)
        chunks = []
        while True:
            data = sock.recv(1 << 16)
            if not data:
                break
            chunks.append(data)
    return b"".join(chunks)


def site(tmp: Path) -> Path:
    www = tmp / "www"
    (www / "dir").mkdir(parents=True)
    (www / "empty").mkdir()
    (www / "index.html").write_text("<p>home</p>\n")
    (www / "style.css").write_text("p {}\n")
    (www / "notes.txt").write_bytes(bytes(range(48, 58)) * 100)     # 1000 bytes, "0123456789"...
    (www / "dir" / "index.html").write_text("dir index\n")
    (www / "404.html").write_text("custom not found\n")
    (tmp / "secret.txt").write_text("outside the root\n")
    return www


def curl(*args: str) -> str:
    return subprocess.run(["curl", "-sS", "--max-time", "5", *args], capture_output=True, text=True,
                          check=True).stdout


def test_files_index_types_and_errors(harness: Harness) -> None:
    www = site(harness.tmp)
    port = harness.listen("127.0.0.1")
    harness.serve(f"""include /etc/nginx/mime.types; default_type application/octet-stream;
        server {{ listen 127.0.0.1:{port}; root {www};
            location / {{ }}
            location /quiet/ {{ log_not_found off; }} }}""")
    status, headers, body = get(port, "/")
    assert (status, body) == (200, b"<p>home</p>\n") and headers["content-type"] == "text/html"
    assert headers["etag"].startswith('"') and headers["accept-ranges"] == "bytes"
    assert headers["last-modified"].endswith(" GMT") and headers["content-length"] == "12"
    assert get(port, "/style.css")[1]["content-type"] == "text/css"
    assert get(port, "/dir/")[2] == b"dir index\n"
    status, headers, body = get(port, "/style.css", method="HEAD")
    assert status == 200 and body == b"" and headers["content-length"] == "5"
    status, headers, _ = get(port, "/dir?a=1")                           # a directory without its "/"
    assert status == 301 and headers["location"] == f"http://127.0.0.1:{port}/dir/?a=1"
    assert get(port, "/empty/")[0] == 403                                 # no index file: forbidden
    assert get(port, "/style.css", method="POST", body=b"x")[0] == 405
    assert get(port, "/style.css", method="DELETE")[0] == 405
    assert get(port, "/nothing.html")[0] == 404
    assert get(port, "/quiet/nothing.html")[0] == 404
    assert get(port, "/style.css/")[0] == 404                             # not a directory
    log = harness.error_log()
    assert f'directory index of "{www}/empty/" is forbidden' in log
    assert f'open() "{www}/nothing.html" failed (2: No such file or directory)' in log
    assert "quiet" not in log                                             # log_not_found off


def test_alias_try_files_and_named_locations(harness: Harness) -> None:
    www = site(harness.tmp)
    port = harness.listen("127.0.0.1")
    upstream = harness.listen("127.0.0.2")
    harness.serve(f"""
        server {{ listen 127.0.0.2:{upstream}; return 200 "upstream got $request_uri\n"; }}
        server {{ listen 127.0.0.1:{port}; root {www};
            location /up/ {{ try_files $uri /to-upstream; }}
            location /to-upstream {{ proxy_pass http://127.0.0.2:{upstream}; }}
            location /static/ {{ alias {www}/dir/; }}
            location ~ ^/img/(.+)\\.png$ {{ alias {www}/$1.txt; }}
            location /app/ {{ try_files $uri $uri/ /fallback?from=$uri; }}
            location /coded/ {{ try_files $uri =418; }}
            location /named/ {{ try_files /nope @back; }}
            location /fallback {{ return 200 "fallback $args\\n"; }}
            location @back {{ return 200 "named $uri\\n"; }} }}""")
    assert get(port, "/static/index.html")[2] == b"dir index\n"
    assert get(port, "/static/")[2] == b"dir index\n"
    assert get(port, "/img/notes.png")[2][:10] == b"0123456789"         # the regex alias with its capture
    assert get(port, "/app/x")[2] == b"fallback from=/app/x\n"
    assert get(port, "/coded/x")[0] == 418
    assert get(port, "/named/x")[2] == b"named /named/x\n"
    # proxy_pass without a URI part sends the URI an internal redirect made, not the client's
    assert get(port, "/up/x?a=1")[2] == b"upstream got /to-upstream?a=1\n"


def test_conditional_requests_and_ranges(harness: Harness) -> None:
    www = site(harness.tmp)
    port = harness.listen("127.0.0.1")
    harness.serve(f"""server {{ listen 127.0.0.1:{port}; root {www};
        location / {{ }}
        location /exp/ {{ alias {www}/; expires 1h; }} }}""")
    _, headers, _ = get(port, "/notes.txt")
    tag, modified = headers["etag"], headers["last-modified"]
    status, headers, body = get(port, "/notes.txt", headers={"If-None-Match": tag})
    assert status == 304 and body == b"" and "content-length" not in headers and headers["etag"] == tag
    assert get(port, "/notes.txt", headers={"If-Modified-Since": modified})[0] == 304
    assert get(port, "/notes.txt", headers={"If-Match": '"other"'})[0] == 412
    assert get(port, "/notes.txt", headers={"If-Unmodified-Since": modified})[0] == 200
    status, headers, body = get(port, "/notes.txt", headers={"Range": "bytes=10-14"})
    assert (status, body, headers["content-range"]) == (206, b"01234", "bytes 10-14/1000")
    assert get(port, "/notes.txt", headers={"Range": "bytes=-3"})[2] == b"789"
    status, headers, body = get(port, "/notes.txt", headers={"Range": "bytes=0-1,5-6"})
    assert status == 206 and headers["content-type"].startswith("multipart/byteranges; boundary=")
    boundary = headers["content-type"].split("=")[1].encode()
    assert body == (b"\r\n--" + boundary + b"\r\nContent-Type: text/plain\r\nContent-Range: bytes 0-1/1000"
                    b"\r\n\r\n01\r\n--" + boundary + b"\r\nContent-Type: text/plain\r\nContent-Range: "
                    b"bytes 5-6/1000\r\n\r\n56\r\n--" + boundary + b"--\r\n")
    status, headers, _ = get(port, "/notes.txt", headers={"Range": "bytes=5000-"})
    assert status == 416 and headers["content-range"] == "bytes */1000"
    assert get(port, "/notes.txt", headers={"Range": "bytes=0-1", "If-Range": '"stale"'})[0] == 200
    assert get(port, "/notes.txt", headers={"Range": "bytes=0-1", "If-Range": tag})[0] == 206
    assert get(port, "/notes.txt", headers={"Range": "bytes=0-1", "If-Range": modified})[0] == 206
    headers = get(port, "/exp/notes.txt")[1]
    assert headers["cache-control"] == "max-age=3600" and headers["expires"].endswith(" GMT")
    # curl's view of the same: a range it asks itself
    assert curl("-r", "0-3", f"http://127.0.0.1:{port}/notes.txt") == "0123"


def test_error_page_served_from_the_root(harness: Harness) -> None:
    www = site(harness.tmp)
    port = harness.listen("127.0.0.1")
    (www / "50x.html").write_text("down for maintenance\n")
    dead = harness.listen("127.0.0.12")
    harness.sockets.pop(("127.0.0.12", dead)).close()    # nothing listens there: 502
    harness.serve(f"""server {{ listen 127.0.0.1:{port}; root {www}; error_page 404 /404.html;
        location / {{ }}
        location /app/ {{ error_page 502 503 /50x.html; proxy_pass http://127.0.0.12:{dead}; }}
        location = /50x.html {{ root {www}; }} }}""")
    status, headers, body = get(port, "/missing")
    assert (status, body) == (404, b"custom not found\n")
    assert headers["content-type"] == "text/html" and "last-modified" not in headers
    status, _, body = get(port, "/missing", method="HEAD")
    assert (status, body) == (404, b"")
    # the maintenance page of a reverse proxy: an upstream's 502 answered with a file, POST too
    status, headers, body = get(port, "/app/x", method="POST", body=b"form")
    assert (status, body) == (502, b"down for maintenance\n") and "etag" in headers


def test_a_large_file_to_a_slow_reader_then_keepalive(harness: Harness) -> None:
    www = site(harness.tmp)
    big = os.urandom(1 << 20) * 6                 # 6 MiB: more than the socket buffers hold
    (www / "big.bin").write_bytes(big)
    port = harness.listen("127.0.0.1")
    harness.serve(f"server {{ listen 127.0.0.1:{port}; root {www}; location / {{ }} }}")
    answer = raw(port, b"GET /big.bin HTTP/1.0\r\nHost: x\r\n\r\n", slow=0.5)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"Content-Length: 6291456" in head
    assert hashlib.sha256(body).digest() == hashlib.sha256(big).digest()
    # a range of it, then another request on the same connection: nothing overtakes the file
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/big.bin", headers={"Range": "bytes=1000000-4999999"})
        response = conn.getresponse()
        assert response.status == 206 and response.read() == big[1000000:5000000]
        conn.request("GET", "/big.bin")
        assert conn.getresponse().read() == big
        conn.request("GET", "/style.css")
        assert conn.getresponse().read() == b"p {}\n"
    finally:
        conn.close()
    # a client that leaves in the middle of the file: the next one is served, nothing is said but that
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(1000).startswith(b"HTTP/1.1 200")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    assert get(port, "/style.css")[2] == b"p {}\n"
    assert "Traceback" not in harness.error_log()


def test_no_request_leaves_its_root(harness: Harness) -> None:
    www = site(harness.tmp)
    (www / "sub").mkdir()
    (www / "sub" / "file.txt").write_text("sub file\n")
    (www / "link.txt").symlink_to(harness.tmp / "secret.txt")
    port = harness.listen("127.0.0.1")
    harness.serve(f"""server {{ listen 127.0.0.1:{port}; root {www};
        location / {{ }}
        location /img {{ alias {www}/dir/; }}
        location /strict/ {{ alias {www}/; disable_symlinks on; }} }}""")

    def status_of(target: bytes) -> int:
        return int(raw(port, b"GET " + target + b" HTTP/1.0\r\n\r\n").split(b" ", 2)[1])

    assert status_of(b"/../secret.txt") == 400                  # above the root: nginx's 400
    assert status_of(b"/%2e%2e/secret.txt") == 400
    assert status_of(b"/sub/..%2F..%2Fsecret.txt") == 400        # an encoded slash is a slash, as nginx
    assert status_of(b"/index.html%00.txt") == 400               # NUL
    assert status_of(b"/sub/../index.html") == 200               # resolved inside the root
    assert raw(port, b"GET /sub%2Ffile.txt HTTP/1.0\r\n\r\n").endswith(b"sub file\n")
    # the alias off-by-slash: /img../ would be <root>/dir/../ -- never served
    answer = raw(port, b"GET /img../secret.txt HTTP/1.0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 404") and b"outside the root" not in answer
    answer = raw(port, b"GET /img../index.html HTTP/1.0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 404")
    # symbolic links: followed (disable_symlinks off, nginx's default), refused with `on`
    assert raw(port, b"GET /link.txt HTTP/1.0\r\n\r\n").endswith(b"outside the root\n")
    assert status_of(b"/strict/link.txt") == 403
    assert status_of(b"/strict/notes.txt") == 200


def test_a_large_file_over_tls(harness: Harness, tmp_path: Path) -> None:
    """TLS must encrypt in user space: the file goes in pieces through the transport, never whole."""
    import trustme
    from tls_kit import client_context, connect, issue
    from tls_kit import get as tls_get
    files = issue(trustme.CA(), tmp_path, "a.test")
    www = site(harness.tmp)
    big = os.urandom(1 << 20) * 3
    (www / "big.bin").write_bytes(big)
    port = harness.listen("127.0.0.1")
    harness.serve(f"""server {{ listen 127.0.0.1:{port} ssl; server_name a.test; root {www};
        ssl_certificate {files.cert}; ssl_certificate_key {files.key}; location / {{ }} }}""")
    with connect(port, "a.test", client_context(files.ca)) as tls:
        answer = tls_get(tls, "/big.bin")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and hashlib.sha256(body).digest() == hashlib.sha256(big).digest()
