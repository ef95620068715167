"""Names in the configuration: resolved at load through the lookup passed in, as nginx resolves
them (every address a peer, listener or trusted address), with nginx's errors at file:line; the
`resolver` directives; `server NAME resolve` kept for run time."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from sheer.config import ConfigError, load
from sheer.config.model import Config
from sheer.config.names import HostNotFound

ZONE = {
    "app.internal": ("10.0.0.1", "10.0.0.2"),
    "v6.internal": ("2001:db8::1", "10.0.0.3"),
    "dns.internal": ("127.0.0.53",),
    "proxy.internal": ("192.0.2.7", "2001:db8::7"),
    "me.internal": ("127.0.0.1", "127.0.0.2", "127.0.0.1"),
}


class FakeLookup:
    def __init__(self, zone: dict[str, tuple[str, ...]]) -> None:
        self.zone = zone
        self.asked: list[str] = []

    def __call__(self, host: str) -> tuple[str, ...]:
        self.asked.append(host)
        if host not in self.zone:
            raise HostNotFound(host)
        return self.zone[host]


def load_text(tmp_path: Path, text: str, lookup: FakeLookup | None = None) -> Config:
    path = tmp_path / "lb.conf"
    path.write_text(text)
    return load(str(path), lookup=lookup or FakeLookup(ZONE))


def error(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as info:
        load_text(tmp_path, text)
    return str(info.value).replace(str(tmp_path) + "/", "")


def test_a_name_in_server_gives_a_peer_per_address_with_the_lines_parameters(tmp_path: Path) -> None:
    lookup = FakeLookup(ZONE)
    config = load_text(tmp_path, """
