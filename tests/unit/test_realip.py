"""realip rules (nginx's ngx_http_get_forwarded_addr), RFC 7239 Forwarded, and the config directives."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

import sheer.config
from sheer.config.errors import ConfigError
from sheer.config.realip import RealIp
from sheer.core.http.headers import forwarded
from sheer.core.proxy_protocol import ProxyHeader
from sheer.core.realip import for_request, from_header, from_proxy_protocol, parse_addr_port

TRUST = RealIp((ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("2001:db8:ffff::/48")),
               "X-Forwarded-For")
RECURSIVE = RealIp(TRUST.trusted, "X-Forwarded-For", recursive=True)


@pytest.mark.parametrize(("real_ip", "peer", "values", "expected"), [
    (TRUST, "127.0.0.1", ["203.0.113.1"], ("203.0.113.1", None)),
    (TRUST, "192.0.2.1", ["203.0.113.1"], None),                             # peer not trusted
    (TRUST, "::ffff:127.0.0.1", ["203.0.113.1"], ("203.0.113.1", None)),     # IPv4-mapped peer
    (TRUST, "127.0.0.1", ["198.51.100.1, 127.0.0.2"], ("127.0.0.2", None)),  # rightmost
    (RECURSIVE, "127.0.0.1", ["198.51.100.1, 127.0.0.2"], ("198.51.100.1", None)),
    (RECURSIVE, "127.0.0.1", ["10.9.9.9, 198.51.100.1", "127.0.0.2"], ("198.51.100.1", None)),
    (RECURSIVE, "127.0.0.1", ["127.0.0.3, 127.0.0.2"], ("127.0.0.3", None)),  # all trusted: the leftmost
    (RECURSIVE, "127.0.0.1", ["bogus, 127.0.0.2"], ("127.0.0.2", None)),      # stops at what does not parse
    (TRUST, "127.0.0.1", ["bogus"], None),
    (TRUST, "127.0.0.1", ["[2001:db8::1]:4711"], ("2001:db8::1", 4711)),
    (TRUST, "127.0.0.1", ["192.0.2.1:80 ,  "], ("192.0.2.1", 80)),
    (TRUST, "127.0.0.1", [], None),
])
def test_from_header(real_ip: RealIp, peer: str, values: list[str], expected: object) -> None:
    assert from_header(real_ip, peer, values) == expected


@pytest.mark.parametrize("text", ["192.0.2.1:", "[::1]x", "[::1]:", "192.0.2.1:0", "192.0.2.1:65536",
                                  "fe80::1%eth0", "01.2.3.4", "example.com", ""])
def test_parse_addr_port_refuses(text: str) -> None:
    assert parse_addr_port(text) is None


def test_proxy_protocol_source() -> None:
    header = ProxyHeader(1, family="inet", source=("203.0.113.7", 4242), destination=("192.0.2.1", 443))
    real_ip = RealIp(TRUST.trusted, "proxy_protocol")
    assert from_proxy_protocol(real_ip, "127.0.0.9", header) == ("203.0.113.7", 4242)
    assert from_proxy_protocol(real_ip, "192.0.2.9", header) is None
    assert from_proxy_protocol(real_ip, "127.0.0.9", ProxyHeader(2, local=True)) is None
    assert for_request(real_ip, "127.0.0.9", header, [(b"X-Real-IP", b"1.1.1.1")]) == ("203.0.113.7", 4242)
    x_real_ip = RealIp(TRUST.trusted)
    assert for_request(x_real_ip, "127.0.0.9", header, [(b"x-real-ip", b"1.1.1.1")]) == ("1.1.1.1", None)


def test_forwarded_rfc7239() -> None:
    assert forwarded([], "192.0.2.60", "", "", "http") == "for=192.0.2.60;proto=http"
    assert forwarded([], "192.0.2.60", "4711", "example.com", "http") == \
        'for="192.0.2.60:4711";host=example.com;proto=http'
    assert forwarded([(b"Forwarded", b"for=198.51.100.17")], "2001:db8:cafe::17", "4711", "a:8080",
                     "http") == \
        'for=198.51.100.17, for="[2001:db8:cafe::17]:4711";host="a:8080";proto=http'
    assert forwarded([], "192.0.2.1", "", 'x"y\\', "http") == 'for=192.0.2.1;host="x\\"y\\\\";proto=http'


def load(tmp_path: Path, text: str) -> sheer.config.Config:
    path = tmp_path / "lb.conf"
    path.write_text(text)
    return sheer.config.load(str(path))


def test_config_defaults_and_inheritance(tmp_path: Path) -> None:
    config = load(tmp_path, """
