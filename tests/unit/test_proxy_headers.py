"""proxy_redirect, proxy_hide_header/proxy_pass_header, proxy_intercept_errors, proxy_set_body: read as
nginx reads them, and the response headers they make."""

from __future__ import annotations

from pathlib import Path

import pytest

from sheer.config import ConfigError, load
from sheer.config.model import Config, Location
from sheer.config.proxy_headers import HIDDEN_BY_DEFAULT
from sheer.core.http.headers import FRAMING, RESPONSE_SKIP, response_head
from sheer.core.http.redirects import rewrite_headers, rewrite_value


class Vars:
    def __init__(self, **values: str) -> None:
        self.values = {"host": "lb", "server_port": "8080", **values}

    def variable(self, name: str) -> str:
        return self.values.get(name, "")


def _load(tmp_path: Path, body: str) -> Config:
    path = tmp_path / "lb.conf"
    path.write_text("events {}\nhttp {\n server {\n  listen 127.0.0.1:8080;\n" + body + "\n }\n}\n")
    return load(str(path))


def _location(config: Config, path: str) -> Location:
    assert config.http is not None
    return next(loc for loc in config.http.servers[0].locations if loc.path == path)


def test_implicit_default_with_and_without_a_uri_part(tmp_path: Path) -> None:
    config = _load(tmp_path, """
        location /impl/ { proxy_pass http://127.0.0.1:8081/replace_this/; }
        location /bare/ { proxy_pass http://127.0.0.1:8081; }
        location /vars/ { proxy_pass http://$host:8081; }""")
    impl = _location(config, "/impl/").proxy_redirect
    assert rewrite_value("http://127.0.0.1:8081/replace_this/a.html", impl, Vars()) == "/impl/a.html"
    assert rewrite_value("http://127.0.0.1:8081/elsewhere", impl, Vars()) is None
    bare = _location(config, "/bare/").proxy_redirect
    assert rewrite_value("http://127.0.0.1:8081/x", bare, Vars()) == "/x"
    assert _location(config, "/vars/").proxy_redirect == ()


def test_off_explicit_rules_variables_regexes_and_inheritance(tmp_path: Path) -> None:
    config = _load(tmp_path, """
        location / {
            set $some_var var_here;
            proxy_pass http://127.0.0.1:8081;
            proxy_redirect http://127.0.0.1:8081/$some_var/ /replaced/;
            proxy_redirect ~^(.+)/regex_w_([^/]+) $1/$2/test.html;
            proxy_redirect ~*re+gexp? /replaced/test.html;
        }
        location /off/ {
            proxy_pass http://127.0.0.1:8081/;
            proxy_redirect off;
            location /off/on/ {
                proxy_pass http://127.0.0.1:8081; proxy_redirect http://127.0.0.1:8081/off/ /; }
        }""")
    rules = _location(config, "/").proxy_redirect
    v = Vars(some_var="var_here")
    assert rewrite_value("http://127.0.0.1:8081/var_here/t.html", rules, v) == "/replaced/t.html"
    assert rewrite_value("http://127.0.0.1:8081/regex_w_captures/t.html", rules, v) == \
        "http://127.0.0.1:8081/captures/test.html"
    assert rewrite_value("http://127.0.0.1:8081/ReeegEX/t.html", rules, v) == "/replaced/test.html"
    assert _location(config, "/off/").proxy_redirect == ()
    inner = _location(config, "/off/on/").proxy_redirect
    assert rewrite_value("http://127.0.0.1:8081/off/on/t", inner, v) == "/on/t"


def test_location_made_absolute_only_when_rewritten_refresh_after_url(tmp_path: Path) -> None:
    rules = _location(_load(tmp_path, "location /a/ { proxy_pass http://127.0.0.1:8081/b/; }"),
                      "/a/").proxy_redirect
    headers = [(b"Location", b"http://127.0.0.1:8081/b/x"), (b"Refresh", b"7; URL=http://127.0.0.1:8081/b/x"),
               (b"X-Other", b"http://127.0.0.1:8081/b/x")]
    assert rewrite_headers(headers, rules, Vars()) == [
        (b"Location", b"http://lb:8080/a/x"), (b"Refresh", b"7; URL=/a/x"),
        (b"X-Other", b"http://127.0.0.1:8081/b/x")]
    assert rewrite_headers([(b"Location", b"/relative")], rules, Vars()) == [(b"Location", b"/relative")]


