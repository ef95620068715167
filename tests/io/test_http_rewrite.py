"""The rewrite module and the proxy's response headers on loopback, with real requests: redirects,
`last` and its cycle limit, `break` and the URI sent upstream, `if`/`set` in logs and headers, the
server's script, proxy_redirect, hidden headers, proxy_intercept_errors, proxy_set_body."""

from __future__ import annotations

import http.client
import subprocess

import pytest
from test_http_harness import Harness, harness_fixture  # noqa: F401
from test_http_proxy import get

pytestmark = pytest.mark.io


def raw_headers(port: int, path: str) -> list[tuple[str, str]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=3)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        return [(name.lower(), value) for name, value in response.getheaders()]
    finally:
        conn.close()


def test_rewrite_return_if_set(harness: Harness) -> None:
    proxy = harness.listen("127.0.0.1")
    harness.serve(f"""
        log_format script '$uri $args $tag';
        server {{ listen 127.0.0.1:{proxy}; server_name localhost;
            access_log {harness.tmp}/access.log script;
            rewrite ^/old/(.*)$ /new/$1 last;
            location / {{ rewrite ^ http://example.com/ redirect; }}
            location /add {{ rewrite ^ http://example.com/?c=d redirect; }}
            location /perm {{ rewrite ^/perm(.*) /elsewhere$1 permanent; }}
            location /new {{ set $tag new; return 200 "new:$uri:$args\\n"; }}
            location /capture {{ rewrite ^(.*) $1?c=$1; return 200 "uri:$uri args:$args"; }}
            location /loop {{ rewrite ^ /loop last; }}
            location /chain {{ rewrite ^/chain(.*) /new$1; set $tag chained; }}
            location /if {{
                if ($arg_c ~* ^(?<word>fo+)) {{ set $tag $word; return 200 "match $word $1\\n"; }}
                if ($http_x_block) {{ return 403; }}
                if (-d {harness.tmp}) {{ return 204; }}
            }}
            location /cases {{ if ($arg_c = 1) {{ return 201; }} if ($arg_c != 1) {{ return 202; }} }}
        }}""")
    status, headers, _ = get(proxy, "/?a=b")
    assert status == 302 and headers["location"] == "http://example.com/?a=b"
    assert get(proxy, "/add?a=b")[1]["location"] == "http://example.com/?c=d&a=b"
    status, headers, _ = get(proxy, "/perm/x", host="127.0.0.1")
    assert status == 301 and headers["location"] == f"http://127.0.0.1:{proxy}/elsewhere/x"
    assert get(proxy, "/old/x?q=1")[2] == b"new:/new/x:q=1\n"          # the server's script, then `last`
    assert get(proxy, "/capture/%25?a=b")[2] == b"uri:/capture/% args:c=/capture/%25&a=b"
    status, _, body = get(proxy, "/loop")
    assert status == 500 and b"500 Internal Server Error" in body
    assert 'rewrite or internal redirection cycle while processing "/loop"' in harness.error_log()
    assert get(proxy, "/chain/z")[2] == b"new:/new/z:\n"               # no flag: looked up again
    assert get(proxy, "/if?c=FOOx")[2] == b"match FOO FOO\n"
    assert get(proxy, "/if", headers={"X-Block": "1"})[0] == 403
    assert get(proxy, "/if")[0] == 204
    assert get(proxy, "/cases?c=1")[0] == 201 and get(proxy, "/cases?c=2")[0] == 202
    lines = (harness.tmp / "access.log").read_text().splitlines()
    assert "/new/x q=1 new" in lines and "/if c=FOOx FOO" in lines


