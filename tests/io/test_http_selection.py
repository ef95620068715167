"""A real sheer picks servers and locations as nginx does: default_server, server_name forms, regex and
nested locations."""

from __future__ import annotations

import http.client
import socket
from collections.abc import Callable

import pytest
from sheer_process import Sheer, free_port

pytestmark = pytest.mark.io


def get(port: int, path: str, host: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=3)
    try:
        conn.request("GET", path, headers={"Host": host})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_servers_and_locations_as_nginx_picks_them(run_sheer: Callable[..., Sheer]) -> None:
    port = free_port()
    run_sheer(f"""
        http {{
            server {{ listen 127.0.0.1:{port}; server_name first; location / {{ return 200 "first"; }} }}
            server {{
                listen 127.0.0.1:{port} default_server;
                server_name ~^(www\\.)?example\\.(com|org)$;
                location / {{ return 200 "default"; }}
                location ~* \\.png$ {{ return 200 "png"; }}
                location ^~ /static/ {{ return 200 "static"; }}
                location /app/ {{
                    return 200 "app";
                    location ~ \\.json$ {{ return 200 "app json"; }}
                }}
            }}
            server {{ listen 127.0.0.1:{port}; server_name *.example.com;
                      location / {{ return 200 "wild"; }} }}
        }}""")
    assert get(port, "/", "first") == (200, b"first")
    assert get(port, "/", "unknown") == (200, b"default")          # default_server, not the first
    assert get(port, "/", "a.example.com") == (200, b"wild")       # a wildcard before a regex
    assert get(port, "/", "www.example.org") == (200, b"default")  # the regex
    assert get(port, "/x.PNG", "unknown") == (200, b"png")
    assert get(port, "/static/x.png", "unknown") == (200, b"static")
    assert get(port, "/app/a.json", "unknown") == (200, b"app json")
    assert get(port, "/app/a", "unknown") == (200, b"app")


def test_maps_in_http_and_stream(run_sheer: Callable[..., Sheer]) -> None:
    http_port, stream_port = free_port(), free_port()
    run_sheer(f"""
        http {{
            map $http_x_tier $pool {{ default blue; ~^gold(?<level>\\d)$ "gold-$level"; silver grey; }}
            map $uri $section {{ volatile; ~^/(\\w+)/ $1; }}
            server {{ listen 127.0.0.1:{http_port};
                      location / {{ add_header X-Section $section; return 200 "$pool"; }} }}
        }}
        stream {{
            map $server_port $greeting {{ {stream_port} "hello on {stream_port}"; default nobody; }}
            server {{ listen 127.0.0.1:{stream_port}; return "$greeting\\n"; }}
        }}""")
    conn = http.client.HTTPConnection("127.0.0.1", http_port, timeout=3)
    try:
        for tier, pool in (("gold7", "gold-7"), ("SILVER", "grey"), ("", "blue")):
            conn.request("GET", "/shop/item", headers={"X-Tier": tier})
            response = conn.getresponse()
            assert (response.read().decode(), response.getheader("X-Section")) == (pool, "shop")
    finally:
        conn.close()
    with socket.create_connection(("127.0.0.1", stream_port), timeout=3) as sock:
        assert sock.recv(100) == f"hello on {stream_port}\n".encode()


def test_geo_and_split_clients_in_http_and_stream(run_sheer: Callable[..., Sheer]) -> None:
    http_port, stream_port = free_port(), free_port()
    run_sheer(f"""
        http {{
            geo $where {{ default far; 127.0.0.0/8 loopback; }}
            geo $arg_ip $net {{ ranges; default none; 192.0.2.0-192.0.2.255 doc; }}
            split_clients "$arg_k" $half {{ 50% a; * b; }}
            server {{ listen 127.0.0.1:{http_port}; location / {{ return 200 "$where $net $half"; }} }}
        }}
        stream {{
            geo $kind {{ 127.0.0.0/8 local; default remote; }}
            server {{ listen 127.0.0.1:{stream_port}; return "$kind\\n"; }}
        }}""")
    conn = http.client.HTTPConnection("127.0.0.1", http_port, timeout=3)
    try:
        seen = set()
        for key in range(40):
            conn.request("GET", f"/?ip=192.0.2.{key}&k={key}")
            where, net, half = conn.getresponse().read().decode().split()
            assert (where, net) == ("loopback", "doc")
            seen.add(half)
        assert seen == {"a", "b"}
        conn.request("GET", "/?ip=bogus")
        assert conn.getresponse().read().decode().split()[1] == "none"
    finally:
        conn.close()
    with socket.create_connection(("127.0.0.1", stream_port), timeout=3) as sock:
        assert sock.recv(100) == b"local\n"


def test_hotlinking_refused_by_valid_referers(run_sheer: Callable[..., Sheer]) -> None:
    port = free_port()
    run_sheer(f"""
        http {{ server {{ listen 127.0.0.1:{port}; server_name img.test;
                          location /img/ {{ valid_referers none blocked server_names *.example.com;
                                           if ($invalid_referer) {{ return 403; }}
                                           return 200 "image"; }} }} }}""")

    def status(referer: str | None) -> int:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=3)
        try:
            conn.request("GET", "/img/a.png", headers={"Referer": referer} if referer is not None else {})
            return conn.getresponse().status
        finally:
            conn.close()

    allowed = (None, "http://img.test/page", "https://www.example.com/", "hidden")
    assert [status(r) for r in allowed] == [200] * 4
    assert [status(r) for r in ("http://evil.test/", "https://example.com.evil.test/")] == [403, 403]


def test_a_relative_redirect_is_made_absolute(run_sheer: Callable[..., Sheer]) -> None:
    port = free_port()
    run_sheer(f"""
        http {{ server {{ listen 127.0.0.1:{port};
                          location /old {{ return 301 /new$is_args$args; }}
                          location /out {{ return https://example.com/; }} }} }}""")
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=3)
    try:
        conn.request("GET", "/old?a=1", headers={"Host": "Example.com:8443"})
        response = conn.getresponse()
        response.read()
        assert (response.status, response.getheader("Location")) == (301, f"http://example.com:{port}/new?a=1")
        conn.request("GET", "/out")
        response = conn.getresponse()
        response.read()
        assert (response.status, response.getheader("Location")) == (302, "https://example.com/")
    finally:
        conn.close()
