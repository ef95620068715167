"""The answers' framing and form: add_trailer (nginx's trailers filter and chunked filter), $sent_http_*
and $sent_trailer_*, several header lines as one variable, $upstream_cookie_*, $remote_user, the
redirects nginx makes itself (absolute_redirect, server_name_in_redirect, port_in_redirect), the auto
redirect of a proxy_pass location, proxy_cookie_flags, the upstream's Transfer-Encoding and Expires
checks, and keepalive_timeout's Keep-Alive line."""

from __future__ import annotations

from pathlib import Path

import pytest

from sheer.config import ConfigError, load
from sheer.config.model import Config, Location
from sheer.config.responses import Replies
from sheer.core.http.add_header import added, chunked_with_trailers, last_chunk
from sheer.core.http.headers import response_head, unique_line
from sheer.core.http.pages import own_location, simple_response
from sheer.core.http.redirects import cookie_flags, rewrite_headers
from sheer.core.http.routing import Locations
from sheer.core.http.variables import Connection, RequestVariables, remote_user, set_cookie


def _load(tmp_path: Path, body: str) -> Config:
    path = tmp_path / "lb.conf"
    path.write_text("events {}\nhttp {\n" + body + "\n}\n")
    return load(str(path))


def _locations(config: Config) -> dict[str, Location]:
    assert config.http is not None
    return {loc.path: loc for server in config.http.servers for loc in server.locations}


def _vars(headers: list[tuple[bytes, bytes]] | None = None, host: str = "example.com",
          port: int = 8080) -> RequestVariables:
    conn = Connection(("192.0.2.1", 40000), ("127.0.0.1", port), 1, "h", 1)
    return RequestVariables(conn, b"GET", "/", "/", "", "HTTP/1.1", headers or [], host, "srv", 10, 1000.0)


CONFIG = """
    add_trailer X-Http 1;
    server {
        listen 127.0.0.1:8080;
        server_name srv;
        add_trailer X-Var $host;
        add_trailer X-Always $host always;
        add_trailer X-Sent $sent_trailer_x_var;
        location /inherits { }
        location /own { add_trailer X-Own $uri; chunked_transfer_encoding off; }
    }
"""


def test_add_trailer_is_inherited_as_add_header(tmp_path: Path) -> None:
    found = _locations(_load(tmp_path, CONFIG))
    inherits, own = found["/inherits"].replies, found["/own"].replies
    assert [(t.name, t.always, t.sent) for t in inherits.add_trailers] == [
        ("X-Var", False, False), ("X-Always", True, False), ("X-Sent", False, True)]
    assert [t.name for t in own.add_trailers] == ["X-Own"] and not own.chunked and inherits.chunked


def test_trailers_only_on_chunked_http11_answers_with_a_body(tmp_path: Path) -> None:
    trailers = _locations(_load(tmp_path, CONFIG))["/inherits"].replies.add_trailers
    assert chunked_with_trailers(trailers, True, 200, b"GET", "HTTP/1.1")
    assert chunked_with_trailers(trailers, True, 404, b"GET", "HTTP/1.1")          # X-Always
    assert not chunked_with_trailers(trailers, True, 200, b"GET", "HTTP/1.0")
    assert not chunked_with_trailers(trailers, True, 200, b"HEAD", "HTTP/1.1")
    assert not chunked_with_trailers(trailers, True, 204, b"GET", "HTTP/1.1")
    assert not chunked_with_trailers(trailers, True, 304, b"GET", "HTTP/1.1")
    assert not chunked_with_trailers(trailers, False, 200, b"GET", "HTTP/1.1")     # chunked... off
    assert not chunked_with_trailers((), True, 200, b"GET", "HTTP/1.1")
    never = tuple(t for t in trailers if not t.always)
    assert not chunked_with_trailers(never, True, 500, b"GET", "HTTP/1.1")


def test_the_last_chunk_carries_the_trailers_in_order(tmp_path: Path) -> None:
    trailers = _locations(_load(tmp_path, CONFIG))["/inherits"].replies.add_trailers
    v = _vars(host="localhost")
    assert last_chunk(trailers, 200, v) == (b"0\r\nX-Var: localhost\r\nX-Always: localhost\r\n"
                                            b"X-Sent: localhost\r\n\r\n")
    assert v.variable("sent_trailer_x_always") == "localhost"
    assert last_chunk(trailers, 404, v) == b"0\r\nX-Always: localhost\r\n\r\n"
    assert simple_response(200, server=b"s", date=b"d", body=b"hello", content_type=b"text/plain",
                           keepalive=True, chunked=True) == (
        b"HTTP/1.1 200 OK\r\nServer: s\r\nDate: d\r\nContent-Type: text/plain\r\n"
        b"Transfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n5\r\nhello\r\n")


def test_sent_http_sees_the_lines_added_before(tmp_path: Path) -> None:
    config = _load(tmp_path, """server { listen 127.0.0.1:8080; location / {
        add_header Link foo; add_header Link bar; add_header X-Sent-Link $sent_http_link; return 204; } }""")
    entries = _locations(config)["/"].add_headers
    lines, _ = added(entries, 204, _vars())
    assert lines[-1] == (b"X-Sent-Link", b"foo, bar")