def test_break_and_the_uri_sent_upstream(harness: Harness) -> None:
    echo = harness.listen("127.0.0.11")
    proxy = harness.listen("127.0.0.1")
    to = f"http://127.0.0.11:{echo}"
    harness.serve(f"""
        server {{ listen 127.0.0.11:{echo}; location / {{ return 200 "$request_uri|$http_x_var\\n"; }} }}
        server {{ listen 127.0.0.1:{proxy};
            location /break {{ rewrite ^ /return200; break; proxy_pass {to}/return204; }}
            location /flag {{ rewrite ^/flag/(.*) /api/$1 break; proxy_pass {to}; }}
            location /keep/ {{ rewrite ^/keep/(.*) /keep/v2/$1 break; proxy_pass {to}/x/; }}
            location /var {{ set $v "from set"; proxy_set_header X-Var $v; proxy_pass {to}; }}
            location /args {{ set $args a=1; proxy_pass {to}; }}
            location /plain {{ proxy_pass {to}; }}
            location ~ ^/api/(?<rest>.*)$ {{ proxy_pass {to}/v1/$1?r=$rest; }}
        }}""")
    assert get(proxy, "/break")[2] == b"/return200|\n"             # nginx: a break resets valid_location
    assert get(proxy, "/flag/a%20b?q=1")[2] == b"/api/a%20b?q=1|\n"
    assert get(proxy, "/keep/z")[2] == b"/keep/v2/z|\n"
    assert get(proxy, "/var")[2] == b"/var|from set\n"
    assert get(proxy, "/args?x=9")[2] == b"/args?a=1|\n"
    assert get(proxy, "/plain/%7Ex?y")[2] == b"/plain/%7Ex?y|\n"      # no script: as the client wrote it
    assert get(proxy, "/api/users")[2] == b"/v1/users?r=users|\n"     # a regex location's captures


def test_error_page_target_with_a_script(harness: Harness) -> None:
    proxy = harness.listen("127.0.0.1")
    harness.serve(f"""
        server {{ listen 127.0.0.1:{proxy};
            location / {{ rewrite ^ http://example.com/ redirect; }}
            location /e405 {{ error_page 405 /; return 405; }}
            location /e405r302 {{ error_page 405 /r302; return 405; }}
            location /r302 {{ return 302 "text"; }}
            location /e405r200 {{ error_page 405 /r200; return 405; }}
            location /r200 {{ return 200 "text"; }}
        }}""")
    status, headers, _ = get(proxy, "/e405")
    assert status == 302 and headers["location"] == "http://example.com/"
    status, headers, _ = get(proxy, "/e405r302")
    assert status == 302 and headers["location"] == "text"
    assert get(proxy, "/e405r200")[:3:2] == (405, b"text")


def test_proxy_redirect_and_hidden_headers(harness: Harness) -> None:
    up = harness.listen("127.0.0.11")
    proxy = harness.listen("127.0.0.1")
    harness.serve(f"""
        server {{ listen 127.0.0.11:{up};
            location / {{
                add_header Refresh "7; url=http://127.0.0.11:{up}$uri";
                add_header X-Accel-Buffering no; add_header X-Accel-Charset c;
                add_header X-Secret s; add_header X-Pad p;
                return http://127.0.0.11:{up}$uri;
            }} }}
        server {{ listen 127.0.0.1:{proxy};
            location /impl/ {{ proxy_pass http://127.0.0.11:{up}/replace_this/; }}
            location /off/ {{ proxy_pass http://127.0.0.11:{up}/; proxy_redirect off; }}
            location / {{
                set $some_var var_here;
                proxy_pass http://127.0.0.11:{up};
                proxy_redirect http://127.0.0.11:{up}/$some_var/ /replaced/;
                proxy_redirect ~^(.+)/regex_w_([^/]+) $1/$2/test.html;
                proxy_hide_header X-Secret;
                proxy_pass_header X-Accel-Buffering;
            }}
        }}""")
    headers = dict(raw_headers(proxy, "/impl/test.html"))
    assert headers["location"] == f"http://127.0.0.1:{proxy}/impl/test.html"
    assert headers["refresh"] == "7; url=/impl/test.html"
    assert "x-accel-buffering" not in headers and "x-pad" not in headers and headers["x-secret"] == "s"
    assert dict(raw_headers(proxy, "/off/t"))["location"] == f"http://127.0.0.11:{up}/t"
    lines = raw_headers(proxy, "/var_here/t")
    headers = dict(lines)
    assert headers["location"] == f"http://127.0.0.1:{proxy}/replaced/t"
    assert "x-secret" not in headers and headers["x-accel-buffering"] == "no"
    assert "x-accel-charset" not in headers
    assert [name for name, _ in lines].count("server") == 1 and [n for n, _ in lines].count("date") == 1
    assert dict(raw_headers(proxy, "/regex_w_captures/x"))["location"] == \
        f"http://127.0.0.11:{up}/captures/test.html"


