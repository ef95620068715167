"""keepalive_requests, keepalive_time and keepalive_timeout 0 as ngx_http_update_location_config:
the answer that reaches the limit says Connection: close, and the connection closes after it."""

from __future__ import annotations

import socket

import pytest
from test_http_harness import Harness, harness_fixture  # noqa: F401

pytestmark = pytest.mark.io


def answers(port: int, paths: list[str]) -> list[bytes]:
    """Requests one after another on one connection, until it closes; each answer's head."""
    heads: list[bytes] = []
    with socket.create_connection(("127.0.0.1", port), timeout=3) as sock:
        buffer = b""
        for path in paths:
            sock.sendall(b"GET %s HTTP/1.1\r\nHost: a\r\n\r\n" % path.encode())
            while b"\r\n\r\n" not in buffer:
                chunk = sock.recv(4096)
                if not chunk:
                    return heads
                buffer += chunk
            head, _, buffer = buffer.partition(b"\r\n\r\n")
            heads.append(head)
            if b"Connection: close" in head:
                break
        sock.settimeout(1)
        try:
            assert sock.recv(1) == b""      # closed after the last answer
            heads.append(b"closed")
        except TimeoutError:
            pass
    return heads


def test_keepalive_requests_closes_after_the_nth_request(harness: Harness) -> None:
    port = harness.listen("127.0.0.1")
    harness.serve(f"""server {{ listen 127.0.0.1:{port}; keepalive_requests 2;
        location / {{ return 204; }}
        location /r {{ keepalive_requests 4; return 204; }} }}""")
    heads = answers(port, ["/", "/", "/"])
    assert b"Connection: keep-alive" in heads[0]
    assert b"Connection: close" in heads[1] and heads[2:] == [b"closed"]
    heads = answers(port, ["/r"] * 5)        # the location's own value
    assert [b"Connection: close" in h for h in heads[:4]] == [False, False, False, True]
    assert heads[4:] == [b"closed"]


def test_keepalive_timeout_0_closes_at_once(harness: Harness) -> None:
    port = harness.listen("127.0.0.1")
    harness.serve(f"""server {{ listen 127.0.0.1:{port}; keepalive_timeout 0;
        location / {{ return 204; }} }}""")
    heads = answers(port, ["/", "/"])
    assert b"Connection: close" in heads[0] and heads[1:] == [b"closed"]


def test_keepalive_requests_values_are_checked(harness: Harness) -> None:
    with pytest.raises(Exception, match=r'invalid value "x"|"keepalive_requests"'):
        harness.config("events {}\nhttp { keepalive_requests x; }\n")
    config = harness.config("events {}\nhttp { upstream u { server 127.0.0.1:1; keepalive 2; "
                            "keepalive_requests 5; keepalive_timeout 7s; }\n server { listen 127.0.0.1:1; "
                            "location / { proxy_pass http://u; } } }\n")
    assert config.http is not None
    location = config.http.servers[0].locations[0]
    assert location.proxy_pass is not None and location.proxy_pass.upstream is not None
    upstream = location.proxy_pass.upstream
    assert upstream.keepalive_requests == 5 and upstream.keepalive_timeout == 7.0
    assert location.keepalive_requests == 1000


def test_connection_requests_and_request_id(harness: Harness) -> None:
    port = harness.listen("127.0.0.1")
    harness.serve(f"""server {{ listen 127.0.0.1:{port};
        location / {{ return 200 "$connection_requests $request_id $request_id"; }} }}""")
    bodies = []
    with socket.create_connection(("127.0.0.1", port), timeout=3) as sock:
        for _ in range(2):
            sock.sendall(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            data = b""
            while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < 67:
                data += sock.recv(4096)
            bodies.append(data.split(b"\r\n\r\n", 1)[1].decode())
    (n1, id1, again1), (n2, id2, _) = (body.split() for body in bodies)
    assert (n1, n2) == ("1", "2")
    assert id1 == again1 and id1 != id2 and len(id1) == 32 and int(id1, 16) >= 0   # one per request