def test_sent_http_reads_the_head_sent() -> None:
    v = _vars()
    v.sent = (b"HTTP/1.1 200 OK\r\nServer: sheer\r\nConnection: keep-alive\r\nKeep-Alive: timeout=9\r\n"
              b"Accept-Ranges: bytes\r\n\r\nbody: no")
    assert v.variable("sent_http_keep_alive") == "timeout=9"
    assert v.variable("sent_http_connection") == "keep-alive"
    assert v.variable("sent_http_accept_ranges") == "bytes" and v.variable("sent_http_body") == ""


def test_several_request_lines_are_one_value() -> None:
    v = _vars([(b"Cookie", b"a=1"), (b"Cookie", b"b=2"), (b"X-Forwarded-For", b"1.1.1.1"), (b"Via", b"x"),
               (b"Via", b"y")])
    assert v.variable("http_cookie") == "a=1; b=2" and v.variable("http_via") == "x, y"
    assert v.variable("cookie_b") == "2" and v.variable("http_x_forwarded_for") == "1.1.1.1"
    v.upstream_headers = [(b"Set-Cookie", b"foo=1"), (b"set-cookie", b"bar = 2; Path=/"), (b"Bar", b"x")]
    assert v.variable("upstream_http_set_cookie") == "foo=1, bar = 2; Path=/"
    assert v.variable("upstream_cookie_bar") == "2" and v.variable("upstream_cookie_BAR") == "2"


@pytest.mark.parametrize(("line", "value"), [
    ("tc=", ""), ("tc= ;", ""), ("tc=x", "x"), ("tc=,", ","), ("tc\t=\tcontent ;", ""),
    ('tc="content"', '"content"'), ("tc=con  tent; Domain=example.com", "con  tent"),
    ("tc = content", "content"),
    ("tc==abc", "=abc"), ("tc==;abc", "="), ("=tc=content", ""), ("tc=first,tc=second", "first,tc=second"),
    ("tc=first;tc=second", "first"), ("tcx=1", ""),
])
def test_upstream_cookie_as_nginx_parses_set_cookie(line: str, value: str) -> None:
    assert set_cookie([(b"Set-Cookie", line.encode())], "tc") == value


def test_remote_user_from_basic_authorization() -> None:
    assert remote_user("Basic dXNlcjpzZWNyZXQ=") == "user"
    assert remote_user("basic   dXNlcjpzZWNyZXQ=") == "user"
    assert remote_user("Basic dXNlcg==") == ""            # no colon
    assert remote_user("Basic !!!") == "" and remote_user("Bearer x") == "" and remote_user("") == ""


def test_own_location_as_the_header_filter_completes_it() -> None:
    v = _vars([(b"Host", b"host")], host="host")
    assert own_location(b"/r", v) == b"http://host:8080/r"
    assert own_location(b"http://x/r", v) == b"http://x/r"
    assert own_location(b"/r", v, Replies(absolute_redirect=False)) == b"/r"
    assert own_location(b"/r", v, Replies(server_name_in_redirect=True)) == b"http://srv:8080/r"
    assert own_location(b"/r", v, Replies(port_in_redirect=False)) == b"http://host/r"
    assert own_location(b"/r", _vars(port=80)) == b"http://example.com/r"
    # no Host (HTTP/1.0): the address the request came to, as nginx's local sockaddr
    assert own_location(b"/r", _vars(host="srv")) == b"http://127.0.0.1:8080/r"


def test_redirect_directives_are_read(tmp_path: Path) -> None:
    config = _load(tmp_path, """absolute_redirect off; server { listen 127.0.0.1:8080;
        server_name_in_redirect on;
        location / { port_in_redirect off; }
        location /a { absolute_redirect on; } }""")
    found = _locations(config)
    assert found["/"].replies == Replies(absolute_redirect=False, server_name_in_redirect=True,
                                         port_in_redirect=False)
    assert found["/a"].replies == Replies(server_name_in_redirect=True)


def test_auto_redirect_of_a_proxy_pass_location(tmp_path: Path) -> None:
    config = _load(tmp_path, """server { listen 127.0.0.1:8080;
        location / { }
        location /auto/ { proxy_pass http://127.0.0.1:8081; }
        location /files/ { }
        location /a/ { proxy_pass http://127.0.0.1:8081/a-a; }
        location /a-a { return 204; }
        location /both/ { proxy_pass http://127.0.0.1:8081; }
        location /both { return 204; }
        location ~ ^/auto { return 204; } }""")
    assert config.http is not None
    locations = Locations(config.http.servers[0].location_tree)
    found, auto = locations.search("/auto")
    assert found is not None and found.path == "/auto/" and auto        # before the regex, as nginx
    assert locations.search("/a")[0].path == "/a/" and locations.search("/a")[1]  # type: ignore[union-attr]
    assert locations.search("/both") == (locations.match("/both"), False)          # a prefix as long: no
    assert locations.search("/files")[1] is False                       # no proxy_pass: no auto redirect
    assert locations.search("/auto/x")[1] is False