def test_intercept_errors_and_set_body(harness: Harness) -> None:
    up = harness.listen("127.0.0.11")
    proxy = harness.listen("127.0.0.1")
    harness.serve(f"""
        server {{ listen 127.0.0.11:{up};
            location / {{ return 404 "SEE-THIS"; }}
            location /500 {{ return 500; }}
            location /auth {{ add_header WWW-Authenticate foo always; add_header WWW-Authenticate bar always;
                              return 401; }}
            location /body {{ return 200 "$request_method $content_length $http_x_b\\n"; }}
        }}
        server {{ listen 127.0.0.1:{proxy};
            location / {{ proxy_pass http://127.0.0.11:{up}; proxy_intercept_errors on;
                          error_page 401 500 /intercepted; }}
            location = /intercepted {{ return 200 "intercepted\\n"; }}
            location /body {{ proxy_pass http://127.0.0.11:{up}; proxy_set_body "a=$arg_a";
                              proxy_set_header X-B $arg_a; }}
            location /seen {{ proxy_pass http://127.0.0.11:{up}/body; add_header X-Seen $request_body; }}
        }}""")
    assert get(proxy, "/")[:3:2] == (404, b"SEE-THIS")             # no error_page for 404: passed
    assert get(proxy, "/500")[:3:2] == (500, b"intercepted\n")
    lines = raw_headers(proxy, "/auth")
    assert [value for name, value in lines if name == "www-authenticate"] == ["foo", "bar"]
    assert get(proxy, "/auth")[:3:2] == (401, b"intercepted\n")
    out = subprocess.run(["curl", "-sS", "--max-time", "3", "-d", "client body",
                          f"http://127.0.0.1:{proxy}/body?a=xyz"],
                         capture_output=True, text=True, check=True).stdout
    assert out == "POST 5 xyz\n"
    status, headers, _ = get(proxy, "/seen", method="POST", body=b"small body")
    assert status == 200 and headers["x-seen"] == "small body"


def test_bad_configurations_say_where(harness: Harness) -> None:
    for body, message in [
        ("location / { rewrite ^( /x; }", 'regular expression "^(" does not compile'),
        ("location / { if ($arg_a) { proxy_set_header X 1; } }",
         '"proxy_set_header" directive is not allowed here'),
        ("location / { rewrite ^ /x redirectt; }", 'invalid parameter "redirectt"'),
    ]:
        with pytest.raises(Exception) as caught:
            harness.config(f"events {{}}\nhttp {{ server {{ listen 127.0.0.1:1; {body} }} }}\n")
        assert message in str(caught.value) and "check.conf:2" in str(caught.value)


def test_proxy_ignore_headers_x_accel_redirect(harness: Harness) -> None:
    """`proxy_ignore_headers X-Accel-Redirect`: the upstream's answer is passed on as it is (the header
    still hidden); without it the request is redirected internally."""
    up = harness.listen("127.0.0.11")
    proxy = harness.listen("127.0.0.1")
    harness.serve(f"""
        server {{ listen 127.0.0.11:{up};
            location / {{ add_header X-Accel-Redirect /inner; return 200 "upstream's"; }} }}
        server {{ listen 127.0.0.1:{proxy};
            location /inner {{ return 200 "inner"; }}
            location /ignored {{ proxy_pass http://127.0.0.11:{up};
                                 proxy_ignore_headers x-accel-redirect Vary; }}
            location / {{ proxy_pass http://127.0.0.11:{up}; }} }}""")
    assert get(proxy, "/followed")[2] == b"inner"
    status, headers, body = get(proxy, "/ignored")
    assert (status, body) == (200, b"upstream's") and "x-accel-redirect" not in headers