@pytest.mark.parametrize(("body", "message"), [
    ("location / { proxy_pass http://$host; proxy_redirect default; }",
     '"proxy_redirect default" cannot be used with "proxy_pass" directive with variables'),
    ("location / { proxy_pass http://a.test; proxy_redirect ~(x /y; }",
     'regular expression "(x" does not compile'),
    ("location / { proxy_redirect bogus; }", 'invalid parameter "bogus"'),
    ("location / { proxy_intercept_errors yes; }", 'it must be "on" or "off"'),
    ("location / { proxy_ignore_headers Location; }", 'invalid value "Location"'),
])
def test_bad_values(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, body)
    assert message in str(caught.value)


def test_hidden_headers_and_passed_ones(tmp_path: Path) -> None:
    config = _load(tmp_path, """
        location /d { proxy_pass http://127.0.0.1:8081; }
        location /p {
            proxy_pass http://127.0.0.1:8081; proxy_pass_header Server; proxy_hide_header X-Secret; }""")
    assert _location(config, "/d").proxy_hidden == HIDDEN_BY_DEFAULT
    hidden = _location(config, "/p").proxy_hidden
    assert b"server" not in hidden and b"x-secret" in hidden and b"x-accel-redirect" in hidden
    upstream = [(b"Server", b"up/1"), (b"Date", b"then"), (b"X-Secret", b"s"), (b"X-Accel-Redirect", b"/i"),
                (b"X-Pad", b"p"), (b"X-Ok", b"1")]
    default = response_head(200, b"OK", upstream, server=b"sheer", date=b"now", content_length=0,
                            chunked=False, keepalive=False)
    assert default == (b"HTTP/1.1 200 OK\r\nServer: sheer\r\nDate: now\r\nX-Secret: s\r\nX-Ok: 1\r\n"
                       b"Content-Length: 0\r\nConnection: close\r\n\r\n")
    passed = response_head(200, b"OK", upstream, server=b"sheer", date=b"now", content_length=0,
                           chunked=False, keepalive=False, skip=FRAMING | hidden)
    assert passed == (b"HTTP/1.1 200 OK\r\nDate: now\r\nServer: up/1\r\nX-Ok: 1\r\n"
                      b"Content-Length: 0\r\nConnection: close\r\n\r\n")
    assert RESPONSE_SKIP == FRAMING | HIDDEN_BY_DEFAULT


def test_intercept_and_set_body_are_read(tmp_path: Path) -> None:
    config = _load(tmp_path, """proxy_intercept_errors on;
        location / { proxy_pass http://127.0.0.1:8081; proxy_set_body "a=$arg_a"; error_page 404 /e; }""")
    location = _location(config, "/")
    assert location.proxy_intercept_errors and location.proxy_set_body is not None
    assert location.proxy_set_body.text == "a=$arg_a"


def test_cookie_domain_and_path(tmp_path: Path) -> None:
    config = _load(tmp_path, """server_name localhost;
        location / {
            proxy_pass http://127.0.0.1:8081;
            proxy_cookie_domain www.example.org .example.com;
            proxy_cookie_domain .$server_name.com en.$server_name.org;
            proxy_cookie_domain ~^(.+)\\.com$ $1.org;
            proxy_cookie_path /path/ /new/;
            proxy_cookie_path ~*^/caseless/(.+)$ /$1;
            location /off/ {
                proxy_pass http://127.0.0.1:8081; proxy_cookie_domain off; proxy_cookie_path off; }
        }""")
    outer, off = _location(config, "/"), _location(config, "/off/")
    v = Vars(server_name="localhost")

    def cookie(value: str, where: Location = outer) -> str:
        headers = rewrite_headers([(b"Set-Cookie", value.encode())], (), v, where.proxy_cookie_domain,
                                  where.proxy_cookie_path)
        return headers[0][1].decode()

    assert cookie("v=1; Domain=www.Example.org") == "v=1; Domain=example.com"
    assert cookie("v=1; Domain=.LocalHost.com") == "v=1; Domain=.en.localhost.org"
    assert cookie("v=1; Domain=www.example.COM; Path=/path/x") == "v=1; Domain=www.example.org; Path=/new/x"
    assert cookie("v=1; path=/CASEless/t.html") == "v=1; path=/t.html"
    assert cookie("v=path=domain=; Domain=www.example.org", off) == "v=path=domain=; Domain=www.example.org"
    assert off.proxy_cookie_domain == () and off.proxy_cookie_path == ()


def test_proxy_ignore_headers_inherits_and_ignores_case(tmp_path: Path) -> None:
    config = _load(tmp_path, "proxy_ignore_headers X-Accel-Redirect Set-Cookie;\n"
                             "location /a { }  location /b { proxy_ignore_headers x-accel-limit-rate; }")
    assert _location(config, "/a").proxy_ignore_headers == {"x-accel-redirect", "set-cookie"}
    assert _location(config, "/b").proxy_ignore_headers == {"x-accel-limit-rate"}