stream {
    set_real_ip_from 10.0.0.0/8;
    proxy_protocol on;
    server { listen 9000 proxy_protocol; proxy_pass 127.0.0.1:9001; }
    server { listen 9002; set_real_ip_from 2001:db8::/32; proxy_protocol_version 2;
             proxy_protocol_timeout 5s; proxy_pass 127.0.0.1:9001; }
}
http {
    set_real_ip_from 192.0.2.1;
    server { listen 8080; location / { return 200; } location /x { real_ip_recursive on; return 200; } }
}
""")
    assert config.stream is not None and config.http is not None
    first, second = config.stream.servers
    assert first.listens[0].proxy_protocol and not second.listens[0].proxy_protocol
    assert (first.proxy_protocol, first.proxy_protocol_version,
            first.proxy_protocol_timeout) == (True, 1, 30.0)
    assert (second.proxy_protocol, second.proxy_protocol_version,
            second.proxy_protocol_timeout) == (True, 2, 5.0)
    assert first.real_ip == RealIp((ipaddress.ip_network("10.0.0.0/8"),), "proxy_protocol")
    assert second.real_ip is not None and second.real_ip.trusted == (ipaddress.ip_network("2001:db8::/32"),)
    root, x = config.http.servers[0].locations
    assert root.real_ip == RealIp((ipaddress.ip_network("192.0.2.1/32"),), "X-Real-IP", False)
    assert x.real_ip is not None and x.real_ip.recursive


@pytest.mark.parametrize(("text", "error"), [
    ("stream { server { listen 53 udp proxy_protocol; proxy_pass 127.0.0.1:53; } }",
     'lb.conf:1: "proxy_protocol" parameter is incompatible with "udp"'),
    ("stream { server { listen 53; proxy_protocol_version 3; proxy_pass 127.0.0.1:53; } }",
     'lb.conf:1: invalid value "3" in "proxy_protocol_version" directive, it must be "1" or "2"'),
    ("stream { server { listen 53; set_real_ip_from 10.0.0.300; proxy_pass 127.0.0.1:53; } }",
     'lb.conf:1: host not found in set_real_ip_from "10.0.0.300"'),   # nginx: not a CIDR, so a name
    ("stream { server { listen 53; set_real_ip_from 10.0.0.0/33; proxy_pass 127.0.0.1:53; } }",
     'lb.conf:1: invalid parameter "10.0.0.0/33"'),
    ("stream { server { listen 53; proxy_protocol maybe; proxy_pass 127.0.0.1:53; } }",
     'lb.conf:1: invalid value "maybe" in "proxy_protocol" directive, it must be "on" or "off"'),
    ("http { server { listen 80; location / { proxy_protocol on; return 200; } } }",
     'lb.conf:1: "proxy_protocol" directive is not allowed here'),
    (("stream { server { listen 53 udp; proxy_protocol on; proxy_responses 0;\n"
     "proxy_bind $remote_addr:$remote_port transparent; proxy_pass 127.0.0.1:53; } }"),
     "lb.conf:1: \"proxy_protocol on\" cannot be used with direct server return"),
])
def test_config_errors(tmp_path: Path, text: str, error: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text)
    assert str(caught.value).endswith(error) or error in str(caught.value)
