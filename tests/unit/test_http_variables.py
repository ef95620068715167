"""The per-request variables, rendered through templates."""

from __future__ import annotations

from sheer.config.errors import Source
from sheer.config.template import HTTP_PREFIXES, HTTP_VARIABLES, compile_template
from sheer.core.http.variables import Connection, RequestVariables, UpstreamTry
from sheer.core.variables import render


def variables() -> RequestVariables:
    conn = Connection(("192.168.99.1", 40000), ("172.16.0.11", 80), 7, "up1", 42)
    headers = [(b"Host", b"Example.com:80"), (b"User-Agent", b"curl/8"), (b"Cookie", b"a=1; sid=xyz"),
               (b"X-Forwarded-For", b"10.0.0.1")]
    return RequestVariables(conn, b"GET", "/p?q=1", "/p", "q=1", "HTTP/1.1", headers, "example.com",
                            "srv", 120, 1000.0)


def test_article_template() -> None:
    text = "Hello from $hostname. You connected from $remote_addr:$remote_port to $server_addr:$server_port\n"
    template = compile_template(text, Source("t", 1), HTTP_VARIABLES, HTTP_PREFIXES)
    assert render(template, variables()) == \
        "Hello from up1. You connected from 192.168.99.1:40000 to 172.16.0.11:80\n"


def test_request_and_proxy_variables() -> None:
    v = variables()
    v.now = 1000.25
    v.status = 200
    v.upstream += [UpstreamTry("127.0.0.11:80"), UpstreamTry("127.0.0.12:80")]
    v.upstream[0].status, v.upstream[1].status = 502, 200
    expected = {
        "request": "GET /p?q=1 HTTP/1.1", "host": "example.com", "http_host": "Example.com:80",
        "http_user_agent": "curl/8", "cookie_sid": "xyz", "arg_q": "1", "args": "q=1", "is_args": "?",
        "request_time": "0.250", "msec": "1000.250", "status": "200", "connection": "7", "pid": "42",
        "proxy_add_x_forwarded_for": "10.0.0.1, 192.168.99.1",
                "upstream_addr": "127.0.0.11:80, 127.0.0.12:80",
        "upstream_status": "502, 200", "remote_user": "", "scheme": "http", "server_protocol": "HTTP/1.1",
        "request_length": "120", "server_name": "srv", "http_missing": "",
    }
    assert {name: v.variable(name) for name in expected} == expected


def test_nginx_version_is_the_same_in_http_and_stream() -> None:
    from sheer import NGINX_VERSION
    from sheer.io.stream_vars import COMMON
    assert variables().variable("nginx_version") == NGINX_VERSION
    assert COMMON["nginx_version"](None) == NGINX_VERSION  # type: ignore[arg-type]
