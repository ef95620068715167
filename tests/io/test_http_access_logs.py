"""HTTP access logs as nginx writes them: escape=json, `-` for a missing variable, the upstream's
times filled before the line is written, a refused request logged."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest
from test_http_harness import Harness, harness_fixture, hello_upstreams  # noqa: F401
from test_http_proxy import get

pytestmark = pytest.mark.io


def lines(log: Path, count: int) -> list[str]:
    for _ in range(300):   # written just after the last byte went out
        if log.exists() and log.read_text().count("\n") >= count:
            break
        time.sleep(0.01)
    return log.read_text().splitlines()


def test_json_escaping_keeps_a_line_whole_and_missing_values_are_dashes(harness: Harness) -> None:
    port, servers = hello_upstreams(harness, ["127.0.0.11"])
    proxy = harness.listen("127.0.0.1")
    js, combined = harness.tmp / "json.log", harness.tmp / "combined.log"
    harness.serve(f"""{servers}
        log_format js escape=json '{{"ua":"$http_user_agent","ref":"$http_referer","up":"$upstream_addr",'
                                   '"rt":"$upstream_response_time","ht":"$upstream_header_time",'
                                   '"ct":"$upstream_connect_time","len":"$upstream_response_length",'
                                   '"in":"$upstream_bytes_received","out":"$upstream_bytes_sent"}}';
        server {{ listen 127.0.0.1:{proxy};
                  access_log {js} js; access_log {combined};
                  location / {{ proxy_pass http://127.0.0.11:{port}; }}
                  location /r {{ return 204; }} }}""")
    agent = 'evil" \\ \x01agent'
    assert get(proxy, "/", headers={"User-Agent": agent})[0] == 200
    assert get(proxy, "/r", headers={"User-Agent": "plain"})[0] == 204
    first, second = (json.loads(line) for line in lines(js, 2))
    assert first["ua"] == agent and first["ref"] == "" and first["up"] == f"127.0.0.11:{port}"
    for key in ("rt", "ht", "ct"):      # filled before the line is written
        assert first[key] and float(first[key]) >= 0.0
    assert second == {"ua": "plain", "ref": "", "up": "", "rt": "", "ht": "", "ct": "", "len": "", "in": "",
                      "out": ""}
    body_length = int(first["len"])
    assert body_length > 20 and int(first["in"]) > body_length and int(first["out"]) > 50
    one, two = lines(combined, 2)
    # escape=default: the quote and the control byte as \xHH; no Referer: nginx's "-"
    assert '"-" "evil\\x22 \\x5C \\x01agent"' in one
    assert two.startswith("127.0.0.1 - - [") and two.endswith('"GET /r HTTP/1.1" 204 0 "-" "plain"')


def test_a_malformed_request_is_answered_400_and_logged(harness: Harness) -> None:
    proxy = harness.listen("127.0.0.1")
    log = harness.tmp / "access.log"
    harness.serve(f"""log_format st '$status "$request" $upstream_addr';
        server {{ listen 127.0.0.1:{proxy}; access_log {log} st; location / {{ return 204; }} }}""")
    with socket.create_connection(("127.0.0.1", proxy), timeout=3) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /\x01 HTTP/1.1\r\n\r\n")
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 204 ") and b"HTTP/1.1 400 Bad Request" in answer
    assert lines(log, 2) == ['204 "GET / HTTP/1.1" -', '400 "GET /\\x01 HTTP/1.1" -']


def test_no_live_upstreams_logs_the_group_name(harness: Harness) -> None:
    proxy = harness.listen("127.0.0.1")
    dead = harness.listen("127.0.0.12")
    harness.sockets.pop(("127.0.0.12", dead)).close()
    silent = harness.listen("127.0.0.13")       # accepts (the kernel does) and never answers
    log = harness.tmp / "access.log"
    harness.serve(f"""log_format up '$status $upstream_addr';
        upstream u2 {{ server 127.0.0.12:{dead} down; }}
        upstream u3 {{ server 127.0.0.13:{silent} max_fails=0; server 127.0.0.12:{dead}; }}
        server {{ listen 127.0.0.1:{proxy}; access_log {log} up;
                  location / {{ proxy_pass http://u2; }}
                  location /3 {{ proxy_pass http://u3; proxy_read_timeout 100ms; }} }}""")
    assert get(proxy, "/")[0] == 502          # its only server is down: no live upstreams
    assert lines(log, 1) == ["502 u2"]        # nginx names the group
    assert get(proxy, "/3")[0] == 502         # the silent one times out, the dead one refuses: out
    # a retry with tries left that finds no peer is one more try, named by the group (NGX_BUSY)
    assert get(proxy, "/3")[0] == 502
    assert lines(log, 3)[1:] == [f"502 127.0.0.13:{silent}, 127.0.0.12:{dead}",
                             f"502 127.0.0.13:{silent}, u3"]


def test_pipe_says_which_requests_were_pipelined(harness: Harness) -> None:
    """nginx's $pipe: `p` for a request that came before the one before it ended, `.` otherwise."""
    port, servers = hello_upstreams(harness, ["127.0.0.11"])
    proxy = harness.listen("127.0.0.1")
    log = harness.tmp / "pipe.log"
    harness.serve(f"""{servers}
        log_format pipe '$uri $pipe';
        server {{ listen 127.0.0.1:{proxy}; access_log {log} pipe;
                  location / {{ proxy_pass http://127.0.0.11:{port}; }}
                  location /r {{ return 204; }} }}""")
    with socket.create_connection(("127.0.0.1", proxy), timeout=5) as sock:
        sock.sendall(b"GET /r1 HTTP/1.1\r\nHost: a\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 204")
        sock.sendall(b"GET /r2 HTTP/1.1\r\nHost: a\r\n\r\nGET /p HTTP/1.1\r\nHost: a\r\n\r\n"
                     b"GET /r3 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        while sock.recv(4096):
            pass
    assert lines(log, 4) == ["/r1 .", "/r2 .", "/p p", "/r3 p"]


def test_post_action_runs_after_the_answer_and_its_answer_goes_nowhere(harness: Harness) -> None:
    """nginx's post_action: once the response is written, the request goes on to the post_action location
    (here a proxy to another server, which sees it), whose answer the client never gets; then the next
    request on the connection is answered as usual."""
    up = harness.listen("127.0.0.11")
    proxy = harness.listen("127.0.0.1")
    seen, log = harness.tmp / "seen.log", harness.tmp / "main.log"
    harness.serve(f"""
        log_format uri '$request_uri $status';
        server {{ listen 127.0.0.11:{up}; access_log {seen} uri;
                  location / {{ return 200 "HIDDEN"; }} }}
        server {{ listen 127.0.0.1:{proxy}; access_log {log} uri;
                  location / {{ post_action /done; return 200 "SEE-THIS"; }}
                  location /quiet {{ post_action off; return 200 "QUIET"; }}
                  location /done {{ proxy_pass http://127.0.0.11:{up}/notified; }} }}""")
    with socket.create_connection(("127.0.0.1", proxy), timeout=5) as sock:
        sock.sendall(b"GET /a HTTP/1.1\r\nHost: a\r\n\r\n")
        assert sock.recv(4096).endswith(b"\r\n\r\nSEE-THIS")
        assert lines(seen, 1) == ["/notified 200"]              # the post action reached the upstream
        sock.sendall(b"GET /quiet HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        rest = b""
        while chunk := sock.recv(4096):
            rest += chunk
    assert b"HIDDEN" not in rest and rest.endswith(b"\r\n\r\nQUIET")
    assert lines(log, 2) == ["/a 200", "/quiet 200"]
    assert lines(seen, 1) == ["/notified 200"]
