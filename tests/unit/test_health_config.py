"""Config of active health checks: health_check, health_check_timeout, match blocks, zone, the DSR rule."""

from __future__ import annotations

from pathlib import Path

from sheer.config import Config, load
from sheer.config.health import DEFAULT_UDP_PROBE, HealthCheck, HttpMatch, StreamMatch, decode_escapes

DNS_QUERY = (r"\x00\x2a\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00"      # header: id 42, one question
             r"\x03\x73\x74\x6c\x04\x75\x6d\x73\x6c\x03\x65\x64\x75\x00"  # stl.umsl.edu
             r"\x00\x01\x00\x01")                                          # A, IN
ADMIN_GUIDE = f"""stream {{
    upstream dns_upstream {{
        zone   dns_zone 64k;
        server 192.168.136.130:53;
        server 192.168.136.131:53;
        server 192.168.136.132:53;
    }}
    match dns {{
        send {DNS_QUERY};
        expect ~* "health.is.good";
    }}
    match ntp {{
        send \\xe3\\x00\\x00\\x00;
        expect ~* \\x24;
    }}
    health_check_timeout 2s;
    server {{
        listen       53 udp;
        proxy_pass   dns_upstream;
        health_check interval=20 passes=2 fails=2 match=dns udp;
    }}
    server {{
        listen       123 udp;
        proxy_pass   dns_upstream;
        health_check_timeout 500ms;
        health_check udp match=ntp jitter=1s port=1123 mandatory persistent;
    }}
    server {{
        listen       54 udp;
        proxy_pass   dns_upstream;
        health_check udp;
    }}
}}
"""


def load_text(tmp_path: Path, text: str) -> Config:
    path = tmp_path / "lb.conf"
    path.write_text(text)
    return load(str(path))


def test_admin_guide_udp_checks(tmp_path: Path) -> None:
    config = load_text(tmp_path, ADMIN_GUIDE)
    assert config.stream is not None
    dns, ntp, basic = (server.health_check for server in config.stream.servers)
    assert dns is not None and ntp is not None and basic is not None
    assert (dns.interval, dns.passes, dns.fails, dns.udp, dns.timeout) == (20.0, 2, 2, True, 2.0)
    assert isinstance(dns.match, StreamMatch)
    assert dns.match.send == bytes.fromhex("002a000000010000000000000373746c04756d736c036564750000010001")
    assert dns.match.expect is not None
    assert dns.match.expect.matches(b"\x00\x2a\x81\x80...\x06health\x02is\x04good\x00")
    assert not dns.match.expect.matches(b"\x00\x2a\x81\x83 nxdomain")
    assert (ntp.jitter, ntp.port, ntp.mandatory, ntp.persistent, ntp.timeout) == (1.0, 1123, True, True, 0.5)
    assert isinstance(ntp.match, StreamMatch) and ntp.match.expect is not None
    # \x24 is the byte "$" here, not the end-of-text anchor
    assert ntp.match.expect.matches(b"\x24\x02") and not ntp.match.expect.matches(b"\x1c\x02")
    assert basic == HealthCheck(udp=True, timeout=2.0, connect_timeout=2.0)  # health_check_timeout inherited
    assert basic.match is None and DEFAULT_UDP_PROBE == b"nginx health check"


def test_nginx_plus_defaults(tmp_path: Path) -> None:
    config = load_text(tmp_path, "stream { server { listen 1; proxy_pass 127.0.0.1:2; health_check; } }")
    assert config.stream is not None
    check = config.stream.servers[0].health_check
    assert check is not None
    assert (check.interval, check.jitter, check.fails, check.passes, check.port,
            check.udp) == (5.0, 0.0, 1, 1, None, False)
    assert (check.mandatory, check.timeout) == (False, 5.0)


def test_http_match_and_location_check(tmp_path: Path) -> None:
    config = load_text(tmp_path, """http {
    upstream b { zone b 64k; server 127.0.0.1:8080; }
    match welcome {
        status 200-399 204;
        status ! 301;
        header Content-Type = text/html;
        header Connection !~ close;
        header X-Up;
        header ! X-Down;
        body ~ "Welcome to nginx!";
    }
    server {
        listen 8081;
        proxy_connect_timeout 2s;
        location / { proxy_read_timeout 3s; proxy_pass http://b;
                     health_check match=welcome uri=/health interval=1s; }
        location /a { proxy_pass http://b; }
    }
}""")
    assert config.http is not None
    first, second = config.http.servers[0].locations
    check = first.health_check
    assert check is not None and second.health_check is None
    assert (check.uri, check.interval, check.timeout, check.connect_timeout) == ("/health", 1.0, 3.0, 2.0)
    match = check.match
    assert isinstance(match, HttpMatch)
    assert [rule.matches(200) for rule in match.status] == [True, True]
    assert [rule.matches(301) for rule in match.status] == [True, False]
    assert not match.status[0].matches(404)
    assert [(h.name, h.op) for h in match.headers] == [
        ("Content-Type", "="), ("Connection", "!~"), ("X-Up", "present"), ("X-Down", "absent")]
    assert match.body is not None and not match.body.negated


def test_dsr_with_a_check_or_acknowledged(tmp_path: Path) -> None:
    dsr = """stream {{
    upstream u {{ server 10.0.0.1:53; server 10.0.0.2:53; }}
    server {{ listen 53 udp; proxy_pass u; proxy_responses 0;
             proxy_bind $remote_addr:$remote_port transparent; {extra} }}
    {other}
}}"""
    for extra, other in (("health_check udp;", ""), ("dsr_without_health_check on;", ""),
                         ("", "server { listen 54 udp; proxy_pass u; health_check udp; }")):
        config = load_text(tmp_path, dsr.format(extra=extra, other=other))
        assert config.stream is not None and config.stream.servers[0].dsr


def test_decode_escapes() -> None:
    assert decode_escapes(r"\x00A\xffé") == b"\x00A\xff\xc3\xa9"
    assert decode_escapes("plain") == b"plain"