def test_proxy_cookie_flags(tmp_path: Path) -> None:
    config = _load(tmp_path, """server { listen 127.0.0.1:8080; location / {
        proxy_pass http://127.0.0.1:8081;
        proxy_cookie_flags a secure httponly samesite=none;
        proxy_cookie_flags d nosecure nohttponly nosamesite;
        proxy_cookie_flags $arg_v samesite=strict;
        proxy_cookie_flags ~BAR httponly;
        location /off/ { proxy_pass http://127.0.0.1:8081; proxy_cookie_flags off; } } }""")
    found = _locations(config)
    rules, v = found["/"].proxy_cookie_flags, _vars()
    assert found["/off/"].proxy_cookie_flags == ()
    assert cookie_flags("a=1;Path=/", rules, v) == "a=1; Path=/; Secure; HttpOnly; SameSite=None"
    assert cookie_flags("A=1; secure; SameSite=Lax", rules, v) == "A=1; secure; SameSite=None; HttpOnly"
    assert cookie_flags("d=1;secure; HttpOnly;samesite=lax;x", rules, v) == "d=1; x"
    assert cookie_flags("nx=1;samesite=none", rules, v) == "nx=1;samesite=none"     # untouched
    assert cookie_flags("foobarbaz=1", rules, v) == "foobarbaz=1; HttpOnly"
    assert cookie_flags("noequals", rules, v) == "noequals"
    v.args = "v=c"
    assert cookie_flags("c=1; SameSite=strict", rules, v) == "c=1; SameSite=strict"   # already so
    headers = rewrite_headers([(b"Set-Cookie", b"a=1"), (b"X", b"y")], (), v, flags=rules)
    assert headers == [(b"Set-Cookie", b"a=1; Secure; HttpOnly; SameSite=None"), (b"X", b"y")]


def test_bad_proxy_cookie_flags(tmp_path: Path) -> None:
    for line, message in (("proxy_cookie_flags on;", 'invalid parameter "on"'),
                          ("proxy_cookie_flags off; proxy_cookie_flags a secure;",
                           '"proxy_cookie_flags" directive is duplicate')):
        with pytest.raises(ConfigError, match=message):
            _load(tmp_path, f"server {{ listen 127.0.0.1:8080; location / {{ {line} }} }}")


def test_upstream_transfer_encoding_and_expires_checks() -> None:
    assert unique_line([], b"transfer-encoding", b"Transfer-Encoding", b"Chunked") is None
    assert unique_line([], b"transfer-encoding", b"Transfer-Encoding", b"foo") == (
        "error", 'upstream sent unknown "Transfer-Encoding": "foo"')
    twice = unique_line([(b"Transfer-Encoding", b"chunked")], b"transfer-encoding", b"Transfer-Encoding",
                        b"chunked")
    assert twice == ("error", ('upstream sent duplicate header line: "Transfer-Encoding: chunked", '
                              'previous value: "Transfer-Encoding: chunked"'))
    expires = unique_line([(b"Expires", b"foo")], b"expires", b"Expires", b"bar")
    assert expires == ("warn", ('upstream sent duplicate header line: "Expires: bar", '
                               'previous value: "Expires: foo", ignored'))


def test_keepalive_timeout_header(tmp_path: Path) -> None:
    config = _load(tmp_path, """keepalive_timeout 10 9; server { listen 127.0.0.1:8080;
        location / { keepalive_timeout 30s; } location /own { keepalive_timeout 5 4; } }""")
    found = _locations(config)
    assert found["/"].keepalive_timeout == 30.0 and found["/"].replies.keepalive_header == 9.0
    assert found["/own"].keepalive_timeout == 5.0 and found["/own"].replies.keepalive_header == 4.0
    head = response_head(200, b"OK", [], server=b"s", date=b"d", content_length=0, chunked=False,
                         keepalive=True, keepalive_line=b"Keep-Alive: timeout=9\r\n")
    assert head.endswith(b"Connection: keep-alive\r\nKeep-Alive: timeout=9\r\n\r\n")


def test_an_upstream_keepalive_timeout_takes_one_argument(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match='invalid number of arguments in "keepalive_timeout" directive'):
        _load(tmp_path, """upstream u { server 127.0.0.1:8081; keepalive 2; keepalive_timeout 10 9; }
            server { listen 127.0.0.1:8080; location / { proxy_pass http://u; } }""")


def test_cookie_variable_as_nginx_finds_it() -> None:
    v = _vars([(b"Cookie", b"foo=1, qux=0; Bar = a+b%20c"), (b"Cookie", b"bazz=3")])
    assert v.variable("cookie_foo") == "1, qux=0" and v.variable("cookie_qux") == ""
    assert v.variable("cookie_bar") == "a+b%20c"           # any case, as sent: not decoded
    assert v.variable("cookie_bazz") == "3" and v.variable("cookie_ba") == ""