http {
    upstream app {
        server app.internal:8080 weight=3 max_fails=2 fail_timeout=5s;
        server 10.0.0.9:8080 backup;
        server app.internal:8081 backup;
    }
    server { listen 80; location / { proxy_pass http://app; } }
}
""", lookup)
    assert config.http is not None
    servers = config.http.upstreams[0].servers
    assert [(s.host, s.port, s.weight, s.max_fails, s.fail_timeout, s.backup, s.text) for s in servers] == [
        ("10.0.0.1", 8080, 3, 2, 5.0, False, "app.internal:8080"),
        ("10.0.0.2", 8080, 3, 2, 5.0, False, "app.internal:8080"),
        ("10.0.0.9", 8080, 1, 1, 10.0, True, "10.0.0.9:8080"),
        ("10.0.0.1", 8081, 1, 1, 10.0, True, "app.internal:8081"),
        ("10.0.0.2", 8081, 1, 1, 10.0, True, "app.internal:8081"),
    ]
    assert [s.name for s in servers[:2]] == ["10.0.0.1:8080", "10.0.0.2:8080"]
    assert lookup.asked == ["app.internal"]       # one lookup per name per load


def test_ipv6_answers_become_ipv6_peers(tmp_path: Path) -> None:
    config = load_text(tmp_path, """
stream {
    upstream dns { server v6.internal:53; }
    server { listen 53 udp; proxy_pass dns; }
}
""")
    assert config.stream is not None
    assert [s.name for s in config.stream.upstreams[0].servers] == ["[2001:db8::1]:53", "10.0.0.3:53"]


def test_a_name_in_http_server_defaults_to_port_80(tmp_path: Path) -> None:
    config = load_text(tmp_path,
                       "http { upstream a { server app.internal; } server { location / { proxy_pass "
                       "http://a; } } }")
    assert config.http is not None
    assert [s.name for s in config.http.upstreams[0].servers] == ["10.0.0.1:80", "10.0.0.2:80"]


def test_proxy_pass_to_a_name_makes_an_implicit_upstream_of_every_address(tmp_path: Path) -> None:
    config = load_text(tmp_path, """
http { server { listen 80; location / { proxy_pass http://app.internal:8080/x/; } } }
stream { server { listen 53 udp; proxy_pass app.internal:53; } }
""")
    assert config.http is not None and config.stream is not None
    proxy = config.http.servers[0].locations[0].proxy_pass
    assert proxy is not None and proxy.upstream is not None
    assert proxy.upstream.implicit and proxy.upstream.name == "app.internal:8080"   # $proxy_host
    assert [s.name for s in proxy.upstream.servers] == ["10.0.0.1:8080", "10.0.0.2:8080"]
    assert proxy.uri == "/x/"
    upstream = config.stream.servers[0].upstream
    assert upstream is not None and [s.name for s in upstream.servers] == ["10.0.0.1:53", "10.0.0.2:53"]


def test_listen_on_a_name_listens_on_each_address_once(tmp_path: Path) -> None:
    config = load_text(tmp_path, """
http { server { listen me.internal:8080; location / { return 200; } } }
stream { server { listen proxy.internal:53 udp; proxy_pass 127.0.0.1:53; } }
""")
    assert [(listen.host, listen.port, listen.udp) for listen in config.listens] == [
        ("192.0.2.7", 53, True), ("2001:db8::7", 53, True), ("127.0.0.1", 8080,
                                                             False), ("127.0.0.2", 8080, False)]


def test_set_real_ip_from_a_name_trusts_each_address(tmp_path: Path) -> None:
    config = load_text(tmp_path, """
http {
    set_real_ip_from proxy.internal;
    set_real_ip_from 10.1.0.0/16;
    server { listen 80; location / { return 200; } }
}
""")
    assert config.http is not None
    real_ip = config.http.servers[0].real_ip
    assert real_ip is not None
    assert real_ip.trusted == (ipaddress.ip_network("192.0.2.7/32"), ipaddress.ip_network("2001:db8::7/128"),
                               ipaddress.ip_network("10.1.0.0/16"))
    assert real_ip.trusts("192.0.2.7") and not real_ip.trusts("192.0.2.8")


@pytest.mark.parametrize(("text", "message"), [
    (("http {\n upstream a {\n  server nosuch.internal:8080 weight=2;\n }\n server { location / { proxy_pass "
     "http://a; } }\n}\n"),
     'lb.conf:3: host not found in upstream "nosuch.internal:8080"'),
    ("http {\n server {\n  location / {\n   proxy_pass http://nosuch.internal:8080/;\n  }\n }\n}\n",
     'lb.conf:4: host not found in upstream "nosuch.internal"'),
    ("stream {\n server {\n  listen 1;\n  proxy_pass nosuch.internal:53;\n }\n}\n",
     'lb.conf:4: host not found in upstream "nosuch.internal"'),
    ("stream {\n server {\n  listen nosuch.internal:53;\n  proxy_pass 127.0.0.1:1;\n }\n}\n",
     'lb.conf:3: host not found in "nosuch.internal:53" of the "listen" directive'),
    ("http {\n server {\n  listen nosuch.internal;\n  location / { return 200; }\n }\n}\n",
     'lb.conf:3: host not found in "nosuch.internal" of the "listen" directive'),
    ("http {\n set_real_ip_from nosuch.internal;\n server { location / { return 200; } }\n}\n",
     'lb.conf:2: host not found in set_real_ip_from "nosuch.internal"'),
    ("http {\n resolver nosuch.internal;\n server { location / { proxy_pass http://$host; } }\n}\n",
     'lb.conf:2: host not found in resolver "nosuch.internal"'),
    ("stream { server { listen 1; proxy_pass bad..name:53; } }\n",
     'lb.conf:1: invalid host in upstream "bad..name:53"'),
    ("stream { server { listen 1; proxy_pass [app.internal]:53; } }\n",
     'lb.conf:1: invalid IPv6 address in upstream "[app.internal]:53"'),
])
def test_names_that_do_not_resolve_are_nginx_errors_at_file_line(tmp_path: Path, text: str,
                                                                 message: str) -> None:
    assert error(tmp_path, text) == message


# --- resolver, resolver_timeout --------------------------------------------------------------

RESOLVE = """
http {{
    {http}
    upstream app {{
        zone app 64k;
        {upstream}
        server app.internal:8080 resolve weight=2;
        server 10.0.0.9:8080;
    }}
    server {{ listen 80; location / {{ proxy_pass http://app; }} }}
}}
"""


def test_server_resolve_is_kept_for_run_time_with_its_parameters(tmp_path: Path) -> None:
    lookup = FakeLookup(ZONE)
    config = load_text(tmp_path, RESOLVE.format(http="resolver 127.0.0.53 valid=30s ipv6=off;", upstream=""),
                       lookup)
    assert config.http is not None
    upstream = config.http.upstreams[0]
    assert [s.name for s in upstream.servers] == ["10.0.0.9:8080"]
    template, = upstream.resolve
    assert (template.host, template.port, template.weight, template.resolve, template.text) == (
        "app.internal", 8080, 2, True, "app.internal:8080")
    assert upstream.zone == "app"
    assert upstream.resolver is not None
    assert upstream.resolver.servers == (("127.0.0.53", 53),)
    assert (upstream.resolver.valid, upstream.resolver.ipv4, upstream.resolver.ipv6,
            upstream.resolver.timeout) == (
        30.0, True, False, 30.0)
    assert "app.internal" not in lookup.asked     # resolved at run time, not at load


def test_the_upstreams_own_resolver_wins_over_the_http_blocks(tmp_path: Path) -> None:
    config = load_text(tmp_path, RESOLVE.format(
        http="resolver 127.0.0.53; resolver_timeout 5s;",
        upstream="resolver dns.internal:5353 [::1] ipv4=off status_zone=z; resolver_timeout 2s;"))
    assert config.http is not None
    resolver = config.http.upstreams[0].resolver
    assert resolver is not None
    assert resolver.servers == (("127.0.0.53", 5353), ("::1", 53))
    assert (resolver.ipv4, resolver.ipv6, resolver.timeout, resolver.status_zone) == (False, True, 2.0, "z")
    assert resolver.names == "127.0.0.53:5353, [::1]:53"


def test_a_location_takes_the_innermost_resolver_and_timeout(tmp_path: Path) -> None:
    config = load_text(tmp_path, """
http {
    resolver 127.0.0.53;
    resolver_timeout 7s;
    server {
        resolver 127.0.0.54 valid=5s;
        location /a { proxy_pass http://$host:8080; }
        location /b { resolver 127.0.0.55; proxy_pass http://$host$request_uri; }
    }
    server { listen 81; location / { proxy_pass http://$http_x_backend; } }
}
""")
    assert config.http is not None
    first, second = config.http.servers[0].locations
    assert first.resolver is not None and second.resolver is not None
    assert (first.resolver.servers, first.resolver.valid,
            first.resolver.timeout) == ((("127.0.0.54", 53),), 5.0, 7.0)
    assert second.resolver.servers == (("127.0.0.55", 53),)
    other = config.http.servers[1].locations[0]
    assert other.resolver is not None and other.resolver.servers == (("127.0.0.53", 53),)
    assert first.proxy_pass is not None and first.proxy_pass.upstream is None
    assert first.proxy_pass.url is not None and first.proxy_pass.url.variables == frozenset({"host"})


def test_resolve_on_an_address_is_a_plain_server(tmp_path: Path) -> None:
    config = load_text(tmp_path, "http { upstream a { server 10.0.0.1:80 resolve; } "
                                 "server { location / { proxy_pass http://a; } } }")
    assert config.http is not None
    upstream = config.http.upstreams[0]
    assert [s.name for s in upstream.servers] == ["10.0.0.1:80"] and upstream.resolve == ()


@pytest.mark.parametrize(("text", "message"), [
    (RESOLVE.format(http="", upstream=""),
     ('lb.conf:7: no resolver defined to resolve names at run time in upstream "app" '
     '(add "resolver ADDRESS;" to it or to the http block)')),
    (("stream {\n resolver 127.0.0.53;\n upstream u {\n  server app.internal:53 resolve;\n }\n"
     " server { listen 1; proxy_pass u; }\n}\n"),
     ('lb.conf:4: resolving names at run time requires upstream "u" to be in shared memory '
     '(add "zone NAME 64k;" to it)')),
    (("stream {\n resolver 127.0.0.53;\n upstream u {\n  zone u 64k;\n  server app.internal resolve;\n }\n"
     " server { listen 1; proxy_pass u; }\n}\n"),
     'lb.conf:5: no port in upstream "app.internal"'),
    ("http {\n resolver 127.0.0.53 valid=soon;\n}\n", "lb.conf:2: invalid parameter: valid=soon"),
    ("http {\n resolver 127.0.0.53 ipv6=maybe;\n}\n", "lb.conf:2: invalid parameter: ipv6=maybe"),
    ("http {\n resolver 127.0.0.53 ipv4=off ipv6=off;\n}\n",
     'lb.conf:2: "ipv4" and "ipv6" cannot both be "off"'),
    ("http {\n resolver valid=10s;\n}\n", "lb.conf:2: no name servers defined"),
    ("http {\n resolver 127.0.0.53:99999;\n}\n", 'lb.conf:2: invalid port in resolver "127.0.0.53:99999"'),
    ("http {\n resolver 127.0.0.53;\n resolver 127.0.0.54;\n}\n",
     'lb.conf:3: "resolver" directive is duplicate'),
    ("http {\n resolver_timeout soon;\n}\n",
     ('lb.conf:2: "resolver_timeout" directive invalid value "soon", expected a time such as 10s, 500ms or '
     '1m30s')),
    ("http {\n server {\n  location / {\n   proxy_pass https://$host;\n  }\n }\n}\n",
     'lb.conf:4: "proxy_pass https://" with variables is not supported yet; name the upstream'),
    ("http {\n server {\n  location / {\n   proxy_pass ftp://$host;\n  }\n }\n}\n",
     'lb.conf:4: invalid URL prefix in "ftp://$host"'),
    ("http {\n server {\n  location / {\n   proxy_pass http://$host;\n   health_check;\n  }\n }\n}\n",
     'lb.conf:5: "health_check" needs "proxy_pass" to an upstream group, not a URL with variables'),
])
def test_resolver_errors_use_nginx_wording(tmp_path: Path, text: str, message: str) -> None:
    assert error(tmp_path, text) == message


def test_names_resolved_at_load_need_no_resolver_task(tmp_path: Path) -> None:
    from sheer.runtime.peerset import names_of
    config = load_text(tmp_path, "http { upstream a { server app.internal:80; } "
                                 "server { location / { proxy_pass http://a; } } }")
    assert names_of(config) == []
    config = load_text(tmp_path, RESOLVE.format(http="resolver 127.0.0.53;", upstream=""))
    assert [(name.protocol, name.upstream.name, name.server.text) for name in names_of(config)] == [
        ("http", "app", "app.internal:8080")]


def test_proxy_bind_takes_an_address_never_a_name(tmp_path: Path) -> None:
    text = "stream {\n server {\n  listen 1;\n  proxy_bind app.internal;\n  proxy_pass 127.0.0.1:1;\n }\n}\n"
    assert error(tmp_path, text) == 'lb.conf:4: invalid address "app.internal"'
