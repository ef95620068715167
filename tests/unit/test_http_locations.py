"""`location` and `server_name` as nginx selects them, from configurations, with nginx's errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from sheer.config import ConfigError, load
from sheer.config.model import HttpServer
from sheer.core.http.routing import Locations, VirtualHosts


def servers(tmp_path: Path, body: str) -> tuple[HttpServer, ...]:
    path = tmp_path / "lb.conf"
    path.write_text(f"http {{\n{body}\n}}\n")
    config = load(str(path))
    assert config.http is not None
    return config.http.servers


def router(tmp_path: Path, locations: str) -> Locations:
    server = servers(tmp_path, f"server {{ listen 127.0.0.1:8080;\n{locations}\n}}")[0]
    return Locations(server.location_tree)


def answer(locations: Locations, uri: str) -> int | None:
    found = locations.match(uri)
    return None if found is None or found.return_ is None else found.return_.code


def test_nginx_documentation_example(tmp_path: Path) -> None:
    # the A..E example of nginx's documentation for `location`
    locations = router(tmp_path, """
        location = / { return 201; }
        location / { return 202; }
        location /documents/ { return 203; }
        location ^~ /images/ { return 204; }
        location ~* \\.(gif|jpg|jpeg)$ { return 205; }""")
    assert answer(locations, "/") == 201
    assert answer(locations, "/index.html") == 202
    assert answer(locations, "/documents/document.html") == 203
    assert answer(locations, "/images/1.gif") == 204
    assert answer(locations, "/documents/1.jpg") == 205
    assert answer(locations, "/documents/1.JPG") == 205     # ~* is caseless


def test_regexes_in_order_and_case(tmp_path: Path) -> None:
    locations = router(tmp_path, """
        location /a/ { return 201; }
        location ~ ^/a/b { return 202; }
        location ~ ^/a { return 203; }
        location ~ \\.PHP$ { return 204; }""")
    assert answer(locations, "/a/b/c") == 202                # the first regex, not the longest
    assert answer(locations, "/a/x") == 203
    assert answer(locations, "/x.php") is None               # ~ is case-sensitive, no prefix matches
    assert answer(locations, "/x.PHP") == 204


def test_nested_locations(tmp_path: Path) -> None:
    locations = router(tmp_path, """
        location /app/ {
            return 201;
            location /app/static/ { return 202; }
            location ~ \\.json$ { return 203; }
            location = /app/exact { return 204; }
        }
        location ~ \\.json$ { return 205; }
        location ~ ^/app/static/x { return 206; }
        location ^~ /raw/ {
            location ~ \\.txt$ { return 207; }
        }
        location ~ \\.txt$ { return 208; }""")
    assert answer(locations, "/app/a") == 201
    assert answer(locations, "/app/static/a") == 202
    assert answer(locations, "/app/a.json") == 203           # the inner regex before the outer one
    assert answer(locations, "/app/exact") == 204
    assert answer(locations, "/app/static/x") == 206         # the outer regex after the inner prefix
    assert answer(locations, "/other.json") == 205
    assert answer(locations, "/raw/a.txt") == 207            # ^~ skips only its level's regexes
    raw = locations.match("/raw/a")        # the ^~ location itself: its files
    assert raw is not None and raw.path == "/raw/" and raw.static is not None
    assert answer(locations, "/raw/a") is None
    assert answer(locations, "/b.txt") == 208


def test_named_and_joined_modifiers(tmp_path: Path) -> None:
    locations = router(tmp_path, """
        location =/exact { return 201; }
        location ~*\\.png$ { return 202; }
        location ^~/static/ { return 203; }
        location @fallback { return 204; }""")
    assert answer(locations, "/exact") == 201
    assert answer(locations, "/a.PNG") == 202
    assert answer(locations, "/static/a.png") == 203
    assert answer(locations, "@fallback") is None and answer(locations, "/") is None


@pytest.mark.parametrize(("body", "message"), [
    ("location ! /a { return 200; }", 'invalid location modifier "!"'),
    ("location /a { location /b { return 200; } }", 'location "/b" is outside location "/a"'),
    ("location = /a { location /a/b { return 200; } }",
     'location "/a/b" cannot be inside the exact location "/a"'),
    ("location @n { location /a { return 200; } }", 'location "/a" cannot be inside the named location "@n"'),
    ("location /a { location @n { return 200; } }", 'named location "@n" can be on the server level only'),
    ("location /a { return 200; } location ^~ /a { return 200; }", 'duplicate location "/a"'),
    ("location ~ ^/(a { return 200; }",
     'regular expression "^/(a" does not compile: missing ), unterminated subpattern at position 2'),
    ("location ~ ^/a { proxy_pass http://127.0.0.1:1/x; }",
     ('"proxy_pass" cannot have URI part in location given by regular expression, or inside named '
      'location, or inside "if" statement, or inside "limit_except" block')),
])
def test_nginx_errors(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        servers(tmp_path, f"server {{ listen 127.0.0.1:8080;\n{body}\n}}")
    assert info.value.message == message and info.value.source is not None
    assert info.value.source.line == 3


def test_exact_and_prefix_of_one_path_coexist(tmp_path: Path) -> None:
    locations = router(tmp_path, "location = /a { return 201; } location /a { return 202; }")
    assert (answer(locations, "/a"), answer(locations, "/ab")) == (201, 202)


def test_named_capture_groups_in_pcre_spelling(tmp_path: Path) -> None:
    locations = router(tmp_path, "location ~ ^/(?<section>[a-z]+)/(?'id'\\d+)$ { return 201; }")
    assert answer(locations, "/users/42") == 201


# --- server_name ------------------------------------------------------------------------------

def test_server_name_order(tmp_path: Path) -> None:
    found = servers(tmp_path, """
        server { listen 127.0.0.1:8080; server_name first; return 201; }
        server { listen 127.0.0.1:8080; server_name www.example.com ""; return 202; }
        server { listen 127.0.0.1:8080; server_name *.example.com; return 203; }
        server { listen 127.0.0.1:8080; server_name *.b.example.com; return 204; }
        server { listen 127.0.0.1:8080; server_name www.example.*; return 205; }
        server { listen 127.0.0.1:8080;
                 server_name ~^www\\d+\\.example\\.net$ ~^(?<sub>.+)\\.net$; return 206; }
        server { listen 127.0.0.1:8080; server_name .example.org; return 207; }""")
    hosts = VirtualHosts(list(found))

    def code(host: str) -> int:
        returned = hosts.select(host).server.return_
        assert returned is not None
        return returned.code

    assert code("www.example.com") == 202       # exact before the wildcard
    assert code("") == 202                      # server_name "": requests without a Host
    assert code("a.example.com") == 203
    assert code("a.b.example.com") == 204       # the longest head wildcard
    assert code("www.example.net") == 205       # a tail wildcard before a regex
    assert code("www12.example.net") == 206
    assert code("WWW12.EXAMPLE.NET".lower()) == 206
    assert code("other.net") == 206
    assert code("example.org") == 207 and code("x.example.org") == 207
    assert code("unknown.test") == 201          # the default: the first server
    # find(): the same servers, and the match of the regex name that chose one (its captures are variables)
    for host in ("www.example.com", "", "a.b.example.com", "www.example.net", "www12.example.net",
                 "other.net", "x.example.org", "unknown.test"):
        vhost, match = hosts.find(host)
        assert vhost is hosts.select(host)
        assert (match is not None) == (host in ("www12.example.net", "other.net"))
    assert hosts.capturing
    match = hosts.find("other.net")[1]
    assert match is not None and match.group("sub") == "other"
    assert hosts.select("x.example.org").name == "example.org"     # $server_name of ".example.org"
    plain = VirtualHosts(list(servers(tmp_path, """
        server { listen 127.0.0.1:8080; server_name ~^www\\d+\\.example\\.net$; return 201; }""")))
    assert not plain.capturing                  # no captures: the request path takes select()


def test_default_server_and_its_duplicate(tmp_path: Path) -> None:
    found = servers(tmp_path, """
        server { listen 127.0.0.1:8080; server_name a; return 201; }
        server { listen 127.0.0.1:8080 default_server; server_name b; return 202; }""")
    assert [listen.default_server for server in found for listen in server.listens] == [False, True]
    with pytest.raises(ConfigError) as info:
        servers(tmp_path, """
        server { listen 127.0.0.1:8080 default_server; return 201; }
        server { listen 127.0.0.1:8080 default; return 202; }""")
    assert info.value.message == "a duplicate default server for 127.0.0.1:8080"


@pytest.mark.parametrize("name", ["a*.example.com", "www.*.com", "*example.com", "~^(x"])
def test_bad_server_names(tmp_path: Path, name: str) -> None:
    with pytest.raises(ConfigError) as info:
        servers(tmp_path, f"server {{ listen 127.0.0.1:8080; server_name {name}; return 200; }}")
    assert name.lstrip("~") in info.value.message
