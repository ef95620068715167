"""Unix-domain sockets as nginx writes them: `server unix:/path`, `listen unix:/path`, `proxy_pass
http://unix:/path:/uri`, stream `proxy_pass unix:/path`, with nginx's errors at file:line."""

from __future__ import annotations

from pathlib import Path

import pytest

from sheer.config import ConfigError, load
from sheer.config.model import Config
from sheer.core.http.uri import BadProxyUrl, parse_proxy_url


def load_text(tmp_path: Path, text: str) -> Config:
    path = tmp_path / "lb.conf"
    path.write_text(text)
    return load(str(path), lookup=lambda host: ("127.0.0.1",))


def error_of(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load_text(tmp_path, text)
    return str(caught.value)


LONG = "/run/" + "x" * 103      # 108 bytes: one more than sun_path holds with its NUL


def test_http_upstream_and_proxy_pass(tmp_path: Path) -> None:
    config = load_text(tmp_path, """
        http {
            upstream app { server unix:/run/app.sock weight=2 max_fails=3; server 127.0.0.1:8000; }
            server {
                listen 127.0.0.1:8080;
                location /a/ { proxy_pass http://app; }
                location /b/ { proxy_pass http://unix:/run/b.sock:/inner/; }
                location /c/ { proxy_pass http://unix:/run/c.sock; }
            }
        }""")
    assert config.http is not None
    app = config.http.upstreams[0]
    unix, inet = app.servers
    assert (unix.host, unix.port, unix.weight, unix.max_fails) == ("unix:/run/app.sock", 0, 2, 3)
    assert unix.unix and not inet.unix
    assert unix.name == "unix:/run/app.sock" and unix.sockaddr == "/run/app.sock"
    assert inet.sockaddr == ("127.0.0.1", 8000) and inet.family == 4 and unix.family == 0
    locations = {loc.path: loc for loc in config.http.servers[0].locations}
    b = locations["/b/"].proxy_pass
    assert b is not None and b.upstream is not None
    assert b.uri == "/inner/" and b.upstream.name == "unix:/run/b.sock"
    assert [s.sockaddr for s in b.upstream.servers] == ["/run/b.sock"]
    c = locations["/c/"].proxy_pass
    assert c is not None and c.uri is None and c.upstream is not None
    assert c.upstream.servers[0].sockaddr == "/run/c.sock"


def test_stream_upstream_and_proxy_pass(tmp_path: Path) -> None:
    config = load_text(tmp_path, """
        stream {
            upstream u { server unix:/run/u.sock; }
            server { listen 127.0.0.1:8080; proxy_pass unix:/run/direct.sock; }
            server { listen 127.0.0.1:8081; proxy_pass u; }
            server { listen unix:/run/front.sock proxy_protocol; proxy_pass u; }
        }""")
    assert config.stream is not None
    direct, grouped, front = config.stream.servers
    assert direct.upstream is not None and direct.upstream.servers[0].sockaddr == "/run/direct.sock"
    assert grouped.upstream is not None and grouped.upstream.servers[0].name == "unix:/run/u.sock"
    listen = front.listens[0]
    assert listen.unix and listen.proxy_protocol and listen.sockaddr == "/run/front.sock"
    assert str(listen) == "unix:/run/front.sock"


def test_http_listen_unix(tmp_path: Path) -> None:
    config = load_text(tmp_path, """
        http { server { listen unix:/run/web.sock; listen 127.0.0.1:8080; return 200; } }""")
    assert config.http is not None
    unix, inet = config.http.servers[0].listens
    assert unix.unix and unix.sockaddr == "/run/web.sock" and not inet.unix


def test_proxy_url_with_variables() -> None:
    url = parse_proxy_url("http://unix:/run/a.sock:/x?y=1")
    assert (url.host, url.uri, url.proxy_host) == ("unix:/run/a.sock", "/x?y=1", "localhost")
    assert not url.no_port
    assert parse_proxy_url("http://unix:/run/a.sock").uri == ""
    with pytest.raises(BadProxyUrl, match="no path in the unix domain socket"):
        parse_proxy_url("http://unix:")
    with pytest.raises(BadProxyUrl, match="too long path in the unix domain socket"):
        parse_proxy_url(f"http://unix:{LONG}:/")


@pytest.mark.parametrize(("text", "message"), [
    (f"http {{ server {{ listen unix:{LONG}; return 200; }} }}",
     f'too long path in the unix domain socket in "unix:{LONG}" of the "listen" directive'),
    ("http { server { listen unix:; return 200; } }",
     'no path in the unix domain socket in "unix:" of the "listen" directive'),
    ((f"http {{ upstream u {{ server unix:{LONG}; }} server {{ listen 8080; "
     "location / { proxy_pass http://u; } } }"),
     f'too long path in the unix domain socket in upstream "unix:{LONG}"'),
    (f"http {{ server {{ listen 8080; location / {{ proxy_pass http://unix:{LONG}:/; }} }} }}",
     f'too long path in the unix domain socket in upstream "unix:{LONG}:/"'),
    (f"stream {{ server {{ listen 8080; proxy_pass unix:{LONG}; }} }}",
     f'too long path in the unix domain socket in upstream "unix:{LONG}"'),
    ("stream { server { listen unix:/run/a.sock udp; proxy_pass 127.0.0.1:53; } }",
     "unix-domain datagram sockets are not supported"),
    ("stream { server { listen 127.0.0.1:53 udp; proxy_pass unix:/run/dns.sock; } }",
     'upstream server "unix:/run/dns.sock" is a unix-domain socket: sheer proxies UDP to IP peers only'),
    (("stream { server { listen 127.0.0.1:80; proxy_bind $remote_addr transparent; "
     "proxy_pass unix:/run/a.sock; } }"),
     "a unix-domain socket has no IP address to show the client's"),
    (("http { upstream u { server unix:/run/a.sock; } server { listen 8080; location / { "
     "proxy_bind $remote_addr transparent; proxy_pass http://u; } } }"),
     "a unix-domain socket has no IP address to show the client's"),
])
def test_errors(tmp_path: Path, text: str, message: str) -> None:
    said = error_of(tmp_path, text)
    assert message in said and "lb.conf:" in said


def test_sun_path_limit_is_exact(tmp_path: Path) -> None:
    fits = "/run/" + "x" * 102        # 107 bytes and the NUL: exactly sun_path
    config = load_text(tmp_path, f"stream {{ server {{ listen 8080; proxy_pass unix:{fits}; }} }}")
    assert config.stream is not None and config.stream.servers[0].upstream is not None
    assert config.stream.servers[0].upstream.servers[0].sockaddr == fits


def test_plain_proxy_bind_is_kept(tmp_path: Path) -> None:
    """nginx binds proxy_bind's address whatever the peer; the kernel refuses it at run time."""
    config = load_text(tmp_path, """
        stream { server { listen 8080; proxy_bind 127.0.0.1; proxy_pass unix:/run/a.sock; } }""")
    assert config.stream is not None and config.stream.servers[0].proxy_bind is not None


def test_ketama_hashes_the_path_as_nginx() -> None:
    from sheer.config.model import UpstreamServer
    from sheer.core.balancers.consistent import ketama_name
    unix = UpstreamServer("unix:/run/a:b.sock", 0, text="unix:/run/a:b.sock")
    assert ketama_name(unix) == (b"/run/a:b.sock", b"")
    assert ketama_name(UpstreamServer("10.0.0.1", 80, text="10.0.0.1:80")) == (b"10.0.0.1", b"80")


def test_realip_and_access_trust_unix_clients(tmp_path: Path) -> None:
    from sheer.core.access import allowed
    config = load_text(tmp_path, """
        http { server { listen unix:/run/w.sock; listen 127.0.0.1:8080;
            location /a { set_real_ip_from unix:; allow unix:; deny all; return 204; }
            location /b { set_real_ip_from 127.0.0.1; return 204; } } }
        stream { server { listen unix:/run/s.sock proxy_protocol; set_real_ip_from unix:; return x; } }""")
    assert config.http is not None and config.stream is not None
    locations = {loc.path: loc for loc in config.http.servers[0].locations}
    a, b = locations["/a"].real_ip, locations["/b"].real_ip
    assert a is not None and a.trusts("unix:") and not a.trusts("127.0.0.1")
    assert b is not None and not b.trusts("unix:") and b.trusts("127.0.0.1")
    assert allowed(locations["/a"].access, "unix:") and not allowed(locations["/a"].access, "10.0.0.1")
    stream_ip = config.stream.servers[0].real_ip
    assert stream_ip is not None and stream_ip.trusts("unix:")
    with pytest.raises(ConfigError, match='invalid parameter "unix:/run/x"'):
        load_text(tmp_path, "http { server { listen 8080; set_real_ip_from unix:/run/x; } }")


def test_proxy_protocol_header_of_a_unix_client() -> None:
    from sheer.core import proxy_protocol
    assert proxy_protocol.v1(("unix:", None), ("unix:/run/a.sock", None)) == b"PROXY UNKNOWN\r\n"
    header = proxy_protocol.v2(("unix:", None), ("unix:/run/a.sock", None))
    assert header[13] == 0x01 and header[14:16] == b"\0\0"      # AF_UNSPEC, no addresses
    inet = proxy_protocol.v1(("192.0.2.1", 5), ("192.0.2.2", 80))
    assert inet == b"PROXY TCP4 192.0.2.1 192.0.2.2 5 80\r\n"
